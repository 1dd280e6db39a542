import Foundation
import StrataCore
import StrataDelta

extension SnapshotReader {
    /// Opens `collection`'s pointer version (or `version`) through the reader cache: a repeated
    /// read of an unchanged version downloads only the pointer and the manifest. Keep `cached`
    /// until the reader is closed (it holds the file against eviction).
    public static func open(_ collection: String, version: String? = nil, cache: ReaderCache) throws
        -> (reader: SnapshotReader, cached: CachedVersion)
    {
        let cached = try cache.open(collection, version: version)
        let reader = try checked(
            path: cached.path, collection: collection, manifest: cached.manifest,
            object: "snapshot \(cached.path) (\(collection)/\(cached.version))")
        return (reader, cached)
    }

    /// Opens a version written by the compactor's `--publish-dir` (no store).
    public static func open(_ collection: String, version: String? = nil, directory: PublishDirectory) throws
        -> (reader: SnapshotReader, snapshot: LocatedSnapshot)
    {
        let (v, path, m) = try directory.locate(collection, version: version)
        let reader = try checked(path: path, collection: collection, manifest: m, object: "snapshot \(path)")
        return (reader, LocatedSnapshot(collection: collection, version: v, manifest: m, pointerETag: nil, path: path))
    }

    static func checked(path: String, collection: String, manifest: SnapshotManifest, object: String) throws
        -> SnapshotReader
    {
        let reader = try SnapshotReader(path: path)
        guard reader.collection == collection else {
            throw StrataError(
                .corrupt, object: object, field: "meta.collection",
                message: "is \(reader.collection), expected \(collection)")
        }
        guard reader.dimension == manifest.dimension else {
            throw StrataError(
                .corrupt, object: object, field: "meta.dimension",
                message: "is \(reader.dimension); the manifest says \(manifest.dimension)")
        }
        return reader
    }
}
