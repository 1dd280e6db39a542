import Foundation
import StrataCore
import StrataCrypto
import StrataDelta

/// A snapshot version as published: its manifest, and where its file was put locally.
public struct LocatedSnapshot: Sendable {
    public var collection: String
    public var version: String
    public var manifest: SnapshotManifest
    /// The pointer's ETag when the version came from the pointer.
    public var pointerETag: String?
    /// Local copy of `snapshot.sqlite3`, verified against the manifest.
    public var path: String
}

/// Finds a collection's current (or a named) version and fetches its snapshot file, verified
/// against the manifest (a page version is materialized from its base and patches). Read-only: used by `snapctl` get, query, show, verify
/// and rollback.
public struct SnapshotLocator {
    public let store: any ObjectStore
    public let layout: Layout

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    /// The version the pointer names, with the pointer's ETag; nil when there is no pointer.
    public func pointer(_ collection: String) throws -> (version: String, etag: String)? {
        try Pointer.read(from: store, layout: layout, collection: collection)
    }

    public func manifest(_ collection: String, version: String) throws -> SnapshotManifest {
        try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: version)
    }

    /// Downloads `version` (default: the pointer's) into `directory` and verifies it.
    public func fetch(_ collection: String, version: String? = nil, into directory: String) throws -> LocatedSnapshot {
        var etag: String? = nil
        var v = version
        if v == nil {
            guard let p = try pointer(collection) else {
                throw StrataError(
                    .notFound, object: layout.pointerKey(collection),
                    message: "collection \(collection) has no published version",
                    fix: "produce runs and run `snapctl compact --collection \(collection)`")
            }
            v = p.version
            etag = p.etag
        }
        let m = try manifest(collection, version: v!)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/\(collection)-\(v!).sqlite3"
        // A whole-file version's snapshot.sqlite3, or a page version's base and patches, each checked
        // against the manifest, and the result against its page root.
        var materializer = VersionMaterializer(store: store, layout: layout)
        try materializer.materialize(m, to: path, hashList: nil, scratch: directory)
        return LocatedSnapshot(collection: collection, version: v!, manifest: m, pointerETag: etag, path: path)
    }

    /// Collections in the store: the top-level prefixes that have a snapshot or deltas.
    public func collections() throws -> [String] {
        let (_, prefixes) = try store.listDirectory(prefix: layout.prefix)
        return prefixes.compactMap { p -> String? in
            let name = String(p.dropFirst(layout.prefix.count).dropLast())
            return (try? Layout.validate(collection: name)) == nil ? nil : name
        }
    }

    /// Version ids under `{c}/snapshot/timestamped/`, oldest first (they sort by time). Taken
    /// from the objects present, not from common prefixes: some servers (SeaweedFS) keep reporting
    /// a "directory" after its last object is deleted.
    public func versions(_ collection: String) throws -> [String] {
        let base = layout.versionsPrefix(collection)
        var ids = Set<String>()
        for o in try store.list(prefix: base) {
            if let v = layout.version(ofVersionObject: o.key, collection: collection) { ids.insert(v) }
        }
        return ids.sorted()
    }
}
