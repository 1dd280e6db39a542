import Foundation
import StrataCore
import StrataCrypto
import StrataTestSupport
import XCTest

@testable import StrataS3

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback TCP port that accepts connections (through the kernel backlog) and never answers:
/// a server that hangs.
final class SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw NSError(domain: "listener", code: Int(errno)) }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}

final class S3TransportTests: XCTestCase {
    func testHTTPClientTimesOutOnASilentServer() throws {
        let silent = try SilentListener()
        let client = CurlHTTPClient()
        let start = Date()
        XCTAssertThrowsError(
            try client.send(
                HTTPRequest(
                    method: "GET", url: "http://127.0.0.1:\(silent.port)/x",
                    timeout: 0.5))
        ) {
            XCTAssertTrue($0.isStoreError(.transient), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testStoreGivesUpOnASilentServerWithinTheRetryBudget() throws {
        let silent = try SilentListener()
        var c = S3Configuration(
            bucket: "bucket", endpoint: "http://127.0.0.1:\(silent.port)",
            credentials: StaticCredentialsProvider(Credentials(accessKeyId: "a", secretAccessKey: "s")))
        c.lowSpeedLimit = 1
        c.lowSpeedTime = 1
        c.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.05, maxTotalTime: 10)
        let s = try S3Store(configuration: c)
        let start = Date()
        XCTAssertThrowsError(try s.getData("k")) { error in
            XCTAssertTrue(error.isStoreError(.transient), "\(error)")
            XCTAssertNotNil((error as? StoreError)?.hint)
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(elapsed, 1.5, "two attempts of about a second each")
        XCTAssertLessThan(elapsed, 8)

        // Nothing listening: connection refused, retried, then transient.
        var refused = c
        refused.endpoint = "http://127.0.0.1:1"
        XCTAssertThrowsError(try S3Store(configuration: refused).head("k")) {
            XCTAssertTrue($0.isStoreError(.transient), "\($0)")
        }
    }

    func testPooledHandlesReuseTheirConnection() throws {
        let server = try SeaweedFS.shared()
        let pool = CurlHandlePool(options: TransportOptions())
        var opened = 0
        for _ in 0..<10 {
            let r = try pool.perform(TransportRequest(method: "GET", url: server.endpoint + "/", headers: []))
            XCTAssertEqual(r.status, 403)
            opened += r.connectionsOpened
        }
        XCTAssertEqual(opened, 1, "ten requests in a row over one connection")
    }

    func testAddressing() throws {
        let creds = StaticCredentialsProvider(Credentials(accessKeyId: "AKID", secretAccessKey: "secret"))
        let aws = try S3Store(
            configuration: S3Configuration(bucket: "my-bucket", region: "eu-west-1", credentials: creds))
        XCTAssertEqual(
            aws.url(forKey: "a b/c+d", query: []).url, "https://my-bucket.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd")
        XCTAssertEqual(aws.location, "s3://my-bucket")
        let dotted = try S3Store(
            configuration: S3Configuration(bucket: "my.bucket", region: "us-east-1", credentials: creds))
        XCTAssertEqual(
            dotted.url(forKey: "k", query: [.init("uploads", nil)]).url,
            "https://s3.us-east-1.amazonaws.com/my.bucket/k?uploads=")
        let minio = try S3Store(
            configuration: S3Configuration(
                bucket: "b", endpoint: "http://minio.local:9000/",
                credentials: creds))
        XCTAssertEqual(minio.url(forKey: "x", query: []).url, "http://minio.local:9000/b/x")
        let vhost = try S3Store(
            configuration: S3Configuration(
                bucket: "b", endpoint: "https://r2.example.com:443",
                forcePathStyle: false, credentials: creds))
        XCTAssertEqual(vhost.url(forKey: "x", query: []).url, "https://b.r2.example.com/x")
        XCTAssertThrowsError(
            try S3Store(
                configuration: S3Configuration(
                    bucket: "b", endpoint: "not a url",
                    credentials: creds))
        ) {
            XCTAssertTrue($0.isStoreError(.configuration), "\($0)")
        }
        XCTAssertThrowsError(try aws.put(String(repeating: "k", count: 1025), data: Data())) {
            XCTAssertTrue($0.isStoreError(.invalidRequest), "\($0)")
        }
        // A presigned URL for AWS, with a session token (signed, and redacted in logs).
        var c = S3Configuration(
            bucket: "examplebucket", region: "us-east-1",
            credentials: StaticCredentialsProvider(
                Credentials(
                    accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    sessionToken: "TOKEN/+=")))
        c.forcePathStyle = false
        let url = try S3Store(configuration: c).presign(
            key: "test.txt", method: .GET, expires: 86400,
            date: Date(timeIntervalSince1970: 1_369_353_600))
        XCTAssertTrue(url.hasPrefix("https://examplebucket.s3.us-east-1.amazonaws.com/test.txt?X-Amz-Algorithm="), url)
        XCTAssertTrue(url.contains("X-Amz-Security-Token=TOKEN%2F%2B%3D"), url)
        XCTAssertFalse(Redaction.url(url).contains("TOKEN"))
        XCTAssertFalse(Redaction.url(url).contains("AKIAIOSFODNN7EXAMPLE"))
    }

    func testDateParsing() {
        XCTAssertEqual(S3Store.parseISODate("2013-05-24T00:00:00.000Z"), Date(timeIntervalSince1970: 1_369_353_600))
        XCTAssertEqual(S3Store.parseISODate("2013-05-24T00:00:01Z"), Date(timeIntervalSince1970: 1_369_353_601))
        XCTAssertEqual(
            S3Store.parseISODate("2013-05-24T00:00:00.5Z")!.timeIntervalSince1970, 1_369_353_600.5, accuracy: 1e-6)
        XCTAssertNil(S3Store.parseISODate("2013-05-24 00:00:00Z"))
        XCTAssertNil(S3Store.parseISODate("garbage"))
        XCTAssertEqual(
            S3Store.parseHTTPDate("Fri, 24 May 2013 00:00:00 GMT"), Date(timeIntervalSince1970: 1_369_353_600))
    }

    func testClockSkewIsReportedWithHint() throws {
        let s = try S3TestStore.make("skew")
        s.setClockOffset(-20 * 60)
        XCTAssertThrowsError(try s.getData("k")) { error in
            XCTAssertTrue(error.isStoreError(.clockSkew), "\(error)")
            XCTAssertTrue((error as? StoreError)?.hint?.contains("clock") == true, "\(error)")
        }
        s.setClockOffset(0)
        XCTAssertNil(try s.head("k"))
    }

    /// CompleteMultipartUpload succeeds but its answer is lost; the retry finds no upload (or a
    /// failed condition). The store must see its own write and report success.
    func testAmbiguousCompleteIsResolved() throws {
        let (s, proxy) = try S3TestStore.makeBehindProxy("ambmp") { c in
            c.multipartThreshold = 5 << 20
            c.partSize = 5 << 20
        }
        defer { proxy.stop() }
        let data = Data((0..<(5 << 20) + 10).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        proxy.rule = { $0.operation == "CompleteMultipartUpload" && $0.sequence == 1 ? .dropResponse : .forward }
        let info = try s.put("amb/big", data: data, condition: .ifNoneMatch)
        proxy.rule = { _ in .forward }
        XCTAssertEqual(try s.head("amb/big")?.etag, info.etag)
        XCTAssertEqual(try s.getData("amb/big").data, data)
        XCTAssertEqual(try s.listMultipartUploads(), [])

        // CompleteMultipartUpload answering 200 with an InternalError document is an error, retried.
        proxy.resetLog()
        proxy.rule = { r in
            guard r.operation == "CompleteMultipartUpload", r.sequence == 1 else { return .forward }
            return .respond(
                status: 200,
                body: "<Error><Code>InternalError</Code><Message>injected</Message>"
                    + "<RequestId>proxy</RequestId></Error>")
        }
        let second = try s.put("amb/big2", data: data)
        proxy.rule = { _ in .forward }
        XCTAssertEqual(proxy.requests("CompleteMultipartUpload").count, 2)
        XCTAssertEqual(try s.head("amb/big2")?.etag, second.etag)
        XCTAssertEqual(try s.listMultipartUploads(), [])
    }
}
