import Foundation
import StrataTestSupport
import XCTest

/// `snapctl store` as an operator uses it, on the file store; the S3 variants live beside.
final class FileStoreCommandTests: XCTestCase {
    func snapctl(_ args: [String], store: String, input: Data? = nil) throws -> TestPaths.ProcessResult {
        try TestPaths.run([TestPaths.snapctl] + args + ["--store", store], input: input)
    }

    func testPutGetLsRmRoundTrip() throws {
        let dir = TempDir()
        let store = "file://" + dir.path
        let src = dir.file("../strata-src-\(getpid()).txt")
        try Data("hello strata\n".utf8).write(to: URL(fileURLWithPath: src))
        defer { try? FileManager.default.removeItem(atPath: src) }

        var r = try snapctl(["store", "put", src, "lines/x.txt"], store: store)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("\""), "prints the ETag: \(r.stdout)")

        r = try snapctl(["store", "get", "lines/x.txt", "-"], store: store)
        XCTAssertEqual(r.stdout, "hello strata\n")

        r = try snapctl(["store", "ls", "-r"], store: store)
        XCTAssertTrue(r.stdout.contains("lines/x.txt"), r.stdout)

        r = try snapctl(["store", "put", "-", "lines/x.txt", "--if-none-match"], store: store, input: Data("again".utf8))
        XCTAssertEqual(r.status, 3, "a lost condition exits 3")
        XCTAssertTrue(r.stderr.contains("PreconditionFailed"), r.stderr)

        r = try snapctl(["store", "rm", "lines/x.txt"], store: store)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try snapctl(["store", "get", "lines/x.txt", "-"], store: store)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("NoSuchKey"), r.stderr)
    }

    func testUsageErrorsExitTwo() throws {
        var r = try TestPaths.run([TestPaths.snapctl, "store", "ls", "--store", "ftp://nope"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("neither s3://"), r.stderr)
        r = try TestPaths.run([TestPaths.snapctl, "store", "ls", "--store", "file://relative"])
        XCTAssertEqual(r.status, 2)
    }

    /// Eight processes race to create the same key: exactly one wins, seven exit 3.
    func testCreateOnlyRaceBetweenProcesses() throws {
        let dir = TempDir()
        let store = "file://" + dir.path
        let src = dir.file("../strata-race-\(getpid()).txt")
        try Data("payload".utf8).write(to: URL(fileURLWithPath: src))
        defer { try? FileManager.default.removeItem(atPath: src) }
        for round in 0..<3 {
            let argv = [TestPaths.snapctl, "store", "put", src, "race/\(round)", "--if-none-match", "--store", store]
            let statuses = try TestPaths.runConcurrently(Array(repeating: argv, count: 8))
            XCTAssertEqual(statuses.filter { $0 == 0 }.count, 1, "round \(round): \(statuses)")
            XCTAssertEqual(statuses.filter { $0 == 3 }.count, 7, "round \(round): \(statuses)")
        }
    }

    func testProbePassesOnFileStore() throws {
        let dir = TempDir()
        let r = try snapctl(["store", "probe", "--json"], store: "file://" + dir.path)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"conditionalWritesEnforced\" : true"), r.stdout)
    }
}
