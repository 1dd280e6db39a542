import Foundation
import StrataTestSupport
import XCTest

/// `snapctl produce` as an OCR pipeline runs it: the real binary, a real file store, real files.
/// The store is inspected through `snapctl store` too, so these tests hold unchanged for S3.
final class ProduceCommandTests: XCTestCase {
    var dir: TempDir!
    var store: String { "file://" + dir.file("store") }

    override func setUp() {
        dir = TempDir(prefix: "strata-produce-cli")
    }

    override func tearDown() {
        dir = nil
    }

    // MARK: helpers

    @discardableResult
    func produce(_ args: [String]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl, "produce", "--store", store, "--log-format", "json"] + args,
            currentDirectory: dir.path)
    }

    /// Writes `text` to `rel` under the test directory and returns its path.
    @discardableResult
    func write(_ rel: String, _ text: String) throws -> String {
        let p = dir.file(rel)
        try FileManager.default.createDirectory(
            atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// NDJSON upserts with OCR-like ids.
    func rows(_ prefix: String, _ count: Int, dimension: Int = 3, start: Int = 1) -> String {
        (start..<(start + count)).map { i in
            let v = (0..<dimension).map { d in String(Float(i * 10 + d) / 100) }.joined(separator: ",")
            let id = "IMAGE#0b7e4a1c-5d2f-4e8a-9c3b-6f1d2e3a4b5c#RECEIPT#00001#\(prefix)#\(String(format: "%05d", i))"
            return #"{"id":"\#(id)","embedding":[\#(v)],"document":"TOTAL \#(i).00","metadata":{"page":1}}"# + "\n"
        }.joined()
    }

    /// Every key in the store with its ETag, listed by `snapctl store ls`.
    func listing() throws -> [String: String] {
        let r = try TestPaths.run([TestPaths.snapctl, "store", "ls", "--recursive", "--json", "--store", store])
        XCTAssertEqual(r.status, 0, r.stderr)
        var keys: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if let key = obj["key"] as? String { keys[key] = obj["etag"] as? String ?? "" }
        }
        return keys
    }

    func record(_ runId: String) throws -> [String: Any] {
        let r = try TestPaths.run([TestPaths.snapctl, "store", "get", "runs/\(runId).json", "-", "--store", store])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    /// An object's bytes, fetched with `snapctl store get`.
    func object(_ key: String) throws -> Data {
        let dest = dir.file("fetched-\(UUID().uuidString)")
        let r = try TestPaths.run([TestPaths.snapctl, "store", "get", key, dest, "--store", store])
        XCTAssertEqual(r.status, 0, r.stderr)
        defer { try? FileManager.default.removeItem(atPath: dest) }
        return try Data(contentsOf: URL(fileURLWithPath: dest))
    }

    func lines(_ s: String) -> [String] { s.split(separator: "\n").map(String.init) }

    /// Makes the store fail to write run records (a regular file where the `runs/` prefix would
    /// be), so an attempt dies after uploading its deltas and before its record: the window a
    /// crash or timeout leaves. Returns the undo.
    func breakRecordWrites() throws -> () -> Void {
        let blocker = dir.file("store/runs")
        try? FileManager.default.createDirectory(atPath: dir.file("store"), withIntermediateDirectories: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: blocker), "breakRecordWrites needs no records yet")
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: blocker))
        return { try? FileManager.default.removeItem(atPath: blocker) }
    }

    // MARK: publishing

    func testTwoCollectionsMakeOneRecordAndOneDeltaEachAtTheSpecKeys() throws {
        try write("lines.ndjson", rows("LINE", 3))
        try write("words.ndjson", rows("WORD", 5, dimension: 2))
        let r = try produce([
            "--collection", "lines", "--input", "lines.ndjson", "--collection", "words", "--input", "words.ndjson",
            "--label", "image_id=0b7e4a1c", "--label", "receipt_id=00001", "--label", "note=a=b",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ids = lines(r.stdout)
        XCTAssertEqual(ids.count, 1, r.stdout)
        let runId = ids[0]
        XCTAssertNotNil(runId.range(of: #"^\d{8}T\d{9}Z-[0-9a-f]{12}$"#, options: .regularExpression), runId)

        XCTAssertEqual(
            Set(try listing().keys),
            ["runs/\(runId).json", "lines/delta/\(runId)/delta.tar.gz", "words/delta/\(runId)/delta.tar.gz"])
        let rec = try record(runId)
        XCTAssertEqual(rec["format"] as? String, "strata-compaction-run")
        XCTAssertEqual(rec["run_id"] as? String, runId)
        XCTAssertEqual(
            rec["labels"] as? [String: String], ["image_id": "0b7e4a1c", "receipt_id": "00001", "note": "a=b"])
        let deltas = try XCTUnwrap(rec["collections"] as? [[String: Any]])
        XCTAssertEqual(deltas.map { $0["collection"] as? String }, ["lines", "words"])
        XCTAssertEqual(
            deltas.map { $0["delta_key"] as? String },
            ["lines/delta/\(runId)/delta.tar.gz", "words/delta/\(runId)/delta.tar.gz"])
        XCTAssertEqual(deltas.map { $0["upserts"] as? Int }, [3, 5])
        XCTAssertEqual(deltas.map { $0["dimension"] as? Int }, [3, 2])
        XCTAssertTrue(r.stderr.contains("published run"), "logs go to stderr: \(r.stderr)")
    }

    func testJSONOutputHasTheRunIdAndCounts() throws {
        try write("lines.ndjson", rows("LINE", 4) + #"{"id":"gone","delete":true}"# + "\n")
        let r = try produce(["--collection", "lines", "--input", "lines.ndjson", "--json", "--dimension", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let runs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(runs.count, 1)
        let run = runs[0]
        let runId = try XCTUnwrap(run["run_id"] as? String)
        XCTAssertEqual(run["record_key"] as? String, "runs/\(runId).json")
        XCTAssertEqual(run["created"] as? Bool, true)
        XCTAssertEqual(run["part"] as? Int, 1)
        XCTAssertEqual(run["parts"] as? Int, 1)
        let delta = try XCTUnwrap((run["deltas"] as? [[String: Any]])?.first)
        XCTAssertEqual(delta["collection"] as? String, "lines")
        XCTAssertEqual(delta["upserts"] as? Int, 4)
        XCTAssertEqual(delta["deletes"] as? Int, 1)
        XCTAssertEqual(delta["dimension"] as? Int, 3)
        XCTAssertEqual((delta["sha256"] as? String)?.count, 64)
        XCTAssertNotNil(try listing()["runs/\(runId).json"])
    }

    func testABadLineExitsOneNamesItAndPublishesNothing() throws {
        try write("words.ndjson", rows("WORD", 2))
        let bad = #"{"id":"IMAGE#x#LINE#00003","embedding":[0.1,0.2],"document":"short"}"#  // dimension 2, not 3
        try write("lines.ndjson", rows("LINE", 2) + bad + "\n" + rows("LINE", 2, start: 4))
        try FileManager.default.createDirectory(atPath: dir.file("work"), withIntermediateDirectories: true)
        let r = try produce([
            "--collection", "words", "--input", "words.ndjson", "--collection", "lines", "--input", "lines.ndjson",
            "--work-dir", dir.file("work"),
        ])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains("lines.ndjson line 3"), r.stderr)
        XCTAssertTrue(r.stderr.contains("IMAGE#x#LINE#00003"), r.stderr)
        XCTAssertTrue(r.stderr.contains("\"embedding\""), r.stderr)
        XCTAssertTrue(r.stderr.contains("nothing was published"), r.stderr)
        XCTAssertEqual(try listing(), [:], "the valid words input must not be published either")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.file("work")), [], "no leftovers")

        // The same with --dimension: the first upsert is checked too.
        try write("lines.ndjson", rows("LINE", 2))
        let d = try produce(["--collection", "lines", "--input", "lines.ndjson", "--dimension", "4"])
        XCTAssertEqual(d.status, 1, d.stderr)
        XCTAssertTrue(d.stderr.contains("lines.ndjson line 1"), d.stderr)
        XCTAssertEqual(try listing(), [:])
    }

    // MARK: retries

    func testRetryWithTheSameRunIdPublishesNothingNew() throws {
        try write("lines.ndjson", rows("LINE", 3))
        try write("words.ndjson", rows("WORD", 2))
        let args = [
            "--collection", "lines", "--input", "lines.ndjson", "--collection", "words", "--input", "words.ndjson",
        ]
        let runId = "20261121T201408123Z-4f1c0a9be203"
        let first = try produce(args + ["--run-id", runId])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout, runId + "\n")
        let before = try listing()
        XCTAssertEqual(before.count, 3)

        let again = try produce(args + ["--run-id", runId])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, runId + "\n")
        XCTAssertTrue(again.stderr.contains("already published"), again.stderr)
        XCTAssertEqual(try listing(), before, "no object is written again (same keys, same ETags)")

        let json = try produce(args + ["--run-id", runId, "--json"])
        let runs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(runs.first?["created"] as? Bool, false)
        XCTAssertEqual(try listing(), before)

        // The same id with other content is a conflict, and changes nothing.
        try write("lines.ndjson", rows("LINE", 4))
        let conflict = try produce(args + ["--run-id", runId])
        XCTAssertEqual(conflict.status, 1)
        XCTAssertTrue(conflict.stderr.contains("different content"), conflict.stderr)
        XCTAssertEqual(try listing(), before)
    }

    /// An attempt dies after uploading its deltas, before its record; it prints its run id, and
    /// the retry with that id completes the run without a second copy of anything.
    func testAFailedAttemptPrintsItsRunIdAndTheRetryCompletesIt() throws {
        try write("lines.ndjson", rows("LINE", 3))
        try write("words.ndjson", rows("WORD", 2))
        let args = [
            "--collection", "lines", "--input", "lines.ndjson", "--collection", "words", "--input", "words.ndjson",
        ]
        let undo = try breakRecordWrites()
        let failed = try produce(args)
        undo()
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertEqual(failed.stdout, "")
        let match = try XCTUnwrap(
            failed.stderr.range(of: #"retry with --run-id [0-9A-Za-z._-]+"#, options: .regularExpression), failed.stderr
        )
        let runId = String(failed.stderr[match].split(separator: " ").last!)
        let orphans = try listing()
        XCTAssertEqual(Set(orphans.keys), ["lines/delta/\(runId)/delta.tar.gz", "words/delta/\(runId)/delta.tar.gz"])

        let uploaded = try orphans.keys.map { ($0, try object($0)) }

        let retry = try produce(args + ["--run-id", runId])
        XCTAssertEqual(retry.status, 0, retry.stderr)
        XCTAssertEqual(retry.stdout, runId + "\n")
        XCTAssertEqual(Set(try listing().keys), Set(orphans.keys).union(["runs/\(runId).json"]))
        // Deltas are deterministic: a store that cannot vouch for a SHA-256 (the file store) gets
        // the same bytes again under the same key; S3 skips the upload.
        for (key, bytes) in uploaded { XCTAssertEqual(try object(key), bytes, key) }
        let rec = try record(runId)
        XCTAssertEqual((rec["collections"] as? [[String: Any]])?.map { $0["upserts"] as? Int }, [3, 2])
    }

    // MARK: splitting

    func testMaxRowsSplitsIntoSeveralRunsInOrder() throws {
        try write("lines.ndjson", rows("LINE", 5))
        try write("words.ndjson", rows("WORD", 2))
        let r = try produce([
            "--collection", "lines", "--input", "lines.ndjson", "--collection", "words", "--input", "words.ndjson",
            "--max-rows", "2",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ids = lines(r.stdout)
        XCTAssertEqual(ids.count, 3, r.stdout)
        XCTAssertEqual(ids[1], ids[0] + "-p000002")
        XCTAssertEqual(ids[2], ids[0] + "-p000003")
        XCTAssertEqual(ids, ids.sorted(), "ids sort in input order")
        let keys = try listing().keys
        XCTAssertEqual(Set(keys.filter { $0.hasPrefix("runs/") }), Set(ids.map { "runs/\($0).json" }))
        XCTAssertEqual(keys.filter { $0.hasPrefix("lines/delta/") }.count, 3)
        XCTAssertEqual(keys.filter { $0.hasPrefix("words/delta/") }.count, 1, "words fit in the first run")
        let counts = try ids.map { id -> Int in
            let c = try XCTUnwrap(try record(id)["collections"] as? [[String: Any]])
            return c.first { $0["collection"] as? String == "lines" }?["upserts"] as? Int ?? -1
        }
        XCTAssertEqual(counts, [2, 2, 1])

        // --max-bytes splits too: every line is more than 100 bytes.
        let b = try produce(["--collection", "lines", "--input", "lines.ndjson", "--max-bytes", "100", "--json"])
        XCTAssertEqual(b.status, 0, b.stderr)
        let runs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(runs.count, 5)
        XCTAssertEqual(runs.last?["parts"] as? Int, 5)
    }

    // MARK: usage

    func testUsageErrorsExitTwoAndTouchNothing() throws {
        try write("lines.ndjson", rows("LINE", 1))
        let cases: [(args: [String], says: String)] = [
            (
                ["--collection", "lines", "--input", "lines.ndjson", "--collection", "words"],
                "2 --collection and 1 --input"
            ),
            (["--collection", "lines"], "1 --collection and 0 --input"),
            ([], "nothing to publish"),
            (["--collection", "lines", "--input", "lines.ndjson", "--label", "image_id"], "key=value"),
            (["--collection", "lines", "--input", "lines.ndjson", "--label", "=x"], "key=value"),
            (["--collection", "lines", "--input", "lines.ndjson", "--label", "a=1", "--label", "a=2"], "given twice"),
            (["--collection", "Lines", "--input", "lines.ndjson"], "a-z, 0-9"),
            (["--collection", "runs", "--input", "lines.ndjson"], "not \"runs\""),
            (["--collection", "lines", "--input", "missing.ndjson"], "missing.ndjson: no such file"),
            (["--collection", "lines", "--input", dir.path], "is a directory"),
            (
                [
                    "--collection", "lines", "--input", "lines.ndjson", "--collection", "lines", "--input",
                    "lines.ndjson",
                ],
                "given twice"
            ),
            (["--collection", "lines", "--input", "lines.ndjson", "--run-id", "a/b"], "--run-id"),
            (["--collection", "lines", "--input", "lines.ndjson", "--max-rows", "0"], "--max-rows"),
            (["--collection", "lines", "--input", "lines.ndjson", "--max-bytes", "12X"], "--max-bytes"),
            (["--collection", "lines", "--input", "lines.ndjson", "--dimension", "0"], "--dimension"),
            (["--collection", "lines", "--input", "lines.ndjson", "--checkpoint", "cp.json"], "only to --dir"),
            (["--dir", dir.file("nope")], "no such directory"),
            (["--dir", dir.path, "--input", "lines.ndjson"], "exclude each other"),
            (["--dir", dir.path, "--run-id", "R1"], "checkpoint"),
            (["--dir", dir.path, "--collection", "a", "--collection", "b"], "at most one --collection"),
        ]
        for c in cases {
            let r = try produce(c.args)
            XCTAssertEqual(r.status, 2, "\(c.args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(c.says), "\(c.args): expected \"\(c.says)\" in: \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(c.args)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("store")), "the store was never opened")

        let noStore = try TestPaths.run(
            [TestPaths.snapctl, "produce", "--collection", "lines", "--input", dir.file("lines.ndjson")],
            environment: ["STRATA_STORE": ""])
        XCTAssertEqual(noStore.status, 2, noStore.stderr)
        XCTAssertTrue(noStore.stderr.contains("no store given"), noStore.stderr)
    }

    // MARK: directory mode

    func testDirectoryModeResumesAfterAnInterruptionAndPublishesOnlyNewJobs() throws {
        try write("in/r-0001.ndjson", rows("LINE", 2))
        try write("in/r-0002.ndjson", rows("LINE", 3))
        try write("in/r-0002.labels.json", #"{"image_id": "img-2"}"#)
        try write("in/notes.txt", "not an input")
        let args = ["--dir", dir.file("in"), "--collection", "lines", "--label", "pipeline=ocr"]

        var r = try produce(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        var out = lines(r.stdout).map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(out.map { $0[0] }, ["published", "published"])
        XCTAssertEqual(out.map { $0[1] }, ["r-0001.ndjson", "r-0002.ndjson"])
        let firstIds = out.map { $0[2] }
        XCTAssertEqual(
            try record(firstIds[1])["labels"] as? [String: String], ["pipeline": "ocr", "image_id": "img-2"])
        XCTAssertEqual(try listing().keys.filter { $0.hasPrefix("runs/") }.count, 2)

        // New jobs arrive; the store fails while the first of them is being published.
        try write("in/r-0003.ndjson", rows("LINE", 1))
        try write("in/r-0004.ndjson", rows("LINE", 4))
        let undo = try breakRecordWritesKeepingRecords()
        r = try produce(args)
        undo()
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("run the same command again to resume"), r.stderr)
        let checkpoint = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: dir.file("in/.strata-produce-checkpoint.json"))))
                as? [String: Any])
        let planned = try XCTUnwrap((checkpoint["jobs"] as? [String: [String: Any]])?["r-0003.ndjson"])
        XCTAssertEqual(planned["state"] as? String, "planned")
        let plannedId = try XCTUnwrap(planned["run_id"] as? String)

        // Resume: old jobs skipped, the interrupted one published under its planned id, then the next.
        r = try produce(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        out = lines(r.stdout).map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(out.map { $0[0] }, ["skipped", "skipped", "published", "published"], r.stdout)
        XCTAssertEqual(out.map { $0[1] }, ["r-0001.ndjson", "r-0002.ndjson", "r-0003.ndjson", "r-0004.ndjson"])
        XCTAssertEqual(out[2][2], plannedId)
        let keys = try listing().keys
        let records = Set(keys.filter { $0.hasPrefix("runs/") })
        XCTAssertEqual(records.count, 4)
        let deltaRuns = keys.filter { $0.hasPrefix("lines/delta/") }.map { $0.split(separator: "/")[2] }
        XCTAssertEqual(deltaRuns.count, 4, "one delta per job, none twice")
        for run in deltaRuns { XCTAssertTrue(records.contains("runs/\(run).json"), "\(run) has a record") }

        // Once more: nothing to do, and the JSON report says so.
        let before = try listing()
        r = try produce(args + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let jobs = try XCTUnwrap(report["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.map { $0["skipped"] as? Bool }, [true, true, true, true])
        XCTAssertEqual(try listing(), before)
    }

    func testDirectoryModeWithJobDirectoriesAndAnExplicitCheckpoint() throws {
        try write("jobs/IMAGE-a/lines.ndjson", rows("LINE", 2))
        try write("jobs/IMAGE-a/words.ndjson", rows("WORD", 3, dimension: 2))
        try write("jobs/IMAGE-a/labels.json", #"{"image_id": "a"}"#)
        try write("jobs/IMAGE-b/lines.ndjson", rows("LINE", 1))
        let cp = dir.file("state/jobs.checkpoint.json")
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        let r = try produce(["--dir", dir.file("jobs"), "--checkpoint", cp])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = lines(r.stdout).map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(out.map { $0[1] }, ["IMAGE-a", "IMAGE-b"])
        let rec = try record(out[0][2])
        XCTAssertEqual(
            (rec["collections"] as? [[String: Any]])?.map { $0["collection"] as? String }, ["lines", "words"])
        XCTAssertEqual(rec["labels"] as? [String: String], ["image_id": "a"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: cp))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("jobs/.strata-produce-checkpoint.json")))
    }

    /// Like `breakRecordWrites`, when records already exist: moves `runs/` aside and puts a file
    /// in its place. Returns the undo.
    func breakRecordWritesKeepingRecords() throws -> () -> Void {
        let runs = dir.file("store/runs")
        let aside = dir.file("store-runs-aside")
        try FileManager.default.moveItem(atPath: runs, toPath: aside)
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: runs))
        return {
            try? FileManager.default.removeItem(atPath: runs)
            try? FileManager.default.moveItem(atPath: aside, toPath: runs)
        }
    }
}
