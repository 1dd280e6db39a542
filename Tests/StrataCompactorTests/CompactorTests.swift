import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// The compactor against the file store: the published snapshot equals a reference model.
class CompactorFileStoreTests: XCTestCase {
    var dir: TempDir!
    var world: CompactionWorld!

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-compactor")
        world = CompactionWorld(store: try FileStore(root: URL(fileURLWithPath: dir.path)))
    }

    func testNewCollectionThenUpsertsDeletesAndOverwrites() throws {
        let w = world!
        try w.produce(["lines": (0..<20).map { .upsert("L\($0)", w.row($0)) }])
        var s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertNil(s.baseVersion)
        XCTAssertEqual(s.rowsAfter, 20)
        XCTAssertEqual(s.newIds, 20)
        try w.assertMatchesModel("lines")

        // Overwrites, deletes of existing and missing ids, new ids; in two runs, later wins.
        try w.produce(["lines": [.upsert("L1", w.row(101)), .delete("L2"), .delete("nope"), .upsert("L20", w.row(20))]])
        try w.produce(["lines": [.upsert("L1", w.row(202)), .upsert("L2", w.row(2)), .delete("L3")]])
        s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.runsApplied.count, 2)
        XCTAssertEqual(s.rowsBefore, 20)
        XCTAssertEqual(s.rowsAfter, 20)  // +L20, -L2, +L2, -L3
        XCTAssertEqual(s.deletedExisting, 2)
        try w.assertMatchesModel("lines")

        // Nothing pending: nothing published.
        s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .upToDate)
        XCTAssertEqual(try w.published("lines").applied.count, 3)
    }

    func testSeveralCollectionsFromOneRun() throws {
        let w = world!
        try w.produce(["lines": [.upsert("a", w.row(1))], "words": [.upsert("w1", w.row(2)), .upsert("w2", w.row(3))]])
        try w.produce(["words": [.delete("w1")]])
        let c = w.compactor()
        XCTAssertEqual(try c.compact(collection: "lines").rowsAfter, 1)
        XCTAssertEqual(try c.compact(collection: "words").rowsAfter, 1)
        try w.assertMatchesModel("lines")
        try w.assertMatchesModel("words")
    }

    /// Seeded random operations over a small id space, several rounds: always equal to the model.
    func testRandomizedRoundsMatchModel() throws {
        let w = world!
        var rng = SeededRandom(seed: 42)
        for round in 0..<6 {
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                var ops: [String: [CompactionWorld.Op]] = [:]
                for c in ["lines", "words"] where Bool.random(using: &rng) || round == 0 {
                    var ids = Set<String>()
                    var list: [CompactionWorld.Op] = []
                    for _ in 0..<Int.random(in: 1...30, using: &rng) {
                        let id = "id\(Int.random(in: 0..<60, using: &rng))"
                        guard ids.insert(id).inserted else { continue }  // one op per id per delta
                        list.append(
                            Int.random(in: 0..<10, using: &rng) < 7
                                ? .upsert(id, w.row(Int.random(in: 0..<1000, using: &rng))) : .delete(id))
                    }
                    if list.contains(where: { if case .upsert = $0 { return true } else { return false } }) || round > 0
                    {
                        ops[c] = list
                    }
                }
                if !ops.isEmpty { try w.produce(ops) }
            }
            for c in ["lines", "words"] {
                _ = try w.compactor().compact(collection: c)
                try w.assertMatchesModel(c)
            }
        }
    }

    func testLimitsDeferRunsToTheNextRound() throws {
        let w = world!
        for i in 0..<5 { try w.produce(["lines": [.upsert("r\(i)", w.row(i))]]) }
        let s1 = try w.compactor { $0.maxRunsPerPublish = 2 }.compact(collection: "lines")
        XCTAssertEqual(s1.runsApplied.count, 2)
        XCTAssertEqual(s1.runsDeferred, 3)
        let s2 = try w.compactor { $0.maxRunsPerPublish = 10 }.compact(collection: "lines")
        XCTAssertEqual(s2.runsApplied.count, 3)
        try w.assertMatchesModel("lines")
    }

    func testCacheModeReusesTheVerifiedBase() throws {
        let w = world!
        let cacheDir = dir.path + "-cache"
        defer { try? FileManager.default.removeItem(atPath: cacheDir) }
        let configure: (inout CompactorSettings) -> Void = {
            $0.cacheMode = .cache
            $0.cacheDirectory = cacheDir
        }
        try w.produce(["lines": (0..<10).map { .upsert("k\($0)", w.row($0)) }])
        let s1 = try w.compactor(configure).compact(collection: "lines")
        XCTAssertFalse(s1.baseFromCache)
        let run = try w.produce(["lines": [.delete("k1")]])
        let s2 = try w.compactor(configure).compact(collection: "lines")
        XCTAssertTrue(s2.baseFromCache, "the version it published is reused")
        let record = try RunRecord.decode(try w.store.getData(w.layout.runRecordKey(run)).data, key: run)
        XCTAssertEqual(
            s2.bytesDownloaded, record.delta(for: "lines")!.size, "only the delta was downloaded, not the base")
        try w.assertMatchesModel("lines")

        // Someone else publishes: the cache no longer holds the base, so it downloads and verifies.
        try w.produce(["lines": [.upsert("k99", w.row(99))]])
        _ = try w.compactor().compact(collection: "lines")
        try w.produce(["lines": [.delete("k2")]])
        let s3 = try w.compactor(configure).compact(collection: "lines")
        XCTAssertFalse(s3.baseFromCache)
        try w.assertMatchesModel("lines")
    }

    func testPointerNeverMovesBackwards() throws {
        let w = world!
        var versions: [String] = []
        for i in 0..<4 {
            try w.produce(["lines": [.upsert("v\(i)", w.row(i))]])
            versions.append(try w.compactor().compact(collection: "lines").newVersion!)
        }
        XCTAssertEqual(versions, versions.sorted())
        let (m, _, _) = try w.published("lines")
        XCTAssertEqual(m.version, versions.last)
        XCTAssertEqual(m.parentVersion, versions[2])
    }
}

final class CompactorStoreCheckTests: XCTestCase {
    func testStoreWithoutConditionalWritesIsRefusedUnlessSingleWriter() throws {
        let dir = TempDir(prefix: "strata-noconditions")
        // A store that accepts conditional writes and ignores them, as Garage does.
        let store = FaultInjectingStore(try FileStore(root: URL(fileURLWithPath: dir.path)))
        store.ignoresConditions = true
        let w = CompactionWorld(store: store)
        try w.produce(["lines": [.upsert("a", w.row(1))]])
        XCTAssertThrowsError(try w.compactor().compact(collection: "lines")) { error in
            XCTAssertEqual((error as? StrataError)?.kind, .refused, "\(error)")
            XCTAssertTrue("\(error)".contains("--single-writer"), "\(error)")
        }
        XCTAssertNil(try store.head(w.layout.pointerKey("lines")), "nothing was published")
        let s = try w.compactor { $0.singleWriter = true }.compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        try w.assertMatchesModel("lines")
    }
}
