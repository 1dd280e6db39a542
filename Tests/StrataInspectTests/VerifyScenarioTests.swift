import Foundation
import StrataCore
import StrataDelta
import StrataInspect
import StrataTestSupport
import XCTest

/// One test per failure mode: the broken state is built in a real SeaweedFS (produce and compact
/// with the library, then break things with direct store writes) and the real `snapctl verify`
/// must name it, with exit 1 for failures and 0 when only warnings are found.
final class VerifyScenarioTests: XCTestCase {
    static let pattern = "IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}"

    func lineIds(_ n: Int, receipt: Int = 1) -> [String] {
        let image = UUID().uuidString.lowercased()
        return (0..<n).map { String(format: "IMAGE#%@#RECEIPT#%05d#LINE#%05d", image, receipt, $0) }
    }

    /// A collection with two published versions (10 rows, then 15).
    func published(_ hint: String, _ c: String = "lines") throws -> VerifyWorld {
        let w = try VerifyWorld(hint)
        try w.produce(c, ids: lineIds(10))
        try w.compact(c)
        try w.produce(c, ids: lineIds(5, receipt: 2))
        try w.compact(c)
        return w
    }

    func assertFailed(
        _ o: VerifyWorld.Outcome, _ check: String, _ words: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(o.status, 1, "exit status; stderr: \(o.stderr.prefix(1000))", file: file, line: line)
        XCTAssertEqual(
            o.status(of: check, "lines"), .failed, "\(check): \(o.text(check, "lines"))", file: file, line: line)
        for w in words {
            XCTAssertTrue(
                o.text(check, "lines").contains(w), "\(check) should say \"\(w)\": \(o.text(check, "lines"))",
                file: file, line: line)
        }
    }

    // MARK: healthy

    func testHealthyStorePasses() throws {
        let w = try published("healthy")
        try w.produce("words", ids: w.ids("w", 4))
        try w.compact("words")
        let o = try w.verify(["--id-pattern", Self.pattern, "--collection", "lines", "--deep"], name: "healthy")
        XCTAssertEqual(o.status, 0, o.stdout)
        let report = try XCTUnwrap(o.report)
        XCTAssertEqual(report.summary.failed, 0, o.stdout)
        XCTAssertEqual(report.summary.warning, 0, o.stdout)
        for check in [VerifyCheck.storeAccess, VerifyCheck.storeCollections, VerifyCheck.runRecords] {
            XCTAssertEqual(o.status(of: check), .passed, check)
        }
        for check in VerifyCheck.all where !check.hasPrefix("store.") && check != VerifyCheck.runRecords {
            XCTAssertEqual(o.status(of: check, "lines"), .passed, "\(check): \(o.text(check, "lines"))")
        }
        XCTAssertTrue(o.text(VerifyCheck.snapshotRows, "lines").contains("15 rows"))
        XCTAssertTrue(
            o.text(VerifyCheck.historyRows, "lines").contains("10 -> 15"), o.text(VerifyCheck.historyRows, "lines"))

        // Every collection by default; the text form is grouped with a summary line.
        let all = try w.verify(json: false)
        XCTAssertEqual(all.status, 0, all.stdout)
        XCTAssertTrue(all.stdout.contains("collection lines\n"), all.stdout)
        XCTAssertTrue(all.stdout.contains("collection words\n"), all.stdout)
        XCTAssertTrue(all.stdout.contains("ok   snapshot.rows"), all.stdout)
        XCTAssertTrue(all.stdout.contains("0 failed: OK"), all.stdout)
    }

    // MARK: the version

    func testNoPointer() throws {
        let w = try VerifyWorld("nopointer")
        try w.produce("lines", ids: lineIds(3))
        let o = try w.verify(name: "no-pointer")
        assertFailed(o, VerifyCheck.pointer, ["never published", "snapctl compact --collection lines"])
        XCTAssertEqual(o.status(of: VerifyCheck.runsPending, "lines"), .info, o.text(VerifyCheck.runsPending, "lines"))
    }

    func testDeletedPointerNamesTheVersionToRestore() throws {
        let w = try published("delpointer")
        let v = try w.pointer("lines")
        try w.store.delete(w.layout.pointerKey("lines"))
        let o = try w.verify(name: "deleted-pointer")
        assertFailed(o, VerifyCheck.pointer, ["pointer was deleted", "snapctl rollback lines \(v)"])
    }

