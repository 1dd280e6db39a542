import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataProducer
import StrataTestSupport
import XCTest

/// Producers and compactors on a flaky store (`FaultInjectingStore`, seeded: 5xx, SlowDown,
/// resets, lost answers, truncated reads, latency). Each retries what failed as a real one would:
/// a producer with its run id, a compactor its round. They must converge to the model, with every
/// run applied once and none quarantined (a transient fault is never taken for a bad run).
class FaultConvergenceTests: XCTestCase {
    func makeStore() throws -> any ObjectStore {
        let dir = TempDir(prefix: "strata-faults-conv")
        addTeardownBlock { _ = dir }
        return try FileStore(root: URL(fileURLWithPath: dir.path))
    }

    /// Runs `body` until it succeeds; only retryable store errors are retried (anything else is a
    /// finding). Returns the attempts used.
    @discardableResult
    func retrying<T>(_ what: String, _ body: () throws -> T) throws -> (T, Int) {
        var attempt = 0
        while true {
            attempt += 1
            do { return (try body(), attempt) } catch let e as StoreError where e.isRetryable && attempt < 50 {
                continue
            }
        }
    }

    func writeInput(_ world: CompactionWorld, _ name: String, _ ops: [CompactionWorld.Op]) throws -> String {
        let text = try CompactionWorld.ndjson(ops)
        let path = world.tmp.file(name)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func testProducersAndCompactorsConvergeOnAFlakyStore() throws {
        for seed: UInt64 in [11, 12, 13] {
            let flaky = FaultInjectingStore(try makeStore(), seed: seed, rates: .flaky(0.12), latency: 0.0002...0.002)
            let world = CompactionWorld(store: flaky, layout: Layout(prefix: "s\(seed)/"), dimension: 4)
            var rng = SeededRandom(seed: seed)
            var runIds: [String] = []
            var retries = 0
            var last: String? = nil
            // One compactor (one compactor id) that retries its rounds, as a worker does: a round
            // that failed may leave its lease held, which only its owner may take over at once.
            let compactor = world.compactor()
            for round in 0..<6 {
                for k in 0..<2 {
                    // Upserts of new and existing ids, overwrites and deletes (of present and absent ids).
                    var ops: [CompactionWorld.Op] = []
                    for _ in 0..<6 {
                        let id = "r\(Int.random(in: 0..<15, using: &rng))"
                        ops.append(
                            Int.random(in: 0..<4, using: &rng) == 0
                                ? .delete(id) : .upsert(id, world.row(Int.random(in: 0..<1000, using: &rng))))
                    }
                    let path = try writeInput(world, "in-\(seed)-\(round)-\(k).ndjson", ops)
                    let runId = Identifiers.make(after: last)
                    last = runId
                    let producer = RunProducer(
                        store: flaky, layout: world.layout,
                        settings: ProducerSettings(workDirectory: world.tmp.path))
                    let (_, attempts) = try retrying("produce \(runId)") {
                        try producer.produce(
                            inputs: [ProducerInput(collection: "lines", path: path, dimension: 4)],
                            runId: runId)
                    }
                    retries += attempts - 1
                    runIds.append(runId)
                    for op in ops {
                        switch op {
                        case .upsert(let id, let r): world.model["lines", default: [:]][id] = r
                        case .delete(let id): world.model["lines", default: [:]][id] = nil
                        }
                    }
                }
                let (_, attempts) = try retrying("compact round \(round)") {
                    try compactor.compact(collection: "lines")
                }
                retries += attempts - 1
            }
            // A last round without faults applies whatever a failed round left pending.
            flaky.enabled = false
            _ = try compactor.compact(collection: "lines")
            XCTAssertGreaterThan(flaky.failuresInjected, 8, "seed \(seed): \(flaky.counts)")
            XCTAssertGreaterThan(retries, 0, "seed \(seed)")
            try world.assertMatchesModel("lines")
            try world.assertEveryRunAppliedOnce("lines")
            XCTAssertEqual(try world.recordedRuns("lines"), Set(runIds), "seed \(seed): one record per run")
            XCTAssertEqual(
                try flaky.inner.list(prefix: world.layout.quarantinePrefix("lines")).map(\.key), [],
                "seed \(seed): no run quarantined for a transient fault")
        }
    }
}

/// The same on S3 (the private SeaweedFS).
final class FaultConvergenceS3Tests: FaultConvergenceTests {
    override func makeStore() throws -> any ObjectStore { try S3TestStore.make("faultconv") }

    // Declaring one test here makes SwiftPM's Linux test discovery list this class, and with it
    // every inherited test.
    func testRunsOnS3() throws { XCTAssertFalse(try makeStore() is FileStore) }
}
