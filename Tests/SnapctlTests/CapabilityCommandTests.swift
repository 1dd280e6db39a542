import Foundation
import StrataCore
import StrataS3
import StrataTestSupport
import XCTest

/// The commands that need an optional store ability (presigning, multipart cleanup, creating a
/// bucket) find it through the store's decorators, and say clearly when a store lacks it.
final class CapabilityCommandTests: XCTestCase {
    func snapctl(_ args: [String], _ env: [String: String]) throws -> TestPaths.ProcessResult {
        try TestPaths.run([TestPaths.snapctl] + args, environment: env)
    }

    func testPresignOnTheFileStoreSaysItCannot() throws {
        let dir = TempDir()
        let store = "file://" + dir.path
        XCTAssertEqual(
            try TestPaths.run([TestPaths.snapctl, "store", "mb", "--store", store]).status, 0,
            "the file store's bucket is its directory")
        let r = try TestPaths.run([TestPaths.snapctl, "store", "presign", "lines/x", "--store", store])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot"), r.stderr)
        XCTAssertTrue(r.stderr.contains(dir.path), "names the store: \(r.stderr)")
    }

    func testPresignedURLOnS3ServesTheObject() throws {
        let server = try SeaweedFS.shared()
        let env = server.awsEnvironment
        let store = "s3://" + SeaweedFS.uniqueBucketName("presigncli") + "/team"
        XCTAssertEqual(try snapctl(["store", "mb", "--store", store], env).status, 0)
        let dir = TempDir()
        let src = dir.file("payload.txt")
        try Data("presigned bytes\n".utf8).write(to: URL(fileURLWithPath: src))
        var r = try snapctl(["store", "put", src, "lines/p.txt", "--store", store], env)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try snapctl(["store", "presign", "lines/p.txt", "--expires", "10m", "--store", store], env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let url = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(url.contains("/team/lines/p.txt?"), "the prefix is part of the key: \(url)")
        let got = try TestPaths.run(["/usr/bin/curl", "-sf", url])
        XCTAssertEqual(got.status, 0, got.stderr)
        XCTAssertEqual(got.stdout, "presigned bytes\n")
    }

    /// `snapctl gc` aborts an upload left incomplete by a crashed writer: the multipart janitor is
    /// reached through the store's capability, not a downcast.
    func testGCAbortsAStaleMultipartUploadOnS3() throws {
        let server = try SeaweedFS.shared()
        let env = server.awsEnvironment
        let bucket = SeaweedFS.uniqueBucketName("gcupload")
        let store = "s3://" + bucket
        XCTAssertEqual(try snapctl(["store", "mb", "--store", store], env).status, 0)
        let create = try TestPaths.run(
            [
                "aws", "--endpoint-url", server.endpoint, "s3api", "create-multipart-upload", "--bucket", bucket,
                "--key", "lines/snapshot/timestamped/crashed/snapshot.sqlite3",
            ],
            environment: env)
        XCTAssertEqual(create.status, 0, create.stderr)
        let s3 = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        XCTAssertEqual(try s3.listMultipartUploads().count, 1)
        Thread.sleep(forTimeInterval: 2.1)  // older than a one-second grace (S3 times are whole seconds)
        let r = try snapctl(["gc", "--grace", "1s", "--store", store], env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("lines/snapshot/timestamped/crashed/snapshot.sqlite3"), r.stdout)
        XCTAssertEqual(try s3.listMultipartUploads().count, 0, "the upload was aborted")
    }
}
