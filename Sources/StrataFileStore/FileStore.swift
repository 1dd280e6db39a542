import Foundation
import StrataCore
import StrataCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded store: objects are files under a root directory.
///
/// It gives the same semantics as S3 so every layer above runs unchanged on it:
/// - writes are atomic (a temporary file, fsynced, then renamed into place);
/// - conditional writes are race-free across processes: the check and the rename happen under
///   an exclusive `flock` on a per-key lock file;
/// - ETags change on every write: they encode the file's inode, size and a modification time set
///   under that lock, strictly later than the replaced file's;
/// - listing is in lexicographic UTF-8 byte order with prefix, delimiter and pagination.
///
/// Internal state lives in `<root>/.strata-internal/`, which never appears in listings.
public final class FileStore: ObjectStore, Sendable {
    public let root: URL
    private let internalDir: String
    private let tmpDir: String
    private let lockDir: String

    public var location: String { "file://" + root.path }

    public static let internalName = ".strata-internal"

    /// Counts object bytes copied in and out (for progress display).
    public var meter: TransferMeter? {
        get { _meter.withLock { $0 } }
        set { _meter.withLock { $0 = newValue } }
    }
    private let _meter = Mutex<TransferMeter?>(nil)

    /// Opens (and creates) a store rooted at `root`. Temporary files older than an hour, left by
    /// a crashed writer, are removed.
    public init(root: URL) throws {
        self.root = root.standardizedFileURL
        internalDir = self.root.path + "/" + FileStore.internalName
        tmpDir = internalDir + "/tmp"
        lockDir = internalDir + "/locks"
        for dir in [self.root.path, internalDir, tmpDir, lockDir] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw StoreError(
                    .io, operation: "OpenStore", key: nil, message: "cannot create \(dir): \(error)",
                    hint: "check that the directory is writable by this user")
            }
        }
        sweepTemporaries(olderThan: 3600)
    }

    // MARK: keys

    private func path(for key: String, operation: String) throws -> String {
        func bad(_ why: String) -> StoreError {
            StoreError(
                .invalidRequest, operation: operation, key: key, message: "key \(why)",
                hint: "the file store accepts keys of non-empty segments separated by \"/\", "
                    + "without \".\" or \"..\" segments")
        }
        if key.isEmpty { throw bad("is empty") }
        if key.utf8.contains(0) { throw bad("contains a NUL byte") }
        if key.hasPrefix("/") || key.hasSuffix("/") { throw bad("starts or ends with \"/\"") }
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        for s in segments {
            if s.isEmpty { throw bad("has an empty segment (\"//\")") }
            if s == "." || s == ".." { throw bad("has a \".\" or \"..\" segment") }
            if s.utf8.count > 255 { throw bad("has a segment longer than 255 bytes") }
        }
        if segments[0] == FileStore.internalName { throw bad("uses the reserved \(FileStore.internalName)/") }
        return root.path + "/" + key
    }

    private func lockPath(for key: String) -> String { lockDir + "/" + SHA256.hex(key) }

    /// Runs `body` holding an exclusive lock for `key`, across processes.
    private func withKeyLock<T>(_ key: String, operation: String, _ body: () throws -> T) throws -> T {
        let fd = open(lockPath(for: key), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError(operation, key, "cannot open its lock file") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw ioError(operation, key, "cannot lock") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private func ioError(_ operation: String, _ key: String?, _ what: String, code: Int32 = errno) -> StoreError {
        StoreError(
            .io, operation: operation, key: key, message: "\(what): \(String(cString: strerror(code)))",
            hint: "check the permissions and free space of \(root.path)")
    }

    // MARK: metadata

    private static func etag(of st: stat) -> String {
        let mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return "\"" + String(st.st_ino, radix: 16) + "-" + String(st.st_size, radix: 16) + "-"
            + String(mtimeNs, radix: 16) + "\""
    }

    func statRegular(_ path: String) -> stat? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return st
    }

    func info(key: String, st: stat) -> ObjectInfo {
        ObjectInfo(
            key: key, size: Int64(st.st_size), etag: FileStore.etag(of: st),
            lastModified: Date(
                timeIntervalSince1970: Double(st.st_mtim.tv_sec)
                    + Double(st.st_mtim.tv_nsec) / 1e9))
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        let p = try path(for: key, operation: "HeadObject")
        guard let st = statRegular(p) else { return nil }
        return info(key: key, st: st)
    }

    // MARK: read

    public func get(_ key: String, toFile dest: String, range: Range<Int64>?) throws -> ObjectInfo {
        let p = try path(for: key, operation: "GetObject")
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR || errno == EISDIR { throw notFound("GetObject", key) }
            throw ioError("GetObject", key, "cannot open")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw notFound("GetObject", key) }
        let size = Int64(st.st_size)
        var start: Int64 = 0
        var end = size
        if let range {
            guard range.lowerBound >= 0, range.lowerBound < max(size, 1), range.upperBound > range.lowerBound else {
                throw StoreError(
                    .invalidRequest, operation: "GetObject", key: key, status: 416,
                    code: "InvalidRange", message: "range \(range) is outside the object (\(size) bytes)")
            }
            start = range.lowerBound
            end = min(range.upperBound, size)
        }
        let tmp = dest + ".part-" + Hex.encode(SecureRandom.bytes(6))
        let out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw ioError("GetObject", key, "cannot create \(tmp)") }
        var ok = false
        defer {
            close(out)
            if !ok { unlink(tmp) }
        }
        try copyRange(from: fd, to: out, start: start, end: end, operation: "GetObject", key: key)
        guard rename(tmp, dest) == 0 else { throw ioError("GetObject", key, "cannot rename into \(dest)") }
        ok = true
        return info(key: key, st: st)
    }

    public func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        let p = try path(for: key, operation: "GetObject")
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR || errno == EISDIR { throw notFound("GetObject", key) }
            throw ioError("GetObject", key, "cannot open")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw notFound("GetObject", key) }
        let h = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        let data = try h.readToEnd() ?? Data()
        return (data, info(key: key, st: st))
    }

    private func notFound(_ op: String, _ key: String) -> StoreError {
        StoreError(
            .notFound, operation: op, key: key, code: "NoSuchKey",
            message: "no such object in \(location)")
    }

    private func copyRange(
        from fd: Int32, to out: Int32, start: Int64, end: Int64, operation: String,
        key: String, digest: Digest? = nil
    ) throws {
        let bufSize = 1 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 16)
        defer { buf.deallocate() }
        var offset = start
        while offset < end {
            let want = Int(min(Int64(bufSize), end - offset))
            let n = pread(fd, buf, want, off_t(offset))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(operation, key, "read failed")
            }
            if n == 0 { break }
            digest?.update(UnsafeRawBufferPointer(start: buf, count: n))
            meter?.add(Int64(n))
            var written = 0
            while written < n {
                let w = write(out, buf + written, n - written)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw ioError(operation, key, "write failed")
                }
                written += w
            }
            offset += Int64(n)
        }
    }

    // MARK: write

    public func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws
        -> ObjectInfo
    {
        let dest = try path(for: key, operation: "PutObject")
        let tmp = tmpDir + "/" + Hex.encode(SecureRandom.bytes(12))
        let out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw ioError("PutObject", key, "cannot create a temporary file") }
        var renamed = false
        var sha = ""
        defer { if !renamed { unlink(tmp) } }
        do {
            defer { close(out) }
            let digest = Digest(.sha256)
            switch body {
            case .data(let data):
                try data.withUnsafeBytes { raw in
                    digest.update(raw)
                    var written = 0
                    while written < raw.count {
                        let w = write(out, raw.baseAddress! + written, raw.count - written)
                        if w < 0 {
                            if errno == EINTR { continue }
                            throw ioError("PutObject", key, "write failed")
                        }
                        written += w
                    }
                }
            case .file(let src):
                let fd = open(src, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    throw StoreError(
                        .io, operation: "PutObject", key: key,
                        message: "cannot read the source file \(src): \(String(cString: strerror(errno)))")
                }
                defer { close(fd) }
                var st = stat()
                fstat(fd, &st)
                try copyRange(
                    from: fd, to: out, start: 0, end: Int64(st.st_size), operation: "PutObject",
                    key: key, digest: digest)
            }
            sha = digest.finalizeHex()
            if let expected = options.sha256 {
                let actual = sha
                if actual != expected.lowercased() {
                    throw StoreError(
                        .integrity, operation: "PutObject", key: key, code: "BadDigest",
                        message: "the body's SHA-256 is \(actual), the caller said \(expected)",
                        hint: "the source changed while it was uploaded; upload it again")
                }
            }
            guard fsync(out) == 0 else { throw ioError("PutObject", key, "fsync failed") }
        }
        return try withKeyLock(key, operation: "PutObject") {
            let existing = statRegular(dest)
            switch condition {
            case .none: break
            case .ifNoneMatch:
                if existing != nil { throw precondition(key, "the key already exists") }
            case .ifMatch(let etag):
                guard let existing else { throw precondition(key, "the key does not exist") }
                if FileStore.etag(of: existing) != etag {
                    throw precondition(key, "its ETag is \(FileStore.etag(of: existing)), not \(etag)")
                }
            }
            // Give the new file a modification time strictly after the one it replaces, so its ETag
            // differs even when the inode number is reused within the clock's resolution.
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            if let existing, (now.tv_sec, now.tv_nsec) <= (existing.st_mtim.tv_sec, existing.st_mtim.tv_nsec) {
                now = existing.st_mtim
                now.tv_nsec += 1
                if now.tv_nsec >= 1_000_000_000 {
                    now.tv_sec += 1
                    now.tv_nsec -= 1_000_000_000
                }
            }
            var times = [now, now]
            utimensat(AT_FDCWD, tmp, &times, 0)
            try renameIntoPlace(tmp, dest, key: key)
            renamed = true
            guard let st = statRegular(dest) else { throw ioError("PutObject", key, "vanished after rename") }
            var result = info(key: key, st: st)
            result.sha256 = sha
            return result
        }
    }

    private func precondition(_ key: String, _ why: String) -> StoreError {
        StoreError(
            .preconditionFailed, operation: "PutObject", key: key, code: "PreconditionFailed",
            message: "the write's condition does not hold: \(why)",
            hint: "another writer changed this object; read it again and retry")
    }

    private func renameIntoPlace(_ tmp: String, _ dest: String, key: String) throws {
        let parent = (dest as NSString).deletingLastPathComponent
        for _ in 0..<5 {
            if rename(tmp, dest) == 0 {
                fsyncDirectory(parent)
                return
            }
            let e = errno
            guard e == ENOENT || e == ENOTDIR else { throw ioError("PutObject", key, "cannot rename", code: e) }
            // A parent is missing (or a concurrent delete pruned it): create it and try again.
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw StoreError(
                    .invalidRequest, operation: "PutObject", key: key,
                    message: "cannot create its directory: \(error)",
                    hint: "a key cannot be both an object and a prefix of other keys in the file store")
            }
        }
        throw ioError("PutObject", key, "cannot rename after retries")
    }

    private func fsyncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    // MARK: delete

    public func delete(_ key: String) throws {
        let p = try path(for: key, operation: "DeleteObject")
        try withKeyLock(key, operation: "DeleteObject") {
            if unlink(p) != 0 && errno != ENOENT && errno != ENOTDIR {
                throw ioError("DeleteObject", key, "cannot delete")
            }
        }
        pruneEmptyParents(of: p)
    }

    public func delete(keys: [String]) throws -> [DeleteFailure] {
        var failures: [DeleteFailure] = []
        for key in keys {
            do { try delete(key) } catch let e as StoreError {
                failures.append(DeleteFailure(key: key, code: e.code ?? e.kind.rawValue, message: e.message))
            }
        }
        return failures
    }

    private func pruneEmptyParents(of path: String) {
        var dir = (path as NSString).deletingLastPathComponent
        while dir.count > root.path.count, dir.hasPrefix(root.path + "/") {
            if rmdir(dir) != 0 { return }
            dir = (dir as NSString).deletingLastPathComponent
        }
    }

    // MARK: list (FileStore+Listing.swift)

    // MARK: housekeeping

    private func sweepTemporaries(olderThan seconds: TimeInterval) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: tmpDir) else { return }
        let cutoff = Date().timeIntervalSince1970 - seconds
        for name in names {
            var st = stat()
            let p = tmpDir + "/" + name
            if lstat(p, &st) == 0, Double(st.st_mtim.tv_sec) < cutoff { unlink(p) }
        }
    }
}
