import Foundation
import StrataCompactor
import StrataCore
import StrataDelta
import StrataFileStore
import StrataInspect
import StrataTestSupport
import XCTest

/// The seed's verify checklist (issue 8, section 4) and the compactor's status object, each on
/// the file store and on SeaweedFS, through the real `snapctl`.
final class VerifyChecklistTests: XCTestCase {
    func onBothStores(_ hint: String, _ body: (VerifyWorld) throws -> Void) throws {
        for fileStore in [true, false] { try body(try VerifyWorld(hint, fileStore: fileStore)) }
    }

    func lineIds(_ n: Int, receipt: Int = 1) -> [String] {
        let image = UUID().uuidString.lowercased()
        return (0..<n).map { String(format: "IMAGE#%@#RECEIPT#%05d#LINE#%05d", image, receipt, $0) }
    }

    func published(_ w: VerifyWorld) throws {
        try w.produce("lines", ids: lineIds(10))
        try w.compact("lines")
        try w.produce("lines", ids: lineIds(5, receipt: 2))
        try w.compact("lines")
    }

    func testFilesNamesEachDamagedObjectWithItsKey() throws {
        try onBothStores("fileskeys") { w in
            try published(w)
            let v = try w.pointer("lines")
            let key = w.snapshotKey("lines", v)
            try w.store.put(key, data: Data("truncated".utf8))
            let o = try w.verify(["--collection", "lines"])
            XCTAssertEqual(o.status(of: VerifyCheck.files, "lines"), .failed)
            let text = o.text(VerifyCheck.files, "lines")
            // The object by its role: a page version's base or patch, a whole-file version's file.
            XCTAssertTrue(text.contains(" is 9 bytes; the manifest says"), text)
            XCTAssertTrue(text.contains("(\(key))"), "names the key: \(text)")
            XCTAssertTrue(text.contains("--reason"), "the rollback hint carries its reason: \(text)")
        }
    }

    func testFreshnessMaxRunAgeAndDayOldWarning() throws {
        try onBothStores("fresh") { w in
            try published(w)
            let fresh = try w.verify(["--collection", "lines"])
            XCTAssertEqual(fresh.status(of: VerifyCheck.runsFreshness, "lines"), .passed, fresh.stdout)
            let strict = try w.verify(["--collection", "lines", "--max-run-age", "0s"])
            XCTAssertEqual(strict.status, 1)
            XCTAssertEqual(strict.status(of: VerifyCheck.runsFreshness, "lines"), .failed)
            XCTAssertTrue(strict.text(VerifyCheck.runsFreshness, "lines").contains("are deltas being created?"))
            // Two days later with no new run: a warning by default, not a failure.
            var s = VerifySettings()
            s.collections = ["lines"]
            s.pendingAge = 7 * 86400
            let twoDays = Date().addingTimeInterval(2 * 86400)
            let later = Verifier(store: w.store, layout: w.layout, settings: s, now: twoDays).run()
            let f = try XCTUnwrap(later.findings(VerifyCheck.runsFreshness, collection: "lines").first)
            XCTAssertEqual(f.status, .warning, f.message)
            XCTAssertTrue(f.message.contains("older than 1d: are deltas being created?"), f.message)
        }
    }

