import Foundation
import StrataCore

/// Publishes one version in the protocol's order (Docs/design/0001, SPEC "A version in the store"):
/// every object first, the manifest last with If-None-Match, then the pointer with a conditional
/// write. Used by the compactor and by rollback, so the sequence exists once.
///
/// Objects under `{c}/snapshot/objects/` are content-addressed: an If-None-Match that fails
/// there means the same bytes are already stored (an earlier round that crashed, or another
/// compactor that made the same patch), which is success. Any other object and the manifest must
/// be new. A pointer write that fails its condition is `VersionPublisher.PointerConflict`: nothing
/// was lost, the version is complete but unreferenced (gc removes it after the grace period).
public struct VersionPublisher {
    public let store: any ObjectStore
    public let layout: Layout

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    /// One local file to upload under `key`.
    public struct Object: Sendable {
        public var key: String
        public var path: String
        public var contentType: String
        /// Hex SHA-256 of the file when known (the store then skips its own pass).
        public var sha256: String?

        public init(key: String, path: String, contentType: String, sha256: String? = nil) {
            self.key = key
            self.path = path
            self.contentType = contentType
            self.sha256 = sha256
        }
    }

    /// Another writer moved the pointer since it was read.
    public struct PointerConflict: Error {
        public let pointerKey: String
    }

    public struct Published: Sendable {
        /// Bytes sent: the objects actually uploaded and the manifest.
        public var bytesUploaded: Int64 = 0
        /// Content-addressed objects that were already in the store (not sent again).
        public var objectsAlreadyStored: [String] = []
    }

    /// Uploads `objects`, then `manifest`, then moves the pointer with `pointerCondition`
    /// (`.ifMatch(etag)` of the pointer read, or `.ifNoneMatch` for a collection's first version).
    /// `step` is called after the objects ("after-objects") and after the manifest ("after-upload"):
    /// the compactor's fault-injection points.
    public func publish(
        objects: [Object], manifest: SnapshotManifest, pointerCondition: WriteCondition,
        step: (String) -> Void = { _ in }
    ) throws -> Published {
        var out = Published()
        let c = manifest.collection
        for o in objects {
            do {
                let info = try store.put(
                    o.key, file: o.path, condition: .ifNoneMatch,
                    options: PutOptions(contentType: o.contentType, sha256: o.sha256))
                out.bytesUploaded += info.size
            } catch let e as StoreError
                where e.kind == .preconditionFailed
                && layout.versionObject(fromKey: o.key, collection: c) != nil
            {
                out.objectsAlreadyStored.append(o.key)
            }
        }
        step("after-objects")
        let data = try StrataJSON.encoder().encode(manifest)
        try store.put(
            layout.manifestKey(collection: c, version: manifest.version), data: data,
            condition: .ifNoneMatch, options: PutOptions(contentType: "application/json"))
        out.bytesUploaded += Int64(data.count)
        step("after-upload")
        let pointerKey = layout.pointerKey(c)
        do {
            try store.put(
                pointerKey, data: Pointer.body(version: manifest.version), condition: pointerCondition,
                options: PutOptions(contentType: "text/plain"))
        } catch let e as StoreError where e.kind == .preconditionFailed {
            throw PointerConflict(pointerKey: pointerKey)
        }
        return out
    }
}
