import Foundation
import StrataCore
import StrataCrypto
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataS3

/// Put, head, get, list and delete against the private SeaweedFS.
final class S3StoreBasicTests: XCTestCase {
    nonisolated(unsafe) static var shared: S3Store?

    /// One bucket for this class's tests; each test uses its own key prefix.
    var store: S3Store {
        get throws {
            if let s = Self.shared { return s }
            let s = try S3TestStore.make("basic")
            Self.shared = s
            return s
        }
    }

    func testPutHeadGetDelete() throws {
        let s = try store
        let data = Data("hello strata\n".utf8)
        let put = try s.put("basic/hello.txt", data: data, options: PutOptions(contentType: "text/plain"))
        XCTAssertFalse(put.etag.isEmpty)
        XCTAssertEqual(put.sha256, SHA256.hex(data))

        let head = try XCTUnwrap(try s.head("basic/hello.txt"))
        XCTAssertEqual(head.size, Int64(data.count))
        XCTAssertEqual(head.etag, put.etag)
        XCTAssertEqual(head.sha256, SHA256.hex(data))
        XCTAssertNotNil(head.lastModified)

        let got = try s.getData("basic/hello.txt")
        XCTAssertEqual(got.data, data)
        XCTAssertEqual(got.info.etag, put.etag)
        XCTAssertEqual(got.info.sha256, SHA256.hex(data))

        let tmp = TempDir()
        let dest = tmp.file("out.txt")
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: dest))
        let info = try s.get("basic/hello.txt", toFile: dest)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), data)
        XCTAssertEqual(info.sha256, SHA256.hex(data))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["out.txt"], "no temp left")

        try s.delete("basic/hello.txt")
        XCTAssertNil(try s.head("basic/hello.txt"))
        XCTAssertThrowsError(try s.getData("basic/hello.txt")) { XCTAssertTrue($0.isStoreError(.notFound), "\($0)") }
        XCTAssertNil(try s.getDataIfExists("basic/hello.txt"))
        try s.delete("basic/hello.txt")  // deleting a missing key succeeds
    }

    func testMissingKeyDownloadLeavesNothing() throws {
        let s = try store
        let tmp = TempDir()
        XCTAssertThrowsError(try s.get("basic/missing", toFile: tmp.file("x"))) {
            XCTAssertTrue($0.isStoreError(.notFound), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [])
    }

    func testEmptyObject() throws {
        let s = try store
        try s.put("basic/empty", data: Data())
        let head = try XCTUnwrap(try s.head("basic/empty"))
        XCTAssertEqual(head.size, 0)
        XCTAssertEqual(head.sha256, SHA256.emptyHex)
        XCTAssertEqual(try s.getData("basic/empty").data, Data())
        let tmp = TempDir()
        try s.get("basic/empty", toFile: tmp.file("e"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("e"))), Data())
    }

    func testPutFromFileStreamsAndRecordsSHA() throws {
        let s = try store
        let tmp = TempDir()
        let src = tmp.file("src.bin")
        let data = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try data.write(to: URL(fileURLWithPath: src))
        let put = try s.put("basic/file.bin", file: src)
        XCTAssertEqual(put.size, Int64(data.count))
        XCTAssertEqual(put.sha256, SHA256.hex(data))
        XCTAssertEqual(try s.getData("basic/file.bin").data, data)

        // With the caller's hash no pre-pass is made, but a wrong hash is still caught while streaming
        // and nothing is stored.
        XCTAssertThrowsError(
            try s.put(
                "basic/wrong-sha.bin", file: src,
                options: PutOptions(sha256: String(repeating: "0", count: 64)))
        ) {
            XCTAssertTrue($0.isStoreError(.integrity), "\($0)")
        }
        XCTAssertNil(try s.head("basic/wrong-sha.bin"))
        XCTAssertThrowsError(
            try s.put(
                "basic/wrong-sha2", data: data,
                options: PutOptions(sha256: String(repeating: "1", count: 64)))
        ) {
            XCTAssertTrue($0.isStoreError(.integrity), "\($0)")
        }
        XCTAssertThrowsError(try s.put("basic/nofile", file: tmp.file("does-not-exist"))) {
            XCTAssertTrue($0.isStoreError(.io), "\($0)")
        }
    }

    func testRanges() throws {
        let s = try store
        let data = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0) })
        try s.put("basic/range.bin", data: data)
        let tmp = TempDir()
        let dest = tmp.file("r")
        let info = try s.get("basic/range.bin", toFile: dest, range: 100..<1100)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), data.subdata(in: 100..<1100))
        XCTAssertEqual(info.size, 10_000, "the object's whole size")
        try s.get("basic/range.bin", toFile: dest, range: 9_990..<20_000)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), data.subdata(in: 9_990..<10_000))
        try s.get("basic/range.bin", toFile: dest, range: 0..<1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), data.subdata(in: 0..<1))
        XCTAssertThrowsError(try s.get("basic/range.bin", toFile: tmp.file("beyond"), range: 20_000..<20_010)) {
            XCTAssertTrue($0.isStoreError(.invalidRequest), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("beyond")))
    }

    func testIntegrityMismatchOnDownloadLeavesNoFile() throws {
        // An object whose recorded SHA-256 does not match its bytes (written by another tool).
        let server = try SeaweedFS.shared()
        let s = try store
        let tmp = TempDir()
        try Data("real bytes".utf8).write(to: URL(fileURLWithPath: tmp.file("src")))
        let out = try TestPaths.run(
            [
                "aws", "--endpoint-url", server.endpoint, "s3api", "put-object", "--bucket",
                s.configuration.bucket, "--key", "basic/tampered", "--body", tmp.file("src"),
                "--metadata", "sha256=\(SHA256.hex("other bytes"))",
            ],
            environment: server.awsEnvironment)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertEqual(try s.head("basic/tampered")?.sha256, SHA256.hex("other bytes"))
        XCTAssertThrowsError(try s.get("basic/tampered", toFile: tmp.file("dest"))) {
            XCTAssertTrue($0.isStoreError(.integrity), "\($0)")
        }
        XCTAssertThrowsError(try s.getData("basic/tampered")) { XCTAssertTrue($0.isStoreError(.integrity), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["src"], "nothing left behind")
    }

    func testListPaginationAndDelimiter() throws {
        let s = try store
        let keys = (0..<25).map { String(format: "list/k%03d", $0) } + ["list/sub/a", "list/sub/b", "list/zz/c"]
        for k in keys { try s.put(k, data: Data(k.utf8)) }
        let all = try s.list(prefix: "list/", pageSize: 7)
        XCTAssertEqual(all.map(\.key), keys.sorted())
        var pages = 0
        try s.forEachPage(prefix: "list/", delimiter: nil, pageSize: 10) { page in
            pages += 1
            XCTAssertLessThanOrEqual(page.objects.count, 10)
        }
        XCTAssertEqual(pages, 3)
        let first = try s.listPage(prefix: "list/", delimiter: nil, continuation: nil, maxKeys: 5)
        XCTAssertEqual(first.objects.count, 5)
        XCTAssertNotNil(first.continuation)
        XCTAssertEqual(first.objects[0].size, Int64("list/k000".utf8.count))
        XCTAssertEqual(first.objects[0].etag, try s.head("list/k000")?.etag, "listing and HEAD agree on ETags")
        XCTAssertNotNil(first.objects[0].lastModified)

        let dir = try s.listDirectory(prefix: "list/")
        XCTAssertEqual(dir.prefixes, ["list/sub/", "list/zz/"])
        XCTAssertEqual(dir.objects.count, 25)
        XCTAssertEqual(try s.list(prefix: "list/nothing-here/"), [])

        // Batch delete, including keys that do not exist.
        let failures = try s.delete(keys: keys + ["list/missing-1", "list/missing-2"])
        XCTAssertEqual(failures, [])
        XCTAssertEqual(try s.list(prefix: "list/"), [])
    }

    func testBatchDeleteOverOneThousandKeys() throws {
        let s = try store
        // 1,205 keys: two DeleteObjects requests. Written in parallel to keep the test short.
        let keys = (0..<1205).map { String(format: "many/%05d", $0) }
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for i in stride(from: w, to: keys.count, by: 8) {
                do { try s.put(keys[i], data: Data()) } catch { errors.add(error) }
            }
        }
        XCTAssertNil(errors.first)
        let listed = try s.list(prefix: "many/")
        XCTAssertEqual(listed.count, 1205)
        XCTAssertEqual(listed.map(\.key), keys)
        XCTAssertEqual(try s.delete(keys: keys), [])
        XCTAssertEqual(try s.list(prefix: "many/").count, 0)
    }

    func testCreateBucketTwiceIsFine() throws {
        let s = try store
        try s.createBucket()
        XCTAssertTrue(try s.bucketExists())
    }

    func testCreateBucketOutsideUSEast1SendsALocationConstraint() throws {
        let server = try SeaweedFS.shared()
        var c = S3TestStore.configuration(bucket: SeaweedFS.uniqueBucketName("eu"), server: server)
        c.region = "eu-west-1"
        let s = try S3Store(configuration: c)
        XCTAssertFalse(try s.bucketExists())
        try s.createBucket()
        try s.createBucket()
        XCTAssertTrue(try s.bucketExists())
        try s.put("k", data: Data("eu".utf8))
        XCTAssertEqual(try s.getData("k").data, Data("eu".utf8))
    }

    func testCurlHTTPClient() throws {
        let server = try SeaweedFS.shared()
        let client = CurlHTTPClient()
        // An unsigned request: the server answers 403 with an S3 error document.
        let r = try client.send(HTTPRequest(method: "GET", url: server.endpoint + "/", timeout: 5))
        XCTAssertEqual(r.status, 403)
        XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains("<Code>"), "\(r.headers)")
        XCTAssertNotNil(r.headers["content-type"])
        // Nobody listens on port 1: a transient error, thrown, no response.
        XCTAssertThrowsError(try client.send(HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", timeout: 2))) {
            XCTAssertTrue($0.isStoreError(.transient), "\($0)")
        }
        // A CA bundle that does not exist: a configuration error, not something to retry.
        let silent = try SilentListener()
        let strict = CurlHTTPClient(options: TransportOptions(caBundle: "/nonexistent/ca.pem"))
        XCTAssertThrowsError(
            try strict.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(silent.port)/", timeout: 2))
        ) {
            XCTAssertTrue($0.isStoreError(.configuration), "\($0)")
        }
        XCTAssertThrowsError(try client.send(HTTPRequest(method: "GET", url: "ftp://127.0.0.1/x", timeout: 2))) {
            XCTAssertTrue($0.isStoreError(.configuration), "\($0)")
        }
    }
}

/// Collects errors from several threads.
final class ErrorBox: Sendable {
    private let errors = Mutex<[Error]>([])
    func add(_ e: Error) { errors.withLock { $0.append(e) } }
    var first: Error? { errors.withLock { $0.first } }
}
