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
        /// What identifies the version's file: a page version's result root, a whole-file version's SHA-256.
        var sha256: String
        /// The page-hash root of the file (its list is `snapshot.phl`).
        var pageRoot: String?
        var inode: UInt64
        var mtimeNs: Int64
    }

    var snapshotPath: String { directory + "/snapshot.sqlite3" }
    /// The working file's page-hash list (StrataPages' `PageHashList`), kept with it.
    var hashListPath: String { directory + "/snapshot.phl" }
    private var sidecarPath: String { directory + "/snapshot.json" }
    var deltasDirectory: String { directory + "/deltas" }
    /// Local copies of the patches of the chain the working file is at (to merge a chain's tail).
    var patchesDirectory: String { directory + "/patches" }
    func patchPath(sha256: String) -> String { patchesDirectory + "/\(sha256).strpatch" }

    init(collection: String, settings: CompactorSettings) throws {
        var dir: String? = nil
        switch settings.cacheMode {
        case .cache:
            guard let base = settings.cacheDirectory else {
                throw StrataError(
                    .invalidInput, object: "compactor settings", field: "cacheDirectory",
                    message: "cache mode needs a cache directory", fix: "pass --cache-dir DIR or use --cache-mode s3")
            }
            dir = base + "/" + collection
        case .auto:
            if let base = settings.cacheDirectory,
                (try? FileManager.default.createDirectory(
                    atPath: base, withIntermediateDirectories: true)) != nil, access(base, W_OK) == 0
            {
                dir = base + "/" + collection
            }
        case .s3:
            break
        }
        persistent = dir != nil
        if dir == nil { SnapshotCache.removeScratchOfGoneProcesses(in: settings.workDirectory) }
        directory =
            dir
            ?? (settings.workDirectory + "/"
                + ScratchOwner.current.directoryName(
                    collection: collection, id: Identifiers.make()))
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StrataError(
                .io, object: directory, message: "cannot create the work directory: \(error)",
                fix: "check free space and permissions, or choose another --cache-dir")
        }
        lockFD = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0, flock(lockFD, LOCK_EX) == 0 else {
            throw StrataError(.io, object: directory, message: "cannot lock the cache directory")
        }
        try? FileManager.default.removeItem(atPath: deltasDirectory)
        try FileManager.default.createDirectory(atPath: deltasDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: patchesDirectory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: deltasDirectory)
        if !persistent { try? FileManager.default.removeItem(atPath: directory) }
        if lockFD >= 0 {
            flock(lockFD, LOCK_UN)
            close(lockFD)
        }
    }

    /// True when the cached file is `version` with this size and SHA-256, untouched since recorded.
    /// Returns the page-hash root recorded with it (nil when the file's list is missing).
    func holds(version: String, size: Int64, sha256: String) -> String? {
        guard persistent, let data = FileManager.default.contents(atPath: sidecarPath),
            let s = try? JSONDecoder().decode(Sidecar.self, from: data),
            s.version == version, s.size == size, s.sha256 == sha256, let id = identity(), id.size == size,
            id.inode == s.inode, id.mtimeNs == s.mtimeNs, let root = s.pageRoot,
            FileManager.default.fileExists(atPath: hashListPath)
        else { return nil }
        return root
    }

    /// Forget what the file holds (before modifying it).
    func invalidate() { unlink(sidecarPath) }

    /// Remember that the file now holds `version`.
    func record(version: String, size: Int64, sha256: String, pageRoot: String) {
        guard persistent, let id = identity() else { return }
        let s = Sidecar(
            version: version, size: size, sha256: sha256, pageRoot: pageRoot, inode: id.inode,
            mtimeNs: id.mtimeNs)
        if let data = try? JSONEncoder().encode(s) {
            let tmp = sidecarPath + ".tmp"
            if FileManager.default.createFile(atPath: tmp, contents: data) { rename(tmp, sidecarPath) }
        }
    }

    /// Remove the working file (a new collection starts from nothing).
    func discardSnapshot() {
        invalidate()
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(snapshotPath + suffix) }
        unlink(hashListPath)
    }

    /// Keep only the local patches named by `sha256s` (the chain the working file is at).
    func keepPatches(_ sha256s: Set<String>) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: patchesDirectory) else { return }
        for name in names where !sha256s.contains(String(name.prefix(64))) || !name.hasSuffix(".strpatch") {
            unlink(patchesDirectory + "/" + name)
        }
    }

    private func identity() -> (size: Int64, inode: UInt64, mtimeNs: Int64)? {
        var st = stat()
        guard stat(snapshotPath, &st) == 0 else { return nil }
        return (
            Int64(st.st_size), UInt64(st.st_ino), Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        )
    }
}

// MARK: scratch of processes that are gone

/// The process that owns a scratch directory, recorded in the directory's name (so it exists from
/// the moment the directory does): `strata-compact-{collection}-{id}.owner-{pid}-{start}-{host}`,
/// where `start` is the process's start time (clock ticks since boot, 0 where unknown) so a
/// reused pid is not taken for the owner, and `host` a hash of the host name, so a work directory
/// shared between hosts is only cleaned of this host's processes.
struct ScratchOwner: Equatable {
    var pid: Int32
    var startTime: UInt64
    var host: String

    static let prefix = "strata-compact-"
    static let marker = ".owner-"

    static var current: ScratchOwner {
        let pid = getpid()
        return ScratchOwner(pid: pid, startTime: startTime(of: pid) ?? 0, host: hostToken)
    }

    static let hostToken: String = {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        return String(SHA256.hex(String(cString: name)).prefix(8))
    }()

    func directoryName(collection: String, id: String) -> String {
        "\(ScratchOwner.prefix)\(collection)-\(id)\(ScratchOwner.marker)\(pid)-\(startTime)-\(host)"
    }

    /// The owner recorded in a scratch directory's name; nil for other names (and for scratch made
    /// before owners were recorded).
    static func parse(_ name: String) -> ScratchOwner? {
        guard name.hasPrefix(prefix), let r = name.range(of: marker, options: .backwards) else { return nil }
        let parts = name[r.upperBound...].split(separator: "-")
        guard parts.count == 3, let pid = Int32(parts[0]), pid > 0, let start = UInt64(parts[1]) else { return nil }
        return ScratchOwner(pid: pid, startTime: start, host: String(parts[2]))
    }

    /// Start time of `pid` from /proc (field 22 of /proc/PID/stat); nil where there is no /proc
    /// or no such process.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        // The command name (field 2) is in parentheses and may contain spaces: count after it.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// True when this owner is a process of this host that no longer exists.
    var isGoneFromThisHost: Bool {
        guard host == ScratchOwner.hostToken else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        // The pid exists: it is the owner unless it started at another time (a reused pid).
        guard startTime != 0, let now = ScratchOwner.startTime(of: pid) else { return false }
        return now != startTime
    }
}

extension SnapshotCache {
    /// Removes the scratch directories in `workDirectory` left by processes of this host that are
    /// gone (a compactor killed with SIGKILL leaves a full snapshot copy). Directories of live
    /// processes and of other hosts are kept. Best effort: a failure only leaves the directory.
    static func removeScratchOfGoneProcesses(in workDirectory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: workDirectory) else { return }
        for name in names where name.hasPrefix(ScratchOwner.prefix) {
            guard let owner = ScratchOwner.parse(name), owner.isGoneFromThisHost else { continue }
            try? FileManager.default.removeItem(atPath: workDirectory + "/" + name)
        }
    }
}
