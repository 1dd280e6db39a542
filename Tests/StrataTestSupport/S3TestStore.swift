import Foundation
import StrataCore
import StrataS3

/// S3 stores on the shared private SeaweedFS, each on a fresh bucket made with CreateBucket.
public enum S3TestStore {
    /// Settings for `bucket` on the shared server (path style, loopback, fast retries).
    public static func configuration(bucket: String, server: SeaweedFS) -> S3Configuration {
        var c = S3Configuration(
            bucket: bucket, region: "us-east-1", endpoint: server.endpoint,
            credentials: StaticCredentialsProvider(
                Credentials(accessKeyId: server.accessKey, secretAccessKey: server.secretKey),
                source: "the test SeaweedFS"))
        c.retry = RetryPolicy(maxAttempts: 4, baseDelay: 0.05, maxDelay: 0.5, maxTotalTime: 20)
        c.connectTimeout = 5
        return c
    }

    /// A store on a new bucket of the shared server; `configure` may adjust the settings (part
    /// sizes, thresholds) before the store is made.
    public static func make(_ hint: String = "t", configure: (inout S3Configuration) -> Void = { _ in }) throws
        -> S3Store
    {
        let server = try SeaweedFS.shared()
        var c = configuration(bucket: SeaweedFS.uniqueBucketName(hint), server: server)
        configure(&c)
        let store = try S3Store(configuration: c)
        try store.createBucket()
        return store
    }

    /// A store on a new bucket of the shared server whose requests go through a new
    /// `HTTPFaultProxy` (the bucket is made directly). Stop the proxy when done.
    public static func makeBehindProxy(_ hint: String = "t", configure: (inout S3Configuration) -> Void = { _ in })
        throws -> (store: S3Store, proxy: HTTPFaultProxy)
    {
        let server = try SeaweedFS.shared()
        let bucket = SeaweedFS.uniqueBucketName(hint)
        try S3Store(configuration: configuration(bucket: bucket, server: server)).createBucket()
        let proxy = try HTTPFaultProxy(upstream: server.endpoint)
        var c = configuration(bucket: bucket, server: server)
        c.endpoint = proxy.endpoint
        configure(&c)
        return (try S3Store(configuration: c), proxy)
    }
}
