import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataS3
import StrataTestSupport
import XCTest

@testable import StrataService

/// `snapctl compactor` as a service: the real binary against a private SeaweedFS, its /metrics
/// parsed strictly, /wake, /readyz, and graceful stops in the middle of a round.
final class CompactorServiceTests: XCTestCase {
    var dir: TempDir!

    override func setUp() { dir = TempDir(prefix: "strata-service") }
    override func tearDown() { dir = nil }

    func makeBucket(_ hint: String, server: SeaweedFS) throws -> (S3Store, String) {
        let bucket = SeaweedFS.uniqueBucketName(hint)
        let store = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        try store.createBucket()
        return (store, bucket)
    }

    func environment(_ server: SeaweedFS, bucket: String, _ extra: [String: String] = [:]) -> [String: String] {
        server.awsEnvironment.merging(["STRATA_STORE": "s3://\(bucket)", "TMPDIR": dir.path]) { $1 }
            .merging(extra) { $1 }
    }

    func rows(_ world: CompactionWorld, _ range: ClosedRange<Int>) -> [CompactionWorld.Op] {
        range.map { .upsert("id\($0)", world.row($0)) }
    }

    // MARK: metrics and /wake

    func testMetricsMoveAsRunsAreAppliedAndWakeStartsAPass() throws {
        let server = try SeaweedFS.shared()
        let (store, bucket) = try makeBucket("svcmetrics", server: server)
        let world = CompactionWorld(store: store)
        try world.produce(["lines": rows(world, 1...5)])
        try world.produce(["lines": [.upsert("id6", world.row(6)), .delete("id1")]])
        let started = Date().timeIntervalSince1970

        // --poll 3600: after the first pass only a wake starts another one.
        let w = try WorkerProcess(
            arguments: [
                "--collections", "lines,words", "--poll", "3600",
                "--metrics-addr", "127.0.0.1:0",
            ],
            environment: environment(server, bucket: bucket), dir: dir)
        let base = try w.baseURL()
        let lines = ["collection": "lines"]
        let words = ["collection": "words"]
        var m = try scrape(base) { $0.value("strata_passes_total") == 1 }
        XCTAssertEqual(m.types["strata_runs_applied_total"], "counter")
        XCTAssertEqual(m.types["strata_runs_pending"], "gauge")
        XCTAssertEqual(m.types["strata_publish_duration_seconds"], "histogram")
        XCTAssertEqual(m.types["strata_store_request_duration_seconds"], "histogram")
        XCTAssertEqual(m.value("strata_runs_applied_total", lines), 2)
        XCTAssertEqual(m.value("strata_rows_upserted_total", lines), 6)
        XCTAssertEqual(m.value("strata_rows_deleted_total", lines), 1)
        XCTAssertEqual(m.value("strata_runs_pending", lines), 0)
        XCTAssertEqual(m.value("strata_oldest_pending_run_age_seconds", lines), 0)
        XCTAssertEqual(m.value("strata_publish_duration_seconds_count", lines), 1)
        XCTAssertGreaterThan(try XCTUnwrap(m.value("strata_bytes_uploaded_total", lines)), 1000)
        let lastPublish = try XCTUnwrap(m.value("strata_last_publish_timestamp_seconds", lines))
        XCTAssertGreaterThanOrEqual(lastPublish, started.rounded(.down))
        XCTAssertLessThanOrEqual(lastPublish, Date().timeIntervalSince1970)
        // The idle collection's series exist at zero (an absent series cannot alert).
        XCTAssertEqual(m.value("strata_runs_applied_total", words), 0)
        XCTAssertEqual(m.value("strata_last_publish_timestamp_seconds", words), 0)
        XCTAssertEqual(m.value("strata_lease_skips_total", lines), 0)
        // Store requests by operation and outcome: the pointer's conditional create, the manifest, lists.
        XCTAssertGreaterThanOrEqual(
            m.sum(
                "strata_store_requests_total",
                matching: ["operation": "put_if_none_match", "outcome": "ok"]), 3)
        XCTAssertGreaterThanOrEqual(m.sum("strata_store_requests_total", matching: ["operation": "list"]), 1)
        XCTAssertGreaterThanOrEqual(m.sum("strata_store_requests_total", matching: ["outcome": "not_found"]), 1)
        XCTAssertEqual(
            m.sum("strata_store_request_duration_seconds_count"),
            m.sum("strata_store_requests_total"))
        let body = try http("GET", base + "/metrics").body
        XCTAssertFalse(body.contains(server.secretKey), "a secret in the metrics")
        XCTAssertFalse(body.contains(server.accessKey), "a credential in the metrics")
        XCTAssertFalse(body.contains(bucket), "the bucket (a location) is not a label")

        // New runs wait for the next pass: a good one for lines, a damaged one for words.
        try world.produce(["lines": [.upsert("id7", world.row(7))]])
        let bad = try world.produce(["words": rows(world, 1...3)])
        let record = try RunRecord.decode(
            try store.getData(world.layout.runRecordKey(bad)).data,
            key: world.layout.runRecordKey(bad))
        try store.put(try XCTUnwrap(record.delta(for: "words")).key, data: Data("not a delta".utf8))
        m = try scrape(base)
        XCTAssertEqual(m.value("strata_runs_applied_total", lines), 2, "applied without a wake")

        let wake = try http("POST", base + "/wake")
        XCTAssertEqual(wake.status, 202, wake.body)
        m = try scrape(base) { $0.value("strata_passes_total") == 2 }
        XCTAssertEqual(m.value("strata_wakes_total"), 1)
        XCTAssertEqual(m.value("strata_runs_applied_total", lines), 3)
        XCTAssertEqual(m.value("strata_rows_upserted_total", lines), 7)
        XCTAssertEqual(m.value("strata_publish_duration_seconds_count", lines), 2)
        XCTAssertEqual(m.sum("strata_runs_quarantined_total", matching: words), 1)
        XCTAssertEqual(m.value("strata_runs_applied_total", words), 0)
        try world.assertMatchesModel("lines")
        try world.assertEveryRunAppliedOnce("lines")

        w.signal(SIGTERM)
        XCTAssertEqual(w.waitForExit(), 0, w.log)
    }

