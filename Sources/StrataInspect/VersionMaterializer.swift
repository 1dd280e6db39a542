import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages

/// Turns a version's objects into the plain SQLite file (Docs/FORMATS.md, "Materializing a
/// version"): a whole-file version is its `snapshot.sqlite3`; a page version is its base with its
/// patches applied in order. Everything downloaded is checked against the manifest (size and
/// SHA-256 of every object) and the result against the manifest's page root, so what it returns
/// is the version or an error that names the object and the field.
public struct VersionMaterializer {
    public let store: any ObjectStore
    public let layout: Layout
    /// Counts what was downloaded (bytes, objects), for `pull` and the tests.
    public private(set) var downloadedBytes: Int64 = 0
    public private(set) var downloadedObjects = 0

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    func manifestKey(_ m: SnapshotManifest) -> String {
        layout.manifestKey(collection: m.collection, version: m.version)
    }

    func fix(_ m: SnapshotManifest) -> String {
        "run `snapctl verify --collection \(m.collection) --deep`; if the version is damaged, "
            + "`snapctl rollback \(m.collection) VERSION --reason R` to a good one"
    }

    /// Downloads one object of `m` to `path` and checks its size and SHA-256 against the manifest.
    public mutating func download(_ ref: VersionObjectRef, of m: SnapshotManifest, to path: String) throws {
        do {
            _ = try store.get(ref.key, toFile: path)
        } catch let e as StoreError where e.kind == .notFound {
            unlink(path)
            throw StrataError(
                .notFound, object: ref.key, field: ref.name,
                message: "is missing: version \(m.version) of \(m.collection) needs it (\(manifestKey(m)))",
                fix: fix(m))
        }
        let (sha, size) = try SHA256.hexOfFile(atPath: path)
        downloadedBytes += size
        downloadedObjects += 1
        guard size == ref.size, sha == ref.sha256 else {
            unlink(path)
            throw StrataError(
                .corrupt, object: ref.key, field: size == ref.size ? "\(ref.name).sha256" : "\(ref.name).size",
                message:
                    "is \(size) bytes with SHA-256 \(sha); \(manifestKey(m)) says \(ref.size) bytes, \(ref.sha256)",
                fix: fix(m))
        }
    }

    /// Materializes `m` into `output` (written whole or not at all) with its page-hash list at
    /// `hashList` (nil: none kept; a whole-file version gets one only when asked). `scratch` is a
    /// directory for downloads. `localBase`, when given, is a local file already known to be the
    /// base (same SHA-256): it is copied, not downloaded.
    public mutating func materialize(
        _ m: SnapshotManifest, to output: String, hashList: String?, scratch: String, localBase: String? = nil
    ) throws {
        let partial = output + ".partial"
        var ok = false
        var temporary: [String] = [partial]
        defer {
            if !ok { unlink(partial) }
            for t in temporary.dropFirst() { unlink(t) }
        }
        let objects = m.objects(layout: layout)
        guard let base = m.base else {
            // A whole-file version: its one snapshot file.
            guard let file = objects.first(where: { $0.name == SnapshotFormat.fileName }) else {
                throw StrataError(
                    .corrupt, object: manifestKey(m), field: "files",
                    message: "lists no \(SnapshotFormat.fileName)", fix: fix(m))
            }
            try download(file, of: m, to: partial)
            if let hashList { _ = try PageHashList.build(database: partial, to: hashList) }
            try rename(partial, output)
            ok = true
            return
        }
        let baseRef = objects[0]
        let patches = Array(objects.dropFirst())
        var basePath: String
        if let localBase {
            basePath = localBase
        } else {
            basePath = scratch + "/base-\(UUID().uuidString)"
            temporary.append(basePath)
            try download(baseRef, of: m, to: basePath)
        }
        var chain: [PagePatchSource] = []
        for p in patches {
            let path = scratch + "/patch-\(UUID().uuidString)"
            temporary.append(path)
            try download(p, of: m, to: path)
            chain.append(PagePatchSource(path: path, object: p.key))
        }
        let listPath = hashList ?? scratch + "/hashes-\(UUID().uuidString)"
        if hashList == nil { temporary.append(listPath) }
        let result: PagePatchApplyResult
        if localBase == nil {
            // The downloaded base becomes the result: hash its pages, then apply in place (no copy).
            let hashes = try PageHashList.build(database: basePath, to: listPath)
            try checkBase(hashes, m, base)
            result = try PagePatchChain.apply(chain, onto: basePath, hashes: hashes)
            try rename(basePath, partial)
        } else {
            result = try PagePatchChain.materialize(
                base: basePath, baseObject: base.key, chain: chain, to: partial,
                hashList: listPath)
        }
        try checkResult(result, m, file: partial)
        try rename(partial, output)
        ok = true
    }

