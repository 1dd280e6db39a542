import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages

#if canImport(Glibc)
    import Glibc
#endif

/// Settings of the reader cache (Docs/FORMATS.md, "Reader cache").
public struct ReaderCacheSettings: Sendable {
    /// `$STRATA_CACHE_DIR`, default `~/.cache/strata`.
    public var directory: String
    /// Bytes of materialized versions (and their page-hash lists) kept on this host, all stores
    /// and collections together; the least recently used go first. `$STRATA_CACHE_MAX_BYTES`.
    /// The version being served is never evicted, so one version larger than this still works.
    public var maxBytes: Int64
    /// Re-hash a cached file's pages on every hit (a full read) instead of checking its size and
    /// identity only. Materialization always checks in full.
    public var verifyHits: Bool

    public static let defaultMaxBytes: Int64 = 8 << 30

    public init(directory: String, maxBytes: Int64 = ReaderCacheSettings.defaultMaxBytes, verifyHits: Bool = false) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.verifyHits = verifyHits
    }

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws
        -> ReaderCacheSettings
    {
        let dir =
            env["STRATA_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (env["HOME"] ?? NSHomeDirectory()) + "/.cache/strata"
        var s = ReaderCacheSettings(directory: dir)
        if let raw = env["STRATA_CACHE_MAX_BYTES"], !raw.isEmpty {
            guard let n = ByteCount.parse(raw), n > 0 else {
                throw StrataError(
                    .invalidInput, object: "STRATA_CACHE_MAX_BYTES", message: "is \(raw.debugDescription)",
                    fix: "give a size such as 10G, 500M or 1073741824")
            }
            s.maxBytes = n
        }
        return s
    }
}

/// "10G", "500M", "64K" or bytes.
public enum ByteCount {
    public static func parse(_ s: String) -> Int64? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int64)] = [
            ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("G", 1 << 30),
            ("M", 1 << 20), ("K", 1 << 10), ("B", 1),
        ]
        for (u, f) in units where t.hasSuffix(u) {
            return Int64(t.dropLast(u.count)).map { $0 * f }
        }
        return Int64(t)
    }
}

/// A version served by the cache: a verified plain SQLite file that stays in place (a shared lock
/// keeps eviction away) until `close()`. Open it read-only; never write to it.
public final class CachedVersion {
    public let collection: String
    public let version: String
    public let manifest: SnapshotManifest
    /// The pointer's ETag when the version came from the pointer.
    public let pointerETag: String?
    public let path: String
    /// How the file was obtained: `cached`, `patches` (applied to an older cached version),
    /// `base` (a cached file was the base), `cold` (every object downloaded), `directory`.
    public let source: String
    /// Bytes and objects of the version downloaded to serve it (the pointer and manifest excluded).
    public let downloadedBytes: Int64
    public let downloadedObjects: Int
    private var fd: Int32

    init(
        collection: String, version: String, manifest: SnapshotManifest, pointerETag: String?, path: String,
        source: String, downloadedBytes: Int64, downloadedObjects: Int, fd: Int32
    ) {
        self.collection = collection
        self.version = version
        self.manifest = manifest
        self.pointerETag = pointerETag
        self.path = path
        self.source = source
        self.downloadedBytes = downloadedBytes
        self.downloadedObjects = downloadedObjects
        self.fd = fd
    }

    public var located: LocatedSnapshot {
        LocatedSnapshot(
            collection: collection, version: version, manifest: manifest, pointerETag: pointerETag, path: path)
    }

    /// Releases the lock; the cache may then evict the file.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

/// What the cache remembers about a materialized version: `{version}.json` beside its file,
/// written last, so an entry without it is a leftover of a crash and is removed.
struct CacheEntry: Codable, Equatable {
    var version: String
    /// `pages:{pageRoot}:{pageCount}` for a page version, `file:{sha256}` for a whole-file one.
    var identity: String
    var size: Int64
    var pageRoot: String?
    var pageCount: UInt32?
    var sha256: String?

