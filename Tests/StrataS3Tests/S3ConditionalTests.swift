import Foundation
import StrataCore
import StrataCrypto
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataS3

/// Conditional writes, odd keys, retries and fault injection against the private SeaweedFS.
final class S3ConditionalTests: XCTestCase {
    /// One store for the class, behind a scripted proxy (faults are set per test with `proxy.rule`).
    nonisolated(unsafe) static var shared: (store: S3Store, proxy: HTTPFaultProxy)?

    var store: S3Store {
        get throws {
            if let s = Self.shared { return s.store }
            let s = try S3TestStore.makeBehindProxy("cond")
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

    func testIfNoneMatchAndIfMatch() throws {
        let s = try store
        let key = "cond/pointer-\(UUID().uuidString)"
        let first = try s.put(key, data: Data("v1".utf8), condition: .ifNoneMatch)
        XCTAssertThrowsError(try s.put(key, data: Data("v2".utf8), condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
            XCTAssertEqual(($0 as? StoreError)?.status, 412)
        }
        let second = try s.put(key, data: Data("v2".utf8), condition: .ifMatch(first.etag))
        XCTAssertNotEqual(second.etag, first.etag)
        XCTAssertEqual(try s.getData(key).data, Data("v2".utf8))
        XCTAssertThrowsError(try s.put(key, data: Data("v3".utf8), condition: .ifMatch(first.etag))) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertEqual(try s.getData(key).data, Data("v2".utf8), "a refused write changes nothing")
        XCTAssertThrowsError(try s.put(key + "-missing", data: Data("x".utf8), condition: .ifMatch(first.etag))) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertNil(try s.head(key + "-missing"))
    }

    func testConcurrentCreateOnlyHasExactlyOneWinner() throws {
        let s = try store
        let key = "cond/race-\(UUID().uuidString)"
        let tally = Tally()
        onThreads(8) { i in
            do {
                _ = try s.put(key, data: Data("writer \(i)".utf8), condition: .ifNoneMatch)
                tally.add(win: i)
            } catch {
                tally.add(error)
            }
        }
        XCTAssertEqual(tally.wins.count, 1)
        XCTAssertEqual(tally.errors.count, 7)
        XCTAssertTrue(tally.errors.allSatisfy { $0.isStoreError(.preconditionFailed) }, "\(tally.errors)")
        XCTAssertEqual(try s.getData(key).data, Data("writer \(tally.wins[0])".utf8))
    }

    func testConcurrentIfMatchHasExactlyOneWinner() throws {
        let s = try store
        let key = "cond/cas-\(UUID().uuidString)"
        let base = try s.put(key, data: Data("base".utf8))
        let tally = Tally()
        onThreads(8) { i in
            do {
                _ = try s.put(key, data: Data("writer \(i)".utf8), condition: .ifMatch(base.etag))
                tally.add(win: i)
            } catch {
                tally.add(error)
            }
        }
        XCTAssertEqual(tally.wins.count, 1)
        XCTAssertTrue(tally.errors.allSatisfy { $0.isStoreError(.preconditionFailed) }, "\(tally.errors)")
        XCTAssertEqual(try s.getData(key).data, Data("writer \(tally.wins[0])".utf8))
    }

    /// The first attempt of a create-only write goes through but its response is lost; the retry
    /// gets 412 because the first attempt won. The store must report success, not a conflict.
    func testAmbiguousRetryOfConditionalPutIsResolved() throws {
        let s = try store
        let key = "cond/ambiguous-\(UUID().uuidString)"
        try script { $0.operation == "PutObject" && $0.sequence == 1 ? .dropResponse : .forward }
        let info = try s.put(key, data: Data("mine".utf8), condition: .ifNoneMatch)
        proxy.rule = { _ in .forward }
        let head = try XCTUnwrap(try s.head(key))
        XCTAssertEqual(info.etag, head.etag)
        XCTAssertEqual(try s.getData(key).data, Data("mine".utf8))

        // Same with If-Match: the first attempt replaced the object, the retry's ETag is stale.
        try script { $0.operation == "PutObject" && $0.sequence == 1 ? .dropResponse : .forward }
        let replaced = try s.put(key, data: Data("mine 2".utf8), condition: .ifMatch(head.etag))
        proxy.rule = { _ in .forward }
        XCTAssertEqual(try s.head(key)?.etag, replaced.etag)

        // Someone else's object is still a conflict after an ambiguous attempt (the first attempt
        // was refused too, but its answer was lost).
        let other = "cond/ambiguous-other-\(UUID().uuidString)"
        try s.put(other, data: Data("theirs".utf8))
        try script { $0.operation == "PutObject" && $0.sequence == 1 ? .dropResponse : .forward }
        XCTAssertThrowsError(try s.put(other, data: Data("mine".utf8), condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        proxy.rule = { _ in .forward }
        XCTAssertEqual(try s.getData(other).data, Data("theirs".utf8))
    }

    func testRetriesOnThrottlingAndNotOnClientErrors() throws {
        let s = try store
        let key = "cond/retry-\(UUID().uuidString)"
        // A file body is re-read from the start on every attempt.
        let tmp = TempDir()
        let data = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try data.write(to: URL(fileURLWithPath: tmp.file("body")))
        try script { r in
            guard r.operation == "PutObject" else { return .forward }
            switch r.sequence {
            case 1: return .dropResponse
            case 2: return .s3Error(status: 503, code: "SlowDown")
            default: return .forward
            }
        }
        try s.put(key, file: tmp.file("body"))
        XCTAssertEqual(proxy.requests("PutObject").count, 3)
        XCTAssertEqual(try s.getData(key).data, data)

        // A download whose first attempt broke after writing: the retry starts the file over.
        try script { $0.operation == "GetObject" && $0.sequence == 1 ? .truncateResponse : .forward }
        let info = try s.get(key, toFile: tmp.file("down"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("down"))), data)
        XCTAssertEqual(info.sha256, SHA256.hex(data))

        try script { $0.operation == "PutObject" ? .s3Error(status: 500, code: "InternalError") : .forward }
        XCTAssertThrowsError(try s.put(key, data: Data())) { XCTAssertTrue($0.isStoreError(.transient), "\($0)") }
        XCTAssertEqual(proxy.requests("PutObject").count, s.configuration.retry.maxAttempts, "bounded attempts")

        try script { $0.operation == "PutObject" ? .s3Error(status: 403, code: "AccessDenied") : .forward }
        XCTAssertThrowsError(try s.put(key, data: Data())) { error in
            XCTAssertTrue(error.isStoreError(.accessDenied), "\(error)")
            XCTAssertTrue((error as? StoreError)?.hint?.contains("s3:PutObject") == true, "\(error)")
        }
        XCTAssertEqual(proxy.requests("PutObject").count, 1, "a 403 is not retried")
    }

    func testOddKeysRoundTrip() throws {
        let s = try store
        let base = "odd-\(UUID().uuidString.prefix(8))/"
        let names = [
            "with space", "unicod\u{e9}/caf\u{e9} \u{65e5}\u{672c}", "plus+sign", "equals=sign", "hash#tag",
            "percent%20sign",
            "percent%", "tilde~", "nested/dir/key", "amp&ersand", "question?mark", "a+b c", "semi;colon",
            "quote\"s'", "brackets[]{}<>", "dollar$", "star*", "comma,", "at@", "colon:", "emoji\u{1F600}",
            "trailing-dot.", "dot./x", "dot../x", "tab\there", "control\u{01}char", "newline\nkey",
        ]
        let keys = names.map { base + $0 }
        for key in keys {
            let put = try s.put(key, data: Data(key.utf8))
            let head = try XCTUnwrap(try s.head(key), key)
            XCTAssertEqual(head.etag, put.etag, key)
            XCTAssertEqual(try s.getData(key).data, Data(key.utf8), key)
            let tmp = TempDir()
            try s.get(key, toFile: tmp.file("f"))
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("f"))), Data(key.utf8), key)
        }
        let listed = try s.list(prefix: base, pageSize: 5).map(\.key)
        // SeaweedFS lists by directory ("dot./x" before "dot../x"), not strictly by key bytes as
        // AWS does, so only the set and the count are compared here.
        XCTAssertEqual(listed.count, keys.count)
        XCTAssertEqual(Set(listed), Set(keys))
        // Prefixes and delimiters with odd characters.
        let dir = try s.listDirectory(prefix: base + "nested/")
        XCTAssertEqual(dir.prefixes, [base + "nested/dir/"])
        XCTAssertEqual(try s.list(prefix: base + "a+b").map(\.key), [base + "a+b c"])
        XCTAssertEqual(try s.list(prefix: base + "with ").map(\.key), [base + "with space"])
        // Batch delete with odd keys, then single delete.
        XCTAssertEqual(try s.delete(keys: Array(keys.dropLast())), [])
        try s.delete(keys.last!)
        XCTAssertEqual(try s.list(prefix: base), [])
    }

    func testBatchDeleteReportsPerKeyErrors() throws {
        let s = try store
        try script { r in
            guard r.operation == "DeleteObjects" else { return .forward }
            return .respond(
                status: 200,
                body: "<DeleteResult><Error><Key>cond/a &amp; b</Key><Code>AccessDenied</Code>"
                    + "<Message>Access Denied</Message></Error><Error><Key>cond/gone</Key><Code>NoSuchKey</Code>"
                    + "<Message>missing</Message></Error></DeleteResult>")
        }
        let failures = try s.delete(keys: ["cond/a & b", "cond/gone", "cond/ok"])
        proxy.rule = { _ in .forward }
        XCTAssertEqual(failures, [DeleteFailure(key: "cond/a & b", code: "AccessDenied", message: "Access Denied")])
    }

    func testConditionalWriteProbeReportsEnforcing() throws {
        let s = try store
        let report = try ConditionalWriteProbe.run(store: s, layout: Layout(prefix: "probe-test"))
        XCTAssertTrue(report.conditionalWritesEnforced, "\(report)")
        XCTAssertEqual(report.notes, [])
        XCTAssertEqual(try s.list(prefix: "probe-test/"), [], "the probe cleans up")
    }
}

/// Runs `body` on `count` threads (not a pool, whose width is the number of cores), released
/// together so the requests really race, and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        Thread {
            start.wait()
            body(i)
            group.leave()
        }.start()
    }
    for _ in 0..<count { start.signal() }
    group.wait()
}

/// Winners and errors of concurrent writers.
final class Tally: Sendable {
    private let winners = Mutex<[Int]>([])
    private let failures = Mutex<[Error]>([])
    func add(win i: Int) { winners.withLock { $0.append(i) } }
    func add(_ e: Error) { failures.withLock { $0.append(e) } }
    var wins: [Int] { winners.withLock { $0 } }
    var errors: [Error] { failures.withLock { $0 } }
}
