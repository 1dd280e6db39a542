import Foundation
import Logging

/// An ObjectStore decorator that retries retryable failures (`StoreError.isRetryable`: 5xx,
/// throttling, resets) with full-jitter backoff, bounded in attempts and total time by one
/// `RetryPolicy` (slatedb's `retrying_object_store.rs` is the model).
///
/// What it never does is retry a conditional write (`If-None-Match`, `If-Match`): when the
/// answer to one is lost, the first attempt may have won, and a blind resend would then report
/// "precondition failed" for a write that succeeded (or, with a stale ETag, hide that it did).
/// Such a failure is passed up as it is; resolving it needs what the store sent (S3Store checks
/// with the write id of its request, inside its own retries) or the caller's protocol (the
/// compactor re-reads the pointer). Reads, unconditional writes and deletes are idempotent and
/// are retried; a `get` to a file replaces the file on each attempt.
///
/// `S3Store` keeps its own transport-level retries (they re-sign each attempt, refresh expired
/// credentials, rewind file bodies and carry the ambiguous-write check), configured with the
/// same `RetryPolicy`; wrapping an S3Store in a RetryingStore would multiply the attempts.
public final class RetryingStore: ObjectStoreDecorator, StartAfterListing, Sendable {
    /// Time as the retry loop sees it; tests pass a virtual clock.
    public struct Clock: Sendable {
        /// Seconds on a monotonic scale.
        public var now: @Sendable () -> Double
        public var sleep: @Sendable (Double) -> Void
        public init(now: @escaping @Sendable () -> Double, sleep: @escaping @Sendable (Double) -> Void) {
            self.now = now
            self.sleep = sleep
        }

        public static let system = Clock(
            now: { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 },
            sleep: { if $0 > 0 { Thread.sleep(forTimeInterval: $0) } })
    }

    public let base: any ObjectStore
    public let policy: RetryPolicy
    let clock: Clock
    let logger: Logger

    public init(
        _ base: any ObjectStore, policy: RetryPolicy = RetryPolicy(), clock: Clock = .system,
        logger: Logger = Logger(label: "strata.retry", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.base = base
        self.policy = policy
        self.clock = clock
        self.logger = logger
    }

    public var location: String { base.location }

    /// Runs `body` until it succeeds, fails with an error that is not retryable, or the policy's
    /// attempts or time are used up; then the last error is thrown, its message saying so.
    func retrying<T>(_ operation: String, _ key: String?, _ body: () throws -> T) throws -> T {
        let started = clock.now()
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try body()
            } catch var e as StoreError where e.isRetryable {
                let elapsed = clock.now() - started
                let delay = attempt < policy.maxAttempts ? policy.delay(afterAttempt: attempt - 1) : 0
                guard attempt < policy.maxAttempts, elapsed + delay < policy.maxTotalTime else {
                    e.message +=
                        " (gave up after \(attempt) attempt\(attempt == 1 ? "" : "s") in "
                        + "\(String(format: "%.1f", elapsed)) s; retry policy: \(policy))"
                    if e.hint == nil {
                        e.hint =
                            "the store kept failing: check that \(base.location) is reachable and not "
                            + "overloaded, or allow more attempts or time (AWS_MAX_ATTEMPTS)"
                    }
                    throw e
                }
                logger.notice(
                    "retrying \(operation) after: \(e.message)",
                    metadata: [
                        "attempt": "\(attempt)", "delay": "\(String(format: "%.2f", delay))",
                        "key": "\(key ?? "-")",
                    ])
                clock.sleep(delay)
            }
        }
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try retrying("head", key) { try base.head(key) }
    }

    public func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try retrying("get", key) { try base.get(key, toFile: path, range: range) }
    }

    public func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        try retrying("get", key) { try base.getData(key) }
    }

    public func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        switch condition {
        case .none:
            return try retrying("put", key) { try base.put(key, body: body, condition: condition, options: options) }
        case .ifNoneMatch, .ifMatch:
            // Never resent blindly: see the type's comment.
            return try base.put(key, body: body, condition: condition, options: options)
        }
    }

    public func delete(_ key: String) throws {
        try retrying("delete", key) { try base.delete(key) }
    }

    /// The batch, retried whole on a retryable error; then each key the batch reported as failed
    /// with a retryable code (S3's DeleteObjects lists per-key errors such as InternalError or
    /// SlowDown with a 200) is retried on its own. What still fails is returned, with its last error.
    public func delete(keys: [String]) throws -> [DeleteFailure] {
        let failures = try retrying("delete", keys.first) { try base.delete(keys: keys) }
        return failures.map { f in
            guard RetryingStore.retryableDeleteCodes.contains(f.code) else { return f }
            do {
                try retrying("delete", f.key) { try base.delete(f.key) }
                return nil
            } catch let e as StoreError {
                return DeleteFailure(key: f.key, code: e.code ?? e.kind.rawValue, message: e.message)
            } catch {
                return DeleteFailure(key: f.key, code: f.code, message: "\(error)")
            }
        }.compactMap { $0 }
    }

    /// Per-key codes in a batch delete's answer worth retrying: S3's server-side and throttling
    /// codes, and the kinds of `StoreError.isRetryable` (stores that report `kind.rawValue`).
    static let retryableDeleteCodes: Set<String> = [
        "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException",
        "RequestLimitExceeded", "OperationAborted", StoreError.Kind.transient.rawValue,
        StoreError.Kind.throttled.rawValue,
    ]

    public func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try retrying("list", prefix) {
            try base.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
        }
    }

    public func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage {
        try retrying("list", prefix) {
            try base.listPageAfter(
                prefix: prefix, delimiter: delimiter, startAfter: startAfter, continuation: continuation,
                maxKeys: maxKeys)
        }
    }
}
