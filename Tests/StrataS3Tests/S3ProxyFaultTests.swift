import Foundation
import StrataCore
import StrataCrypto
import StrataTestSupport
import XCTest

@testable import StrataS3

/// Faults only the network produces, through a scripted proxy in front of SeaweedFS: lost
/// responses (which libcurl re-sends on its own), connections closed before forwarding.
final class S3ProxyFaultTests: XCTestCase {
    var proxy: HTTPFaultProxy!
    var bucket: String!
    /// Straight to SeaweedFS, for setting up and checking.
    var direct: S3Store!

    override func setUpWithError() throws {
        let server = try SeaweedFS.shared()
        proxy = try HTTPFaultProxy(upstream: server.endpoint)
        bucket = SeaweedFS.uniqueBucketName("proxy")
        direct = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        try direct.createBucket()
    }

    override func tearDown() {
        proxy?.stop()
        super.tearDown()
    }

    /// A store through the proxy. `attempts` 1: the store itself never retries, so a second
    /// request the proxy sees is libcurl's own re-send.
    func store(attempts: Int = 1, configure: (inout S3Configuration) -> Void = { _ in }) throws -> S3Store {
        let server = try SeaweedFS.shared()
        var c = S3TestStore.configuration(bucket: bucket, server: server)
        c.endpoint = proxy.endpoint
        c.retry.maxAttempts = attempts
        configure(&c)
        return try S3Store(configuration: c)
    }

    /// The PUT reaches SeaweedFS and is carried out, its response is lost; libcurl re-sends it on a
    /// fresh connection and the re-send meets our own object: 412. That is our write, not a conflict.
    func testLostResponseReSentByCurlIsOurOwnWriteNotAConflict() throws {
        let s = try store()
        let key = "p/pointer-\(UUID().uuidString)"
        _ = try s.head(key)  // opens the connection the PUT then reuses (curl re-sends only then)
        proxy.rule = { $0.operation == "PutObject" && $0.sequence == 1 ? .dropResponse : .forward }
        let info = try s.put(key, data: Data("mine".utf8), condition: .ifNoneMatch)
        let puts = proxy.log.filter { $0.request.operation == "PutObject" }
        XCTAssertEqual(puts.map(\.upstreamStatus), [200, 412], "curl re-sent the PUT, which met our own object")
        XCTAssertEqual(try direct.getData(key).data, Data("mine".utf8))
        XCTAssertEqual(try direct.head(key)?.etag, info.etag)

        // The same on If-Match: the first attempt replaced the object; the re-send's ETag is stale.
        proxy.resetLog()
        _ = try s.head(key)
        proxy.rule = { $0.operation == "PutObject" && $0.sequence == 1 ? .dropResponse : .forward }
        let replaced = try s.put(key, data: Data("mine 2".utf8), condition: .ifMatch(info.etag))
        XCTAssertEqual(proxy.requests("PutObject").count, 2)
        XCTAssertEqual(try direct.getData(key).data, Data("mine 2".utf8))
        XCTAssertEqual(try direct.head(key)?.etag, replaced.etag)
    }

