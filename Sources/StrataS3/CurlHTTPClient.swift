import Foundation
import StrataCore

/// `HTTPClient` over libcurl, for small requests (IMDS, ECS, STS, small S3 calls). Handles are
/// pooled, so consecutive requests to one host reuse the connection. Thread-safe.
public final class CurlHTTPClient: HTTPClient, Sendable {
    private let pool: CurlHandlePool
    /// Responses larger than this are refused (this client is for small bodies).
    public let maxResponseBytes: Int

    public init(options: TransportOptions = TransportOptions(), maxResponseBytes: Int = 16 << 20) {
        pool = CurlHandlePool(options: options)
        self.maxResponseBytes = maxResponseBytes
    }

    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        var t = TransportRequest(
            method: request.method, url: request.url,
            headers: request.headers.map { ($0.name, $0.value) })
        if let body = request.body { t.body = .data(body) }
        t.sink = .memory(limit: maxResponseBytes)
        t.timeout = request.timeout
        do {
            let r = try pool.perform(t)
            return HTTPResponse(status: r.status, headers: r.headers, body: r.body)
        } catch let e as TransportError {
            let kind: StoreError.Kind = e.kind == .configuration ? .configuration : .transient
            throw StoreError(
                kind, operation: "\(request.method) \(Redaction.url(request.url))",
                message: e.message,
                hint: kind == .configuration ? "check the URL and the TLS settings (CA bundle)" : nil)
        }
    }
}
