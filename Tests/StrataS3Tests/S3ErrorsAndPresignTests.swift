import Foundation
import Logging
import StrataCore
import StrataCrypto
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataS3

/// Credentials and bucket errors, presigned URLs with the curl CLI, interop with the AWS CLI.
final class S3ErrorsAndPresignTests: XCTestCase {
    nonisolated(unsafe) static var shared: S3Store?

    var store: S3Store {
        get throws {
            if let s = Self.shared { return s }
            let s = try S3TestStore.make("errs")
            Self.shared = s
            return s
        }
    }

    func storeWith(
        accessKey: String? = nil, secret: String? = nil, bucket: String? = nil,
        logger: Logger? = nil
    ) throws -> S3Store {
        let server = try SeaweedFS.shared()
        let defaultBucket = try store.configuration.bucket
        var c = S3TestStore.configuration(bucket: bucket ?? defaultBucket, server: server)
        c.credentials = StaticCredentialsProvider(
            Credentials(accessKeyId: accessKey ?? server.accessKey, secretAccessKey: secret ?? server.secretKey),
            source: "the test's static credentials")
        if let logger { return try S3Store(configuration: c, logger: logger) }
        return try S3Store(configuration: c)
    }

    func testWrongSecretIsInvalidCredentialsWithHint() throws {
        _ = try store.put("e/x", data: Data("x".utf8))
        let wrongSecret = "definitely-not-the-secret-0123456789"
        let logs = LogCapture()
        let bad = try storeWith(secret: wrongSecret, logger: Logger(label: "t") { _ in logs })
        for op in [
            { _ = try bad.getData("e/x") }, { _ = try bad.put("e/y", data: Data()) },
            { _ = try bad.listPage(prefix: "", delimiter: nil, continuation: nil, maxKeys: 10) },
            { _ = try bad.head("e/x") },
        ] {
            XCTAssertThrowsError(try op()) { error in
                guard let e = error as? StoreError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.kind, .invalidCredentials, "\(e)")
                XCTAssertEqual(e.code, "SignatureDoesNotMatch", "\(e)")
                XCTAssertTrue(e.hint?.contains("secret access key") == true, "\(e)")
                XCTAssertTrue(e.hint?.contains("the test's static credentials") == true, "names the source: \(e)")
                XCTAssertFalse(e.description.contains(wrongSecret), "no secret in errors")
                XCTAssertFalse(e.description.contains("Signature="), "no signature in errors")
            }
        }
        XCTAssertFalse(logs.text.isEmpty, "the requests were logged")
        XCTAssertFalse(logs.text.contains(wrongSecret), "no secret in logs")
        XCTAssertFalse(logs.text.contains("Signature="), "no signature in logs")

