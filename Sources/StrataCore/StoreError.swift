import Foundation

/// An error from an object store, typed so a caller knows what to do and worded so a human
/// knows what to check. It names the operation and key, and for S3 the status, error code and
/// request id. It never carries a secret or a signature.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// The key (or upload) does not exist.
        case notFound
        /// A conditional write lost: 412 Precondition Failed or 409 conditional conflict.
        case preconditionFailed
        /// The bucket does not exist.
        case noSuchBucket
        /// The request was understood but not allowed (policy, ACL, least privilege).
        case accessDenied
        /// Unknown key id, wrong secret, expired token: the credentials are wrong.
        case invalidCredentials
        /// The client clock differs too much from the server's.
        case clockSkew
        /// The bucket lives in another region than the one signed for.
        case wrongRegion
        /// 429 / 503 SlowDown: back off.
        case throttled
        /// 5xx, connection reset, timeout: may succeed when retried.
        case transient
        /// A body did not match its checksum or length.
        case integrity
        /// The request was malformed or refused for a reason retrying cannot fix.
        case invalidRequest
        /// The store does not support what was asked.
        case unsupported
        /// A local file could not be read or written.
        case io
        /// Missing or unusable configuration (endpoint, region, credentials source).
        case configuration
    }

    public var kind: Kind
    public var operation: String
    public var key: String?
    public var status: Int?
    public var code: String?
    public var message: String
    public var requestId: String?
    public var hint: String?

    public init(
        _ kind: Kind, operation: String, key: String? = nil, status: Int? = nil, code: String? = nil,
        message: String, requestId: String? = nil, hint: String? = nil
    ) {
        self.kind = kind
        self.operation = operation
        self.key = key
        self.status = status
        self.code = code
        self.message = message
        self.requestId = requestId
        self.hint = hint
    }

    /// Whether an identical request may succeed later.
    public var isRetryable: Bool { kind == .transient || kind == .throttled }

    public var description: String {
        var s = "\(operation)"
        if let key { s += " \(key)" }
        s += " failed"
        var details: [String] = []
        if let status { details.append("HTTP \(status)") }
        if let code { details.append(code) }
        if !details.isEmpty { s += " (\(details.joined(separator: " ")))" }
        s += ": \(message)"
        if let requestId { s += " [request id \(requestId)]" }
        if let hint { s += "\n  hint: \(hint)" }
        return s
    }
}

extension Error {
    /// True when this is a `StoreError` of `kind`.
    public func isStoreError(_ kind: StoreError.Kind) -> Bool {
        (self as? StoreError)?.kind == kind
    }
}
