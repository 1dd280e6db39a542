import Foundation
import StrataCompactor
import StrataCore
import StrataDelta
import StrataFileStore
import StrataInspect
import StrataTestSupport
import XCTest

/// A run id created at `date` (these tests need ids in the past).
private func id(at date: Date) -> String {
    let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    let hex = (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    return Identifiers.timestamp(millis: millis) + "-" + hex
}

/// The one run catalog (`RunIndex`): every state (pending, applied, rolled back, requeued,
/// quarantined, invalid, deferred), both sources of what was processed (the snapshot's table and
/// the manifests), its strict error rules, and that the compactor, verify and `runs`/gc's ledger
/// agree on a store holding every kind of run. On the file store and on SeaweedFS.
struct RunIndexScenarios {
    let makeStore: () throws -> any ObjectStore
    let layout = Layout()
    let creator = VersionCreator(compactorId: "test-catalog", host: "test", strataVersion: "test")

    func record(_ runId: String, created: Date, collections: [String] = ["lines"]) -> RunRecord {
        RunRecord(
            runId: runId, createdAt: created,
            collections: collections.map {
                RunRecord.Delta(
                    collection: $0, key: layout.deltaKey(collection: $0, runId: runId), size: 10,
                    sha256: String(repeating: "a", count: 64), upserts: 2, deletes: 1, dimension: 8)
            }, labels: [:])
    }

    func manifest(
        _ version: String, parent: String?, applied: [String] = [], rolledBack: [String]? = nil,
        requeued: [String]? = nil
    ) -> SnapshotManifest {
        SnapshotManifest(
            collection: "lines", version: version, parentVersion: parent, createdAt: Date(), dimension: 8,
            rowCount: 1, files: [FileEntry(name: "snapshot.sqlite3", size: 1, sha256: "x")],
            appliedRuns: applied.map {
                AppliedRun(
                    runId: $0, upserts: 1, deletes: 0, newIds: 1,
                    deletedExisting: 0)
            },
            rolledBackRuns: rolledBack, requeuedRuns: requeued, createdBy: creator)
    }

    func quarantine(_ store: any ObjectStore, _ runId: String, reason: String) throws {
        let q = QuarantineRecord(
            runId: runId, collection: "lines", deltaKey: nil, reason: reason, detail: "test",
            quarantinedAt: Date(), compactorId: "test")
        try store.put(layout.quarantineKey(collection: "lines", runId: runId), data: try StrataJSON.encoder().encode(q))
    }

    /// Every state from hand-written records, quarantine records and manifests; the manifests'
    /// view (RunLedger) and the table's view classify alike.
    func classifiesEveryState() throws {
        let store = try makeStore()
        let t0 = Date().addingTimeInterval(-3600)
        let names = [
            "applied", "rolledBack", "requeued", "pending", "quarantined", "invalid", "newer", "words",
            "leftover",
        ]
        var r: [String: String] = [:]
        for (i, n) in names.enumerated() { r[n] = id(at: t0.addingTimeInterval(Double(i))) }
        let gone = id(at: t0.addingTimeInterval(100))  // quarantined, its record collected since
        for n in ["applied", "rolledBack", "requeued", "pending", "quarantined", "leftover"] {
            try store.put(
                layout.runRecordKey(r[n]!),
                data: record(
                    r[n]!,
                    created: t0.addingTimeInterval(
                        Double(
                            names.firstIndex(of: n)!))
                ).encoded())
        }
        try store.put(
            layout.runRecordKey(r["words"]!),
            data: record(
                r["words"]!, created: t0,
                collections: ["words"]
            ).encoded())
        try store.put(layout.runRecordKey(r["invalid"]!), data: Data("{not json".utf8))
        var future =
            try JSONSerialization.jsonObject(with: record(r["newer"]!, created: t0).encoded()) as! [String: Any]
        future["format_version"] = 2
        try store.put(layout.runRecordKey(r["newer"]!), data: try JSONSerialization.data(withJSONObject: future))
        try store.put(layout.runsPrefix + "README.txt", data: Data("not a record".utf8))
        try quarantine(store, r["quarantined"]!, reason: "missingDelta")
        try quarantine(store, gone, reason: "checksumMismatch")
        try quarantine(store, r["leftover"]!, reason: "tooLate")  // applied since with --allow-late

        // v1 applies rolledBack and requeued; v2 applied and leftover; v3 rolls rolledBack back;
        // v4 rolls requeued back and re-queues it.
        let v = (0..<4).map { _ in Identifiers.make() }
        let history = [
            manifest(v[3], parent: v[2], requeued: [r["requeued"]!]),
            manifest(v[2], parent: v[1], rolledBack: [r["rolledBack"]!]),
            manifest(v[1], parent: v[0], applied: [r["applied"]!, r["leftover"]!]),
            manifest(v[0], parent: nil, applied: [r["rolledBack"]!, r["requeued"]!]),
        ]
        for m in history {
            try store.put(
                layout.manifestKey(collection: "lines", version: m.version),
                data: try StrataJSON.encoder().encode(m))
        }
        try store.put(layout.pointerKey("lines"), data: Pointer.body(version: v[3]))

        let fromHistory = ProcessedRuns(history: history)
        XCTAssertEqual(fromHistory.applied, [r["applied"]!, r["leftover"]!])
        XCTAssertEqual(fromHistory.rolledBack, [r["rolledBack"]!])
        XCTAssertEqual(fromHistory.requeued, [r["requeued"]!])
        // What v4's snapshot table holds: the rollback wrote rolled_back rows, a requeued run has none.
        let fromTable = ProcessedRuns(appliedRunsTable: [
            r["applied"]!: "applied", r["leftover"]!: "applied",
            r["rolledBack"]!: "rolled_back",
        ])

        let index = RunIndex(store: store, layout: layout)
        let listing = try index.list()
        XCTAssertEqual(listing.stray, [layout.runsPrefix + "README.txt"])
        let expected: [String: RunState] = [
            r["applied"]!: .applied, r["leftover"]!: .applied, r["rolledBack"]!: .rolledBack,
            r["requeued"]!: .pending, r["pending"]!: .pending, r["quarantined"]!: .quarantined, gone: .quarantined,
            r["invalid"]!: .invalid, r["newer"]!: .deferred,
        ]
        for (processed, readAll) in [(fromHistory, true), (fromHistory, false), (fromTable, true), (fromTable, false)] {
            let runs = try index.classify(collection: "lines", processed: processed, readAll: readAll)
            XCTAssertEqual(runs.runs.mapValues(\.state), expected, "\(processed.source), readAll \(readAll)")
            XCTAssertEqual(runs.ids(.pending), [r["requeued"]!, r["pending"]!], "in creation order")
            XCTAssertEqual(runs.quarantined.keys.sorted(), [r["quarantined"]!, gone].sorted())
            XCTAssertEqual(runs.runs[r["invalid"]!]?.problem?.key, layout.runRecordKey(r["invalid"]!))
            XCTAssertNil(runs.runs[gone]?.listed, "its record is gone")
            XCTAssertEqual(runs.runs[r["requeued"]!]?.requeued, processed == fromHistory)
        }
        let words = try index.classify(collection: "words", processed: .nothing())
        XCTAssertEqual(
            words.runs.mapValues(\.state),
            [
                r["words"]!: .pending, r["invalid"]!: .invalid,  // names no collection readably: concerns every one
            ])

        // RunLedger (ls, runs, gc, rollback) reads the manifests along the pointer: the same states.
        let ledger = try RunLedger(store: store, layout: layout).ledger("lines")
        XCTAssertEqual(ledger.runs.runs.mapValues(\.state), expected)
        XCTAssertEqual(ledger.pending.map(\.runId), [r["requeued"]!, r["pending"]!])
        XCTAssertEqual(ledger.processed, [r["applied"]!, r["leftover"]!, r["rolledBack"]!])
        XCTAssertEqual(
            Set(ledger.quarantined.keys), [r["quarantined"]!, gone, r["leftover"]!],
            "every quarantine record, so gc still collects a leftover one")
        XCTAssertEqual(ledger.unreadable.keys.sorted(), [r["invalid"]!, r["newer"]!].map(layout.runRecordKey).sorted())
    }

    /// Store errors fail the call and are not remembered; an unusable record is remembered with
    /// its key and error; a listed record that reads as not found fails unless a fresh listing
    /// shows it was deleted.
    func strictErrors() throws {
        let faults = FaultInjectingStore(try makeStore())
        let index = RunIndex(store: faults, layout: layout)
        let a = id(at: Date().addingTimeInterval(-60))
        let b = id(at: Date().addingTimeInterval(-30))
        try faults.put(layout.runRecordKey(a), data: record(a, created: Date().addingTimeInterval(-60)).encoded())
        try faults.put(layout.runRecordKey(b), data: Data())

        faults.inject(.throttled, on: [.list], times: 1)
        XCTAssertThrowsError(try index.classify(collection: "lines", processed: .nothing())) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .throttled, "\(e)")
        }
        for fault in [FaultInjectingStore.Fault.serverError, .truncatedRead, .shortRead, .staleRead] {
            faults.inject(fault, on: [.get, .getData], key: layout.runRecordKey(a), times: 1)
            XCTAssertThrowsError(try index.classify(collection: "lines", processed: .nothing()), "\(fault)") { e in
                XCTAssertNotNil(e as? StoreError, "\(fault): \(e)")
            }
        }
        let runs = try index.classify(collection: "lines", processed: .nothing())
        XCTAssertEqual(runs.runs.mapValues(\.state), [a: .pending, b: .invalid], "nothing bad was remembered")
        XCTAssertTrue(runs.runs[b]!.problem!.error.contains("empty"), runs.runs[b]!.problem!.error)
        let reads = faults.calls(.getData) + faults.calls(.get)
        _ = try index.classify(collection: "lines", processed: .nothing())
        XCTAssertEqual(faults.calls(.getData) + faults.calls(.get), reads, "records are read once per process")

        // readAll: a record deleted after the listing leaves it; one that is still listed fails.
        let c = id(at: Date())
        let d = id(at: Date())
        for x in [c, d] { try faults.put(layout.runRecordKey(x), data: record(x, created: Date()).encoded()) }
        var listing = try index.list()
        try faults.delete(layout.runRecordKey(c))
        let read = try index.readAll(&listing)
        XCTAssertEqual(Set(read.keys), [a, b, d])
        XCTAssertNil(listing.records[c])
        let fresh = RunIndex(store: faults, layout: layout)
        var again = try fresh.list()
        faults.inject(.staleRead, on: [.get, .getData], key: layout.runRecordKey(d), times: 1)
        XCTAssertThrowsError(try fresh.readAll(&again)) { e in
            XCTAssertEqual((e as? StoreError)?.kind, .transient, "\(e)")
        }
    }

    /// A store with every kind of run: verify (from the snapshot), the ledger of `runs`/gc (from
    /// the manifests) and the compactor's round agree on what is pending, quarantined, invalid and
    /// deferred, before the round and after it.
    func compactorAndVerifyAgree() throws {
        let w = CompactionWorld(store: try makeStore())
        let c = "lines"
        let applied = try w.produce([c: [.upsert("a", w.row(1)), .upsert("b", w.row(2))]])
        let v1 = try w.compactor().compact(collection: c).newVersion!
        let rolledBack = try w.produce([c: [.upsert("c", w.row(3))]])
        let quarantined = try w.produce([c: [.upsert("q", w.row(4))]])
        try w.store.delete(w.layout.deltaKey(collection: c, runId: quarantined))
        let s2 = try w.compactor().compact(collection: c)
        XCTAssertEqual(s2.runsApplied, [rolledBack])
        XCTAssertEqual(s2.runsQuarantined.map(\.reason), ["missingDelta"])
        let rollback = Rollback(store: w.store, layout: w.layout, creator: creator, workDirectory: w.tmp.path)
        let v3 = try rollback.run(collection: c, to: v1, reason: "test", requeue: false).newVersion
        let requeued = try w.produce([c: [.upsert("r", w.row(5))]])
        _ = try w.compactor().compact(collection: c)
        XCTAssertEqual(try rollback.run(collection: c, to: v3, reason: "again", requeue: true).requeued, [requeued])
        let pending = try w.produce([c: [.upsert("p", w.row(6))]])
        let missing = try w.produce([c: [.upsert("m", w.row(7))]])
        try w.store.delete(w.layout.deltaKey(collection: c, runId: missing))
        let late = try w.produce([c: [.upsert("l", w.row(8))]], runId: id(at: Date().addingTimeInterval(-8 * 86400)))
        let invalid = Identifiers.make()
        try w.store.put(w.layout.runRecordKey(invalid), data: Data("{\"format\": \"strata-compaction-run\"}".utf8))
        let newer = Identifiers.make()
        var future =
            try JSONSerialization.jsonObject(with: try w.store.getData(w.layout.runRecordKey(pending)).data)
            as! [String: Any]
        future["run_id"] = newer
        future["format_version"] = 2
        try w.store.put(w.layout.runRecordKey(newer), data: try JSONSerialization.data(withJSONObject: future))

        // Before the round. The snapshot's table (the compactor's source) and the manifests agree.
        let located = try SnapshotLocator(store: w.store, layout: w.layout).fetch(c, into: w.tmp.path + "/check")
        let db = try SnapshotDatabase.open(path: located.path, collection: c)
        let table = ProcessedRuns(appliedRunsTable: try db.runStatuses())
        XCTAssertEqual(table.processed, try db.processedRunIds())
        try db.close()
        let ledger = try RunLedger(store: w.store, layout: w.layout).ledger(c)
        XCTAssertEqual(table.applied, ledger.runs.processed.applied)
        XCTAssertEqual(table.rolledBack, ledger.runs.processed.rolledBack)
        let fromTable = try RunIndex(store: w.store, layout: w.layout).classify(collection: c, processed: table)
        XCTAssertEqual(fromTable.runs.mapValues(\.state), ledger.runs.runs.mapValues(\.state))
        XCTAssertEqual(
            ledger.runs.runs.mapValues(\.state),
            [
                applied: .applied, rolledBack: .rolledBack, quarantined: .quarantined, requeued: .pending,
                pending: .pending, missing: .pending, late: .pending, invalid: .invalid, newer: .deferred,
            ])
        XCTAssertEqual(ledger.runs.runs[requeued]?.requeued, true)

        // Verify says the same.
        func verify() throws -> VerifyReport {
            var settings = VerifySettings()
            settings.collections = [c]
            settings.workDirectory = w.tmp.path
            return Verifier(store: w.store, layout: w.layout, settings: settings).run()
        }
        func evidence(_ report: VerifyReport, _ check: String, _ key: String) -> [String] {
            guard let f = report.findings.first(where: { $0.check == check && $0.collection == c }),
                let value = f.evidence[key]
            else { return [] }
            if case .list(let items) = value { return items.map { String($0.prefix { $0 != ":" }) } }
            return []
        }
        var report = try verify()
        XCTAssertEqual(evidence(report, VerifyCheck.runsPending, "runs"), ledger.runs.ids(.pending))
        XCTAssertEqual(evidence(report, VerifyCheck.runsPending, "requeued"), [requeued])
        XCTAssertEqual(evidence(report, VerifyCheck.runsPending, "deferred_newer_format"), [newer])
        XCTAssertEqual(evidence(report, VerifyCheck.runsQuarantined, "runs"), [quarantined])
        XCTAssertEqual(evidence(report, VerifyCheck.runsQuarantined, "invalid_records"), [invalid])
        let pendingFinding = report.findings.first { $0.check == VerifyCheck.runsPending }
        XCTAssertEqual(pendingFinding?.evidence["applied_or_rolled_back"], .int(table.processed.count))
        let deltas = report.findings.first { $0.check == VerifyCheck.runsDeltas && $0.collection == c }
        XCTAssertEqual(deltas?.status, .failed, "verify predicts the missingDelta quarantine")
        XCTAssertTrue("\(deltas?.evidence["problems"] ?? .list([]))".contains(missing))

        // The compactor's round takes exactly the runs the catalog called pending, invalid and deferred.
        let s = try w.compactor().compact(collection: c)
        XCTAssertEqual(Set(s.runsApplied), [requeued, pending])
        XCTAssertEqual(
            Dictionary(uniqueKeysWithValues: s.runsQuarantined.map { ($0.runId, $0.reason) }),
            [missing: "missingDelta", late: "tooLate", invalid: "invalidRecord"])
        XCTAssertEqual(s.runsDeferred, 1, "the newer-format record")

        // After it, all three still agree.
        let after = try RunLedger(store: w.store, layout: w.layout).ledger(c)
        XCTAssertEqual(
            after.runs.runs.mapValues(\.state),
            [
                applied: .applied, rolledBack: .rolledBack, quarantined: .quarantined, requeued: .applied,
                pending: .applied, missing: .quarantined, late: .quarantined, invalid: .quarantined, newer: .deferred,
            ])
        report = try verify()
        XCTAssertEqual(evidence(report, VerifyCheck.runsPending, "runs"), [])
        XCTAssertEqual(
            Set(evidence(report, VerifyCheck.runsQuarantined, "runs")),
            [quarantined, missing, late, invalid])
        XCTAssertEqual(evidence(report, VerifyCheck.runsQuarantined, "invalid_records"), [])
        XCTAssertEqual(evidence(report, VerifyCheck.runsPending, "deferred_newer_format"), [newer])
        let again = try w.compactor().compact(collection: c)
        XCTAssertEqual(again.outcome, .upToDate)
        XCTAssertEqual(again.runsQuarantined.count, 0)
    }

    /// When the snapshot cannot be read, verify falls back to the manifests; a run a rollback
    /// re-queued is pending there too (it was applied in an older version of the chain), as the
    /// ledger and the compactor (once the version is repaired) see it.
    func verifyFallbackKeepsRequeuedRunsPending() throws {
        let w = CompactionWorld(store: try makeStore())
        let c = "lines"
        try w.produce([c: [.upsert("a", w.row(1))]])
        let v1 = try w.compactor().compact(collection: c).newVersion!
        let r = try w.produce([c: [.upsert("r", w.row(2))]])
        _ = try w.compactor().compact(collection: c)
        let rollback = Rollback(store: w.store, layout: w.layout, creator: creator, workDirectory: w.tmp.path)
        let v3 = try rollback.run(collection: c, to: v1, reason: "test", requeue: true).newVersion
        // Damage what v3 added: its last object (the rollback's patch of a page version).
        let m3 = try SnapshotManifest.fetch(from: w.store, layout: w.layout, collection: c, version: v3)
        try w.store.put(m3.objectKeys(layout: w.layout).last!, data: Data("damaged".utf8))
        var settings = VerifySettings()
        settings.collections = [c]
        settings.workDirectory = w.tmp.path
        let report = Verifier(store: w.store, layout: w.layout, settings: settings).run()
        let f = try XCTUnwrap(report.findings.first { $0.check == VerifyCheck.runsPending && $0.collection == c })
        XCTAssertEqual(f.evidence["runs"], .list([r]), f.message)
        XCTAssertEqual(f.evidence["requeued"], .list([r]), f.message)
        XCTAssertTrue("\(f.evidence["applied_from"] ?? .string(""))".contains("manifests"), f.message)
        XCTAssertEqual(try RunLedger(store: w.store, layout: w.layout).ledger(c).pending.map(\.runId), [r])
    }
}

