import Foundation
import Logging
import StrataCore
import StrataFileStore
import StrataInspect
import StrataS3

/// Builds an S3 store from the AWS conventions (environment, ~/.aws files, instance roles), and
/// the operations only S3 has.
enum S3Support {
    static func environment(_ env: [String: String], profile: String?, logger: Logger) -> AWSEnvironment {
        let home = env["HOME"] ?? NSHomeDirectory()
        // STS, ECS and IMDS calls go through libcurl with TLS verified, trusting AWS_CA_BUNDLE if set.
        let http = CurlHTTPClient(options: TransportOptions(caBundle: env["AWS_CA_BUNDLE"]))
        return AWSEnvironment(environment: env, homeDirectory: home, httpClient: http, profile: profile, logger: logger)
    }

    static func makeStore(bucket: String, environment env: [String: String], profile: String?, logger: Logger) throws
        -> any ObjectStore
    {
        let aws = environment(env, profile: profile, logger: logger)
        var configuration = try aws.s3Configuration(bucket: bucket)
        configuration.meter = Progress.meter
        logger.debug("S3 settings", metadata: ["settings": "\(aws.describe())"])
        return try S3Store(configuration: configuration, logger: logger)
    }

    static func presign(store: any ObjectStore, key: String, put: Bool, expires: Int) throws -> String {
        guard let signer = store.capability((any Presigning).self) else {
            throw CLIError.usage(
                "presigned URLs need a store that can sign them (S3); \(store.location) cannot: "
                    + "a file store's objects are read directly from its directory")
        }
        return try signer.presignedURL(for: key, method: put ? .PUT : .GET, expires: TimeInterval(expires))
    }

    static func createBucket(store: any ObjectStore) throws {
        guard let creator = store.capability((any BucketCreating).self) else {
            throw CLIError.usage("cannot create a bucket for \(store.location)")
        }
        try creator.createBucket()
    }
}

extension S3Support {
    /// The store's multipart janitor, when it has one.
    static func uploadCleaner(_ store: any ObjectStore) -> IncompleteUploadCleaning? {
        store.capability((any IncompleteUploadCleaning).self)
    }
}
