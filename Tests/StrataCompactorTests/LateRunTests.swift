import CSQLite
import Foundation
import StrataCompactor
import StrataCore
import StrataCrypto
import StrataDelta
import StrataFileStore
import StrataInspect
import StrataProducer
import StrataTestSupport
import XCTest

/// A run id created at `date` (tests need ids in the past and the future; `Identifiers.make`
/// never goes back in time within a process).
func runId(at date: Date) -> String {
    let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    let hex = (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    return Identifiers.timestamp(millis: millis) + "-" + hex
}

/// The per-row rule (SPEC invariant 4), the late-run window, invalid records and catalog read
/// failures; run on the file store and on SeaweedFS. `makeStore` gives a fresh, empty store.
struct LateRunScenarios {
    let makeStore: () throws -> any ObjectStore

    func world(_ wrap: (any ObjectStore) -> any ObjectStore = { $0 }) throws -> CompactionWorld {
        CompactionWorld(store: wrap(try makeStore()))
    }

    func quarantine(_ w: CompactionWorld, _ c: String, _ runId: String) throws -> QuarantineRecord? {
        let key = w.layout.quarantineKey(collection: c, runId: runId)
        guard let (data, _) = try w.store.getDataIfExists(key) else { return nil }
        return try StrataJSON.decode(QuarantineRecord.self, from: data, object: key)
    }

    /// Run A is created before run B, but A's record appears only after B was applied: B's
    /// upserts and deletes win over A's writes of the same ids; A's other writes land.
    func lateRunLosesToTheNewerRunPerRow() throws {
        let w = try world()
        try w.produce(["lines": (0..<6).map { .upsert("x\($0)", w.row($0)) }])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .published)
        let a = Identifiers.make()  // A is created now; its producer is slow
        let b = try w.produce([
            "lines": [
                .upsert("x1", w.row(101)), .delete("x2"), .upsert("x3", w.row(103)),
                .upsert("b-new", w.row(104)), .delete("never"),
            ]
        ])
        XCTAssertLessThan(a, b)
        var s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.runsApplied, [b])
        try w.produce(
            [
                "lines": [
                    .upsert("x1", w.row(201)), .upsert("x2", w.row(202)), .delete("x3"),
                    .upsert("a-new", w.row(203)), .delete("x5"), .delete("b-new"),
                    .upsert("never", w.row(9)),
                ]
            ],
            runId: a)
        s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.runsApplied, [a])
        // x1 (B's row), x2 and never (B's deletes), x3 and b-new (B's rows) are B's; a-new and x5 are A's.
        XCTAssertEqual(s.writesSuperseded, 5)
        XCTAssertEqual(s.newIds, 1)
        XCTAssertEqual(s.deletedExisting, 1)
        XCTAssertEqual(s.rowsAfter, s.rowsBefore + 1 - 1)
        let expected: [String: ModelRow] = [
            "x0": w.row(0), "x1": w.row(101), "x3": w.row(103), "x4": w.row(4),
            "b-new": w.row(104), "a-new": w.row(203),
        ]
        XCTAssertEqual(w.model["lines"], expected, "the model applies runs in creation order")
        try w.assertMatchesModel("lines")
        try w.assertEveryRunAppliedOnce("lines")
        // The file records who wrote what; tombstones stay for the window.
        let file = try latestFile(w, "lines")
        let db = try SnapshotDatabase.open(path: file, collection: "lines")
        XCTAssertEqual(try db.writer(of: "x1")?.writer.runId, b)
        XCTAssertEqual(try db.writer(of: "a-new")?.writer.runId, a)
        XCTAssertEqual(try db.writer(of: "x2")?.deleted, true)
        XCTAssertEqual(try db.writer(of: "x2")?.writer.runId, b)
        XCTAssertEqual(try db.writer(of: "x5")?.writer.runId, a)
        XCTAssertEqual(try db.tombstoneCount(), 3)  // x2, never, x5
        try db.close()
    }

    func latestFile(_ w: CompactionWorld, _ c: String) throws -> String {
        let v = try Pointer.parse(try w.store.getData(w.layout.pointerKey(c)).data, key: c)
        let path = w.tmp.file("latest-\(c)-\(v).sqlite3")
        try w.materialize(c, version: v, to: path)
        return path
    }

    /// A run older than the window is quarantined tooLate (with the command that applies it);
    /// `--allow-late` applies it under the per-row rule and lifts the quarantine. Tombstones
    /// whose run leaves the window are purged.
    func tooLateAllowLateAndPurge() throws {
        let w = try world()
        try w.produce(
            ["lines": [.upsert("k1", w.row(1)), .upsert("k2", w.row(2))]],
            runId: runId(at: Date().addingTimeInterval(-3 * 3600)))
        let deleter = try w.produce(["lines": [.delete("k2")]], runId: runId(at: Date().addingTimeInterval(-7200)))
        var s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.tombstones, 1)
        try w.assertMatchesModel("lines")

        let old = runId(at: Date().addingTimeInterval(-8 * 86400))
        let saved = w.model
        try w.produce(
            ["lines": [.upsert("k1", w.row(11)), .upsert("old-new", w.row(12)), .upsert("k2", w.row(13))]],
            runId: old)
        w.model = saved  // not applied yet
        s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .upToDate)
        XCTAssertEqual(s.runsQuarantined.map(\.reason), ["tooLate"])
        XCTAssertEqual(s.runsQuarantined.first?.key, w.layout.quarantineKey(collection: "lines", runId: old))
        let q = try XCTUnwrap(try quarantine(w, "lines", old))
        XCTAssertEqual(q.reason, "tooLate")
        XCTAssertTrue(q.detail.contains("--allow-late \(old)"), q.detail)
        try w.assertMatchesModel("lines")
        // Still quarantined next round; then applied on the operator's word.
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .upToDate)
        s = try w.compactor { $0.allowLateRuns = [old] }.compact(collection: "lines")
        XCTAssertEqual(s.runsApplied, [old])
        XCTAssertNil(try quarantine(w, "lines", old), "the quarantine of an applied late run is lifted")
        // Per row: k1 was written later, k2 was deleted later (tombstone within the window).
        w.model["lines"]?["old-new"] = w.row(12)
        try w.assertMatchesModel("lines")
        XCTAssertEqual(s.writesSuperseded, 2)

        // The deleter's tombstone leaves a 1-hour window: purged at the next compaction.
        try w.produce(["lines": [.upsert("k3", w.row(3))]])
        s = try w.compactor { $0.lateRunWindow = 3600 }.compact(collection: "lines")
        XCTAssertEqual(s.tombstonesPurged, 1, "tombstone of \(deleter)")
        XCTAssertEqual(s.tombstones, 0)
        try w.assertMatchesModel("lines")
        try w.assertEveryRunAppliedOnce("lines")
    }

    /// A record created more than an hour ahead is quarantined futureRunId before its delta is
    /// read; the producer refuses a run id more than 5 minutes ahead of its clock.
    func futureRunIds() throws {
        let w = try world()
        try w.produce(["lines": [.upsert("f1", w.row(1))]])
        let future = runId(at: Date().addingTimeInterval(7200))
        let record = RunRecord(
            runId: future, createdAt: Identifiers.date(of: future)!,
            collections: [
                .init(
                    collection: "lines", key: w.layout.deltaKey(collection: "lines", runId: future), size: 10,
                    sha256: String(repeating: "ab", count: 32), upserts: 1, deletes: 0, dimension: w.dimension)
            ], labels: [:])
        try w.store.put(w.layout.runRecordKey(future), data: record.encoded(), condition: .ifNoneMatch)
        let s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.runsQuarantined.map(\.runId), [future])
        XCTAssertEqual(try quarantine(w, "lines", future)?.reason, "futureRunId")
        try w.assertMatchesModel("lines")

        let input = w.tmp.file("future.ndjson")
        let vector = w.vector(3).map { "\($0)" }.joined(separator: ",")
        try "{\"id\":\"z\",\"embedding\":[\(vector)]}\n".write(toFile: input, atomically: false, encoding: .utf8)
        let ahead = runId(at: Date().addingTimeInterval(600))
        XCTAssertThrowsError(
            try RunProducer(store: w.store).produce(
                inputs: [(collection: "lines", path: input)],
                runId: ahead)
        ) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("run_id") && text.contains("5 minutes") && text.contains("clock"), text)
        }
        XCTAssertNil(try w.store.head(w.layout.runRecordKey(ahead)))
        // A minute ahead (clock skew between hosts) is fine.
        XCTAssertNoThrow(
            try RunProducer(store: w.store).produce(
                inputs: [(collection: "lines", path: input)],
                runId: runId(at: Date().addingTimeInterval(60))))
    }

    /// Records that cannot be used get an invalidRecord quarantine under the run id their key
    /// names, in each collection they concern (all, when they name none readably).
    func invalidRecordsAreQuarantined() throws {
        let w = try world()
        let good = try w.produce(["lines": [.upsert("g1", w.row(1))], "words": [.upsert("w1", w.row(2))]])
        let (goodData, _) = try w.store.getData(w.layout.runRecordKey(good))
        let garbage = runId(at: Date())
        let empty = runId(at: Date())
        let mismatch = runId(at: Date())
        let wordsOnly = runId(at: Date())
        try w.store.put(w.layout.runRecordKey(garbage), data: Data("{not json".utf8))
        try w.store.put(w.layout.runRecordKey(empty), data: Data())
        try w.store.put(w.layout.runRecordKey(mismatch), data: goodData)  // names `good`, stored as `mismatch`
        var words = try JSONSerialization.jsonObject(with: goodData) as! [String: Any]
        words["run_id"] = wordsOnly
        words["collections"] = [
            [
                "collection": "words", "delta_key": "x", "size": 0, "sha256": "y", "upserts": 1,
                "deletes": 0, "dimension": 8,
            ]
        ]
        try w.store.put(w.layout.runRecordKey(wordsOnly), data: try JSONSerialization.data(withJSONObject: words))
        // A record of a newer format is not invalid: it waits (deferred) for a compactor that reads it.
        let newer = runId(at: Date())
        var future = try JSONSerialization.jsonObject(with: goodData) as! [String: Any]
        future["run_id"] = newer
        future["format_version"] = 2
        try w.store.put(w.layout.runRecordKey(newer), data: try JSONSerialization.data(withJSONObject: future))

        let s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.runsApplied, [good])
        XCTAssertEqual(Set(s.runsQuarantined.map(\.runId)), [garbage, empty, mismatch])
        XCTAssertEqual(s.runsDeferred, 1, "the newer-format record")
        XCTAssertNil(try quarantine(w, "lines", newer))
        for id in [garbage, empty, mismatch] {
            let q = try XCTUnwrap(try quarantine(w, "lines", id), id)
            XCTAssertEqual(q.reason, "invalidRecord")
            XCTAssertTrue(q.detail.contains(w.layout.runRecordKey(id)), q.detail)
        }
        XCTAssertTrue(try quarantine(w, "lines", empty)!.detail.contains("empty"))
        XCTAssertTrue(try quarantine(w, "lines", mismatch)!.detail.contains("run_id"))
        XCTAssertNil(try quarantine(w, "lines", wordsOnly), "names only words")
        let sw = try w.compactor().compact(collection: "words")
        XCTAssertEqual(Set(sw.runsQuarantined.map(\.runId)), [garbage, empty, mismatch, wordsOnly])
        let again = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(again.runsQuarantined.count, 0, "quarantined once")
        XCTAssertEqual(again.runsDeferred, 1, "still waiting for a newer compactor")
        try w.assertMatchesModel("lines")
        try w.assertMatchesModel("words")
    }

    /// A throttled read of a run record fails the round; it never goes on without that run. The
    /// next round applies both, and the older run does not overwrite the newer.
    func throttledCatalogReadFailsTheRound() throws {
        var faults: FaultInjectingStore!
        let w = try world { base in
            faults = FaultInjectingStore(base)
            return faults
        }
        let older = try w.produce(["lines": [.upsert("t1", w.row(1)), .upsert("t2", w.row(2))]])
        let newer = try w.produce(["lines": [.upsert("t1", w.row(11)), .delete("t2"), .upsert("t3", w.row(3))]])
        // The older run's record read is throttled (503 SlowDown) after the listing succeeded.
        faults.inject(.throttled, on: [.getData], key: w.layout.runRecordKey(older))
        XCTAssertThrowsError(try w.compactor().compact(collection: "lines")) { e in
            XCTAssertTrue((e as? StoreError)?.isRetryable == true, "\(e)")
        }
        XCTAssertEqual(faults.count(.throttled), 1)
        XCTAssertNil(try w.store.head(w.layout.pointerKey("lines")), "nothing was published without the older run")
        let s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.runsApplied, [older, newer])
        try w.assertMatchesModel("lines")
        XCTAssertEqual(try w.published("lines").rows["t1"], w.row(11))
        XCTAssertNil(try w.published("lines").rows["t2"])
    }
}

