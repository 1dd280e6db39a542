import Foundation
import StrataCompactor
import StrataCore
import StrataS3
import StrataTestSupport
import XCTest

/// The compactor end to end against a real S3 server (a private SeaweedFS on loopback): the
/// same scenarios as on the file store, through S3's conditional writes and listings.
final class CompactorSeaweedFSTests: XCTestCase {
    func world(_ hint: String) throws -> (CompactionWorld, S3Store) {
        let store = try S3TestStore.make(hint)
        return (CompactionWorld(store: store), store)
    }

    func processScenarios(_ hint: String) throws -> ProcessScenarios {
        let (w, store) = try world(hint)
        let server = try SeaweedFS.shared()
        return ProcessScenarios(
            world: w, storeURL: "s3://\(store.configuration.bucket)",
            environment: server.awsEnvironment)
    }

    func testModelAcrossCollectionsOverwritesAndMissingDeletes() throws {
        let (w, _) = try world("model")
        try w.produce([
            "lines": (0..<30).map { .upsert("L\($0)", w.row($0)) },
            "words": (0..<10).map { .upsert("W\($0)", w.row($0 + 50)) },
        ])
        try w.produce(["lines": [.upsert("L1", w.row(99)), .delete("L2"), .delete("never-existed")]])
        try w.produce(["words": [.delete("W0")], "lines": [.upsert("L2", w.row(2))]])
        let c = w.compactor()
        for name in ["lines", "words"] {
            let s = try c.compact(collection: name)
            XCTAssertEqual(s.outcome, .published, name)
            try w.assertMatchesModel(name)
            try w.assertEveryRunAppliedOnce(name)
        }
        // A new collection appears later.
        try w.produce(["receipts": [.upsert("R1", w.row(7))]])
        XCTAssertEqual(try c.compact(collection: "receipts").rowsAfter, 1)
        try w.assertMatchesModel("receipts")
    }

    func testQuarantine() throws {
        let (w, _) = try world("quarantine")
        try QuarantineScenarios(world: w).brokenAndHostileDeltasAreQuarantined()
    }

    func testCrashAtEveryStepConverges() throws {
        let cache = TempDir(prefix: "strata-cache")
        try processScenarios("crash").crashAtEveryStepConverges(cacheDir: cache.path)
    }

    func testConcurrentCompactorsAndProducers() throws {
        try processScenarios("race").concurrentCompactorsAndProducers()
    }

    func testConcurrentCompactorsWithoutLeases() throws {
        try processScenarios("racenolease").concurrentCompactorsAndProducers(leaseSeconds: "0.001")
    }
}

/// Every test of the file store's `CompactorFileStoreTests`, on S3: the world is rebuilt on a
/// fresh SeaweedFS bucket after the base class set it up.
final class CompactorFileStoreTestsOnS3: CompactorFileStoreTests {
    override func setUpWithError() throws {
        try super.setUpWithError()
        world = CompactionWorld(store: try S3TestStore.make("compactor"))
    }

    // Declaring one test here makes SwiftPM's Linux test discovery list this class, and with it
    // every inherited test (no hand-kept list to forget a test in).
    func testRunsOnS3() throws { XCTAssertTrue(world.store is S3Store, "\(type(of: world.store))") }
}
