import Foundation
import StrataTestSupport
import XCTest

/// `snapctl query` and `get` checks that need no published collection: help, usage errors (exit
/// 2, before anything is downloaded) and a collection without a pointer. Queries over published
/// data run in StrataInspectTests/QueryCLITests, which can publish with the library.
final class QueryCommandTests: XCTestCase {
    func snapctl(_ args: [String], store: String, input: Data? = nil) throws -> TestPaths.ProcessResult {
        try TestPaths.run([TestPaths.snapctl] + args + ["--store", store], input: input)
    }

    func testHelpHasExamples() throws {
        for command in ["query", "get"] {
            let r = try TestPaths.run([TestPaths.snapctl, command, "--help"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("Examples:") && r.stdout.contains("snapctl \(command) lines"), r.stdout)
        }
        let r = try TestPaths.run([TestPaths.snapctl, "query", "--help"])
        for option in ["--id", "--vector", "-k", "--metric", "--where", "--version", "--json"] {
            XCTAssertTrue(r.stdout.contains(option), "\(option) in \(r.stdout)")
        }
    }

    func testUsageErrorsExitTwo() throws {
        let dir = TempDir()
        let store = "file://" + dir.path
        let cases: [([String], String)] = [
            (["query", "lines"], "exactly one of --id ID, --vector FILE and --text TEXT"),
            (["query", "lines", "--id", "a", "--vector", "q.json"], "exactly one of"),
            (["query", "lines", "--id", "a", "--metric", "dot"], "expected cosine, ip or l2"),
            (["query", "lines", "--id", "a", "-k", "0"], "at least 1"),
            (["query", "lines", "--id", "a", "--where", "novalue"], "is not key=value"),
            (["query", "lines", "--vector", dir.path + "/absent.json"], "no such file"),
            (["query", "Bad Name", "--id", "a"], "Bad Name"),
            (["get", "lines"], "at least one id"),
        ]
        for (args, text) in cases {
            let r = try snapctl(args, store: store)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(text), "\(args): \(r.stderr)")
        }
        // A bad vector is reported before the store is even looked at.
        let r = try snapctl(["query", "lines", "--vector", "-"], store: store, input: Data("[0, 0]".utf8))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("all zeros"), r.stderr)
    }

    func testCollectionWithoutPointerNamesTheFix() throws {
        let dir = TempDir()
        for args in [["query", "lines", "--id", "a"], ["get", "lines", "a"]] {
            let r = try snapctl(args, store: "file://" + dir.path)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("collection lines has no published version"), r.stderr)
            XCTAssertTrue(r.stderr.contains("snapctl compact --collection lines"), r.stderr)
        }
    }
}
