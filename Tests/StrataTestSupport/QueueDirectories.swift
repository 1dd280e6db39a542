import Foundation
import StrataFileStore

/// A temporary directory with a file store (`store/`) and the folders a directory-mode producer
/// reads and works in (`in/`, `work/`): the setup the job-queue and directory-mode tests share.
public struct QueueDirectories {
    public let dir: TempDir
    public let store: FileStore

    public init(prefix: String) throws {
        dir = TempDir(prefix: prefix)
        store = try FileStore(root: URL(fileURLWithPath: dir.file("store")))
        for d in ["in", "work"] {
            try FileManager.default.createDirectory(atPath: dir.file(d), withIntermediateDirectories: true)
        }
    }
}