    /// Applies the patches of `m` from index `from` onwards in place to `file`, which holds the
    /// file those patches start from (a cached older version, copied), with its page-hash list.
    public mutating func applyTail(
        _ m: SnapshotManifest, from: Int, onto file: String, hashList: String, scratch: String
    ) throws {
        let objects = Array(m.objects(layout: layout).dropFirst(1 + from))
        var temporary: [String] = []
        defer { for t in temporary { unlink(t) } }
        var chain: [PagePatchSource] = []
        for p in objects {
            let path = scratch + "/patch-\(UUID().uuidString)"
            temporary.append(path)
            try download(p, of: m, to: path)
            chain.append(PagePatchSource(path: path, object: p.key))
        }
        let hashes = try PageHashList.open(path: hashList)
        let result = try PagePatchChain.apply(chain, onto: file, hashes: hashes)
        try checkResult(result, m, file: file)
    }

    func checkBase(_ hashes: PageHashList, _ m: SnapshotManifest, _ base: ManifestBase) throws {
        let root = Hex.encode(hashes.root)
        guard root == base.pageRoot, hashes.pageCount == base.pageCount, hashes.pageSize == base.pageSize else {
            throw StrataError(
                .corrupt, object: base.key, field: "base.pageRoot",
                message:
                    "has page root \(root) (\(hashes.pageCount) pages of \(hashes.pageSize) B); \(manifestKey(m)) says "
                    + "\(base.pageRoot) (\(base.pageCount) pages of \(base.pageSize) B)",
                fix: fix(m))
        }
    }

    func checkResult(_ r: PagePatchApplyResult, _ m: SnapshotManifest, file: String) throws {
        guard let result = m.result else { return }
        let root = Hex.encode(r.root)
        guard root == result.pageRoot, r.pageCount == result.pageCount, r.pageSize == result.pageSize else {
            throw StrataError(
                .corrupt, object: manifestKey(m), field: "result.pageRoot",
                message: "says \(result.pageRoot) (\(result.pageCount) pages); the materialized file has \(root) "
                    + "(\(r.pageCount) pages)",
                fix: fix(m))
        }
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int64 ?? -1
        guard size == result.size else {
            throw StrataError(
                .corrupt, object: manifestKey(m), field: "result.size",
                message: "says \(result.size) bytes; the materialized file has \(size)", fix: fix(m))
        }
        if let sha = result.sha256, !(m.patches ?? []).isEmpty {
            let (got, _) = try SHA256.hexOfFile(atPath: file)
            guard got == sha else {
                throw StrataError(
                    .corrupt, object: manifestKey(m), field: "result.sha256",
                    message: "says \(sha); the materialized file has \(got)", fix: fix(m))
            }
        }
    }

    func rename(_ from: String, _ to: String) throws {
        guard Foundation.rename(from, to) == 0 else {
            throw StrataError(
                .io, object: to, message: "cannot rename \(from) to it: \(String(cString: strerror(errno)))")
        }
    }
}