    func testLeaseOfAProcessThatIsGoneOnThisHostIsStale() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let pid = dead.processIdentifier
        try onBothStores("deadpid") { w in
            try published(w)
            func putLease(pid: Int32, host: String) throws {
                let lease = Lease(
                    owner: "worker-1", host: host, pid: pid, acquiredAt: Date().addingTimeInterval(-10),
                    expiresAt: Date().addingTimeInterval(600))
                try w.store.put(w.layout.leaseKey("lines"), data: try StrataJSON.encoder().encode(lease))
            }
            try putLease(pid: pid, host: VerifySettings.localHost())
            let o = try w.verify(["--collection", "lines"])
            XCTAssertEqual(o.status(of: VerifyCheck.lease, "lines"), .failed, o.text(VerifyCheck.lease, "lines"))
            XCTAssertTrue(o.text(VerifyCheck.lease, "lines").contains("process \(pid) no longer exists on this host"))
            // A live process here, or any process on another host, holds it.
            try putLease(pid: getpid(), host: VerifySettings.localHost())
            XCTAssertEqual(try w.verify(["--collection", "lines"]).status(of: VerifyCheck.lease, "lines"), .info)
            try putLease(pid: pid, host: "another-host")
            XCTAssertEqual(try w.verify(["--collection", "lines"]).status(of: VerifyCheck.lease, "lines"), .info)
        }
    }

    func testPrefixesOfOtherApplicationsAreInfo() throws {
        try onBothStores("shared") { w in
            try published(w)
            try w.store.put("logs/2026/app.log", data: Data("not ours".utf8))
            try w.store.put("exports/lines.csv", data: Data("id,x".utf8))
            let o = try w.verify()
            XCTAssertEqual(o.status, 0, o.stdout)
            XCTAssertEqual(o.report?.collections, ["lines"])
            let store = o.findings(VerifyCheck.storeCollections)
            XCTAssertTrue(store.contains { $0.status == .info && $0.message.contains("2 prefixes are not a Strata") })
            XCTAssertTrue(o.text(VerifyCheck.storeCollections).contains("logs/"), o.text(VerifyCheck.storeCollections))
            XCTAssertTrue(o.findings(VerifyCheck.pointer, "logs").isEmpty)
            // Named explicitly, it is checked (and fails: there is no such collection).
            XCTAssertEqual(try w.verify(["--collection", "logs"]).status(of: VerifyCheck.pointer, "logs"), .failed)
        }
    }

    func testIdPatternsPerCollectionAndBuiltInNames() throws {
        try onBothStores("idnames") { w in
            try published(w)
            let words = lineIds(3).map { $0 + "#WORD#00001" }
            try w.produce("words", ids: words)
            try w.compact("words")
            let ok = try w.verify(["--id-pattern", "lines=receipt-line", "--id-pattern", "words=receipt-word"])
            XCTAssertEqual(ok.status, 0, ok.stdout)
            XCTAssertEqual(ok.status(of: VerifyCheck.snapshotIds, "lines"), .passed)
            XCTAssertEqual(ok.status(of: VerifyCheck.snapshotIds, "words"), .passed)
            let swapped = try w.verify(["--id-pattern", "lines=receipt-word", "--id-pattern", "words=receipt-line"])
            XCTAssertEqual(swapped.status(of: VerifyCheck.snapshotIds, "lines"), .failed)
            XCTAssertEqual(swapped.status(of: VerifyCheck.snapshotIds, "words"), .failed)
            XCTAssertTrue(swapped.text(VerifyCheck.snapshotIds, "words").contains("3 of 3 ids do not match"))

            // The producer refuses ids of the wrong shape before uploading anything.
            let input = w.tmp.file("bad-ids.ndjson")
            let good = lineIds(1)[0]
            try """
            {"id": "\(good)", "embedding": [1, 2, 3, 4, 5, 6, 7, 8]}
            {"id": "img-7/line-3", "embedding": [1, 2, 3, 4, 5, 6, 7, 8]}

            """.write(toFile: input, atomically: true, encoding: .utf8)
            let before = try w.store.list(prefix: w.layout.runsPrefix).count
            let refused = try w.snapctl(
                ["produce", "--collection", "lines", "--input", input, "--id-pattern", "lines=receipt-line"])
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertTrue(refused.stderr.contains("\"img-7/line-3\" does not match the id pattern"), refused.stderr)
            XCTAssertTrue(refused.stderr.contains("line 2"), refused.stderr)
            XCTAssertEqual(try w.store.list(prefix: w.layout.runsPrefix).count, before, "nothing was published")
            let usage = try w.snapctl(["produce", "--collection", "lines", "--input", input, "--id-pattern", "x{"])
            XCTAssertEqual(usage.status, 2, usage.stderr)
            let accepted = try w.snapctl(
                ["produce", "--collection", "lines", "--input", input, "--id-pattern", "lines=IMAGE#{any}"])
            XCTAssertEqual(accepted.status, 1, "img-7/line-3 is not IMAGE#...: \(accepted.stderr)")
            let open = try w.snapctl(
                ["produce", "--collection", "lines", "--input", input, "--id-pattern", "words=receipt-word"])
            XCTAssertEqual(open.status, 0, "a pattern for another collection does not apply: \(open.stderr)")
        }
    }

    func testDeepQuerySmokeTest() throws {
        try onBothStores("deepquery") { w in
            try published(w)
            let o = try w.verify(["--collection", "lines", "--deep"])
            XCTAssertEqual(o.status, 0, o.stdout)
            let f = try XCTUnwrap(o.findings(VerifyCheck.snapshotQuery, "lines").first)
            XCTAssertEqual(f.status, .passed, f.message)
            XCTAssertTrue(f.message.contains("finds it first, at distance 0, scanning 15 rows"), f.message)
            XCTAssertTrue(try w.verify(["--collection", "lines"]).findings(VerifyCheck.snapshotQuery, "lines").isEmpty)
            // Vectors that cannot be scored (NaN) make the version unqueryable: the smoke test fails.
            try w.publishHandMade(
                "lines", sql: ["UPDATE embeddings SET embedding = CAST(x'0000c07f' || substr(embedding, 5) AS BLOB)"])
            let broken = try w.verify(["--collection", "lines", "--deep"])
            XCTAssertEqual(broken.status(of: VerifyCheck.snapshotQuery, "lines"), .failed, broken.stdout)
            let text = broken.text(VerifyCheck.snapshotQuery, "lines")
            XCTAssertTrue(text.contains("finite"), text)
        }
    }

    /// The reasons helper "rows" writes are rendered with what to do; tooLate with the command.
    func testQuarantineReasonsOfLateFutureAndInvalidRuns() throws {
        try onBothStores("reasons") { w in
            try published(w)
            var runs: [String: String] = [:]
            for reason in ["tooLate", "futureRunId", "invalidRecord"] {
                let run = Identifiers.make()
                runs[reason] = run
                let q = QuarantineRecord(
                    runId: run, collection: "lines", deltaKey: w.layout.deltaKey(collection: "lines", runId: run),
                    reason: reason, detail: "\(reason) detail", quarantinedAt: Date(), compactorId: "test")
                try w.store.put(
                    w.layout.quarantineKey(collection: "lines", runId: run), data: try StrataJSON.encoder().encode(q))
            }
            let o = try w.verify(["--collection", "lines"])
            XCTAssertEqual(o.status(of: VerifyCheck.runsQuarantined, "lines"), .failed)
            let text = o.text(VerifyCheck.runsQuarantined, "lines")
            XCTAssertTrue(text.contains("futureRunId, invalidRecord, tooLate"), text)
            XCTAssertTrue(text.contains("`snapctl compact --collection lines --allow-late \(runs["tooLate"]!)`"), text)
            XCTAssertFalse(text.contains("--allow-late \(runs["futureRunId"]!)"), text)
            XCTAssertTrue(text.contains("fix the clock"), text)
            XCTAssertTrue(text.contains("Run record"), text)
        }
    }

    /// A store that ignores conditional writes is refused; the refusal shows in verify.
    func testCompactorStatusOfARefusedStore() throws {
        let dir = TempDir(prefix: "strata-status-probe")
        let store = NoConditions(try FileStore(root: URL(fileURLWithPath: dir.path)))
        let w = CompactionWorld(store: store)
        try w.produce(["lines": [.upsert("a", w.row(1))]])
        XCTAssertThrowsError(try w.compactor().compact(collection: "lines"))
        let report = Verifier(store: store, layout: w.layout).run()
        let f = try XCTUnwrap(report.findings(VerifyCheck.compactorStatus, collection: "lines").first)
        XCTAssertEqual(f.status, .failed, f.message)
        XCTAssertTrue(f.message.contains("does not enforce If-None-Match"), f.message)
        XCTAssertTrue(f.hint?.contains("--single-writer") == true, f.hint ?? "")
        // The worker's refusal before its first round leaves the same, for every collection.
        try store.delete(w.layout.compactorStatusKey("lines"))
        w.compactor().reportRefusal(collections: ["lines", "words"], StrataError(.refused, object: "s", message: "m"))
        XCTAssertNotNil(try store.head(w.layout.compactorStatusKey("lines")))
        XCTAssertNotNil(try store.head(w.layout.compactorStatusKey("words")))
    }

    /// A damaged base stops compaction; the status it leaves shows in verify with the error and
    /// its time, and the next successful round removes it.
    func testCompactorStatusOfADamagedBase() throws {
        try onBothStores("status") { w in
            try published(w)
            let v = try w.pointer("lines")
            let good = try w.manifest("lines", v).parentVersion!
            let bytes = try w.store.getData(w.snapshotKey("lines", v)).data
            var flipped = bytes
            flipped[flipped.count - 10] ^= 0xff
            try w.store.put(w.snapshotKey("lines", v), data: flipped)
            try w.produce("lines", ids: lineIds(2, receipt: 3))
            let failed = try w.snapctl(["compact", "--collection", "lines"])
            XCTAssertEqual(failed.status, 1, failed.stdout)
            let o = try w.verify(["--collection", "lines"])
            XCTAssertEqual(o.status(of: VerifyCheck.compactorStatus, "lines"), .failed)
            let text = o.text(VerifyCheck.compactorStatus, "lines")
            XCTAssertTrue(text.contains("was refused"), text)
            XCTAssertTrue(text.contains("sha256"), text)
            XCTAssertTrue(text.contains("at="), text)

            let rollback = try w.snapctl(["rollback", "lines", good, "--reason", "damaged base", "--requeue"])
            XCTAssertEqual(rollback.status, 0, rollback.stderr)
            XCTAssertEqual(try w.snapctl(["compact", "--collection", "lines"]).status, 0)
            XCTAssertNil(try w.store.head(w.layout.compactorStatusKey("lines")))
            let healed = try w.verify(["--collection", "lines"])
            XCTAssertEqual(healed.status(of: VerifyCheck.compactorStatus, "lines"), .passed)
            XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 17)
        }
    }
}

/// A store that accepts every write unconditionally (as some S3-compatible servers do).
final class NoConditions: ObjectStore, Sendable {
    let inner: any ObjectStore
    init(_ inner: any ObjectStore) { self.inner = inner }
    var location: String { "no-conditions+" + inner.location }
    func head(_ key: String) throws -> ObjectInfo? { try inner.head(key) }
    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try inner.get(key, toFile: path, range: range)
    }
    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) { try inner.getData(key) }
    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        try inner.put(key, body: body, condition: .none, options: options)
    }
    func delete(_ key: String) throws { try inner.delete(key) }
    func delete(keys: [String]) throws -> [DeleteFailure] { try inner.delete(keys: keys) }
    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try inner.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
    }
}