    /// A competitor's object that appears while our PUT's connection drops is a real conflict.
    func testCompetitorsObjectIsAConflictAfterAReSend() throws {
        let s = try store()
        let key = "p/pointer-\(UUID().uuidString)"
        _ = try s.head(key)
        let direct = self.direct!
        proxy.rule = { r in
            guard r.operation == "PutObject", r.sequence == 1 else { return .forward }
            // The competitor wins while our first PUT is in flight; ours never reaches the server.
            _ = try? direct.put(key, data: Data("theirs".utf8), condition: .ifNoneMatch)
            return .closeBeforeForward
        }
        XCTAssertThrowsError(try s.put(key, data: Data("mine".utf8), condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertEqual(proxy.log.filter { $0.request.operation == "PutObject" }.map(\.upstreamStatus), [nil, 412])
        XCTAssertEqual(try direct.getData(key).data, Data("theirs".utf8))

        // And plainly: a key that already holds someone else's object.
        proxy.rule = { _ in .forward }
        XCTAssertThrowsError(try s.put(key, data: Data("mine".utf8), condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        let head = try XCTUnwrap(try direct.head(key))
        XCTAssertThrowsError(try s.put(key, data: Data("mine".utf8), condition: .ifMatch("\"0123\""))) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertEqual(try direct.head(key)?.etag, head.etag)
    }

    // MARK: multipart

    func multipartStore(attempts: Int) throws -> S3Store {
        try store(attempts: attempts) { c in
            c.multipartThreshold = 5 << 20
            c.partSize = 5 << 20
            c.concurrency = 2
        }
    }

    func bigFile() throws -> String {
        let dir = TempDir(prefix: "strata-proxy-mp")
        addTeardownBlock { _ = dir }
        var g = SeededRandom(seed: 9)
        let data = Data((0..<((11 << 20) / 8)).flatMap { _ in withUnsafeBytes(of: g.next()) { Array($0) } })
        let path = dir.file("big.bin")
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// CreateMultipartUpload is carried out, its answer lost; the retry opens a second upload, and
    /// a part then fails for good. Every upload open on the key must be aborted, the lost one too.
    func testFailedMultipartAbortsTheUploadWhoseCreateAnswerWasLost() throws {
        let s = try multipartStore(attempts: 3)
        let src = try bigFile()
        let key = "p/v/\(UUID().uuidString)/snapshot.tar.gz"
        let other = key + "-other"  // a longer key with the same prefix: not ours, kept
        let otherId = try XCTUnwrap(
            XMLNode.parse(
                try direct.send(
                    S3Store.Request(
                        operation: "CreateMultipartUpload", method: "POST", key: other,
                        query: [.init("uploads", nil)])
                ).body)?.value("UploadId"))
        proxy.rule = { r in
            if r.operation == "CreateMultipartUpload" && r.sequence == 1 { return .dropResponse }
            if r.operation == "UploadPart" && r.sequence == 2 { return .s3Error(status: 400, code: "InvalidArgument") }
            return .forward
        }
        XCTAssertThrowsError(try s.put(key, file: src, condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.invalidRequest), "\($0)")
        }
        XCTAssertEqual(
            proxy.log.filter { $0.request.operation == "CreateMultipartUpload" }.map(\.upstreamStatus),
            [200, 200], "two uploads were opened")
        let open = try direct.listMultipartUploads(prefix: "p/v/")
        XCTAssertEqual(open.map(\.uploadId), [otherId], "every upload on the key was aborted, none other")
        XCTAssertNil(try direct.head(key))
    }

    /// The same lost Create answer, and the upload then succeeds: the orphan is aborted as well.
    func testSuccessfulMultipartAbortsTheUploadWhoseCreateAnswerWasLost() throws {
        let s = try multipartStore(attempts: 3)
        let src = try bigFile()
        let key = "p/v/\(UUID().uuidString)/snapshot.tar.gz"
        proxy.rule = { $0.operation == "CreateMultipartUpload" && $0.sequence == 1 ? .dropResponse : .forward }
        let info = try s.put(key, file: src, condition: .ifNoneMatch)
        XCTAssertEqual(proxy.requests("CreateMultipartUpload").count, 2)
        XCTAssertEqual(try direct.listMultipartUploads(prefix: "p/v/"), [])
        XCTAssertEqual(try direct.head(key)?.etag, info.etag)
        XCTAssertEqual(try direct.head(key)?.sha256, try SHA256.hexOfFile(atPath: src).hex)
    }

    /// CompleteMultipartUpload is carried out, its answer lost, and libcurl re-sends it: the
    /// re-send finds no upload (or a failed condition); the key carries our write id, so it is ours.
    func testLostCompleteAnswerIsOurOwnWrite() throws {
        let s = try multipartStore(attempts: 1)
        let src = try bigFile()
        let key = "p/v/\(UUID().uuidString)/snapshot.tar.gz"
        _ = try s.head(key)
        proxy.rule = { $0.operation == "CompleteMultipartUpload" && $0.sequence == 1 ? .dropResponse : .forward }
        let info = try s.put(key, file: src, condition: .ifNoneMatch)
        XCTAssertEqual(proxy.requests("CompleteMultipartUpload").count, 2, "\(proxy.log.map(\.request))")
        XCTAssertEqual(try direct.head(key)?.etag, info.etag)
        XCTAssertEqual(try direct.listMultipartUploads(prefix: "p/v/"), [])
    }
}
