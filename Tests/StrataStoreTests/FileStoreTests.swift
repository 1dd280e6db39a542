import Foundation
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// The conformance suite on the file store; `S3StoreConformanceTests` runs every test of it on
/// SeaweedFS by overriding `makeStore`.
class FileStoreConformanceTests: XCTestCase {
    var dir: TempDir!
    var suite: StoreConformance!

    /// The store under test.
    func makeStore() throws -> any ObjectStore { try FileStore(root: URL(fileURLWithPath: dir.path)) }

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-filestore")
        suite = StoreConformance(store: try makeStore())
    }

    func testPutGetHeadRoundTrip() throws { try suite.putGetHeadRoundTrip() }
    func testPutFromFile() throws { try suite.putFromFile() }
    func testEmptyObject() throws { try suite.emptyObject() }
    func testMissingKeys() throws { try suite.missingKeys() }
    func testRanges() throws { try suite.ranges() }
    func testOverwriteChangesETag() throws { try suite.overwriteChangesETag() }
    func testConditionalWrites() throws { try suite.conditionalWrites() }
    func testCreateOnlyRace() throws { try suite.createOnlyRace() }
    func testCompareAndSwapCounter() throws { try suite.compareAndSwapCounter() }
    func testListing() throws { try suite.listing() }
    func testListingFlatStartAfter() throws { try suite.listingFlatStartAfter() }
    func testListingOrderEdgeCases() throws { try suite.listingOrderEdgeCases() }
    func testDeletes() throws { try suite.deletes() }
    func testAwkwardKeys() throws { try suite.awkwardKeys() }
    func testProbeReportsEnforced() throws { try suite.probeReportsEnforced() }
}

/// Behaviour specific to the file store.
final class FileStoreTests: XCTestCase {
    func testRefusesKeysThatEscapeTheRoot() throws {
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        for bad in ["../escape", "a/../../b", "/abs", "a//b", "a/./b", "", "trailing/", ".strata-internal/x"] {
            XCTAssertThrowsError(try store.put(bad, data: Data("x".utf8)), bad) { error in
                XCTAssertTrue(error.isStoreError(.invalidRequest), "\(bad): \(error)")
            }
        }
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: (dir.path as NSString).deletingLastPathComponent + "/escape"))
    }

    func testInternalDirectoryIsNeverListed() throws {
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        try store.put("x", data: Data("1".utf8))
        XCTAssertEqual(try store.list(prefix: "").map(\.key), ["x"])
        XCTAssertEqual(try store.listDirectory(prefix: "").prefixes, [])
    }

    func testDeletePrunesEmptyDirectories() throws {
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        try store.put("a/b/c/d", data: Data("1".utf8))
        try store.delete("a/b/c/d")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/a"))
        // And a later put recreates them.
        try store.put("a/b/c/e", data: Data("2".utf8))
        XCTAssertEqual(try store.getData("a/b/c/e").data, Data("2".utf8))
    }

    func testWriteIsAtomicForReaders() throws {
        // A reader never sees a partially written object: it sees the old or the new contents.
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        let a = Data(repeating: 0x61, count: 2 << 20)
        let b = Data(repeating: 0x62, count: 2 << 20)
        try store.put("k", data: a)
        let stop = Locked(false)
        let bad = Locked(0)
        let reader = Thread {
            while !stop.value {
                if let d = try? store.getData("k").data, d != a, d != b { bad.update { $0 += 1 } }
            }
        }
        reader.start()
        for i in 0..<20 { try store.put("k", data: i % 2 == 0 ? b : a) }
        stop.update { $0 = true }
        while !reader.isFinished { usleep(1000) }
        XCTAssertEqual(bad.value, 0)
    }
}

