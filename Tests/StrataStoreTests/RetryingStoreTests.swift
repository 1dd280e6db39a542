import Foundation
import StrataCore
import StrataFileStore
import StrataS3
import StrataTestSupport
import XCTest

/// A clock for the retry loop that never waits: `sleep` moves `now` forward and is recorded, so
/// the time bounds are checked exactly and the tests take no time.
final class VirtualClock: Sendable {
    private let state = Locked((now: 0.0, sleeps: [Double]()))
    var sleeps: [Double] { state.value.sleeps }
    var elapsed: Double { state.value.now }
    var clock: RetryingStore.Clock {
        RetryingStore.Clock(
            now: { self.state.value.now },
            sleep: { d in
                self.state.update {
                    $0.now += d
                    $0.sleeps.append(d)
                }
            })
    }
}

/// RetryingStore over a FaultInjectingStore over the file store: what is retried, how long, and
/// what is never resent.
final class RetryingStoreTests: XCTestCase {
    var dir: TempDir!
    var file: FileStore!
    var faults: FaultInjectingStore!
    var time: VirtualClock!

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-retry")
        file = try FileStore(root: URL(fileURLWithPath: dir.path))
        faults = FaultInjectingStore(file, seed: 7)
        time = VirtualClock()
    }

    func retrying(_ policy: RetryPolicy = RetryPolicy(maxAttempts: 4, baseDelay: 0.5, maxDelay: 4, maxTotalTime: 60))
        -> RetryingStore
    {
        RetryingStore(faults, policy: policy, clock: time.clock)
    }

    private func storeError(_ block: () throws -> Void) -> StoreError? {
        do { try block() } catch let e as StoreError { return e } catch { XCTFail("not a StoreError: \(error)") }
        return nil
    }

    private let bytes = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) })

    func testTransientFaultsAreRetriedToSuccess() throws {
        let s = retrying()
        faults.inject(.serverError, on: [.put], times: 2)
        faults.inject(.throttled, on: [.getData], times: 3)
        faults.inject(.connectionReset, on: [.head, .list], times: 2)
        faults.inject(.truncatedRead, on: [.get], times: 2)
        faults.inject(.serverError, on: [.delete], times: 1)
        try s.put("r/a", data: bytes)
        XCTAssertEqual(faults.calls(.put), 3, "two failures, then the write")
        XCTAssertEqual(try s.getData("r/a").data, bytes)
        XCTAssertEqual(faults.calls(.getData), 4, "three throttled answers, then the object")
        XCTAssertEqual(try s.head("r/a")?.size, Int64(bytes.count))
        XCTAssertEqual(try s.list(prefix: "r/").map(\.key), ["r/a"])
        let out = dir.file("../strata-retry-get-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try s.get("r/a", toFile: out)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), bytes, "a truncated file is replaced")
        try s.delete("r/a")
        XCTAssertNil(try file.head("r/a"))
        XCTAssertEqual(faults.failuresInjected, 2 + 3 + 2 + 2 + 1, "every scripted fault happened")
        XCTAssertEqual(time.sleeps.count, faults.failuresInjected, "one backoff per failed attempt")
        // Full jitter: each delay within [0, min(maxDelay, base * 2^n)], n counting from 0 per call.
        for d in time.sleeps { XCTAssertTrue(d >= 0 && d <= 4, "\(d)") }
    }

    func testAmbiguousUnconditionalPutIsRetriedAndLandsOnce() throws {
        let s = retrying()
        faults.inject(.ambiguousSuccess, on: [.put], times: 1)
        try s.put("u/a", data: bytes)
        XCTAssertEqual(faults.calls(.put), 2, "an unconditional put is idempotent: resent")
        XCTAssertEqual(try file.getData("u/a").data, bytes)
        XCTAssertEqual(try file.list(prefix: "u/").count, 1)
    }

    func testGivesUpAfterMaxAttempts() throws {
        let s = retrying(RetryPolicy(maxAttempts: 3, baseDelay: 0.1, maxDelay: 1, maxTotalTime: 600))
        try file.put("g/a", data: bytes)
        faults.inject(.serverError, on: [.getData], times: nil)
        let e = try XCTUnwrap(storeError { _ = try s.getData("g/a") })
        XCTAssertEqual(e.kind, .transient, "the last error's kind is kept: callers still know it is retryable")
        XCTAssertEqual(faults.calls(.getData), 3)
        XCTAssertEqual(time.sleeps.count, 2)
        XCTAssertTrue(e.message.contains("gave up after 3 attempts"), e.message)
        XCTAssertNotNil(e.hint)
    }

    func testGivesUpWithinTheTotalTime() throws {
        let policy = RetryPolicy(maxAttempts: 1000, baseDelay: 1, maxDelay: 8, maxTotalTime: 30)
        let s = retrying(policy)
        faults.inject(.throttled, on: [.list], times: nil)
        let e = try XCTUnwrap(storeError { _ = try s.list(prefix: "x/") })
        XCTAssertEqual(e.kind, .throttled)
        XCTAssertLessThan(time.elapsed, policy.maxTotalTime, "no retry starts past the total time")
        XCTAssertGreaterThan(faults.calls(.list), 2)
        XCTAssertLessThan(faults.calls(.list), 1000, "stopped by time, not by attempts")
        XCTAssertTrue(e.message.contains("gave up after"), e.message)
    }

    func testNonRetryableErrorsAreNotRetried() throws {
        let s = retrying()
        XCTAssertEqual(storeError { _ = try s.getData("missing") }?.kind, .notFound)
        XCTAssertEqual(faults.calls(.getData), 1)
        try s.put("n/a", data: bytes, condition: .ifNoneMatch)
        XCTAssertEqual(
            storeError { try s.put("n/a", data: bytes, condition: .ifNoneMatch) }?.kind,
            .preconditionFailed)
        XCTAssertEqual(
            storeError { try s.put("n/a", data: bytes, condition: .ifMatch("\"stale\"")) }?.kind,
            .preconditionFailed)
        XCTAssertEqual(faults.calls(.put), 3)
        XCTAssertTrue(time.sleeps.isEmpty, "nothing waited")
    }

    /// A conditional write whose answer is lost may have won: resending it would report "lost"
    /// for a write that happened. The decorator passes the ambiguous error up, sent once.
    func testConditionalWritesAreNeverResent() throws {
        let s = retrying()
        faults.inject(.ambiguousSuccess, on: [.put], key: "c/pointer")
        let e = try XCTUnwrap(storeError { try s.put("c/pointer", data: Data("v1".utf8), condition: .ifNoneMatch) })
        XCTAssertTrue(e.isRetryable, "the caller learns the outcome is unknown, not that it lost: \(e)")
        XCTAssertNotEqual(e.kind, .preconditionFailed)
        XCTAssertEqual(faults.calls(.put), 1, "sent exactly once")
        let first = try XCTUnwrap(try file.head("c/pointer"))
        XCTAssertEqual(try file.getData("c/pointer").data, Data("v1".utf8), "the write did happen")

        faults.inject(.ambiguousSuccess, on: [.put], key: "c/pointer")
        let e2 = try XCTUnwrap(
            storeError {
                try s.put("c/pointer", data: Data("v2".utf8), condition: .ifMatch(first.etag))
            })
        XCTAssertNotEqual(e2.kind, .preconditionFailed)
        XCTAssertEqual(faults.calls(.put), 2)
        XCTAssertEqual(try file.getData("c/pointer").data, Data("v2".utf8), "applied once")
        // What a blind resend would have said: the caller's own write now fails its condition.
        XCTAssertEqual(
            storeError { try file.put("c/pointer", data: Data("v2".utf8), condition: .ifMatch(first.etag)) }?
                .kind, .preconditionFailed)

        // A conditional write refused before it was carried out is not resent either.
        faults.inject(.serverError, on: [.put], key: "c/other")
        XCTAssertEqual(storeError { try s.put("c/other", data: bytes, condition: .ifNoneMatch) }?.kind, .transient)
        XCTAssertNil(try file.head("c/other"))
        XCTAssertEqual(faults.calls(.put), 3)
    }

    /// A batch delete that reports some keys as failed: the retryable ones are retried one by one
    /// (and deleted), the others are returned as they were; a key that keeps failing is returned.
    func testBatchDeleteRetriesKeysThatFailedRetryably() throws {
        let s = retrying()
        let keys = (0..<6).map { "d/\($0)" }
        for k in keys { try file.put(k, data: bytes) }
        faults.failInBatch("d/1", code: "InternalError")
        faults.failInBatch("d/2", code: "SlowDown")
        faults.failInBatch("d/3", code: "AccessDenied")
        faults.inject(.serverError, on: [.delete], key: "d/4", times: 10)  // its single delete keeps failing
        faults.failInBatch("d/4", code: "InternalError")
        let failures = try s.delete(keys: keys)
        XCTAssertEqual(failures.map(\.key), ["d/3", "d/4"])
        XCTAssertEqual(failures.first?.code, "AccessDenied", "a non-retryable failure is passed up unchanged")
        XCTAssertEqual(failures.last?.code, "InternalError")
        XCTAssertTrue(failures.last?.message.contains("gave up after 4 attempts") ?? false, "\(failures)")
        XCTAssertEqual(try file.list(prefix: "d/").map(\.key), ["d/3", "d/4"])
        XCTAssertEqual(faults.calls(.deleteMany), 1, "the batch is sent once")
        XCTAssertEqual(faults.calls(.delete), 2 + 4, "d/1 and d/2 once each, d/4 up to the policy's 4 attempts")
    }

    func testStartAfterListingPassesThrough() throws {
        let s = retrying()
        for k in ["w/1", "w/2", "w/3"] { try file.put(k, data: bytes) }
        faults.inject(.connectionReset, on: [.list], times: 1)
        var keys: [String] = []
        try s.forEachPage(prefix: "w/", startAfter: "w/1", pageSize: 1) { keys += $0.objects.map(\.key) }
        XCTAssertEqual(keys, ["w/2", "w/3"])
        XCTAssertEqual(faults.count(.connectionReset), 1)
    }

    func testCapabilitiesAreFoundThroughDecorators() throws {
        let onFile = retrying()
        XCTAssertNil(onFile.capability((any Presigning).self), "the file store cannot presign")
        XCTAssertNil(onFile.capability((any IncompleteUploadCleaning).self))
        XCTAssertNil(
            onFile.capability((any BucketCreating).self),
            "FaultInjectingStore is not a decorator the lookup sees through")
        XCTAssertNotNil(RetryingStore(file).capability((any BucketCreating).self))

        let s3 = try S3TestStore.make("retrycap")
        let wrapped = RetryingStore(RetryingStore(s3, policy: RetryPolicy(maxAttempts: 1)))
        let signer = try XCTUnwrap(wrapped.capability((any Presigning).self))
        try s3.put("p/obj", data: bytes)
        let url = try signer.presignedURL(for: "p/obj", method: .GET, expires: 300)
        XCTAssertTrue(url.contains("X-Amz-Signature="), url)
        let out = dir.file("../strata-presigned-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try TestPaths.run(["/usr/bin/curl", "-sf", "-o", out, url])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), bytes, "the URL serves the object")
        let cleaner = try XCTUnwrap(wrapped.capability((any IncompleteUploadCleaning).self))
        XCTAssertEqual(try cleaner.incompleteUploads(prefix: "p/").count, 0)
    }
}
