import Foundation
import StrataCore
import StrataFileStore
import StrataProducer
import StrataTestSupport
import XCTest

final class DirectoryModeTests: XCTestCase {
    var dir: TempDir!
    var store: FileStore!

    override func setUpWithError() throws {
        let q = try QueueDirectories(prefix: "strata-dirmode")
        (dir, store) = (q.dir, q.store)
    }

    override func tearDown() {
        store = nil
        dir = nil
    }

    func producer(_ s: (any ObjectStore)? = nil) -> RunProducer {
        RunProducer(store: s ?? store, settings: ProducerSettings(workDirectory: dir.file("work")))
    }

    func write(_ rel: String, _ text: String) throws {
        let p = dir.file("in/" + rel)
        try FileManager.default.createDirectory(
            atPath: (p as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
    }

    func records() throws -> [RunRecord] {
        try store.list(prefix: "runs/").map { try RunRecord.decode(store.getData($0.key).data, key: $0.key) }
    }

    func checkpoint() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir.file("in/" + RunProducer.checkpointFileName)))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func jobState(_ name: String) throws -> (state: String, runId: String)? {
        guard let job = (try checkpoint()["jobs"] as? [String: Any])?[name] as? [String: Any] else { return nil }
        return (job["state"] as! String, job["run_id"] as! String)
    }

    func testResumesAfterInterruptionAndNeverPublishesTwice() throws {
        try write("a.ndjson", Rows.upsert("a1", [1, 2]))
        try write("b.ndjson", Rows.upsert("b1", [3, 4]) + Rows.delete("a1"))
        try write("b.labels.json", #"{"image_id": "img-b"}"#)
        try write("c.jsonl", Rows.upsert("c1", [5, 6]))
        try write("notes.txt", "not an input")

        // The process "dies" while writing job b's record.
        let recordPuts = Locked(0)
        let faulty = FaultInjectingStore(store)
        faulty.inject(.connectionReset, on: [.put], times: nil) { _, key in
            guard key.hasPrefix("runs/") else { return false }
            return recordPuts.update {
                $0 += 1
                return $0 == 2
            }
        }
        XCTAssertThrowsError(try producer(faulty).produceDirectory(dir.file("in"), layout: .files(collection: "lines")))
        XCTAssertEqual(try jobState("a.ndjson")?.state, "published")
        let planned = try XCTUnwrap(try jobState("b.ndjson"))
        XCTAssertEqual(planned.state, "planned")
        XCTAssertNil(try jobState("c.jsonl"))
        XCTAssertEqual(try records().count, 1)
        XCTAssertNotNil(try store.head("lines/delta/\(planned.runId)/delta.tar.gz"))

        // Resume: a is skipped, b is published under its planned id, c is new.
        let report = try producer().produceDirectory(dir.file("in"), layout: .files(collection: "lines"))
        XCTAssertEqual(report.jobs.map(\.name), ["a.ndjson", "b.ndjson", "c.jsonl"])
        XCTAssertEqual(report.jobs.map(\.skipped), [true, false, false])
        XCTAssertEqual(report.jobs[1].runs.map(\.runId), [planned.runId])
        XCTAssertEqual(report.published.count, 2)
        let recs = try records()
        XCTAssertEqual(recs.count, 3)
        XCTAssertEqual(try store.list(prefix: "lines/delta/").count, 3)
        XCTAssertEqual(recs.first { $0.runId == planned.runId }?.labels, ["image_id": "img-b"])
        XCTAssertEqual(recs.first { $0.runId == planned.runId }?.collections.first?.deletes, 1)
        XCTAssertEqual(try jobState("b.ndjson")?.state, "published")

        // Again: nothing to do, nothing written.
        let counting = FaultInjectingStore(store)
        let again = try producer(counting).produceDirectory(dir.file("in"), layout: .files(collection: "lines"))
        XCTAssertEqual(again.jobs.map(\.skipped), [true, true, true])
        XCTAssertEqual(counting.calls(.put), 0)

        // A published file that changes is refused (reported failed, left published), not published again.
        try write("a.ndjson", Rows.upsert("a1", [9, 9]))
        let changed = try producer().produceDirectory(dir.file("in"), layout: .files(collection: "lines"))
        XCTAssertEqual(changed.failed.map(\.name), ["a.ndjson"])
        XCTAssertTrue(changed.failed[0].failed?.contains("changed after it was published") ?? false)
        XCTAssertEqual(try jobState("a.ndjson")?.state, "published")
        XCTAssertEqual(try records().count, 3)
    }

    func testJobDirectoriesWithSeveralCollectionsAndLabels() throws {
        try write("job-1/lines.ndjson", Rows.upsert("l1", [1, 2, 3]))
        try write("job-1/words.ndjson", Rows.upsert("w1", [1, 2]) + Rows.upsert("w2", [3, 4]))
        try write("job-1/labels.json", #"{"image_id": "img-1", "receipt_id": "r-9"}"#)
        try write("job-2/lines.ndjson", Rows.upsert("l2", [4, 5, 6]))
        let report = try producer().produceDirectory(
            dir.file("in"), layout: .jobDirectories,
            labels: ["pipeline": "ocr", "image_id": "default"])
        XCTAssertEqual(report.jobs.map(\.name), ["job-1", "job-2"])
        let r1 = try XCTUnwrap(report.jobs[0].runs.first)
        XCTAssertEqual(r1.deltas.map(\.collection), ["lines", "words"])
        XCTAssertEqual(r1.labels, ["pipeline": "ocr", "image_id": "img-1", "receipt_id": "r-9"])
        XCTAssertEqual(report.jobs[1].runs.first?.labels, ["pipeline": "ocr", "image_id": "default"])
        XCTAssertLessThan(r1.runId, report.jobs[1].runs[0].runId)
        XCTAssertEqual(try records().count, 2)

        // A job directory without inputs is a failed job whose reason names it.
        try FileManager.default.createDirectory(atPath: dir.file("in/job-3"), withIntermediateDirectories: true)
        let again = try producer().produceDirectory(
            dir.file("in"), layout: .jobDirectories, labels: ["pipeline": "ocr", "image_id": "default"])
        XCTAssertEqual(again.failed.map(\.name), ["job-3"], "\(again.failed)")
        XCTAssertTrue(again.failed[0].failed?.contains("in/job-3: holds no <collection>.ndjson file") ?? false)
    }

    func testCheckpointOfAnotherStoreIsRefused() throws {
        try write("a.ndjson", Rows.upsert("a1", [1, 2]))
        _ = try producer().produceDirectory(dir.file("in"), layout: .files(collection: "lines"))
        let other = try FileStore(root: URL(fileURLWithPath: dir.file("store2")))
        XCTAssertThrowsError(try producer(other).produceDirectory(dir.file("in"), layout: .files(collection: "lines")))
        {
            XCTAssertEqual(($0 as? StrataError)?.kind, .refused)
        }
        XCTAssertEqual(try other.list(prefix: "").count, 0)
    }

    func testBadLabelsFileIsAnError() throws {
        try write("a.ndjson", Rows.upsert("a1", [1, 2]))
        try write("a.labels.json", #"{"page": 3}"#)
        let report = try producer().produceDirectory(dir.file("in"), layout: .files(collection: "lines"))
        XCTAssertEqual(report.failed.map(\.name), ["a.ndjson"])
        XCTAssertTrue(report.failed[0].failed?.contains("field \"page\": is not a string") ?? false, "\(report)")
        XCTAssertEqual(try jobState("a.ndjson")?.state, "failed")
        XCTAssertEqual(try store.list(prefix: "").count, 0)
    }
}
