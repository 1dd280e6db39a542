import Foundation
import Logging
import StrataCore
import StrataFileStore
import StrataS3

/// Builds an S3 store from the AWS conventions (environment, ~/.aws files, instance roles), and
/// the operations only S3 has.
enum S3Support {
    static func makeStore(bucket: String, environment: [String: String], logger: Logger) throws -> any ObjectStore {
        throw CLIError.usage("S3 stores are not wired yet in this build")
    }

    static func presign(store: any ObjectStore, key: String, put: Bool, expires: Int) throws -> String {
        throw CLIError.usage("presigned URLs need an S3 store; \(store.location) is not one")
    }

    static func createBucket(store: any ObjectStore) throws {
        if store is FileStore { return }  // the directory was created when the store was opened
        throw CLIError.usage("cannot create a bucket for \(store.location)")
    }
}
