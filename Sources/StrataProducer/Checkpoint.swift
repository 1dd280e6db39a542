import Foundation
import StrataCore

#if canImport(Glibc)
    import Glibc
#endif

/// The local record of a directory's jobs (Docs/FORMATS.md, "Producer checkpoint").
///
/// A job's run id is written here, as `planned`, before anything of it is uploaded; it becomes
/// `published` once all its runs are. An interrupted producer therefore resumes with the same
/// run id (publishing is idempotent for a given id) and never publishes a job twice.
struct Checkpoint: Codable, Equatable {
    static let formatName = "strata-produce-checkpoint"
    static let majorVersion = 1

    struct Job: Codable, Equatable {
        enum State: String, Codable { case planned, published, failed }
        /// The job's (first) run id.
        var runId: String
        /// SHA-256 over the job's inputs and labels; a changed job is refused.
        var fingerprint: String
        var state: State
        /// Every run id published for the job (several when its inputs were split).
        var runIds: [String]
        var updatedAt: String
        /// Why the job failed (state `failed`).
        var reason: String? = nil
        /// The failure came before anything of the job was uploaded (validation, embedding,
        /// dimension): a changed input may then be planned again under the same run id.
        var failedBeforeUpload: Bool? = nil
        /// Each input's size, mtime and inode when it was hashed, with its hash: an unchanged
        /// stamp is not hashed again.
        var files: [String: FileStamp]? = nil

        enum CodingKeys: String, CodingKey {
            case runId = "run_id"
            case fingerprint, state
            case runIds = "run_ids"
            case updatedAt = "updated_at"
            case reason
            case failedBeforeUpload = "failed_before_upload"
            case files
        }
    }

    struct FileStamp: Codable, Equatable {
        var size: Int64
        var mtimeNs: Int64
        var inode: UInt64
        var sha256: String

        enum CodingKeys: String, CodingKey {
            case size
            case mtimeNs = "mtime_ns"
            case inode, sha256
        }
    }

    var format: String
    var formatVersion: Int
    /// The store and prefix the jobs were published to.
    var store: String
    var prefix: String
    var jobs: [String: Job]

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case store, prefix, jobs
    }

    init(store: String, prefix: String) {
        format = Checkpoint.formatName
        formatVersion = Checkpoint.majorVersion
        self.store = store
        self.prefix = prefix
        jobs = [:]
    }

    /// Reads the checkpoint at `path`, or a new one when there is none.
    static func load(_ path: String, store: String, prefix: String) throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: path) else { return Checkpoint(store: store, prefix: prefix) }
        func bad(_ message: String, field: String? = nil) -> StrataError {
            StrataError(
                .corrupt, object: path, field: field, message: message,
                fix: "restore it, or remove it only if none of its jobs' runs were published (snapctl verify)")
        }
        let c: Checkpoint
        do {
            c = try JSONDecoder().decode(Checkpoint.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw bad("is not a producer checkpoint: \(error.localizedDescription)")
        }
        guard c.format == formatName else { throw bad("is not a producer checkpoint", field: "format") }
        if c.formatVersion > majorVersion {
            throw StrataError(
                .unsupportedVersion, object: path, field: "format_version",
                message: "is \(c.formatVersion); this build reads version \(majorVersion)",
                fix: "upgrade Strata on this machine")
        }
        guard c.store == store, c.prefix == prefix else {
            throw StrataError(
                .refused, object: path, field: "store",
                message: "belongs to \(c.store) with prefix \"\(c.prefix)\", not \(store) with prefix "
                    + "\"\(prefix)\"",
                fix: "use a separate checkpoint file for each store")
        }
        return c
    }

    /// Writes atomically: a temporary file, fsync, rename, fsync of the directory.
    func save(_ path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data = try e.encode(self)
        let tmp = path + ".tmp"
        func fail(_ what: String) -> StrataError {
            StrataError(
                .io, object: path, message: "\(what): \(String(cString: strerror(errno)))",
                fix: "check the directory's permissions and free space")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write the checkpoint") }
        let ok = data.withUnsafeBytes { b -> Bool in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
        let synced = ok && fsync(fd) == 0
        close(fd)
        guard synced else {
            unlink(tmp)
            throw fail("cannot write the checkpoint")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw fail("cannot replace the checkpoint")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

/// An exclusive lock on `path` (a file next to the checkpoint) for this process's lifetime of the
/// object, so two producers never work on the same directory at once.
final class FileLock {
    private let fd: Int32

    init(_ path: String, what: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StrataError(
                .io, object: path, message: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw StrataError(
                .conflict, object: what, message: "another producer is working on it (\(path) is locked)",
                fix: "wait for the other producer to finish")
        }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
