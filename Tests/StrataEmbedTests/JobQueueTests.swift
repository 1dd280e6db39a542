import Foundation
import StrataCore
import StrataEmbed
import StrataFileStore
import StrataProducer
import StrataTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Directory mode as a job queue: a bad job is set aside with its reason and the others go on.
final class JobQueueTests: XCTestCase {
    var dir: TempDir!
    var store: FileStore!

    override func setUpWithError() throws {
        let q = try QueueDirectories(prefix: "strata-queue")
        (dir, store) = (q.dir, q.store)
    }

    override func tearDown() {
        store = nil
        dir = nil
    }

    func producer(embedURL: String? = nil) -> RunProducer {
        var s = ProducerSettings(workDirectory: dir.file("work"))
        if let embedURL {
            var e = EmbeddingSettings(baseURL: embedURL, model: "m")
            e.initialBackoff = 0.01
            s.embedding = e
        }
        return RunProducer(store: store, settings: s)
    }

    func write(_ rel: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("in/" + rel)))
    }

    func upsert(_ id: String, _ v: [Float]) -> String {
        "{\"id\":\"\(id)\",\"embedding\":[\(v.map { "\($0)" }.joined(separator: ","))]}\n"
    }

    func produce(_ p: RunProducer? = nil, retryFailed: Bool = false, maxJobs: Int? = nil) throws -> DirectoryReport {
        try (p ?? producer()).produceDirectory(
            dir.file("in"), layout: .files(collection: "lines"), retryFailed: retryFailed, maxJobs: maxJobs)
    }

    func status() throws -> [String: DirectoryStatus.Job] {
        let s = try RunProducer.directoryStatus(dir.file("in"), layout: .files(collection: "lines"))
        return Dictionary(uniqueKeysWithValues: s.jobs.map { ($0.name, $0) })
    }

    func testAFailedJobIsSetAsideWithItsReasonAndTheQueueGoesOn() throws {
        try write("a.ndjson", upsert("a1", [1, 2]))
        try write("b.ndjson", "{\"id\":\"b1\",\"embedding\":[1,\"x\"]}\n")
        try write("c.ndjson", upsert("c1", [3, 4]))
        let first = try produce()
        XCTAssertEqual(first.failed.map(\.name), ["b.ndjson"])
        XCTAssertTrue(first.failed[0].failed?.contains("b.ndjson line 1") ?? false, "\(first)")
        XCTAssertEqual(first.published.count, 2, "a and c are published although b failed")
        var st = try status()
        XCTAssertEqual(st["a.ndjson"]?.state, .published)
        XCTAssertEqual(st["b.ndjson"]?.state, .failed)
        XCTAssertTrue(st["b.ndjson"]?.reason?.contains("embedding") ?? false)
        XCTAssertEqual(st["c.ndjson"]?.state, .published)

        // Set aside: the next pass does not try it again.
        let second = try produce()
        XCTAssertEqual(second.failed.map(\.name), ["b.ndjson"])
        XCTAssertEqual(second.jobs.map(\.skipped), [true, true, true])

        // Fixed (nothing of it was uploaded): it is planned again under its run id and published.
        try write("b.ndjson", upsert("b1", [5, 6]))
        let third = try produce()
        XCTAssertEqual(third.failed.count, 0)
        XCTAssertEqual(third.published.map(\.runId), [st["b.ndjson"]!.runId!])
        st = try status()
        XCTAssertEqual(st["b.ndjson"]?.state, .published)
        XCTAssertEqual(try store.list(prefix: "runs/").count, 3)
    }

    func testRetryFailedPutsAFailedJobBack() throws {
        // The embedding server rejects the first request: the job fails, not the queue.
        let server = try ScriptedEmbeddingServer(steps: [.status(400, message: "input is not allowed today")])
        try write("a.ndjson", "{\"id\":\"a1\",\"document\":\"text a\"}\n")
        try write("b.ndjson", "{\"id\":\"b1\",\"document\":\"text b\"}\n")
        let p = producer(embedURL: server.baseURL)
        let first = try produce(p)
        XCTAssertEqual(first.failed.map(\.name), ["a.ndjson"])
        XCTAssertTrue(first.failed[0].failed?.contains("input is not allowed today") ?? false)
        XCTAssertEqual(first.published.count, 1)
        XCTAssertEqual(try produce(p).failed.map(\.name), ["a.ndjson"], "still set aside")
        XCTAssertEqual(server.requests.count, 2)

        let retried = try produce(p, retryFailed: true)
        XCTAssertEqual(retried.failed.count, 0)
        XCTAssertEqual(retried.published.count, 1)
        XCTAssertEqual(try status()["a.ndjson"]?.state, .published)
        XCTAssertEqual(server.requests.count, 3)
    }

    func testAnEmbeddingServerThatStaysDownStopsThePassAndTheJobResumes() throws {
        let server = try ScriptedEmbeddingServer(steps: Array(repeating: .status(503), count: 2))
        try write("a.ndjson", "{\"id\":\"a1\",\"document\":\"text a\"}\n")
        var s = ProducerSettings(workDirectory: dir.file("work"))
        var e = EmbeddingSettings(baseURL: server.baseURL, model: "m")
        e.maxAttempts = 2
        e.initialBackoff = 0.01
        s.embedding = e
        XCTAssertThrowsError(try produce(RunProducer(store: store, settings: s))) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .unavailable)
        }
        XCTAssertEqual(try status()["a.ndjson"]?.state, .planned, "not failed: every job would fail the same way")
        XCTAssertEqual(try produce(RunProducer(store: store, settings: s)).published.count, 1)
    }

    func testMaxJobsStopsAfterNJobs() throws {
        for n in ["a", "b", "c"] { try write("\(n).ndjson", upsert("\(n)1", [1, 2])) }
        let first = try produce(maxJobs: 1)
        XCTAssertEqual(first.published.count, 1)
        XCTAssertTrue(first.stoppedAtMaxJobs)
        XCTAssertEqual(try status()["b.ndjson"]?.state, .pending)
        let second = try produce(maxJobs: 1)
        XCTAssertEqual(second.jobs.filter { !$0.skipped }.map(\.name), ["b.ndjson"])
        let third = try produce(maxJobs: 5)
        XCTAssertEqual(third.jobs.filter { !$0.skipped }.map(\.name), ["c.ndjson"])
        XCTAssertFalse(third.stoppedAtMaxJobs)
    }

    func testAPublishedJobIsHashedAgainOnlyWhenItsStampChanges() throws {
        try write("a.ndjson", upsert("a1", [1, 2]))
        _ = try produce()
        let path = dir.file("in/a.ndjson")
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        // Same size, same inode, same mtime, other bytes: the stamp is unchanged, so it is not
        // read again (were it hashed, it would be refused as changed).
        let fh = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try fh.write(contentsOf: Data(upsert("a1", [9, 2]).utf8))
        try fh.close()
        var times = [st.st_atim, st.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
        let quiet = try produce()
        XCTAssertEqual(quiet.failed.count, 0)
        XCTAssertEqual(quiet.jobs.map(\.skipped), [true])

        // A new mtime: hashed, found changed, refused (and left published).
        times[1].tv_sec += 10
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
        let changed = try produce()
        XCTAssertTrue(changed.failed.first?.failed?.contains("changed after it was published") ?? false)
        XCTAssertEqual(try status()["a.ndjson"]?.state, .published)
        XCTAssertEqual(try store.list(prefix: "runs/").count, 1)
    }
}
