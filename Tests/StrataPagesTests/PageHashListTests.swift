import Foundation
import StrataCore
import StrataCrypto
import StrataPages
import StrataTestSupport
import XCTest

/// The page-hash list built in parallel slices gives the root its definition gives, computed here
/// page by page on one thread (Docs/design/0002, "Integrity without rehashing everything").
final class PageHashListTests: XCTestCase {
    /// leaf = SHA-256(page); group = SHA-256(256 leaves); root = SHA-256(prefix, size, count, groups).
    func definitionRoot(_ data: Data, pageSize: Int) -> [UInt8] {
        let pages = data.count / pageSize
        var groups: [UInt8] = []
        var group = Digest(.sha256)
        for p in 0..<pages {
            let leaf = Digest(.sha256)
            data.withUnsafeBytes {
                leaf.update(UnsafeRawBufferPointer(rebasing: $0[(p * pageSize)..<((p + 1) * pageSize)]))
            }
            group.update(leaf.finalize())
            if (p + 1) % PageHashList.fanout == 0 || p + 1 == pages {
                groups += group.finalize()
                group = Digest(.sha256)
            }
        }
        let root = Digest(.sha256)
        root.update(Array("strata-page-hashes-v1".utf8) + [0])
        var n: [UInt8] = []
        for v in [UInt32(pageSize), UInt32(pages)] { n += [24, 16, 8, 0].map { UInt8((v >> UInt32($0)) & 0xff) } }
        root.update(n)
        root.update(groups)
        return root.finalize()
    }

    func testParallelBuildMatchesTheDefinitionAndCopiesExactly() throws {
        let dir = TempDir()
        for pages in [3, 8_191, 8_192 + 257, 20_003] {
            let pageSize = 4096
            var rng = SeededRandom(seed: UInt64(pages))
            var data = Data(count: pages * pageSize)
            data.withUnsafeMutableBytes { b in
                for i in stride(from: 0, to: b.count, by: 8) {
                    b.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
                }
            }
            // A SQLite header so the list knows the page size.
            data.replaceSubrange(0..<16, with: Array("SQLite format 3\u{0}".utf8))
            data[16] = 0x10
            data[17] = 0x00
            let path = dir.file("f-\(pages).sqlite3")
            try data.write(to: URL(fileURLWithPath: path))
            let copy = dir.file("copy-\(pages).sqlite3")
            let list = try PageHashList.build(database: path, to: dir.file("l-\(pages).phl"), copyTo: copy)
            XCTAssertEqual(list.pageCount, UInt32(pages))
            XCTAssertEqual(list.root, definitionRoot(data, pageSize: pageSize), "\(pages) pages")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: copy)), data, "\(pages) pages: the copy")
            XCTAssertEqual(
                try list.leaf(UInt32(pages)),
                {
                    let d = Digest(.sha256)
                    data.withUnsafeBytes { d.update(UnsafeRawBufferPointer(rebasing: $0[((pages - 1) * pageSize)...])) }
                    return d.finalize()
                }())
            // Reopened from its file, the list has the same root.
            XCTAssertEqual(try PageHashList.open(path: dir.file("l-\(pages).phl")).root, list.root)
        }
    }
}