    func testPointerToMissingVersion() throws {
        let w = try published("missingversion")
        let good = try w.pointer("lines")
        let bogus = Identifiers.make(after: good)
        try w.store.put(w.layout.pointerKey("lines"), data: Pointer.body(version: bogus))
        let o = try w.verify(name: "pointer-missing-version")
        assertFailed(o, VerifyCheck.manifest, ["manifest is missing", bogus, "snapctl rollback lines \(good)"])
        XCTAssertEqual(o.status(of: VerifyCheck.runsPending, "lines"), .info, "unknown, not wrongly failed")
        XCTAssertTrue(o.text(VerifyCheck.runsPending, "lines").contains("cannot tell which runs are pending"))
    }

    func testMissingFile() throws {
        let w = try published("missingfile")
        let v = try w.pointer("lines")
        try w.store.delete(w.snapshotKey("lines", v))
        let o = try w.verify(name: "missing-file")
        // Named by its role in the manifest (base, patches[i], or a whole-file version's snapshot.sqlite3).
        let m = try w.manifest("lines", v)
        let name = m.objects(layout: w.layout).last!.name
        assertFailed(o, VerifyCheck.files, ["\(name) is missing", "snapctl rollback lines"])
    }

    func testChecksumMismatchDeep() throws {
        let w = try published("checksum")
        let v = try w.pointer("lines")
        let path = w.tmp.file("flip.sqlite3")
        try w.store.get(w.snapshotKey("lines", v), toFile: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 100] ^= 0xff  // same size, different bytes
        try w.store.put(w.snapshotKey("lines", v), data: bytes)
        let o = try w.verify(["--deep"], name: "checksum-deep")
        assertFailed(o, VerifyCheck.files, ["SHA-256", "damaged"])
    }

    // MARK: the snapshot

    func testEmptySnapshot() throws {
        let w = try published("empty")
        let before = try w.pointer("lines")
        try w.publishHandMade("lines", sql: ["DELETE FROM embeddings"])
        let o = try w.verify(name: "empty-snapshot")
        assertFailed(o, VerifyCheck.snapshotRows, ["empty snapshot", "snapctl rollback lines \(before)"])
        XCTAssertEqual(
            o.status(of: VerifyCheck.historyRows, "lines"), .failed, o.text(VerifyCheck.historyRows, "lines"))
        XCTAssertTrue(
            o.text(VerifyCheck.historyRows, "lines").contains(
                "0 rows where 15 + 0 new − 0 deleted = 15: 15 rows (100%) missing"))
    }

    func testEmptiedByExplicitDeletesIsNotAFailure() throws {
        let w = try VerifyWorld("emptydeletes")
        let ids = lineIds(4)
        try w.produce("lines", ids: ids)
        try w.compact("lines")
        try w.produce("lines", ids: [], deletes: ids)
        XCTAssertEqual(try w.compact("lines").rowsAfter, 0)
        let o = try w.verify(name: "emptied-by-deletes")
        XCTAssertEqual(o.status, 0, o.stdout)
        XCTAssertEqual(
            o.status(of: VerifyCheck.snapshotRows, "lines"), .info, o.text(VerifyCheck.snapshotRows, "lines"))
        XCTAssertTrue(o.text(VerifyCheck.snapshotRows, "lines").contains("explicit deletes"))
        XCTAssertEqual(
            o.status(of: VerifyCheck.historyRows, "lines"), .warning, "a drop of 100% by deletes is worth a look")
    }

    func testCountMismatch() throws {
        let w = try published("count")
        try w.editManifest("lines") { $0.rowCount += 5 }
        let o = try w.verify(name: "count-mismatch")
        assertFailed(o, VerifyCheck.snapshotRows, ["count mismatch", "the file has 15 rows, the manifest says 20"])
    }

    func testWrongDimension() throws {
        let w = try published("dimension")
        try w.editManifest("lines") { $0.dimension = 16 }
        let o = try w.verify(name: "wrong-dimension")
        assertFailed(o, VerifyCheck.snapshotDimension, ["wrong dimension", "the manifest says 16", "says 8"])
    }

