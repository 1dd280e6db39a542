import Foundation
import StrataCore
import StrataTestSupport
import XCTest

/// `snapctl query` and `snapctl get` through the real binary, on a collection published in the
/// test by the real producer and compactor. (Here rather than in SnapctlTests because publishing
/// needs the library; the library-free CLI checks live in SnapctlTests/QueryCommandTests.)
final class QueryCLITests: XCTestCase {
    var fixture: QueryFixture!
    var firstVersion = ""
    let longDocument = "line one of a long receipt\nline two " + String(repeating: "x", count: 100)

    override func setUpWithError() throws {
        fixture = try QueryFixture()
        firstVersion = try fixture.publish(
            "lines",
            rows: [
                FixtureRow(
                    id: "a", embedding: [1, 0, 0, 0], document: "alpha receipt",
                    metadata: #"{"image_id":"abc","receipt_id":1,"has_price":true}"#),
                FixtureRow(
                    id: "b", embedding: [0.9, 0.1, 0, 0], document: "beta",
                    metadata: #"{"image_id":"abc","receipt_id":2,"has_price":false}"#),
                FixtureRow(
                    id: "c", embedding: [0, 1, 0, 0], document: longDocument,
                    metadata: #"{"image_id":"def","receipt_id":1,"has_price":true}"#),
                FixtureRow(
                    id: "d", embedding: [0.5, 0.5, 0, 0], document: "delta",
                    metadata: #"{"image_id":"def","receipt_id":"1","has_price":true}"#),
                FixtureRow(id: "e", embedding: [0, 0, 1, 0]),
            ])
    }

    override func tearDown() { fixture = nil }

    func snapctl(_ args: [String], input: Data? = nil, environment: [String: String]? = nil) throws
        -> TestPaths.ProcessResult
    {
        try TestPaths.run(
            [TestPaths.snapctl] + args + ["--store", fixture.storeURL], environment: environment, input: input)
    }

    /// The table's rows as (rank, score, id).
    func tableRows(_ stdout: String) -> [(rank: Int, score: Double, id: String)] {
        stdout.split(separator: "\n").dropFirst(2).map { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return (Int(f[0])!, Double(f[1])!, String(f[2]))
        }
    }

    func json(_ stdout: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], stdout)
    }

    func testQueryById() throws {
        let r = try snapctl(["query", "lines", "--id", "a", "-k", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertTrue(lines[0].hasPrefix("lines @ \(firstVersion) (pointer): 5 rows; cosine"), r.stdout)
        XCTAssertTrue(lines[1].hasPrefix("rank  score"), r.stdout)
        let rows = tableRows(r.stdout)
        XCTAssertEqual(rows.map(\.id), ["b", "d", "c"], "nearest first, the id itself left out, ties by id")
        XCTAssertEqual(rows.map(\.rank), [1, 2, 3])
        XCTAssertEqual(rows[0].score, 0.9 / (0.82).squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(rows[1].score, 0.5.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(rows[2].score, 0, accuracy: 1e-6)
        // The long document is cut, and its newline does not break the table.
        XCTAssertEqual(lines.count, 5, r.stdout)
        XCTAssertTrue(lines[4].contains("line one of a long receipt line two xxx"), r.stdout)
        XCTAssertTrue(lines[4].hasSuffix("…"), r.stdout)
        XCTAssertTrue(lines[2].hasSuffix("beta"), r.stdout)
    }

    func testQueryByVectorFileAndStdinWithMetrics() throws {
        let q = fixture.dir.file("q.json")
        try Data("[0, 1, 0, 0]\n".utf8).write(to: URL(fileURLWithPath: q))
        var r = try snapctl(["query", "lines", "--vector", q, "--metric", "l2", "-k", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        var rows = tableRows(r.stdout)
        XCTAssertEqual(rows.map(\.id), ["c", "d"])
        XCTAssertEqual(rows[1].score, 0.5.squareRoot(), accuracy: 1e-5)
        XCTAssertTrue(r.stdout.contains("l2, lower is nearer"), r.stdout)

        r = try snapctl(
            ["query", "lines", "--vector", "-", "--metric", "ip", "-k", "10"], input: Data("[2, 0, 0, 0]".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        rows = tableRows(r.stdout)
        XCTAssertEqual(rows.map(\.id), ["a", "b", "d", "c", "e"], "k above the row count returns every row")
        XCTAssertEqual(rows.map(\.score), [2, 1.8, 1, 0, 0])
    }

    func testWhereFiltersByTypedMetadata() throws {
        var r = try snapctl(["query", "lines", "--id", "a", "--where", "has_price=true", "--where", "receipt_id=1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(tableRows(r.stdout).map(\.id), ["d", "c"], "d's \"1\" matches as text, c's 1 as a number")
        XCTAssertTrue(r.stdout.contains("2 where has_price=true AND receipt_id=1"), r.stdout)

        r = try snapctl(["query", "lines", "--id", "a", "--where", "receipt_id=\"1\""])
        XCTAssertEqual(tableRows(r.stdout).map(\.id), ["d"], "a quoted value matches strings only")

        r = try snapctl(["query", "lines", "--id", "a", "--where", "image_id=abc"])
        XCTAssertEqual(tableRows(r.stdout).map(\.id), ["b"])

        r = try snapctl(["query", "lines", "--id", "a", "--where", "image_id=zzz"])
        XCTAssertEqual(r.status, 0, "no match is an answer, not an error")
        XCTAssertTrue(r.stdout.contains("none matched the --where conditions"), r.stdout)
    }

    func testQueryJSON() throws {
        let r = try snapctl(["query", "lines", "--id", "a", "-k", "2", "--json", "--where", "has_price=true"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try json(r.stdout)
        XCTAssertEqual(o["collection"] as? String, "lines")
        XCTAssertEqual(o["version"] as? String, firstVersion)
        XCTAssertEqual(o["metric"] as? String, "cosine")
        XCTAssertEqual(o["scanned"] as? Int, 5)
        XCTAssertEqual(o["matched"] as? Int, 2, "a itself is excluded, b has no price")
        XCTAssertEqual((o["query"] as? [String: Any])?["id"] as? String, "a")
        let results = try XCTUnwrap(o["results"] as? [[String: Any]])
        XCTAssertEqual(results.map { $0["id"] as? String }, ["d", "c"])
        XCTAssertEqual(results.map { $0["rank"] as? Int }, [1, 2])
        XCTAssertEqual(try XCTUnwrap(results[0]["score"] as? Double), 0.5.squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(results[1]["document"] as? String, longDocument, "JSON keeps the whole document")
        let meta = try XCTUnwrap(results[0]["metadata"] as? [String: Any])
        XCTAssertEqual(meta["receipt_id"] as? String, "1")
        XCTAssertEqual(meta["image_id"] as? String, "def")
        XCTAssertTrue(r.stdout.contains("\"has_price\" : true"), "booleans stay booleans: \(r.stdout)")
    }

    func testQueryErrors() throws {
        var r = try snapctl(["query", "lines", "--id", "nope"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("\"nope\"") && r.stderr.contains("lines"), r.stderr)

        let q = fixture.dir.file("short.json")
        try Data("[1, 2, 3]".utf8).write(to: URL(fileURLWithPath: q))
        r = try snapctl(["query", "lines", "--vector", q])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("has 3 values; the collection's dimension is 4"), r.stderr)

        r = try snapctl(["query", "lines", "--vector", "-"], input: Data("[1, NaN, 0, 0]".utf8))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("vector[1]"), r.stderr)

        r = try snapctl(["query", "words", "--id", "a"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(
            r.stderr.contains("has no published version") && r.stderr.contains("snapctl compact --collection words"),
            r.stderr)

        r = try snapctl(["query", "lines", "--id", "a", "--version", "20000101T000000000Z-000000000000"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("has no manifest"), r.stderr)
    }

    func testOlderVersionAndNothingLeftInTemp() throws {
        try fixture.publish("lines", rows: [FixtureRow(id: "f", embedding: [1, 0, 0, 0], document: "newer")])
        let tmp = TempDir(prefix: "strata-cli-tmp")
        var r = try snapctl(["query", "lines", "--id", "a", "-k", "1"], environment: ["TMPDIR": tmp.path])
        XCTAssertEqual(tableRows(r.stdout).map(\.id), ["f"], r.stdout + r.stderr)
        r = try snapctl(
            ["query", "lines", "--id", "a", "-k", "1", "--version", firstVersion], environment: ["TMPDIR": tmp.path])
        XCTAssertEqual(tableRows(r.stdout).map(\.id), ["b"], r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("lines @ \(firstVersion): 5 rows"), r.stdout)
        r = try snapctl(["get", "lines", "f"], environment: ["TMPDIR": tmp.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [], "temporary files removed")
    }

    func testGet() throws {
        var r = try snapctl(["get", "lines", "a", "e"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout,
            """
            id         a
            document   alpha receipt
            metadata   {"has_price":true,"image_id":"abc","receipt_id":1}

            id         e
            document   (none)
            metadata   (none)

            """)

        r = try snapctl(["get", "lines", "b", "--embedding"])
        XCTAssertTrue(r.stdout.contains("embedding  [0.9, 0.1, 0.0, 0.0]  (4 values)"), r.stdout)

        r = try snapctl(["get", "lines", "a", "zz", "b", "yy", "--json", "--embedding"])
        XCTAssertEqual(r.status, 1, "a missing id fails the command")
        XCTAssertTrue(r.stderr.contains("\"zz\", \"yy\""), r.stderr)
        let o = try json(r.stdout)
        XCTAssertEqual(o["missing"] as? [String], ["zz", "yy"])
        XCTAssertEqual(o["dimension"] as? Int, 4)
        let rows = try XCTUnwrap(o["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["id"] as? String }, ["a", "b"])
        XCTAssertEqual(rows[1]["embedding"] as? [Double], [0.9, 0.1, 0, 0], "float32 printed shortest")
        XCTAssertEqual((rows[0]["metadata"] as? [String: Any])?["receipt_id"] as? Int, 1)

        r = try snapctl(["get", "lines", "zz"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains("not in lines (version \(firstVersion)): \"zz\""), r.stderr)
    }
}
