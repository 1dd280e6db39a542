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
