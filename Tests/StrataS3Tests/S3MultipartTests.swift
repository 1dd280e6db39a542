import Foundation
import StrataCore
import StrataCrypto
import StrataTestSupport
import XCTest

@testable import StrataS3

/// Multipart uploads and parallel ranged downloads with 5 MiB parts.
final class S3MultipartTests: XCTestCase {
    /// One store for the class, behind a scripted proxy (faults are set per test with `script`).
    nonisolated(unsafe) static var shared: (store: S3Store, proxy: HTTPFaultProxy)?
    nonisolated(unsafe) static var sourceDir: TempDir?
    /// 12 MiB + 123 bytes: three parts, the last one short.
    static let size = 12 << 20 + 123

    var store: S3Store {
        get throws {
            if let s = Self.shared { return s.store }
            let s = try S3TestStore.makeBehindProxy("multi") { c in
                c.multipartThreshold = 5 << 20
                c.partSize = 5 << 20
                c.concurrency = 3
                c.parallelDownloadThreshold = 6 << 20
            }
            Self.shared = s
            return s.store
        }
    }

    var proxy: HTTPFaultProxy { Self.shared!.proxy }

    /// Scripts the proxy: `rule` sees each request with its S3 operation and sequence number.
    func script(_ rule: @escaping @Sendable (HTTPFaultProxy.Request) -> HTTPFaultProxy.Action) throws {
        _ = try store
        proxy.resetLog()
        proxy.rule = rule
    }

    override func tearDown() {
        Self.shared?.proxy.rule = { _ in .forward }
        super.tearDown()
    }

