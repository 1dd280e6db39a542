import Foundation
import StrataCompactor
import StrataCore
import StrataInspect
import StrataS3
import StrataTestSupport
import XCTest

final class GarbageCollectorTests: XCTestCase {
    func keys(_ w: CompactionWorld, _ prefix: String) throws -> Set<String> {
        Set(try w.store.list(prefix: prefix).map(\.key))
    }

    /// With no grace at all, gc still keeps the pointer's version, the newest N, pending runs'
    /// records and deltas, and quarantined runs within retention; it removes the rest.
    func testKeepsEverythingStillNeeded() throws {
        let store = try S3TestStore.make("gckeep")
        let w = CompactionWorld(store: store)
        var versions: [String] = []
        for i in 0..<4 {
            try w.produce(["lines": [.upsert("k\(i)", w.row(i))]])
            versions.append(try w.compactor().compact(collection: "lines").newVersion!)
        }
        // Pending for `words` (never compacted) but applied to `lines`: must stay.
        let shared = try w.produce(["lines": [.upsert("s", w.row(9))], "words": [.upsert("s", w.row(9))]])
        versions.append(try w.compactor().compact(collection: "lines").newVersion!)
        // Quarantined run within retention: must stay.
        let bad = try w.produce(["lines": [.upsert("bad", w.row(8))]])
        try w.store.put(w.layout.deltaKey(collection: "lines", runId: bad), data: Data("tampered".utf8))
        w.model["lines"]?["bad"] = nil
        XCTAssertEqual(try w.compactor().compact(collection: "lines").runsQuarantined.map(\.runId), [bad])
        // An orphan delta (its producer died before writing the record).
        let orphan = w.layout.deltaKey(collection: "lines", runId: Identifiers.make())
        try w.store.put(orphan, data: Data("partial".utf8))

        let gc = GarbageCollector(
            store: store, layout: w.layout, policy: GCPolicy(keepVersions: 2, grace: 0),
            uploads: store)
        let plan = try gc.plan()
        XCTAssertEqual(try gc.execute(plan).map(\.key), [])

        // Versions: the newest two of the history remain, and the one that explains the shared run.
        let remaining = try SnapshotLocator(store: store, layout: w.layout).versions("lines")
        XCTAssertEqual(Set(remaining), Set(versions.suffix(2)))
        try w.assertMatchesModel("lines")
        // The shared run (pending for words) keeps its record and both deltas.
        XCTAssertNotNil(try store.head(w.layout.runRecordKey(shared)))
        XCTAssertNotNil(try store.head(w.layout.deltaKey(collection: "words", runId: shared)))
        XCTAssertNotNil(try store.head(w.layout.deltaKey(collection: "lines", runId: shared)))
        // The quarantined run and its quarantine record stay within retention.
        XCTAssertNotNil(try store.head(w.layout.runRecordKey(bad)))
        XCTAssertNotNil(try store.head(w.layout.quarantineKey(collection: "lines", runId: bad)))
        // Fully applied runs, their deltas and the orphan are gone.
        XCTAssertNil(try store.head(orphan))
        XCTAssertEqual(try keys(w, w.layout.runsPrefix), [w.layout.runRecordKey(shared), w.layout.runRecordKey(bad)])
        // words still compacts its pending run after gc.
        XCTAssertEqual(try w.compactor().compact(collection: "words").runsApplied, [shared])
        try w.assertMatchesModel("words")
        // A later gc removes the shared run now that both collections applied it.
        _ = try gc.execute(try gc.plan())
        XCTAssertNil(try store.head(w.layout.runRecordKey(shared)))
    }

    /// gc runs again and again while a compactor worker and producers are busy: every run is
    /// still applied exactly once and the published snapshots equal the model.
    func testConcurrentWithCompactorAndProducers() throws {
        let store = try S3TestStore.make("gcrace")
        let w = CompactionWorld(store: store)
        let server = try SeaweedFS.shared()
        try w.produce(["lines": [.upsert("seed", w.row(0))], "words": [.upsert("seed", w.row(0))]])
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: TestPaths.snapctl)
        worker.arguments = [
            "compactor", "--collections", "lines,words", "--poll", "0.05", "--cache-mode", "s3",
            "--store", "s3://\(store.configuration.bucket)",
        ]
        worker.environment = ProcessInfo.processInfo.environment.merging(server.awsEnvironment) { $1 }
            .merging(["STRATA_LOG_LEVEL": "warning"]) { $1 }
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer {
            if worker.isRunning {
                worker.terminate()
                worker.waitUntilExit()
            }
        }

        let stop = StopFlag()
        struct Counts {
            var rounds = 0
            var deleted = 0
            var errors: [String] = []
        }
        let counts = Locked(Counts())
        let gcStopped = DispatchSemaphore(value: 0)
        let gcThread = Thread {
            // A one-second grace: anything older may go, in-flight uploads are protected.
            let gc = GarbageCollector(store: store, layout: w.layout, policy: GCPolicy(keepVersions: 1, grace: 1))
            while !stop.isSet {
                do {
                    let plan = try gc.plan()
                    let failures = try gc.execute(plan)
                    counts.update {
                        $0.rounds += 1
                        $0.deleted += plan.items.count - failures.count
                    }
                } catch {
                    counts.update { $0.errors.append("\(error)") }
                }
                stop.wait(seconds: 0.1)
            }
            gcStopped.signal()
        }
        gcThread.start()
        // Work arrives over time, as OCR jobs finish: each run once gc has done another round.
        for i in 0..<25 {
            let before = counts.value.rounds
            try w.produce([
                "lines": [.upsert("l\(i)", w.row(i)), .delete("l\(i - 3)")], "words": [.upsert("w\(i)", w.row(i))],
            ])
            waitUntil("a gc round after run \(i)") { counts.value.rounds > before }
        }
        // Wait until the worker has caught up and gc has deleted something (the grace passes),
        // then stop everything.
        try waitUntil("the worker applies every run") {
            let ledger = RunLedger(store: store, layout: w.layout)
            return try ledger.ledger("lines").pending.isEmpty && ledger.ledger("words").pending.isEmpty
        }
        waitUntil("gc deletes something while the others run") { counts.value.deleted > 0 }
        stop.set()
        gcStopped.wait()
        worker.terminate()
        worker.waitUntilExit()
        XCTAssertEqual(worker.terminationStatus, 0)
        XCTAssertEqual(counts.value.errors, [])
        XCTAssertGreaterThanOrEqual(counts.value.rounds, 25, "gc ran between the runs")
        XCTAssertGreaterThan(counts.value.deleted, 0, "gc did delete things while the others ran")
        for c in ["lines", "words"] {
            try w.assertMatchesModel(c)
            let ledger = try RunLedger(store: store, layout: w.layout).ledger(c)
            XCTAssertEqual(ledger.quarantined.count, 0, "no run lost its delta: \(ledger.quarantined)")
            XCTAssertEqual(ledger.pending.count, 0)
        }
    }
}