extension LateRunScenarios {
    /// A read that returns fewer bytes than the object has (a broken proxy), or a stale "not
    /// found" for a delta that exists, fails the round; it never makes a good run look bad
    /// (quarantined as a corrupt or missing delta, or an invalid record).
    func shortReadsAreRetriedNotQuarantined() throws {
        var faults: FaultInjectingStore!
        let w = try world { base in
            faults = FaultInjectingStore(base)
            return faults
        }
        try w.produce(["lines": [.upsert("s1", w.row(1))]])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .published)
        let r2 = try w.produce(["lines": [.upsert("s2", w.row(2))]])
        let r3 = try w.produce(["lines": [.upsert("s3", w.row(3))]])
        faults.inject(.shortRead, on: [.getData], key: w.layout.runRecordKey(r2))
        faults.inject(.shortRead, on: [.get], key: w.layout.deltaKey(collection: "lines", runId: r3))
        // A version's file or a base.
        faults.inject(.shortRead, on: [.get], times: 1) { _, key in key.hasSuffix(".sqlite3") }
        faults.inject(.staleRead, on: [.getData], key: w.layout.runRecordKey(r2))
        // After the short read, a stale "not found" for the same delta.
        faults.inject(.staleRead, on: [.get], times: 1) { _, key in key.hasSuffix("\(r3)/delta.tar.gz") }
        for _ in 0..<5 {
            XCTAssertThrowsError(try w.compactor().compact(collection: "lines")) { e in
                XCTAssertTrue((e as? StoreError)?.isRetryable == true, "\(e)")
            }
        }
        XCTAssertEqual(faults.count(.shortRead), 3)
        XCTAssertEqual(faults.count(.staleRead), 2)
        XCTAssertEqual(try w.store.list(prefix: w.layout.quarantinePrefix("lines")).map(\.key), [])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").runsApplied, [r2, r3])
        try w.assertMatchesModel("lines")
    }

    /// A version of snapshot format 1 (the old schema, built here by hand) is upgraded by the
    /// next compaction: old rows get the newest applied run as their writer, so a late run
    /// created before it changes none of them but adds its new ids; plain SQL still reads it.
    func formatOneSnapshotIsUpgraded() throws {
        let w = try world()
        let c = "lines"
        let r0 = runId(at: Date().addingTimeInterval(-7200))
        let r1 = runId(at: Date().addingTimeInterval(-3600))
        let v1 = runId(at: Date().addingTimeInterval(-3000))
        let path = w.tmp.file("format1.sqlite3")
        let db = try Database(path: path, mode: .readWriteCreate)
        for sql in [
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT)",
            """
            CREATE TABLE applied_runs(run_id TEXT PRIMARY KEY, version TEXT NOT NULL, applied_at TEXT NOT NULL, \
            upserts INTEGER NOT NULL, deletes INTEGER NOT NULL, new_ids INTEGER NOT NULL, \
            deleted_existing INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'applied')
            """,
            """
            INSERT INTO meta VALUES ('format', 'strata-snapshot'), ('format_version', '1'), ('collection', 'lines'), \
            ('dimension', '\(w.dimension)'), ('row_count', '3'), ('version', '\(v1)'), ('parent_version', '')
            """,
            """
            INSERT INTO applied_runs VALUES ('\(r0)', '\(v1)', '2026-01-01T00:00:00.000Z', 3, 0, 3, 0, 'applied'), \
            ('\(r1)', '\(v1)', '2026-01-01T00:00:00.000Z', 1, 0, 0, 0, 'applied')
            """,
        ] { try db.execute(sql) }
        var model: [String: ModelRow] = [:]
        do {
            let insert = try db.prepare("INSERT INTO embeddings VALUES (?, ?, ?, ?)")
            for i in 1...3 {
                let r = w.row(i)
                try insert.bind(1, text: "o\(i)")
                try r.embedding.withUnsafeBytes { try insert.bind(2, blob: $0) }
                try insert.bind(3, optionalText: r.document)
                try insert.bind(4, optionalText: r.metadata)
                _ = try insert.step()
                insert.reset()
                model["o\(i)"] = r
            }
        }
        try db.close()
        let (sha, size) = try SHA256.hexOfFile(atPath: path)
        try w.store.put(w.layout.versionFileKey(collection: c, version: v1, file: "snapshot.sqlite3"), file: path)
        let m = SnapshotManifest(
            collection: c, version: v1, parentVersion: nil, createdAt: Date(), dimension: w.dimension, rowCount: 3,
            files: [FileEntry(name: "snapshot.sqlite3", size: size, sha256: sha)],
            appliedRuns: [
                AppliedRun(runId: r0, upserts: 3, deletes: 0, newIds: 3, deletedExisting: 0),
                AppliedRun(runId: r1, upserts: 1, deletes: 0, newIds: 0, deletedExisting: 0),
            ],
            createdBy: VersionCreator(compactorId: "old", host: "old", strataVersion: "0.0.9"))
        try w.store.put(w.layout.manifestKey(collection: c, version: v1), data: try StrataJSON.encoder().encode(m))
        try w.store.put(w.layout.pointerKey(c), data: Pointer.body(version: v1))
        w.model[c] = model
        let r1Writer = RunRecord.timestamp(Identifiers.date(of: r1)!) + " " + r1
        w.writers[c] = Dictionary(uniqueKeysWithValues: model.keys.map { ($0, r1Writer) })

        // Nothing pending: a cache-mode round leaves the format-1 base as it is, so the next reuses it.
        let cacheDir = w.tmp.path + "/cache"
        let cached: (inout CompactorSettings) -> Void = {
            $0.cacheMode = .cache
            $0.cacheDirectory = cacheDir
        }
        XCTAssertEqual(try w.compactor(cached).compact(collection: c).outcome, .upToDate)
        let second = try w.compactor(cached).compact(collection: c)
        XCTAssertEqual(second.outcome, .upToDate)
        XCTAssertTrue(second.baseFromCache, "an up-to-date round does not modify the cached base")
        XCTAssertNil(second.upgradedFromFormat)

        // A late run between r0 and r1, and a current one.
        let late = try w.produce(
            [c: [.upsert("o1", w.row(91)), .delete("o2"), .upsert("late-new", w.row(92))]],
            runId: runId(at: Date().addingTimeInterval(-5400)))
        let now = try w.produce([c: [.upsert("o3", w.row(93)), .delete("o1")]])
        let s = try w.compactor().compact(collection: c)
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.upgradedFromFormat, 1)
        XCTAssertEqual(s.runsApplied, [late, now])
        XCTAssertEqual(s.writesSuperseded, 2, "the late run's writes of old rows")
        XCTAssertEqual(w.model[c].map { Set($0.keys) }, ["o2", "o3", "late-new"])
        try w.assertMatchesModel(c)  // plain SELECT id, embedding, document, metadata FROM embeddings

        let file = try latestFile(w, c)
        let reader = try SnapshotReader(path: file)
        XCTAssertEqual(reader.formatVersion, "2")
        XCTAssertEqual(try reader.rowCount(), 3)
        let up = try SnapshotDatabase.open(path: file, collection: c)
        XCTAssertNil(up.upgradedFromFormat1, "already format 2")
        XCTAssertEqual(try up.writer(of: "o2")?.writer.runId, r1)
        XCTAssertEqual(try up.writer(of: "o1")?.deleted, true)
        try up.close()
        let raw = try Database(path: file, mode: .readOnlyImmutable)
        XCTAssertTrue(try raw.scalarText("SELECT value FROM meta WHERE key = 'upgraded_from'")?.contains(r1) == true)
        XCTAssertEqual(try raw.scalarInt("SELECT count(*) FROM tombstones"), 1)
        // A second round has nothing to do and upgrades nothing.
        let again = try w.compactor().compact(collection: c)
        XCTAssertEqual(again.outcome, .upToDate)
        XCTAssertNil(again.upgradedFromFormat)

        // A rollback to the format-1 version publishes its file as it is (format 1); the next
        // compaction upgrades it again, and the requeued runs re-apply per row to the same rows.
        let rb = try Rollback(
            store: w.store, layout: w.layout,
            creator: VersionCreator(compactorId: "t", host: "t", strataVersion: "t"),
            workDirectory: w.tmp.path
        ).run(collection: c, to: v1, reason: "test", requeue: true)
        XCTAssertEqual(Set(rb.requeued), [late, now])
        let rolled = try SnapshotReader(path: try latestFile(w, c))
        XCTAssertEqual(rolled.formatVersion, "1")
        XCTAssertEqual(try rolled.rowCount(), 3)
        let reapplied = try w.compactor().compact(collection: c)
        XCTAssertEqual(reapplied.upgradedFromFormat, 1)
        XCTAssertEqual(reapplied.runsApplied, [late, now])
        XCTAssertEqual(reapplied.writesSuperseded, 2)
        try w.assertMatchesModel(c)
    }
}

