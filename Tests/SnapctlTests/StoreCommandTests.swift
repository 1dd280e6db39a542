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

        r = try snapctl(
            ["store", "put", "-", "lines/x.txt", "--if-none-match"], store: store, input: Data("again".utf8))
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

/// `snapctl store` against the private SeaweedFS: the same commands over S3.
final class S3StoreCommandTests: XCTestCase {
    func testCreateOnlyRaceBetweenProcessesOnS3() throws {
        let server = try SeaweedFS.shared()
        let store = "s3://" + SeaweedFS.uniqueBucketName("procrace")
        let env = server.awsEnvironment
        XCTAssertEqual(
            try TestPaths.run([TestPaths.snapctl, "store", "mb", "--store", store], environment: env).status, 0)
        let dir = TempDir()
        let src = dir.file("payload.txt")
        try Data("payload".utf8).write(to: URL(fileURLWithPath: src))
        for round in 0..<2 {
            let argv = [TestPaths.snapctl, "store", "put", src, "race/\(round)", "--if-none-match", "--store", store]
            let statuses = try TestPaths.runConcurrently(Array(repeating: argv, count: 8), environment: env)
            XCTAssertEqual(statuses.filter { $0 == 0 }.count, 1, "round \(round): \(statuses)")
            XCTAssertEqual(statuses.filter { $0 == 3 }.count, 7, "round \(round): \(statuses)")
        }
        // And the same over If-Match: processes replacing one version, exactly one wins. Each
        // writes different bytes (S3 ETags follow content, so equal bytes would keep the ETag).
        let put = try TestPaths.run(
            [TestPaths.snapctl, "store", "put", src, "cas", "--store", store], environment: env)
        let etag = put.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var argvs: [[String]] = []
        for i in 0..<6 {
            let f = dir.file("v\(i).txt")
            try Data("version \(i)".utf8).write(to: URL(fileURLWithPath: f))
            argvs.append([TestPaths.snapctl, "store", "put", f, "cas", "--if-match", etag, "--store", store])
        }
        let statuses = try TestPaths.runConcurrently(argvs, environment: env)
        XCTAssertEqual(statuses.filter { $0 == 0 }.count, 1, "\(statuses)")
        XCTAssertEqual(statuses.filter { $0 == 3 }.count, 5, "\(statuses)")
    }
}

/// Progress lines appear on a terminal and never in pipes or --json output.
final class ProgressDisplayTests: XCTestCase {
    func testProgressOnATerminalOnly() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            throw XCTSkip("util-linux `script` is needed to give snapctl a terminal")
        }
        let dir = TempDir()
        let store = "file://" + dir.file("store")
        let src = dir.file("big.bin")
        // Large enough that a 0.25 s refresh fires at least once even on a fast disk.
        FileManager.default.createFile(atPath: src, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: src))
        for _ in 0..<64 { h.write(Data(repeating: 0x5a, count: 4 << 20)) }
        try h.close()
        let put = "\(TestPaths.snapctl) store put \(src) big.bin --store \(store)"
        let get = "\(TestPaths.snapctl) store get big.bin \(dir.file("out.bin")) --store \(store)"
        // Through a pseudo-terminal: progress shows.
        let tty = try TestPaths.run(
            ["/usr/bin/script", "-qec", "\(put) && \(get)", "/dev/null"],
            environment: ["STRATA_PROGRESS": "1"])
        XCTAssertEqual(tty.status, 0, tty.stdout)
        XCTAssertTrue(tty.stdout.contains("uploading big.bin"), tty.stdout.suffix(400).description)
        XCTAssertTrue(tty.stdout.contains("MiB/s"), tty.stdout.suffix(400).description)
        // Through pipes: none.
        let piped = try TestPaths.run(["/bin/sh", "-c", "\(get)"])
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertFalse(piped.stderr.contains("MiB/s"), piped.stderr)
    }
}
