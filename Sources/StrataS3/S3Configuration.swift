import Foundation
import StrataCore

/// Settings of one S3 store, as values. The CLI builds this from flags, the environment and
/// `~/.aws` files (see `AWSEnvironment`); libraries take it as given.
public struct S3Configuration: Sendable {
    public var bucket: String
    public var region: String
    /// Custom endpoint (MinIO, SeaweedFS, Ceph, R2), e.g. `http://127.0.0.1:8333`. nil means AWS.
    public var endpoint: String?
    /// Path-style addressing (`endpoint/bucket/key`). Default: true for a custom endpoint,
    /// false (virtual-hosted) for AWS.
    public var forcePathStyle: Bool?
    public var credentials: any CredentialsProvider

    /// Objects at least this large are uploaded in parts.
    public var multipartThreshold: Int64 = 64 << 20
    /// Part size for multipart uploads and ranged downloads (S3 minimum 5 MiB).
    public var partSize: Int = 16 << 20
    /// Parts or ranges in flight at once. Memory is bounded by partSize x concurrency.
    public var concurrency: Int = 4
    /// Downloads at least this large use parallel ranged GETs.
    public var parallelDownloadThreshold: Int64 = 64 << 20

    /// Verify the server's TLS certificate (always true unless a test says otherwise).
    public var verifyTLS: Bool = true
    /// PEM bundle of trusted CAs (`AWS_CA_BUNDLE`).
    public var caBundle: String?
    public var connectTimeout: Double = 10
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is abandoned.
    public var lowSpeedLimit: Int = 1024
    public var lowSpeedTime: Int = 30

    public var retry: RetryPolicy = RetryPolicy()

    /// Counts object bytes moved (for progress display); nil for none.
    public var meter: TransferMeter?

    public init(
        bucket: String, region: String = "us-east-1", endpoint: String? = nil, forcePathStyle: Bool? = nil,
        credentials: any CredentialsProvider
    ) {
        self.bucket = bucket
        self.region = region
        self.endpoint = endpoint
        self.forcePathStyle = forcePathStyle
        self.credentials = credentials
    }

    public var usesPathStyle: Bool { forcePathStyle ?? (endpoint != nil) }
}