final class LateRunFileStoreTests: XCTestCase {
    var dirs: [TempDir] = []
    var scenarios: LateRunScenarios!

    override func setUp() {
        scenarios = LateRunScenarios(makeStore: { [unowned self] in
            let d = TempDir(prefix: "strata-late")
            self.dirs.append(d)
            return try FileStore(root: URL(fileURLWithPath: d.path))
        })
    }

    func testLateRunLosesToTheNewerRunPerRow() throws { try scenarios.lateRunLosesToTheNewerRunPerRow() }
    func testTooLateAllowLateAndPurge() throws { try scenarios.tooLateAllowLateAndPurge() }
    func testFutureRunIds() throws { try scenarios.futureRunIds() }
    func testInvalidRecordsAreQuarantined() throws { try scenarios.invalidRecordsAreQuarantined() }
    func testThrottledCatalogReadFailsTheRound() throws { try scenarios.throttledCatalogReadFailsTheRound() }
    func testFormatOneSnapshotIsUpgraded() throws { try scenarios.formatOneSnapshotIsUpgraded() }
    func testShortReadsAreRetriedNotQuarantined() throws { try scenarios.shortReadsAreRetriedNotQuarantined() }
}

final class LateRunSeaweedFSTests: XCTestCase {
    let scenarios = LateRunScenarios(makeStore: { try S3TestStore.make("late") })

    func testLateRunLosesToTheNewerRunPerRow() throws { try scenarios.lateRunLosesToTheNewerRunPerRow() }
    func testTooLateAllowLateAndPurge() throws { try scenarios.tooLateAllowLateAndPurge() }
    func testFutureRunIds() throws { try scenarios.futureRunIds() }
    func testInvalidRecordsAreQuarantined() throws { try scenarios.invalidRecordsAreQuarantined() }
    func testThrottledCatalogReadFailsTheRound() throws { try scenarios.throttledCatalogReadFailsTheRound() }
    func testFormatOneSnapshotIsUpgraded() throws { try scenarios.formatOneSnapshotIsUpgraded() }
    func testShortReadsAreRetriedNotQuarantined() throws { try scenarios.shortReadsAreRetriedNotQuarantined() }
}
