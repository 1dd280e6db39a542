import Foundation
import StrataS3
import StrataTestSupport
import XCTest

/// `snapctl verify` as a command: help, usage errors (exit 2), stores that cannot be used, and
/// the JSON contract. The failure modes of collections are in StrataInspectTests.VerifyScenarioTests.
final class VerifyCommandTests: XCTestCase {
    func snapctl(_ args: [String], env: [String: String] = [:]) throws -> TestPaths.ProcessResult {
        try TestPaths.run([TestPaths.snapctl] + args, environment: env.merging(["STRATA_LOG_FORMAT": "json"]) { $1 })
    }

    func report(_ r: TestPaths.ProcessResult) throws -> [String: Any] {
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try XCTUnwrap(obj as? [String: Any], r.stdout)
    }

    func findings(_ json: [String: Any], _ check: String) -> [[String: Any]] {
        ((json["findings"] as? [[String: Any]]) ?? []).filter { $0["check"] as? String == check }
    }

    func testHelpNamesTheChecksAndShowsAnExample() throws {
        let r = try snapctl(["verify", "--help"])
        XCTAssertEqual(r.status, 0)
        for words in [
            "--id-pattern", "--pending-age", "--drop-threshold", "--orphan-grace", "--deep", "--json",
            "Example", "snapctl verify --store s3://", "{5 digits}", "Exit status", "--max-run-age",
            "receipt-line", "receipt-word",
        ] {
            XCTAssertTrue(r.stdout.contains(words), "help mentions \(words): \(r.stdout)")
        }
    }

    func testUsageErrorsExitTwo() throws {
        let dir = TempDir()
        let store = ["--store", "file://" + dir.path]
        let cases: [([String], String)] = [
            (["--id-pattern", "IMAGE#{uuid4}"], "unknown placeholder {uuid4}"),
            (["--pending-age", "soon"], "--pending-age soon"),
            (["--orphan-grace", "1y"], "--orphan-grace 1y"),
            (["--drop-threshold", "1.5"], "--drop-threshold"),
            (["--collection", "Bad Name"], "--collection Bad Name"),
            (["--sample", "0"], "--sample"),
            (["--max-run-age", "soon"], "--max-run-age soon"),
            (["--id-pattern", "lines=IMAGE#{uuid4}"], "unknown placeholder {uuid4}"),
        ]
        for (args, words) in cases {
            let r = try snapctl(["verify"] + store + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(words), "\(args): \(r.stderr)")
        }
        let r = try snapctl(["verify"], env: ["STRATA_STORE": ""])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("no store given"), r.stderr)
    }

    func testEmptyStoreWarnsAndUnknownCollectionFails() throws {
        let dir = TempDir()
        var r = try snapctl(["verify", "--store", "file://" + dir.path])
        XCTAssertEqual(r.status, 0, "an empty store is a warning: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("WARN store.collections"), r.stdout)
        XCTAssertTrue(r.stdout.contains("no collections in"), r.stdout)
        XCTAssertTrue(r.stdout.contains("summary: 2 passed, 0 info, 1 warning, 0 failed: OK with warnings"), r.stdout)

        r = try snapctl(["verify", "--store", "file://" + dir.path, "--collection", "lines", "--json"])
        XCTAssertEqual(r.status, 1, r.stdout)
        let json = try report(r)
        XCTAssertEqual(json["format"] as? String, "strata-verify-report")
        XCTAssertEqual(json["status"] as? String, "failed")
        let pointer = try XCTUnwrap(findings(json, "pointer").first)
        XCTAssertEqual(pointer["collection"] as? String, "lines")
        XCTAssertEqual(pointer["status"] as? String, "failed")
        XCTAssertTrue((pointer["message"] as? String)?.contains("no such collection") == true, "\(pointer)")
        XCTAssertNotNil(pointer["hint"] as? String)
        XCTAssertNotNil(pointer["evidence"] as? [String: Any])
        XCTAssertTrue(findings(json, "runs.pending").isEmpty, "an absent collection has nothing else to check")
    }

    func testStoreProblemsAreNamed() throws {
        let server = try SeaweedFS.shared()
        let store = try S3TestStore.make("verifycreds")
        let url = "s3://\(store.configuration.bucket)"
        let cases: [([String: String], String, String, String)] = [
            (["AWS_SECRET_ACCESS_KEY": "wrong-secret"], url, "invalidCredentials", "invalid credentials"),
            (["AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000"], url, "invalidCredentials", "invalid credentials"),
            ([:], "s3://no-such-bucket-\(getpid())", "noSuchBucket", "missing bucket"),
        ]
        for (env, storeURL, kind, words) in cases {
            let r = try snapctl(
                ["verify", "--store", storeURL, "--json"], env: server.awsEnvironment.merging(env) { $1 })
            XCTAssertEqual(r.status, 1, "\(kind): \(r.stderr)")
            let access = try XCTUnwrap(findings(try report(r), "store.access").first, r.stdout)
            XCTAssertEqual(access["status"] as? String, "failed")
            XCTAssertEqual((access["evidence"] as? [String: Any])?["error_kind"] as? String, kind, "\(access)")
            XCTAssertTrue((access["message"] as? String)?.hasPrefix(words) == true, "\(access)")
            XCTAssertFalse(r.stdout.contains(server.secretKey), "never prints the secret")
        }
        // The same in words, for people.
        let r = try snapctl(
            ["verify", "--store", url], env: server.awsEnvironment.merging(["AWS_SECRET_ACCESS_KEY": "x"]) { $1 })
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("FAIL store.access"), r.stdout)
        XCTAssertTrue(r.stdout.contains("hint: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"), r.stdout)
    }
}