    func testBadEmbeddingsAndMetadata() throws {
        let w = try published("badrows")
        try w.publishHandMade(
            "lines",
            sql: [
                "UPDATE embeddings SET embedding = CAST(x'0000c07f' || substr(embedding, 5) AS BLOB) WHERE rowid = (SELECT min(rowid) FROM embeddings)",
                "UPDATE embeddings SET embedding = CAST(substr(embedding, 1, 12) AS BLOB) WHERE rowid = (SELECT max(rowid) FROM embeddings)",
                "UPDATE embeddings SET metadata = '[1,2]' WHERE rowid = (SELECT max(rowid) FROM embeddings)",
            ])
        let o = try w.verify(name: "bad-rows")
        assertFailed(
            o, VerifyCheck.snapshotEmbeddings, ["2 of all 15 rows", "NaN or infinite", "12 bytes, expected 32"])
        assertFailed(o, VerifyCheck.snapshotMetadata, ["not an object"])
        // A sample spread over the table reaches both ends (the first and the last row).
        let sampled = try w.verify(["--sample", "5"])
        assertFailed(sampled, VerifyCheck.snapshotEmbeddings, ["2 of 5 sampled rows of 15", "Run with --deep"])
    }

    func testBadIdsAgainstPattern() throws {
        let w = try published("ids")
        try w.produce("lines", ids: ["img-7/line-3", "IMAGE#not-a-uuid#RECEIPT#00001#LINE#00001"])
        try w.compact("lines")
        let o = try w.verify(["--id-pattern", Self.pattern], name: "bad-ids")
        assertFailed(o, VerifyCheck.snapshotIds, ["2 of 17 ids do not match", "img-7/line-3", "IMAGE#not-a-uuid"])
    }

    // MARK: history

    func testLargeUnexplainedDrop() throws {
        let w = try published("drop")
        let before = try w.pointer("lines")
        try w.publishHandMade("lines", sql: ["DELETE FROM embeddings WHERE rowid % 5 != 0"])
        let o = try w.verify(name: "unexplained-drop")
        assertFailed(
            o, VerifyCheck.historyRows,
            ["3 rows where 15 + 0 new − 0 deleted = 15: 12 rows (80%) missing", "snapctl rollback lines \(before)"])
        XCTAssertEqual(o.status(of: VerifyCheck.snapshotRows, "lines"), .passed, "the file agrees with its manifest")
        // A threshold above the loss lets it pass as a warning.
        let lenient = try w.verify(["--drop-threshold", "0.95"])
        XCTAssertEqual(lenient.status(of: VerifyCheck.historyRows, "lines"), .warning)
    }

    func testUnpublishedVersionNewerThanPointer() throws {
        let w = try published("unpublished")
        let v = Identifiers.make(after: try w.pointer("lines"))
        try w.store.put(w.snapshotKey("lines", v), data: Data("half an upload".utf8))
        var o = try w.verify()
        XCTAssertEqual(o.status(of: VerifyCheck.historyUnpublished, "lines"), .info, "young: an upload in progress")
        o = try w.verify(["--orphan-grace", "0s"], name: "unpublished-version")
        XCTAssertEqual(o.status, 0, o.stdout)
        XCTAssertEqual(o.status(of: VerifyCheck.historyUnpublished, "lines"), .warning)
        XCTAssertTrue(o.text(VerifyCheck.historyUnpublished, "lines").contains(v))
        XCTAssertTrue(o.text(VerifyCheck.historyUnpublished, "lines").contains("snapctl gc"))
    }

    // MARK: runs

    func testStuckPendingRuns() throws {
        let w = try published("pending")
        let run = try w.produce("lines", ids: lineIds(2, receipt: 3))
        let fresh = try w.verify()
        XCTAssertEqual(fresh.status, 0)
        XCTAssertEqual(fresh.status(of: VerifyCheck.runsPending, "lines"), .info)
        let o = try w.verify(["--pending-age", "0s"], name: "stuck-pending")
        assertFailed(o, VerifyCheck.runsPending, ["compaction is not running", "1 run (2 rows) pending", run])
    }