    init(_ m: SnapshotManifest) {
        version = m.version
        identity = CacheEntry.identity(m)
        size = m.materializedSize
        pageRoot = m.result?.pageRoot
        pageCount = m.result?.pageCount
        sha256 = m.result?.sha256 ?? (m.base == nil ? m.file(SnapshotFormat.fileName)?.sha256 : nil)
        if let base = m.base, (m.patches ?? []).isEmpty { sha256 = base.sha256 }
    }

    static func identity(_ m: SnapshotManifest) -> String {
        if let r = m.result { return "pages:\(r.pageRoot):\(r.pageCount)" }
        return "file:\(m.file(SnapshotFormat.fileName)?.sha256 ?? "")"
    }
}

/// The local cache readers share (`snapctl pull`, `query`, `get`; Docs/FORMATS.md "Reader cache").
///
/// `{dir}/readers/{store}/{collection}/` holds `lock`, `tmp/` and, per materialized version, `v/{version}.sqlite3`,
/// `v/{version}.pagehashes` (the page-hash list a later patch is applied with) and `v/{version}.json`.
/// `{store}` is a hash of the store's location and prefix, so two stores never mix.
///
/// - A reader holding version N (any cached version whose page root a patch of the wanted version
///   starts from) copies it and downloads only the patches after it; a cached file that is the
///   wanted version's base is copied instead of downloading the base; otherwise every object.
/// - What it serves is verified: every downloaded object's size and SHA-256 against the manifest,
///   the result's page root (and size) against the manifest; on a hit, the entry's identity and
///   the file's size (`verifyHits`: the page root again).
/// - Several readers on one host: materialization holds an exclusive `flock` on the collection's
///   `lock` (one download per version, the others wait and then hit); files are written in `tmp/`
///   and renamed into place, the entry's JSON last, so a partial file is never served; a served
///   file holds a shared `flock` that eviction respects (it takes an exclusive one without waiting).
/// - Size bound: after a materialization, least recently served entries (JSON mtime) are evicted
///   until the cache fits `maxBytes`.
public final class ReaderCache {
    public let store: any ObjectStore
    public let layout: Layout
    public let settings: ReaderCacheSettings
    /// Pin the version while downloading it (SPEC 14), for this many seconds; nil: no pin.
    public var pinTTL: TimeInterval?
    /// Called with a warning (e.g. a pin could not be written); never with a secret.
    public var warn: (String) -> Void = { _ in }

    let root: String

    public init(store: any ObjectStore, layout: Layout, settings: ReaderCacheSettings, pinTTL: TimeInterval? = nil) {
        self.store = store
        self.layout = layout
        self.settings = settings
        self.pinTTL = pinTTL
        let ns = SHA256.hex(store.location + "#" + layout.prefix).prefix(16)
        root = settings.directory + "/readers/" + ns
    }

    func collectionDirectory(_ c: String) -> String { "\(root)/\(c)" }

    /// The pointer's version (or `version`) of `collection`, materialized and verified. Costs the
    /// pointer and the manifest when the version is cached.
    public func open(_ collection: String, version: String? = nil) throws -> CachedVersion {
        try Layout.validate(collection: collection)
        var etag: String? = nil
        var v = version
        if v == nil {
            guard let p = try Pointer.read(from: store, layout: layout, collection: collection) else {
                throw StrataError(
                    .notFound, object: layout.pointerKey(collection),
                    message: "collection \(collection) has no published version",
                    fix: "produce runs and run `snapctl compact --collection \(collection)`")
            }
            v = p.version
            etag = p.etag
        }
        let m = try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: v!)
        return try open(m, pointerETag: etag)
    }