        let unknown = try storeWith(accessKey: "AKIDUNKNOWN")
        XCTAssertThrowsError(try unknown.getData("e/x")) { error in
            XCTAssertTrue(error.isStoreError(.invalidCredentials), "\(error)")
            XCTAssertTrue((error as? StoreError)?.hint?.contains("access key id") == true, "\(error)")
        }
    }

    func testUnknownBucket() throws {
        let missing = try storeWith(bucket: SeaweedFS.uniqueBucketName("missing"))
        let tmp = TempDir()
        // (No PutObject here: SeaweedFS creates a missing bucket on PutObject, AWS does not.)
        for op in [
            { _ = try missing.getData("k") }, { _ = try missing.list(prefix: "") },
            { _ = try missing.head("k") }, { _ = try missing.get("k", toFile: tmp.file("x")) },
            { try missing.delete("k") },
            { _ = try missing.delete(keys: ["a", "b"]) },
        ] {
            XCTAssertThrowsError(try op()) { error in
                XCTAssertTrue(error.isStoreError(.noSuchBucket), "\(error)")
                XCTAssertTrue((error as? StoreError)?.hint?.contains("snapctl store mb") == true, "\(error)")
            }
        }
        XCTAssertFalse(try missing.bucketExists())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [])
    }

    func testErrorMappingHints() {
        let m = S3ErrorMapper(bucket: "b", region: "us-east-1", credentialsSource: "env", accessKeyId: "AKID")
        func body(_ code: String, _ extra: String = "") -> Data {
            Data("<Error><Code>\(code)</Code><Message>m</Message><RequestId>R1</RequestId>\(extra)</Error>".utf8)
        }
        let skew = m.error(
            operation: "GetObject", key: "k", status: 403, headers: ["date": "Mon, 01 Jan 2024 00:00:00 GMT"],
            body: body("RequestTimeTooSkewed"))
        XCTAssertEqual(skew.kind, .clockSkew)
        XCTAssertEqual(skew.requestId, "R1")
        XCTAssertTrue(skew.hint!.contains("clock"))
        let denied = m.error(operation: "PutObject", key: "a/b", status: 403, headers: [:], body: body("AccessDenied"))
        XCTAssertEqual(denied.kind, .accessDenied)
        XCTAssertTrue(denied.hint!.contains("s3:PutObject on arn:aws:s3:::b/a/b"), denied.hint!)
        let region = m.error(
            operation: "GetObject", key: "k", status: 400, headers: [:],
            body: body("AuthorizationHeaderMalformed", "<Region>eu-west-1</Region>"))
        XCTAssertEqual(region.kind, .wrongRegion)
        XCTAssertTrue(region.hint!.contains("eu-west-1"))
        let redirect = m.error(
            operation: "GetObject", key: "k", status: 301, headers: ["x-amz-bucket-region": "ap-south-1"],
            body: body("PermanentRedirect"))
        XCTAssertEqual(redirect.kind, .wrongRegion)
        XCTAssertTrue(redirect.hint!.contains("ap-south-1"))
        XCTAssertEqual(
            m.error(operation: "PutObject", key: "k", status: 503, headers: [:], body: body("SlowDown")).kind,
            .throttled)
        XCTAssertEqual(
            m.error(
                operation: "PutObject", key: "k", status: 409, headers: [:],
                body: body("ConditionalRequestConflict"), conditional: true
            ).kind, .preconditionFailed)
        XCTAssertEqual(
            m.error(operation: "GetObject", key: "k", status: 500, headers: [:], body: Data("junk".utf8)).kind,
            .transient)
        XCTAssertEqual(
            m.error(operation: "HeadObject", key: "k", status: 403, headers: [:], body: Data()).kind,
            .accessDenied)
    }

    func testPresignedURLsWithCurl() throws {
        let s = try store
        let key = "presign/hello world+1.txt"
        try s.put(key, data: Data("presigned hello".utf8))
        let tmp = TempDir()

        let get = try s.presign(key: key, method: .GET, expires: 300)
        XCTAssertTrue(get.contains("X-Amz-Expires=300"))
        let out = try TestPaths.run(["curl", "-s", "-o", tmp.file("got"), "-w", "%{http_code}", get])
        XCTAssertEqual(out.stdout, "200")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("got"))), Data("presigned hello".utf8))

        // Tampered: another key with the same signature, or a changed signature.
        let otherKey = get.replacingOccurrences(of: "hello%20world", with: "hello%20World")
        XCTAssertEqual(
            try TestPaths.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", otherKey]).stdout, "403")
        let sigRange = try XCTUnwrap(get.range(of: "X-Amz-Signature="))
        var badSig = get
        let i = badSig.index(sigRange.upperBound, offsetBy: 3)
        badSig.replaceSubrange(i...i, with: badSig[i] == "a" ? "b" : "a")
        XCTAssertEqual(
            try TestPaths.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", badSig]).stdout, "403")

        // Presigned PUT: upload with curl, read back with the store.
        let putKey = "presign/uploaded ü.bin"
        try Data("from curl".utf8).write(to: URL(fileURLWithPath: tmp.file("up")))
        let put = try s.presign(key: putKey, method: .PUT, expires: 7 * 24 * 3600)
        let up = try TestPaths.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", tmp.file("up"), put])
        XCTAssertEqual(up.stdout, "200")
        XCTAssertEqual(try s.getData(putKey).data, Data("from curl".utf8))

        XCTAssertThrowsError(try s.presign(key: key, method: .GET, expires: 7 * 24 * 3600 + 1)) {
            XCTAssertTrue($0.isStoreError(.invalidRequest), "\($0)")
        }
        XCTAssertThrowsError(try s.presign(key: key, method: .GET, expires: 0))
        // Logged presigned URLs are redacted.
        XCTAssertFalse(Redaction.url(get).contains(String(get[sigRange.upperBound...].prefix(64))))
    }

    func testInteropWithAWSCLI() throws {
        let server = try SeaweedFS.shared()
        let s = try store
        let bucket = s.configuration.bucket
        let tmp = TempDir()
        var g = SeededRandom(seed: 7)
        let data = Data((0..<(1 << 20) + 17).map { _ in UInt8(truncatingIfNeeded: g.next()) })
        try data.write(to: URL(fileURLWithPath: tmp.file("src")))

        // Written by S3Store, read by the AWS CLI.
        try s.put("interop/from strata.bin", file: tmp.file("src"))
        let cp = try TestPaths.run(
            [
                "aws", "--endpoint-url", server.endpoint, "s3", "cp",
                "s3://\(bucket)/interop/from strata.bin", tmp.file("by-aws"),
            ],
            environment: server.awsEnvironment)
        XCTAssertEqual(cp.status, 0, cp.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("by-aws"))), data)

        // Written by the AWS CLI, read by S3Store.
        let up = try TestPaths.run(
            [
                "aws", "--endpoint-url", server.endpoint, "s3", "cp", tmp.file("src"),
                "s3://\(bucket)/interop/from aws+cli.bin",
            ], environment: server.awsEnvironment)
        XCTAssertEqual(up.status, 0, up.stderr)
        let got = try s.get("interop/from aws+cli.bin", toFile: tmp.file("by-strata"))
        XCTAssertNil(got.sha256, "the AWS CLI records no sha256 metadata")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("by-strata"))), data)
        XCTAssertEqual(
            Set(try s.list(prefix: "interop/").map(\.key)),
            ["interop/from strata.bin", "interop/from aws+cli.bin"])
    }
}

/// A swift-log handler that keeps every message, to check what gets logged.
final class LogCapture: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    private let settings = Mutex<(metadata: Logger.Metadata, logLevel: Logger.Level)>(([:], .trace))
    var metadata: Logger.Metadata {
        get { settings.withLock { $0.metadata } }
        set { settings.withLock { $0.metadata = newValue } }
    }
    var logLevel: Logger.Level {
        get { settings.withLock { $0.logLevel } }
        set { settings.withLock { $0.logLevel = newValue } }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = "\(event.level) \(event.message) \(event.metadata ?? [:])"
        lines.withLock { $0.append(line) }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}
