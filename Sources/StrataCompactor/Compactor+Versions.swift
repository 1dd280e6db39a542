import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages

// How the compactor gets a version's file: from its objects, checked against the manifest
// (Docs/design/0002-page-patch-versions.md, "Materialization").
extension Compactor {
    /// What the cache records as the identity of `m`'s file: a page version's result root, a
    /// whole-file version's SHA-256.
    static func identity(of m: SnapshotManifest, key: String) throws -> String {
        if let result = m.result { return result.pageRoot }
        guard let entry = m.file(snapshotFileName) else {
            throw StrataError(.corrupt, object: key, field: "files", message: "lists no \(snapshotFileName)")
        }
        return entry.sha256
    }

    /// The base a patch on `m` builds on: `m`'s own base, or for a whole-file version its file
    /// (a base with no patches) with the page-hash root the compactor computed when it read it.
    func parentBaseEntry(_ m: SnapshotManifest, root: String, pageCount: UInt32, pageSize: Int) throws -> ManifestBase {
        if let base = m.base { return base }
        let key = layout.manifestKey(collection: m.collection, version: m.version)
        guard let entry = m.file(Compactor.snapshotFileName) else {
            throw StrataError(.corrupt, object: key, field: "files", message: "lists no \(Compactor.snapshotFileName)")
        }
        return ManifestBase(
            key: layout.versionFileKey(collection: m.collection, version: m.version, file: entry.name),
            size: entry.size, sha256: entry.sha256, pageSize: pageSize, pageCount: pageCount,
            pageRoot: root)
    }

    /// Downloads one object of `m` to `path`, checked against the manifest's size and SHA-256. A
    /// short read is transient (retried); a missing or different object is named by key and field.
    func download(
        _ ref: VersionObjectRef, of m: SnapshotManifest, to path: String,
        summary: inout CompactionSummary
    ) throws {
        let mKey = layout.manifestKey(collection: m.collection, version: m.version)
        let fix =
            "the published version is damaged; run `snapctl verify --collection \(m.collection) --deep` "
            + "and `snapctl rollback` to a good version"
        let got: ObjectInfo
        do {
            got = try store.get(ref.key, toFile: path)
        } catch let e as StoreError where e.kind == .notFound {
            unlink(path)
            throw StrataError(
                .notFound, object: ref.key, field: ref.name,
                message: "is missing; version \(m.version) needs it (\(mKey))", fix: fix)
        }
        let onDisk = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? -1
        guard onDisk == got.size else {
            unlink(path)
            throw StoreError(
                .transient, operation: "GetObject", key: ref.key,
                message: "read \(onDisk) of the object's \(got.size) bytes (a short read)")
        }
        // A store that verified the download against its recorded SHA-256 (S3 does) checked it already.
        let (sha, size): (String, Int64)
        if let verified = got.sha256, verified == ref.sha256, got.size == ref.size {
            (sha, size) = (verified, got.size)
        } else {
            (sha, size) = try SHA256.hexOfFile(atPath: path)
        }
        summary.bytesDownloaded += size
        guard sha == ref.sha256, size == ref.size else {
            unlink(path)
            throw StrataError(
                .corrupt, object: ref.key, field: size == ref.size ? "\(ref.name).sha256" : "\(ref.name).size",
                message: "is \(size) bytes with SHA-256 \(sha); \(mKey) says \(ref.size) bytes, \(ref.sha256)",
                fix: fix)
        }
    }

    /// Materializes `m` into the cache's working file and builds its page-hash list: a whole-file
    /// version is downloaded; a page version is its base with its chain applied (the base is hashed
    /// while it is copied), and the result must have the manifest's page root.
    func materialize(_ m: SnapshotManifest, into cache: SnapshotCache, summary: inout CompactionSummary) throws
        -> PageHashList
    {
        cache.discardSnapshot()
        cache.keepPatches([])
        let mKey = layout.manifestKey(collection: m.collection, version: m.version)
        let objects = m.objects(layout: layout)
        guard let first = objects.first else {
            throw StrataError(.corrupt, object: mKey, field: "files", message: "lists no \(Compactor.snapshotFileName)")
        }
        if !m.isPageVersion {
            guard let entry = m.file(Compactor.snapshotFileName),
                let ref = objects.first(where: { $0.name == entry.name })
            else {
                throw StrataError(
                    .corrupt, object: mKey, field: "files", message: "lists no \(Compactor.snapshotFileName)")
            }
            try download(ref, of: m, to: cache.snapshotPath, summary: &summary)
            return try PageHashList.build(database: cache.snapshotPath, to: cache.hashListPath)
        }
        let result = m.result!
        func wrongRoot(_ got: [UInt8], _ count: UInt32, object: String) -> StrataError {
            StrataError(
                .corrupt, object: object, field: "result.pageRoot",
                message: "the materialized file has root \(Hex.encode(got).prefix(12))... with \(count) pages; "
                    + "\(mKey) says \(result.pageRoot.prefix(12))... with \(result.pageCount)",
                fix: "the version is damaged; run `snapctl verify --collection \(m.collection) --deep`")
        }
        // The base is downloaded into the working file and the chain (if any) applied in place, no
        // copy of the file: the base's page root is checked against the chain's first patch, each
        // patch is verified in full before a page is written, and the result against the manifest.
        let patches = objects.dropFirst()
        try download(first, of: m, to: cache.snapshotPath, summary: &summary)
        var sources: [PagePatchSource] = []
        for p in patches {
            let path = cache.patchPath(sha256: p.sha256)
            try download(p, of: m, to: path, summary: &summary)
            sources.append(PagePatchSource(path: path, object: p.key))
        }
        do {
            let list = try PageHashList.build(database: cache.snapshotPath, to: cache.hashListPath)
            if !sources.isEmpty {
                try PagePatchChain.apply(sources, onto: cache.snapshotPath, baseObject: first.key, hashes: list)
            }
            guard Hex.encode(list.root) == result.pageRoot, list.pageCount == result.pageCount else {
                throw wrongRoot(list.root, list.pageCount, object: patches.last?.key ?? first.key)
            }
            return list
        } catch {
            cache.discardSnapshot()
            throw error
        }
    }

    /// A local copy of one patch of `m`'s chain (to merge it): the cache's, or downloaded and checked.
    func localPatch(
        _ p: ManifestPatch, of m: SnapshotManifest, cache: SnapshotCache,
        summary: inout CompactionSummary
    ) throws -> String {
        let path = cache.patchPath(sha256: p.sha256)
        if FileManager.default.fileExists(atPath: path) { return path }
        guard let ref = m.objects(layout: layout).first(where: { $0.key == p.key && $0.role == .patch }) else {
            throw StrataError(
                .corrupt, object: layout.manifestKey(collection: m.collection, version: m.version),
                field: "patches", message: "does not list \(p.key)")
        }
        try download(ref, of: m, to: path, summary: &summary)
        return path
    }
}