    /// Serves the version `m` describes (a manifest already read and checked).
    public func open(_ m: SnapshotManifest, pointerETag: String? = nil) throws -> CachedVersion {
        let dir = collectionDirectory(m.collection)
        try makeDirectory(dir + "/v")
        try makeDirectory(dir + "/tmp")
        if let hit = try lookup(m, pointerETag: pointerETag) { return hit }

        let lock = try FileLock(path: dir + "/lock", exclusive: true)
        defer { lock.release() }
        if let hit = try lookup(m, pointerETag: pointerETag) { return hit }  // another reader made it meanwhile
        try cleanLeftovers(dir)

        var pin: PinRecord? = nil
        if let ttl = pinTTL {
            do {
                pin = try ReaderPins(store: store, layout: layout).pin(
                    m.collection, version: m.version, ttl: ttl,
                    reason: "reading")
            } catch {
                warn("could not pin \(m.collection)/\(m.version) while reading (\(error)); continuing without a pin")
            }
        }
        defer {
            if let pin { try? ReaderPins(store: store, layout: layout).remove(m.collection, pinId: pin.pinId) }
        }
        let (source, bytes, objects) = try materialize(m, dir: dir)
        guard let served = try lookup(m, pointerETag: pointerETag, source: source, bytes: bytes, objects: objects)
        else {
            throw StrataError(
                .io, object: entryPath(dir, m.version, "sqlite3"),
                message: "was materialized but is gone (evicted at once?)",
                fix: "check STRATA_CACHE_MAX_BYTES and the cache directory \(settings.directory)")
        }
        try evict(keeping: served.path)
        return served
    }

    func entryPath(_ dir: String, _ version: String, _ ext: String) -> String { "\(dir)/v/\(version).\(ext)" }

