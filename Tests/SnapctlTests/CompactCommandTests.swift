import Foundation
import StrataTestSupport
import XCTest

/// `snapctl compact` as a command: quarantined runs are listed with their reason and store keys
/// (no local paths), the exit code is 3 when something was quarantined or deferred, and a run
/// older than the late-run window is applied with --allow-late.
final class CompactCommandTests: XCTestCase {
    func snapctl(_ args: [String]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args,
            environment: ["STRATA_LOG_FORMAT": "json", "STRATA_LOG_LEVEL": "error"])
    }

    /// A run id made at `secondsAgo` before now.
    func runId(secondsAgo: Double) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmssSSS'Z'"
        let suffix = String(format: "%012llx", UInt64.random(in: 0..<(1 << 48)))
        return f.string(from: Date().addingTimeInterval(-secondsAgo)) + "-" + suffix
    }

    func testQuarantineIsListedWithKeysExitThreeAndAllowLateApplies() throws {
        let dir = TempDir(prefix: "strata-compact-cli")
        let store = ["--store", "file://" + dir.path]
        let input = dir.path + "-in.ndjson"
        defer { try? FileManager.default.removeItem(atPath: input) }
        try "{\"id\":\"a\",\"embedding\":[1,2,3]}\n{\"id\":\"b\",\"embedding\":[4,5,6]}\n"
            .write(toFile: input, atomically: false, encoding: .utf8)
        var r = try snapctl(["produce"] + store + ["--collection", "lines", "--input", input])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try snapctl(["compact"] + store + ["--collection", "lines"])
        XCTAssertEqual(r.status, 0, "published, nothing quarantined: \(r.stdout) \(r.stderr)")
        // Deferred by the limits: exit 3 until the rest is applied.
        for _ in 0..<2 {
            XCTAssertEqual(try snapctl(["produce"] + store + ["--collection", "lines", "--input", input]).status, 0)
        }
        r = try snapctl(["compact"] + store + ["--collection", "lines", "--max-runs", "1"])
        XCTAssertEqual(r.status, 3, r.stdout)
        XCTAssertTrue(r.stdout.contains("(1 left for the next round)"), r.stdout)
        XCTAssertEqual(try snapctl(["compact"] + store + ["--collection", "lines"]).status, 0)

        let old = runId(secondsAgo: 10 * 86400)
        r = try snapctl(["produce"] + store + ["--collection", "lines", "--input", input, "--run-id", old])
        XCTAssertEqual(r.status, 0, r.stderr)
        // A record that is not JSON.
        let garbage = runId(secondsAgo: 1)
        try FileManager.default.createDirectory(atPath: dir.path + "/runs", withIntermediateDirectories: true)
        try "{oops".write(toFile: dir.path + "/runs/\(garbage).json", atomically: false, encoding: .utf8)

        r = try snapctl(["compact"] + store + ["--collection", "lines"])
        XCTAssertEqual(r.status, 3, "quarantined something: \(r.stdout) \(r.stderr)")
        for words in [
            "QUARANTINED     \(old): tooLate", "record        lines/quarantine/\(old).json",
            "delta         lines/delta/\(old)/delta.tar.gz", "--allow-late \(old)",
            "QUARANTINED     \(garbage): invalidRecord", "runs/\(garbage).json",
        ] {
            XCTAssertTrue(r.stdout.contains(words), "prints \(words): \(r.stdout)")
        }
        XCTAssertFalse(
            r.stdout.contains(NSTemporaryDirectory()) || r.stdout.contains("/tmp/"),
            "no local paths: \(r.stdout)")

        // Quarantined runs stay so: a plain re-run has nothing to do.
        r = try snapctl(["compact"] + store + ["--collection", "lines"])
        XCTAssertEqual(r.status, 0, r.stdout)
        r = try snapctl(["compact"] + store + ["--collection", "lines", "--allow-late", old])
        XCTAssertEqual(r.status, 0, "\(r.stdout) \(r.stderr)")
        XCTAssertTrue(r.stdout.contains("runs applied    1"), r.stdout)
        XCTAssertTrue(r.stdout.contains("superseded      2"), "a and b were written by a newer run: \(r.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/lines/quarantine/\(old).json"))

        // --allow-late on a run quarantined for another reason is refused, naming the reason.
        r = try snapctl(["compact"] + store + ["--collection", "lines", "--allow-late", garbage])
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stderr.contains("invalidRecord, not tooLate"), r.stderr)
    }

    func testUsageAndHelp() throws {
        var r = try snapctl(["compact", "--help"])
        XCTAssertEqual(r.status, 0)
        for words in ["--allow-late", "--late-run-window", "Exit codes", "3 no failure, but a run was"] {
            XCTAssertTrue(r.stdout.contains(words), "help mentions \(words): \(r.stdout)")
        }
        let dir = TempDir()
        let compact = ["compact", "--store", "file://" + dir.path, "--collection", "lines"]
        r = try snapctl(compact + ["--late-run-window", "soon"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--late-run-window soon"), r.stderr)
        r = try snapctl(compact + ["--allow-late", "a/b"])
        XCTAssertEqual(r.status, 2, r.stderr)
        // The page encoding and the chain policy are settings, checked before anything runs.
        for (args, words) in [
            (["--page-compression", "lz4"], "--page-compression lz4"),
            (["--page-compression", "zlib:12"], "zlib level is 1 to 9"),
            (["--chain-patch-share", "1.5"], "--chain-patch-share in (0, 1]"),
            (["--chain-max-tail", "0"], "--chain-max-tail"),
        ] {
            r = try snapctl(compact + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(words), "\(args): \(r.stderr)")
        }
        r = try snapctl(
            compact + ["--page-compression", "zlib:6", "--chain-max-tail", "4", "--chain-patch-share", "0.3"])
        XCTAssertEqual(r.status, 0, "valid settings on an empty store: \(r.stderr)")
    }
}