    func testQuarantinedRuns() throws {
        let w = try published("quarantine")
        let run = try w.produce("lines", ids: lineIds(2, receipt: 4))
        try w.store.delete(w.layout.deltaKey(collection: "lines", runId: run))
        XCTAssertEqual(try w.compact("lines").runsQuarantined.map(\.runId), [run])
        let o = try w.verify(name: "quarantined")
        XCTAssertEqual(o.status, 1, "quarantined runs fail: their rows are missing: \(o.stdout)")
        XCTAssertEqual(o.status(of: VerifyCheck.runsQuarantined, "lines"), .failed)
        XCTAssertTrue(
            o.text(VerifyCheck.runsQuarantined, "lines").contains("\(run): missingDelta"),
            o.text(VerifyCheck.runsQuarantined, "lines"))
        XCTAssertEqual(o.status(of: VerifyCheck.runsPending, "lines"), .passed, "a quarantined run is not pending")
    }

    func testPendingRunWithMissingDelta() throws {
        let w = try published("missingdelta")
        let run = try w.produce("lines", ids: lineIds(2, receipt: 5))
        try w.store.delete(w.layout.deltaKey(collection: "lines", runId: run))
        let o = try w.verify(name: "missing-delta")
        assertFailed(o, VerifyCheck.runsDeltas, ["\(run): lines/delta/\(run)/delta.tar.gz is missing", "quarantines"])
    }

    func testOrphanedDeltas() throws {
        let w = try published("orphans")
        let run = Identifiers.make()
        try w.store.put(
            w.layout.deltaKey(collection: "lines", runId: run), data: Data("a bundle without its record".utf8))
        let young = try w.verify()
        XCTAssertEqual(young.status(of: VerifyCheck.runsOrphans, "lines"), .info, "young: an upload in progress")
        let o = try w.verify(["--orphan-grace", "0s"], name: "orphans")
        XCTAssertEqual(o.status, 1, "old orphans fail: their rows will never be applied: \(o.stdout)")
        XCTAssertEqual(o.status(of: VerifyCheck.runsOrphans, "lines"), .failed)
        XCTAssertTrue(o.text(VerifyCheck.runsOrphans, "lines").contains("lines/delta/\(run)/delta.tar.gz"))
    }

    func testUnreadableRunRecord() throws {
        let w = try published("badrecord")
        let run = Identifiers.make()
        try w.store.put(w.layout.runRecordKey(run), data: Data("{\"format\": \"strata-compaction-run\"}".utf8))
        let o = try w.verify(name: "unreadable-record")
        XCTAssertEqual(o.status, 1)
        XCTAssertEqual(o.status(of: VerifyCheck.runRecords), .failed)
        XCTAssertTrue(o.text(VerifyCheck.runRecords).contains("runs/\(run).json"), o.text(VerifyCheck.runRecords))
    }

    func testLeaseHeldAndStale() throws {
        let w = try published("lease")
        let now = Date()
        func putLease(expires: Date) throws {
            let lease = Lease(
                owner: "worker-7", host: "ip-10-0-0-7", pid: 4242, acquiredAt: now.addingTimeInterval(-600),
                expiresAt: expires)
            try w.store.put(w.layout.leaseKey("lines"), data: try StrataJSON.encoder().encode(lease))
        }
        try putLease(expires: now.addingTimeInterval(100))
        var o = try w.verify()
        XCTAssertEqual(o.status, 0)
        XCTAssertEqual(o.status(of: VerifyCheck.lease, "lines"), .info)
        XCTAssertTrue(o.text(VerifyCheck.lease, "lines").contains("held by worker-7 on ip-10-0-0-7 (pid 4242)"))
        try putLease(expires: now.addingTimeInterval(-300))
        o = try w.verify(name: "stale-lease")
        XCTAssertEqual(o.status, 1, "a stale lease fails: its compactor died mid-round")
        XCTAssertEqual(o.status(of: VerifyCheck.lease, "lines"), .failed)
        XCTAssertTrue(o.text(VerifyCheck.lease, "lines").contains("stale lease"))
    }

    func testBadCredentials() throws {
        let w = try published("creds")
        let o = try w.verify(env: ["AWS_SECRET_ACCESS_KEY": "not-the-secret"], name: "bad-credentials")
        XCTAssertEqual(o.status, 1, o.stderr)
        let f = try XCTUnwrap(o.findings(VerifyCheck.storeAccess).first)
        XCTAssertEqual(f.status, .failed)
        XCTAssertEqual(f.evidence["error_kind"], .string("invalidCredentials"), "\(f)")
        XCTAssertTrue(f.message.hasPrefix("invalid credentials"), f.message)
        XCTAssertEqual(o.report?.findings.count, 1, "nothing else is checked when the store refuses")
    }
}