    func readEntry(_ path: String) -> CacheEntry? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? StrataJSON.decoder().decode(CacheEntry.self, from: data)
    }

    /// The cached version, held with a shared lock, when the cache has it and it matches `m`.
    func lookup(
        _ m: SnapshotManifest, pointerETag: String?, source: String = "cached", bytes: Int64 = 0,
        objects: Int = 0
    ) throws -> CachedVersion? {
        let dir = collectionDirectory(m.collection)
        let json = entryPath(dir, m.version, "json")
        let file = entryPath(dir, m.version, "sqlite3")
        guard let entry = readEntry(json) else { return nil }
        guard let fd = openShared(file) else { return nil }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_nlink > 0, FileManager.default.fileExists(atPath: json) else { return nil }
        guard entry.identity == CacheEntry.identity(m), Int64(st.st_size) == m.materializedSize else {
            // Not this version (a store was reset, or the file was damaged): drop it and materialize again.
            warn("cached \(file) does not match the manifest of \(m.collection)/\(m.version); downloading it again")
            Glibc.close(fd)
            ok = true
            try? removeEntry(dir, m.version)
            return nil
        }
        if settings.verifyHits, source == "cached" {
            let good: Bool
            if let root = entry.pageRoot {
                good = (try? Hex.encode(PageHashList.root(ofDatabase: file))) == root
            } else {
                good = (try? SHA256.hexOfFile(atPath: file).hex) == entry.sha256
            }
            if !good {
                warn("cached \(file) failed its check; downloading \(m.collection)/\(m.version) again")
                Glibc.close(fd)
                ok = true
                try? removeEntry(dir, m.version)
                return nil
            }
        }
        // Least recently used: the entry's mtime is when it was last served.
        utimes(json, nil)
        ok = true
        return CachedVersion(
            collection: m.collection, version: m.version, manifest: m, pointerETag: pointerETag,
            path: file, source: source, downloadedBytes: bytes, downloadedObjects: objects, fd: fd)
    }

    /// Opens `path` with a shared lock; nil when it does not exist.
    func openShared(_ path: String) -> Int32? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_SH) == 0 else {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    /// Materializes `m` into the cache (the caller holds the collection's lock).
    func materialize(_ m: SnapshotManifest, dir: String) throws -> (String, Int64, Int) {
        let tmp = dir + "/tmp"
        let stem = "\(tmp)/\(m.version)-\(getpid())-\(UUID().uuidString.prefix(8))"
        let outFile = stem + ".sqlite3"
        let outList = stem + ".pagehashes"
        defer {
            unlink(outFile)
            unlink(outList)
            unlink(outFile + ".partial")
        }
        var mat = VersionMaterializer(store: store, layout: layout)
        var source = "cold"
        let entries = cachedEntries(dir)
        if let base = m.base {
            let patches = m.patches ?? []
            // The newest point of the chain a cached version stands at (a reader holding version N).
            var best: (entry: CacheEntry, from: Int)? = nil
            for e in entries
            where e.pageRoot != nil && FileManager.default.fileExists(atPath: entryPath(dir, e.version, "pagehashes")) {
                let roots = patches.map(\.fromRoot) + [m.result!.pageRoot]
                let counts = [base.pageCount] + patches.map(\.pageCount)
                if let i = roots.lastIndex(of: e.pageRoot!), counts[i] == e.pageCount, i > (best?.from ?? -1) {
                    best = (e, i)
                }
            }
            if let best, let fd = openShared(entryPath(dir, best.entry.version, "sqlite3")) {
                defer { Glibc.close(fd) }
                try copy(entryPath(dir, best.entry.version, "sqlite3"), to: outFile)
                try copy(entryPath(dir, best.entry.version, "pagehashes"), to: outList)
                do {
                    try mat.applyTail(m, from: best.from, onto: outFile, hashList: outList, scratch: tmp)
                    source = "patches"
                } catch let e as StrataError where e.kind == .io {
                    throw e
                } catch {
                    // A patch is missing or damaged, or the cached file did not take it: start from the
                    // base (which names a damaged object again if that is what it was).
                    warn(
                        "patches of \(m.version) on cached \(best.entry.version) failed (\(error)); "
                            + "materializing from the base")
                    unlink(outFile)
                    unlink(outList)
                }
            }
            if source == "cold" {
                let local = entries.first { $0.sha256 == base.sha256 && $0.size == base.size }
                if let local, let fd = openShared(entryPath(dir, local.version, "sqlite3")) {
                    defer { Glibc.close(fd) }
                    try mat.materialize(
                        m, to: outFile, hashList: outList, scratch: tmp,
                        localBase: entryPath(dir, local.version, "sqlite3"))
                    source = "base"
                } else {
                    try mat.materialize(m, to: outFile, hashList: outList, scratch: tmp)
                }
            }
        } else {
            // A whole-file version; its page-hash list lets a later page version build on it.
            try mat.materialize(m, to: outFile, hashList: outList, scratch: tmp)
        }
        var entry = CacheEntry(m)
        if entry.pageRoot == nil, let list = try? PageHashList.open(path: outList) {
            entry.pageRoot = Hex.encode(list.root)
            entry.pageCount = list.pageCount
        }
        let jsonTmp = stem + ".json"
        try StrataJSON.encoder().encode(entry).write(to: URL(fileURLWithPath: jsonTmp))
        try rename(outList, entryPath(dir, m.version, "pagehashes"))
        try rename(outFile, entryPath(dir, m.version, "sqlite3"))
        try rename(jsonTmp, entryPath(dir, m.version, "json"))
        return (source, mat.downloadedBytes, mat.downloadedObjects)
    }

    func cachedEntries(_ dir: String) -> [CacheEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/v")) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { readEntry(dir + "/v/" + $0) }
    }

    /// Under the collection's lock: temporary files of crashed readers, files without their JSON.
    func cleanLeftovers(_ dir: String) throws {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/tmp")) ?? [] {
            unlink(dir + "/tmp/" + name)
        }
        let names = Set((try? FileManager.default.contentsOfDirectory(atPath: dir + "/v")) ?? [])
        for name in names where !name.hasSuffix(".json") {
            let stem = name.split(separator: ".").dropLast().joined(separator: ".")
            if !names.contains(stem + ".json") { unlink(dir + "/v/" + name) }
        }
    }

    /// Removes an entry if no reader holds it: JSON first (invisible), then its files.
    @discardableResult
    func removeEntry(_ dir: String, _ version: String) throws -> Bool {
        let file = entryPath(dir, version, "sqlite3")
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { Glibc.close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
            unlink(entryPath(dir, version, "json"))
            unlink(file)
        } else {
            unlink(entryPath(dir, version, "json"))
        }
        unlink(entryPath(dir, version, "pagehashes"))
        return true
    }

    /// Evicts least recently served entries (all stores and collections) until the cache fits.
    func evict(keeping: String) throws {
        struct Item {
            var dir: String
            var version: String
            var bytes: Int64
            var used: Date
        }
        var items: [Item] = []
        let fm = FileManager.default
        let top = settings.directory + "/readers"
        for ns in (try? fm.contentsOfDirectory(atPath: top)) ?? [] {
            for c in (try? fm.contentsOfDirectory(atPath: top + "/" + ns)) ?? [] {
                let dir = top + "/" + ns + "/" + c
                for name in (try? fm.contentsOfDirectory(atPath: dir + "/v")) ?? [] where name.hasSuffix(".json") {
                    let version = String(name.dropLast(5))
                    var bytes: Int64 = 0
                    for ext in ["sqlite3", "pagehashes"] {
                        bytes += (try? fm.attributesOfItem(atPath: entryPath(dir, version, ext))[.size] as? Int64) ?? 0
                    }
                    let used = (try? fm.attributesOfItem(atPath: dir + "/v/" + name)[.modificationDate] as? Date) ?? nil
                    items.append(Item(dir: dir, version: version, bytes: bytes, used: used ?? .distantPast))
                }
            }
        }
        var total = items.reduce(0) { $0 + $1.bytes }
        for item in items.sorted(by: { $0.used < $1.used }) where total > settings.maxBytes {
            if entryPath(item.dir, item.version, "sqlite3") == keeping { continue }
            if try removeEntry(item.dir, item.version) { total -= item.bytes }
        }
    }

    /// Bytes the cache holds now (materialized files and page-hash lists).
    public func totalBytes() -> Int64 {
        let fm = FileManager.default
        var total: Int64 = 0
        let top = settings.directory + "/readers"
        guard let e = fm.enumerator(atPath: top) else { return 0 }
        while let p = e.nextObject() as? String {
            guard p.hasSuffix(".sqlite3") || p.hasSuffix(".pagehashes") else { continue }
            total += (try? fm.attributesOfItem(atPath: top + "/" + p)[.size] as? Int64) ?? 0
        }
        return total
    }

    func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw StrataError(
                .io, object: path, message: "cannot create the reader cache directory: \(error)",
                fix: "set STRATA_CACHE_DIR to a writable directory")
        }
    }

    func copy(_ from: String, to: String) throws {
        unlink(to)
        do { try FileManager.default.copyItem(atPath: from, toPath: to) } catch {
            throw StrataError(
                .io, object: to, message: "cannot copy \(from): \(error)",
                fix: "check free space in \(settings.directory)")
        }
    }

    func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw StrataError(
                .io, object: to, message: "cannot rename \(from) to it: \(String(cString: strerror(errno)))")
        }
    }
}

/// An advisory `flock` on a lock file, released by `release()` or when the process ends.
final class FileLock {
    private var fd: Int32

    init(path: String, exclusive: Bool) throws {
        fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StrataError(
                .io, object: path, message: "cannot open the lock file: \(String(cString: strerror(errno)))",
                fix: "set STRATA_CACHE_DIR to a writable directory")
        }
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else {
                let e = String(cString: strerror(errno))
                Glibc.close(fd)
                throw StrataError(.io, object: path, message: "cannot lock it: \(e)")
            }
        }
    }

    func release() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { release() }
}
