import Foundation
import StrataCore

extension FileStore: BucketCreating {
    /// The file store's "bucket" is its root directory, created when the store was opened; this
    /// checks it is still there (and creates it again if it was removed since).
    public func createBucket() throws {
        do {
            try FileManager.default.createDirectory(atPath: root.path, withIntermediateDirectories: true)
        } catch {
            throw StoreError(
                .io, operation: "CreateBucket", key: nil, message: "cannot create \(root.path): \(error)",
                hint: "check that the directory is writable by this user")
        }
    }
}