final class RunIndexFileStoreTests: XCTestCase {
    var dirs: [TempDir] = []
    var scenarios: RunIndexScenarios!

    override func setUp() {
        scenarios = RunIndexScenarios(makeStore: { [unowned self] in
            let d = TempDir(prefix: "strata-catalog")
            self.dirs.append(d)
            return try FileStore(root: URL(fileURLWithPath: d.path))
        })
    }

    func testClassifiesEveryState() throws { try scenarios.classifiesEveryState() }
    func testStrictErrors() throws { try scenarios.strictErrors() }
    func testCompactorAndVerifyAgree() throws { try scenarios.compactorAndVerifyAgree() }
    func testVerifyFallbackKeepsRequeuedRunsPending() throws { try scenarios.verifyFallbackKeepsRequeuedRunsPending() }
}

final class RunIndexSeaweedFSTests: XCTestCase {
    let scenarios = RunIndexScenarios(makeStore: { try S3TestStore.make("catalog") })

    func testClassifiesEveryState() throws { try scenarios.classifiesEveryState() }
    func testStrictErrors() throws { try scenarios.strictErrors() }
    func testCompactorAndVerifyAgree() throws { try scenarios.compactorAndVerifyAgree() }
    func testVerifyFallbackKeepsRequeuedRunsPending() throws { try scenarios.verifyFallbackKeepsRequeuedRunsPending() }
}
