import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// The randomized model test of SPEC invariant 4: producers upsert and delete shared ids; their
/// records become visible in a random order (a run may arrive after newer runs were applied);
/// compaction rounds run in between through a FaultInjectingStore (5xx, SlowDown, resets, truncated
/// and short reads, ambiguous writes, latency). The end state must equal a model that applies
/// every run in creation order, with every run applied exactly once.
struct RandomizedArrivalScenarios {
    let makeStore: () throws -> any ObjectStore

    struct PlannedRun {
        var runId: String
        var ops: [CompactionWorld.Op]
    }

    func run(seed: UInt64, producers: Int = 3, runsPerProducer: Int = 7, ids: Int = 20, failureRate: Double = 0.03)
        throws -> Int
    {
        let w = CompactionWorld(store: try makeStore())
        // The compactor's store injects S3's failures; producers write through the plain store.
        let failing = FaultInjectingStore(w.store, seed: seed &* 7919)
        failing.enabled = false
        failing.setRates(
            .init([
                .serverError: failureRate / 4, .throttled: failureRate / 4,
                .connectionReset: failureRate / 4, .truncatedRead: failureRate / 8,
                .shortRead: failureRate / 8, .latency: 0.02,
            ]),
            for: [.head, .get, .getData, .list])
        failing.setRates(.init([.ambiguousSuccess: failureRate / 2, .serverError: failureRate / 2]), for: [.put])
        var rng = SeededRandom(seed: seed)
        let c = "lines"
        // Creation order: runs are made at distinct times over the last hour, producers interleaved.
        let start = Date().addingTimeInterval(-3600)
        var planned: [PlannedRun] = []
        for k in 0..<(producers * runsPerProducer) {
            var used = Set<Int>()
            var ops: [CompactionWorld.Op] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let id = Int.random(in: 0..<ids, using: &rng)
                guard used.insert(id).inserted else { continue }
                // The first run has an upsert, so the collection's dimension is fixed early.
                ops.append(
                    k == 0 || Int.random(in: 0..<10, using: &rng) < 6
                        ? .upsert("id\(id)", w.row(Int.random(in: 0..<10_000, using: &rng))) : .delete("id\(id)"))
            }
            planned.append(PlannedRun(runId: runId(at: start.addingTimeInterval(Double(k) * 2)), ops: ops))
        }
        // Arrival order: each run is delayed by a random number of steps (up to a third of all).
        let delays = planned.indices.map { $0 + Int.random(in: 0...(planned.count / 3), using: &rng) }
        let arrival = planned.indices.sorted { (delays[$0], $0) < (delays[$1], $1) }
        XCTAssertNotEqual(arrival, Array(planned.indices), "seed \(seed): some run arrives late")

        let compactor = Compactor(
            store: failing, layout: w.layout,
            settings: {
                var s = CompactorSettings(compactorId: "random-\(seed)", host: "test")
                s.cacheMode = .s3
                s.workDirectory = w.tmp.path
                return s
            }())
        var failedRounds = 0
        var rounds = 0
        var failures: [String: Int] = [:]
        func round() throws {
            rounds += 1
            failing.enabled = true
            defer { failing.enabled = false }
            // A round may fail in any way a fault can make it fail; it must never lose or double a run.
            do { _ = try compactor.compact(collection: c) } catch {
                failedRounds += 1
                failures[(error as? StoreError).map { "\($0.kind)" } ?? "\(type(of: error))", default: 0] += 1
            }
        }
        var published = Set<String>()
        for i in arrival {
            try w.produce([c: planned[i].ops], runId: planned[i].runId)
            published.insert(planned[i].runId)
            if Bool.random(using: &rng) { try round() }
        }
        // Drain: rounds until everything is applied (each may still fail at random).
        var attempts = 0
        while attempts < 200 {
            attempts += 1
            try round()
            let applied = (try? w.history(c).flatMap { $0.appliedRuns.map(\.runId) }) ?? []
            if Set(applied) == published { break }
        }
        XCTAssertGreaterThan(failing.failuresInjected, 0, "seed \(seed): faults were injected")
        XCTAssertEqual(
            try w.store.list(prefix: w.layout.quarantinePrefix(c)).map(\.key), [],
            "seed \(seed): no fault made a good run look bad")

        // The model: every run in creation order, last write per id wins, a delete is a write.
        var model: [String: ModelRow] = [:]
        for r in planned.sorted(by: { $0.runId < $1.runId }) {
            for op in r.ops {
                switch op {
                case .upsert(let id, let row): model[id] = row
                case .delete(let id): model[id] = nil
                }
            }
        }
        let got = try w.published(c).rows
        XCTAssertEqual(Set(got.keys), Set(model.keys), "seed \(seed): ids")
        for (id, row) in model where got[id] != row { XCTFail("seed \(seed): row \(id) is not the newest run's") }
        XCTAssertEqual(w.model[c] ?? [:], model, "seed \(seed): the world's model agrees")
        try w.assertEveryRunAppliedOnce(c)
        let superseded = try w.history(c).flatMap(\.appliedRuns).reduce(0) { $0 + ($1.superseded ?? 0) }
        print(
            "seed \(seed): \(planned.count) runs, \(rounds) rounds, \(failedRounds) failed \(failures) by "
                + "\(failing.counts) injected, \(model.count) rows, \(superseded) writes superseded")
        return superseded
    }
}

final class RandomizedArrivalFileStoreTests: XCTestCase {
    var dirs: [TempDir] = []

    func testRandomArrivalWithReadFaultsMatchesCreationOrder() throws {
        let s = RandomizedArrivalScenarios(makeStore: { [unowned self] in
            let d = TempDir(prefix: "strata-random")
            self.dirs.append(d)
            return try FileStore(root: URL(fileURLWithPath: d.path))
        })
        var superseded = 0
        for seed in [1, 2, 3, 4, 5] as [UInt64] { superseded += try s.run(seed: seed) }
        XCTAssertGreaterThan(superseded, 0, "late runs met newer writes")
    }
}

final class RandomizedArrivalSeaweedFSTests: XCTestCase {
    func testRandomArrivalWithReadFaultsMatchesCreationOrder() throws {
        let s = RandomizedArrivalScenarios(makeStore: { try S3TestStore.make("random") })
        var superseded = 0
        for seed in [11, 12] as [UInt64] { superseded += try s.run(seed: seed) }
        XCTAssertGreaterThan(superseded, 0, "late runs met newer writes")
    }
}
