import Foundation

/// A small in-memory HTTP request, for metadata services (IMDS, ECS, STS) and small S3 calls.
/// Large bodies go through the S3 transport's streaming paths, never through this.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: Data?
    /// Whole-request timeout in seconds.
    public var timeout: Double

    public init(
        method: String, url: String, headers: [(name: String, value: String)] = [], body: Data? = nil,
        timeout: Double = 30
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased; repeated headers joined with ",".
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Sends one request and returns the response (any status). Throws only when no response came
/// (connection refused, timeout, TLS failure), as a `StoreError` of kind `.transient` or
/// `.configuration`.
public protocol HTTPClient: Sendable {
    func send(_ request: HTTPRequest) throws -> HTTPResponse
}