    /// A source file of `size` pseudo-random bytes (made once per run).
    var source: (path: String, sha: String) {
        get throws {
            if Self.sourceDir == nil {
                let dir = TempDir(prefix: "strata-multi-src")
                var g = SeededRandom(seed: 42)
                var data = Data(count: Self.size)
                data.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for i in 0..<words.count { words[i] = g.next() }
                }
                try data.write(to: URL(fileURLWithPath: dir.file("src.bin")))
                Self.sourceDir = dir
            }
            let path = Self.sourceDir!.file("src.bin")
            return (path, try SHA256.hexOfFile(atPath: path).hex)
        }
    }

    override class func tearDown() {
        sourceDir = nil
        shared?.proxy.stop()
        shared = nil
        super.tearDown()
    }

    func testMultipartUploadAndParallelDownload() throws {
        let s = try store
        let (src, sha) = try source
        let key = "mp/big-\(UUID().uuidString)"
        let info = try s.put(key, file: src, condition: .ifNoneMatch)
        XCTAssertEqual(info.size, Int64(Self.size))
        XCTAssertEqual(info.sha256, sha)
        XCTAssertTrue(info.etag.contains("-"), "a multipart ETag: \(info.etag)")
        let head = try XCTUnwrap(try s.head(key))
        XCTAssertEqual(head.size, Int64(Self.size))
        XCTAssertEqual(head.sha256, sha)
        XCTAssertEqual(head.etag, info.etag)
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/"), [])

        // Parallel ranged download (size > parallelDownloadThreshold), verified against the SHA-256.
        let tmp = TempDir()
        try script { _ in .forward }
        let got = try s.get(key, toFile: tmp.file("down.bin"))
        XCTAssertEqual(proxy.requests("GetObject").count, 4, "one GET stopped at the headers, then three ranges")
        XCTAssertEqual(got.sha256, sha)
        XCTAssertEqual(got.size, Int64(Self.size))
        XCTAssertEqual(try SHA256.hexOfFile(atPath: tmp.file("down.bin")).hex, sha)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["down.bin"])

        // A ranged read across a part boundary.
        try s.get(key, toFile: tmp.file("range.bin"), range: Int64(5 << 20) - 10..<Int64(5 << 20) + 10)
        let whole = try Data(contentsOf: URL(fileURLWithPath: src))
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: tmp.file("range.bin"))),
            whole.subdata(in: (5 << 20) - 10..<(5 << 20) + 10))

        // Create-only at Complete: the key exists now, so the second upload must fail and be aborted.
        XCTAssertThrowsError(try s.put(key, file: src, condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/"), [], "the failed upload was aborted")
        XCTAssertEqual(try s.head(key)?.etag, info.etag)

        // If-Match with the current ETag replaces it through multipart.
        // (Same bytes, same parts: S3's multipart ETag, an MD5 of the part MD5s, is the same.)
        let replaced = try s.put(key, file: src, condition: .ifMatch(info.etag))
        XCTAssertEqual(try s.head(key)?.etag, replaced.etag)
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/"), [])
    }

    func testParallelDownloadRestartsWhenTheObjectChangesAndVerifies() throws {
        let s = try store
        let (src, sha) = try source
        let key = "mp/changing-\(UUID().uuidString)"
        try s.put(key, file: src)
        let tmp = TempDir()
        // The first ranged GET finds the object replaced (412 on If-Match): start over once.
        let changed = HTTPFaultProxy.Action.s3Error(status: 412, code: "PreconditionFailed")
        try script { $0.operation == "GetObject" && $0.sequence == 2 ? changed : .forward }
        let info = try s.get(key, toFile: tmp.file("a"))
        XCTAssertEqual(info.sha256, sha)
        XCTAssertEqual(try SHA256.hexOfFile(atPath: tmp.file("a")).hex, sha)
        // It keeps changing: give up with a retryable error and leave nothing behind.
        try script { $0.operation == "GetObject" && $0.sequence > 1 ? changed : .forward }
        XCTAssertThrowsError(try s.get(key, toFile: tmp.file("b"))) {
            XCTAssertTrue($0.isStoreError(.transient), "\($0)")
        }
        proxy.rule = { _ in .forward }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["a"])

        // A large object whose recorded SHA-256 is wrong (written by another tool): refused.
        let server = try SeaweedFS.shared()
        let out = try TestPaths.run(
            [
                "aws", "--endpoint-url", server.endpoint, "s3api", "put-object", "--bucket", s.configuration.bucket,
                "--key", "mp/tampered", "--body", src, "--metadata", "sha256=\(SHA256.hex("not these bytes"))",
            ], environment: server.awsEnvironment)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertThrowsError(try s.get("mp/tampered", toFile: tmp.file("c"))) {
            XCTAssertTrue($0.isStoreError(.integrity), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["a"], "nothing left behind")
    }

    func testFailedPartAbortsTheUpload() throws {
        let s = try store
        let (src, _) = try source
        let key = "mp/failing-\(UUID().uuidString)"
        let refused = HTTPFaultProxy.Action.s3Error(status: 400, code: "InvalidArgument")
        try script { $0.operation == "UploadPart" && $0.sequence == 2 ? refused : .forward }
        XCTAssertThrowsError(try s.put(key, file: src)) { XCTAssertTrue($0.isStoreError(.invalidRequest), "\($0)") }
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/failing-"), [], "no orphaned upload")
        XCTAssertNil(try s.head(key))
    }

    func testSourceChangingDuringUploadIsRefused() throws {
        let s = try store
        let (src, _) = try source
        let key = "mp/wrong-sha-\(UUID().uuidString)"
        // A SHA-256 that does not match the bytes (as if the file changed after it was hashed).
        XCTAssertThrowsError(try s.put(key, file: src, options: PutOptions(sha256: SHA256.hex("something else")))) {
            XCTAssertTrue($0.isStoreError(.integrity), "\($0)")
        }
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/wrong-sha-"), [])
        XCTAssertNil(try s.head(key))
    }

    func testListAndAbortMultipartUploads() throws {
        let s = try store
        // Start an upload by hand and leave it open, as a crashed writer would.
        let key = "mp/orphan-\(UUID().uuidString)"
        let r = try s.send(
            S3Store.Request(
                operation: "CreateMultipartUpload", method: "POST", key: key,
                query: [.init("uploads", nil)]))
        let uploadId = try XCTUnwrap(XMLNode.parse(r.body)?.value("UploadId"))
        let open = try s.listMultipartUploads(prefix: "mp/orphan-")
        XCTAssertEqual(open.map(\.key), [key])
        XCTAssertEqual(open.first?.uploadId, uploadId)
        try s.abortMultipartUpload(key: key, uploadId: uploadId)
        XCTAssertEqual(try s.listMultipartUploads(prefix: "mp/orphan-"), [])
        try s.abortMultipartUpload(key: key, uploadId: uploadId)  // already gone: fine
    }

    func testLargeDataBodyUsesMultipart() throws {
        let s = try store
        let data = Data((0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 / 3) })
        let info = try s.put("mp/data-\(UUID().uuidString)", data: data)
        XCTAssertTrue(info.etag.contains("-"), info.etag)
        XCTAssertEqual(try s.getData(info.key).data, data)
    }
}

/// The multipart path's change detection: a file written to after its hash was taken is noticed.
final class FileIdentityTests: XCTestCase {
    func testWritingToTheFileChangesItsIdentity() throws {
        let dir = TempDir()
        let path = dir.file("part-source.bin")
        try Data(repeating: 1, count: 1 << 16).write(to: URL(fileURLWithPath: path))
        // Backdate it: file times tick coarsely (milliseconds), and the write below must land on
        // a later tick for the comparison to mean something.
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: path)
        usleep(20_000)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let source = FilePartSource(fd: fd, size: 1 << 16, identity: FileIdentity(fd: fd))
        XCTAssertTrue(source.unchanged())
        // Same size, different bytes: the write moves mtime and ctime.
        let w = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try w.seek(toOffset: 100)
        w.write(Data([9, 9, 9]))
        try w.close()
        XCTAssertFalse(source.unchanged(), "an in-place write must be noticed")
    }
}
