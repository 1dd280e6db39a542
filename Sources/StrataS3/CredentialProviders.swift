import Foundation
import Logging
import StrataCore
import Synchronization

public enum AWSLog {
    /// The default logger of the credential code: discards everything.
    public static var noop: Logger { Logger(label: "strata.aws", factory: { _ in SwiftLogNoOpLogHandler() }) }
}

/// Temporary credentials fetched by a closure, cached and refreshed before they expire.
///
/// - Fresh credentials are returned from the cache without I/O.
/// - Within the refresh window before expiry (5 minutes, or the last 20% of a shorter lifetime)
///   one caller refreshes while the others keep using the cached credentials.
/// - A refresh that fails while the cached credentials are still valid keeps them, and the next
///   attempt waits `retryAfterFailure` seconds so a broken endpoint is not hammered.
/// - Expired (or never fetched) credentials make callers wait for the fetch; its error is thrown.
/// - Credentials without an expiration are kept forever.
///
/// Thread-safe. The fetch runs outside the lock; concurrent callers never fetch twice at once.
// Unchecked: every var is guarded by `condition` (callers wait on it while one refreshes; Mutex cannot wait).
public final class RefreshingCredentialsProvider: CredentialsProvider, @unchecked Sendable {
    public let source: String
    private let fetch: @Sendable () throws -> Credentials
    private let now: @Sendable () -> Date
    private let refreshWindow: TimeInterval
    private let retryAfterFailure: TimeInterval
    private let logger: Logger

    private let condition = NSCondition()
    private var cached: Credentials?
    private var fetchedAt: Date?
    private var refreshing = false
    private var nextAttempt: Date?

    /// - Parameters:
    ///   - source: where the credentials come from, for messages; never a secret.
    ///   - refreshWindow: refresh this long before expiry at most (default 5 minutes).
    ///   - retryAfterFailure: after a failed refresh while the old credentials still work, wait
    ///     this long before trying again.
    ///   - now: the clock (tests inject one).
    ///   - fetch: gets new credentials; throws `StoreError`.
    public init(
        source: String, refreshWindow: TimeInterval = 300, retryAfterFailure: TimeInterval = 10,
        now: @escaping @Sendable () -> Date = { Date() }, logger: Logger = AWSLog.noop,
        fetch: @escaping @Sendable () throws -> Credentials
    ) {
        self.source = source
        self.fetch = fetch
        self.now = now
        self.refreshWindow = refreshWindow
        self.retryAfterFailure = retryAfterFailure
        self.logger = logger
    }

    /// When credentials fetched at `fetched` and expiring at `expiration` should be refreshed.
    func refreshTime(fetched: Date, expiration: Date) -> Date {
        let lifetime = expiration.timeIntervalSince(fetched)
        let window = min(refreshWindow, max(0, lifetime) * 0.2)
        return expiration.addingTimeInterval(-window)
    }

    public func credentials() throws -> Credentials {
        condition.lock()
        while true {
            let t = now()
            if let c = cached {
                guard let exp = c.expiration else {
                    condition.unlock()
                    return c
                }
                let valid = t < exp
                if valid && t < refreshTime(fetched: fetchedAt ?? t, expiration: exp) {
                    condition.unlock()
                    return c
                }
                // Due for refresh. While someone else refreshes, or soon after a failed refresh,
                // valid credentials are good enough.
                if valid && (refreshing || (nextAttempt.map { t < $0 } ?? false)) {
                    condition.unlock()
                    return c
                }
            }
            if refreshing {
                condition.wait()
                continue
            }
            break
        }
        refreshing = true
        condition.unlock()

        let result = Result { try fetch() }

        condition.lock()
        refreshing = false
        defer {
            condition.broadcast()
            condition.unlock()
        }
        let t = now()
        switch result {
        case .success(let c):
            cached = c
            fetchedAt = t
            nextAttempt = nil
            logger.debug(
                "fetched credentials",
                metadata: [
                    "source": "\(source)", "expires": "\(c.expiration.map { "\($0)" } ?? "never")",
                ])
            return c
        case .failure(let error):
            if let c = cached, let exp = c.expiration, t < exp {
                nextAttempt = t.addingTimeInterval(retryAfterFailure)
                logger.warning(
                    "refreshing credentials failed; keeping the current ones until they expire",
                    metadata: ["source": "\(source)", "expires": "\(exp)", "error": "\(error)"])
                return c
            }
            throw error
        }
    }
}

/// What one link of the chain found.
public enum CredentialSourceResult: Sendable {
    /// The source is configured; this provider serves its credentials.
    case provider(any CredentialsProvider)
    /// The source does not apply here; the reason is shown when no source applies.
    case skipped(String)
}

/// One link of the default chain (environment, profile, web identity, container, instance).
public protocol CredentialSource: Sendable {
    /// Short name for messages: "environment", "profile dev", "EC2 instance metadata".
    var name: String { get }
    /// Whether the source applies. Throws when it is configured but broken (a key id without a
    /// secret, an unreadable token file), which stops the chain: falling through to another
    /// identity would be a surprise.
    func resolve() throws -> CredentialSourceResult
}

/// The default credential chain: the first source that applies provides credentials, and keeps
/// providing them (refreshing as needed) for the life of the chain. Nothing is read or fetched
/// until the first `credentials()` call, so building a store never blocks.
///
/// When no source applies the error lists every source and why it was skipped.
public final class AWSCredentialChain: CredentialsProvider, Sendable {
    public let sources: [any CredentialSource]
    private let resolved = Mutex<(any CredentialsProvider)?>(nil)
    private let logger: Logger

    public init(sources: [any CredentialSource], logger: Logger = AWSLog.noop) {
        self.sources = sources
        self.logger = logger
    }

    /// The provider that won, or nil before the first successful `credentials()`.
    public var resolvedProvider: (any CredentialsProvider)? {
        resolved.withLock { $0 }
    }

    public var source: String {
        if let p = resolvedProvider { return p.source }
        return "credential chain (not yet resolved: " + sources.map(\.name).joined(separator: ", ") + ")"
    }

    public func credentials() throws -> Credentials {
        try provider().credentials()
    }

    /// Resolves the chain once (serialized: concurrent first callers wait for one resolution).
    /// A failed resolution is not cached: the next call tries again.
    public func provider() throws -> any CredentialsProvider {
        try resolved.withLock { (resolved: inout (any CredentialsProvider)?) throws -> any CredentialsProvider in
            if let resolved { return resolved }
            var skipped: [String] = []
            for s in sources {
                switch try s.resolve() {
                case .provider(let p):
                    logger.debug("using AWS credentials", metadata: ["source": "\(p.source)"])
                    resolved = p
                    return p
                case .skipped(let why):
                    skipped.append("\(s.name): \(why)")
                }
            }
            throw StoreError(
                .configuration, operation: "resolve AWS credentials",
                message: "no credentials found. Sources tried, in order:\n    - "
                    + skipped.joined(separator: "\n    - "),
                hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), "
                    + "or AWS_PROFILE to a profile with aws_access_key_id/aws_secret_access_key in ~/.aws/credentials, "
                    + "or run where a role is attached "
                    + "(EKS IRSA or Pod Identity, an ECS task role, an EC2 instance profile)")
        }
    }
}
