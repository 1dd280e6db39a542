import Foundation

/// AWS credentials. `description` never shows the secret or the token.
public struct Credentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials expire; nil for long-lived keys.
    public var expiration: Date?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        "Credentials(accessKeyId: \(accessKeyId), secret: <redacted>\(sessionToken == nil ? "" : ", token: <redacted>"))"
    }
}

/// Supplies credentials, refreshing temporary ones before they expire. Thread-safe.
public protocol CredentialsProvider: Sendable {
    /// Current credentials; throws `StoreError` of kind `.configuration` or `.invalidCredentials`.
    func credentials() throws -> Credentials
    /// Where they come from, for messages ("environment", "profile dev in ~/.aws/credentials").
    var source: String { get }
}

public struct StaticCredentialsProvider: CredentialsProvider {
    public let value: Credentials
    public let source: String
    public init(_ value: Credentials, source: String = "static") {
        self.value = value
        self.source = source
    }
    public func credentials() throws -> Credentials { value }
}
