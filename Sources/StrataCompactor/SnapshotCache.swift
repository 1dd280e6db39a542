import Foundation
import StrataCore
import StrataCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Where a compaction keeps its base snapshot while it merges into it.
///
/// In `cache` mode one file per collection (`{dir}/{collection}/snapshot.sqlite3`) is kept
/// between rounds with a sidecar naming the version it holds and its size, SHA-256 and file
/// identity (inode, mtime). The merge modifies the file in place, so the sidecar is removed
/// first: a crash or a lost race leaves no sidecar and the next round downloads the base again.
/// A round that publishes records the new version, so the next round starts without a download.
/// An exclusive `flock` keeps two workers sharing the directory (EFS) from using it at once.
///
/// In `s3` mode the same happens in a private temporary directory removed afterwards.
final class SnapshotCache {
    let directory: String
    let persistent: Bool
    private var lockFD: Int32 = -1

    struct Sidecar: Codable {
        var version: String
        var size: Int64
        var sha256: String
        var inode: UInt64
        var mtimeNs: Int64
    }

    var snapshotPath: String { directory + "/snapshot.sqlite3" }
    private var sidecarPath: String { directory + "/snapshot.json" }
    var deltasDirectory: String { directory + "/deltas" }

    init(collection: String, settings: CompactorSettings) throws {
        var dir: String? = nil
        switch settings.cacheMode {
        case .cache:
            guard let base = settings.cacheDirectory else {
                throw StrataError(.invalidInput, object: "compactor settings", field: "cacheDirectory",
                                  message: "cache mode needs a cache directory", fix: "pass --cache-dir DIR or use --cache-mode s3")
            }
            dir = base + "/" + collection
        case .auto:
            if let base = settings.cacheDirectory, (try? FileManager.default.createDirectory(
                atPath: base, withIntermediateDirectories: true)) != nil, access(base, W_OK) == 0 {
                dir = base + "/" + collection
            }
        case .s3:
            break
        }
        persistent = dir != nil
        directory = dir ?? (settings.workDirectory + "/strata-compact-\(collection)-\(Identifiers.make())")
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StrataError(.io, object: directory, message: "cannot create the work directory: \(error)",
                              fix: "check free space and permissions, or choose another --cache-dir")
        }
        lockFD = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0, flock(lockFD, LOCK_EX) == 0 else {
            throw StrataError(.io, object: directory, message: "cannot lock the cache directory")
        }
        try? FileManager.default.removeItem(atPath: deltasDirectory)
        try FileManager.default.createDirectory(atPath: deltasDirectory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: deltasDirectory)
        if !persistent { try? FileManager.default.removeItem(atPath: directory) }
        if lockFD >= 0 { flock(lockFD, LOCK_UN); close(lockFD) }
    }

    /// True when the cached file is `version` with this size and SHA-256, untouched since recorded.
    func holds(version: String, size: Int64, sha256: String) -> Bool {
        guard persistent, let data = FileManager.default.contents(atPath: sidecarPath),
              let s = try? JSONDecoder().decode(Sidecar.self, from: data),
              s.version == version, s.size == size, s.sha256 == sha256, let id = identity(), id.size == size,
              id.inode == s.inode, id.mtimeNs == s.mtimeNs
        else { return false }
        return true
    }

    /// Forget what the file holds (before modifying it).
    func invalidate() { unlink(sidecarPath) }

    /// Remember that the file now holds `version`.
    func record(version: String, size: Int64, sha256: String) {
        guard persistent, let id = identity() else { return }
        let s = Sidecar(version: version, size: size, sha256: sha256, inode: id.inode, mtimeNs: id.mtimeNs)
        if let data = try? JSONEncoder().encode(s) {
            let tmp = sidecarPath + ".tmp"
            if FileManager.default.createFile(atPath: tmp, contents: data) { rename(tmp, sidecarPath) }
        }
    }

    /// Remove the working file (a new collection starts from nothing).
    func discardSnapshot() {
        invalidate()
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(snapshotPath + suffix) }
    }

    private func identity() -> (size: Int64, inode: UInt64, mtimeNs: Int64)? {
        var st = stat()
        guard stat(snapshotPath, &st) == 0 else { return nil }
        return (Int64(st.st_size), UInt64(st.st_ino), Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }
}