    // MARK: /healthz and /readyz

    func testReadyzFollowsTheStoreAndHealthzTheProcess() throws {
        let own = try SeaweedFS.start()
        defer { own.stop() }
        let bucket = SeaweedFS.uniqueBucketName("svcready")
        let store = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: own))
        try store.createBucket()
        let w = try WorkerProcess(
            arguments: [
                "--collections", "lines", "--poll", "0.5", "--metrics-addr", "127.0.0.1:0",
                "--shutdown-grace", "5",
            ],
            environment: environment(own, bucket: bucket), dir: dir)
        let base = try w.baseURL()
        XCTAssertEqual(try http("GET", base + "/healthz").status, 200)
        let ready = try http("GET", base + "/readyz")
        XCTAssertEqual(ready.status, 200, ready.body)
        XCTAssertEqual(try http("GET", base + "/nothing").status, 404)
        XCTAssertNotEqual(try http("GET", base + "/wake").status, 202, "a wake needs POST")

        own.stop()
        let deadline = Date().addingTimeInterval(120)
        var status = 200
        while status == 200 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            status = try http("GET", base + "/readyz").status
        }
        XCTAssertEqual(status, 503, "readyz stayed ready with the store gone")
        XCTAssertEqual(try http("GET", base + "/healthz").status, 200, "the process is still up")
        try scrape(base) { $0.sum("strata_compaction_errors_total", matching: ["collection": "lines"]) >= 1 }

        w.signal(SIGTERM)
        XCTAssertEqual(w.waitForExit(), 0, w.log)
    }

    // MARK: graceful stop in the middle of a round

    /// SIGTERM while a round has merged but not uploaded: the round is abandoned, nothing of it is
    /// published, the process exits 0, and the next compactor applies every run once.
    func testSIGTERMBeforeTheUploadAbandonsTheRound() throws {
        let server = try SeaweedFS.shared()
        let (store, bucket) = try makeBucket("svcstop1", server: server)
        let world = CompactionWorld(store: store)
        try world.produce(["lines": rows(world, 1...20)])
        try world.produce(["lines": [.delete("id3"), .upsert("id21", world.row(21))]])
        let w = try WorkerProcess(
            arguments: ["--collections", "lines", "--poll", "1"],
            environment: environment(server, bucket: bucket, ["STRATA_PAUSE_AT": "after-merge"]),
            dir: dir)
        try w.waitForLog("fault injection: pausing at after-merge")
        w.signal(SIGTERM)
        XCTAssertEqual(w.waitForExit(), 0, w.log)
        XCTAssertNil(try store.head(world.layout.pointerKey("lines")), "a stopped round moved the pointer")
        XCTAssertEqual(
            try store.list(prefix: world.layout.versionsPrefix("lines")).map(\.key), [],
            "a stopped round uploaded version files")
        XCTAssertNil(try store.head(world.layout.leaseKey("lines")), "the lease was not released")
        XCTAssertTrue(w.logLines.contains { $0["msg"] as? String == "compactor worker stopped" })

        let again = try TestPaths.run(
            [TestPaths.snapctl, "compact", "--collection", "lines"],
            environment: environment(server, bucket: bucket))
        XCTAssertEqual(again.status, 0, again.stderr)
        try world.assertEveryRunAppliedOnce("lines")
        try world.assertMatchesModel("lines")
    }

    /// SIGTERM once the version is uploaded: the round finishes (pointer moved to a whole version)
    /// and only then does the process exit 0.
    func testSIGTERMAfterTheUploadFinishesThePublish() throws {
        let server = try SeaweedFS.shared()
        let (store, bucket) = try makeBucket("svcstop2", server: server)
        let world = CompactionWorld(store: store)
        try world.produce(["lines": rows(world, 1...20)])
        let w = try WorkerProcess(
            arguments: ["--collections", "lines", "--poll", "1"],
            environment: environment(server, bucket: bucket, ["STRATA_PAUSE_AT": "after-upload"]),
            dir: dir)
        try w.waitForLog("fault injection: pausing at after-upload")
        XCTAssertNil(try store.head(world.layout.pointerKey("lines")))
        w.signal(SIGTERM)
        XCTAssertEqual(w.waitForExit(), 0, w.log)
        let messages = w.logLines.compactMap { $0["msg"] as? String }
        let stopAt = try XCTUnwrap(messages.firstIndex { $0.hasPrefix("stop requested") }, w.log)
        let publishedAt = try XCTUnwrap(messages.firstIndex(of: "published"), w.log)
        XCTAssertLessThan(stopAt, publishedAt, "the stop came before the publish it let finish")
        try world.assertEveryRunAppliedOnce("lines")
        try world.assertMatchesModel("lines")
    }

    // MARK: units

    func testListenAddressParsing() throws {
        XCTAssertEqual(
            try ListenAddress.parse("0.0.0.0:9090", what: "x"),
            ListenAddress(host: "0.0.0.0", port: 9090, isIPv6: false))
        XCTAssertEqual(try ListenAddress.parse(":9090", what: "x").host, "0.0.0.0")
        XCTAssertEqual(try ListenAddress.parse("localhost:0", what: "x").host, "127.0.0.1")
        XCTAssertEqual(
            try ListenAddress.parse("[::1]:9090", what: "x"), ListenAddress(host: "::1", port: 9090, isIPv6: true))
        for bad in ["9090", "1.2.3.4:", "1.2.3.4:70000", "host.example:80", "[::1]9090", "::1:80"] {
            XCTAssertThrowsError(try ListenAddress.parse(bad, what: "--metrics-addr"), bad) { error in
                XCTAssertTrue("\(error)".contains("--metrics-addr"), "\(error)")
            }
        }
    }

    func testMetricsStoreCountsOperationsAndOutcomes() throws {
        let metrics = CompactorMetrics()
        let store = MetricsStore(try FileStore(root: URL(fileURLWithPath: dir.file("fs"))), metrics: metrics)
        XCTAssertNil(try store.getDataIfExists("a/b"))
        try store.put("a/b", data: Data("x".utf8), condition: .ifNoneMatch)
        XCTAssertThrowsError(try store.put("a/b", data: Data("y".utf8), condition: .ifNoneMatch))
        _ = try store.list(prefix: "a/")
        let m = try PrometheusText(metrics.exposition())
        XCTAssertEqual(m.value("strata_store_requests_total", ["operation": "get", "outcome": "not_found"]), 1)
        XCTAssertEqual(m.value("strata_store_requests_total", ["operation": "put_if_none_match", "outcome": "ok"]), 1)
        XCTAssertEqual(
            m.value(
                "strata_store_requests_total",
                ["operation": "put_if_none_match", "outcome": "precondition_failed"]), 1)
        XCTAssertEqual(m.value("strata_store_requests_total", ["operation": "list", "outcome": "ok"]), 1)
        XCTAssertEqual(m.value("strata_store_request_duration_seconds_count", ["operation": "get"]), 1)
    }

    func testThePrometheusParserRejectsMalformedText() {
        for bad in [
            "metric{a=\"1\" 2", "1metric 2", "metric{a=1} 2", "metric two", "metric{a=\"x\",a=\"y\"} 1",
            "# TYPE m counter\nm 1\n# TYPE m counter",
        ] {
            XCTAssertThrowsError(try PrometheusText(bad), bad)
        }
        XCTAssertNoThrow(try PrometheusText("# HELP m text\n# TYPE m counter\nm{a=\"q\\\"\\\\\"} 1.5e3\n"))
    }
}