/// The file store's listing against a model of S3 ListObjectsV2 (sort the keys as bytes, filter,
/// roll up at the delimiter), on random deep trees with empty directories left behind.
final class FileStoreListingModelTests: XCTestCase {
    /// ListObjectsV2 over `keys`, every page, following the continuation; the first page starts
    /// after `startAfter`.
    static func model(
        _ keys: [String], prefix: String, delimiter: String?, startAfter: String?, pageSize: Int
    ) -> [[String]] {
        let sorted = keys.filter { $0.hasPrefix(prefix) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var entries: [String] = []
        for k in sorted {
            if let startAfter, !startAfter.utf8.lexicographicallyPrecedes(k.utf8) { continue }
            var entry = k + "\u{0}"  // marks an object
            if let delimiter {
                let rest = Array(k.utf8.dropFirst(prefix.utf8.count))
                let d = Array(delimiter.utf8)
                if let i = (0...max(0, rest.count - d.count)).first(where: {
                    rest.count >= d.count && Array(rest[$0..<($0 + d.count)]) == d
                }) {
                    let common = prefix + String(decoding: rest[..<(i + d.count)], as: UTF8.self)
                    if common == startAfter || entries.last == common { continue }
                    entry = common
                }
            }
            entries.append(entry)
        }
        if entries.isEmpty { return [[]] }
        return stride(from: 0, to: entries.count, by: pageSize).map {
            Array(entries[$0..<min($0 + pageSize, entries.count)])
        }
    }

    func testRandomTreesMatchTheModel() throws {
        var rng = SeededRandom(seed: 11)
        let alphabet = ["a", "b", ".", "-", "0", "\u{00e9}", "B", "a.", "ab"]
        for round in 0..<6 {
            let dir = TempDir(prefix: "strata-listing")
            let store = try FileStore(root: URL(fileURLWithPath: dir.path))
            var keys = Set<String>()
            var dirs = Set<String>()  // prefixes of keys ("a/b"): a key there would collide
            for _ in 0..<(20 + round * 10) {
                let depth = Int.random(in: 1...5, using: &rng)
                let segs = (0..<depth).map { _ in
                    (0..<Int.random(in: 1...3, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
                        .joined()
                }
                if segs.contains(where: { $0 == "." || $0 == ".." }) { continue }
                let k = segs.joined(separator: "/")
                let parents = (1..<segs.count).map { segs[..<$0].joined(separator: "/") }
                if dirs.contains(k) || parents.contains(where: { keys.contains($0) }) || keys.contains(k) { continue }
                try store.put(k, data: Data(k.utf8))
                keys.insert(k)
                dirs.formUnion(parents)
            }
            // Delete some keys (their emptied directories are pruned) and leave empty ones behind.
            for k in keys.shuffled(using: &rng).prefix(keys.count / 5) {
                try store.delete(k)
                keys.remove(k)
            }
            for d in dirs.shuffled(using: &rng).prefix(6) {
                try FileManager.default.createDirectory(
                    atPath: dir.path + "/" + d + "/empty/deeper", withIntermediateDirectories: true)
            }
            let all = Array(keys)
            let sorted = all.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let prefixes = ["", "a", "a/", "a.", "b/a", "ab/", "a/b/"] + sorted.prefix(3)
            for prefix in prefixes {
                for delimiter in [nil, "/", ".", "a/"] as [String?] {
                    let starts: [String?] =
                        [nil, "a", "a/", "a.", "b"] + sorted.shuffled(using: &rng).prefix(2).map { $0 }
                    for startAfter in starts {
                        for pageSize in [1, 3, 1000] {
                            let want = Self.model(
                                all, prefix: prefix, delimiter: delimiter, startAfter: startAfter, pageSize: pageSize)
                            var got: [[String]] = []
                            var token: String? = nil
                            repeat {
                                let page = try store.listPageAfter(
                                    prefix: prefix, delimiter: delimiter, startAfter: startAfter,
                                    continuation: token, maxKeys: pageSize)
                                let objects = page.objects.map { $0.key + "\u{0}" }
                                got.append(
                                    (objects + page.commonPrefixes).sorted {
                                        $0.utf8.lexicographicallyPrecedes($1.utf8)
                                    }
                                )
                                token = page.continuation
                                XCTAssertLessThanOrEqual(got.count, all.count + 2)
                            } while token != nil && got.count <= all.count + 2
                            XCTAssertEqual(
                                got, want,
                                "round \(round) prefix \(prefix) delimiter \(delimiter ?? "-") after \(startAfter ?? "-") "
                                    + "page \(pageSize)")
                            if got != want { return }
                        }
                    }
                }
            }
        }
    }

    func testEmptyDirectoriesLeftBehindDoNotShow() throws {
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        try store.put("e/a", data: Data("1".utf8))
        try store.put("e/z", data: Data("2".utf8))
        for d in ["e/m/empty/deeper", "e/b", "e/y/"] {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + d, withIntermediateDirectories: true)
        }
        XCTAssertEqual(try store.list(prefix: "e/", pageSize: 1).map(\.key), ["e/a", "e/z"])
        let listed = try store.listDirectory(prefix: "e/")
        XCTAssertEqual(listed.objects.map(\.key), ["e/a", "e/z"])
        XCTAssertEqual(listed.prefixes, [])
        let first = try store.listPage(prefix: "e/", delimiter: "/", continuation: nil, maxKeys: 1)
        XCTAssertEqual(first.objects.map(\.key), ["e/a"])
        XCTAssertEqual(first.continuation, "e/a")
        let second = try store.listPage(prefix: "e/", delimiter: "/", continuation: "e/a", maxKeys: 1)
        XCTAssertEqual(second.objects.map(\.key), ["e/z"])
        XCTAssertNil(second.continuation)
    }

    /// A page out of a large flat directory stats only the objects it returns (the cost a pass
    /// over `runs/` pays per page): the other entries' types come from readdir.
    func testAPageFromALargeDirectoryIsOnePage() throws {
        let dir = TempDir()
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        for i in 0..<1500 { try store.put(String(format: "runs/%05d.json", i), data: Data("{}".utf8)) }
        let page = try store.listPageAfter(
            prefix: "runs/", delimiter: nil, startAfter: "runs/01490.json", continuation: nil, maxKeys: 1000)
        XCTAssertEqual(page.objects.map(\.key), (1491..<1500).map { String(format: "runs/%05d.json", $0) })
        XCTAssertNil(page.continuation)
        var n = 0
        var token: String? = nil
        repeat {
            let p = try store.listPage(prefix: "runs/", delimiter: nil, continuation: token, maxKeys: 1000)
            n += p.objects.count
            token = p.continuation
        } while token != nil
        XCTAssertEqual(n, 1500)
    }
}
