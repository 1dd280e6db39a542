import Foundation

/// Keys of shared version objects (Docs/design/0002-page-patch-versions.md): bases and page
/// patches, content-addressed by their SHA-256 under `{c}/snapshot/objects/`.
extension Layout {
    public enum VersionObjectKind: String, Sendable, CaseIterable {
        /// A whole SQLite file that versions build on.
        case base = "sqlite3"
        /// A page patch (format `STRPATCH`).
        case patch = "strpatch"
    }

    public func objectsPrefix(_ collection: String) -> String { "\(snapshotPrefix(collection))objects/" }

    /// `{c}/snapshot/objects/{sha256}.{sqlite3|strpatch}`; `sha256` is 64 lowercase hex digits.
    public func versionObjectKey(collection: String, kind: VersionObjectKind, sha256: String) -> String {
        precondition(Layout.isSHA256Hex(sha256), "a version object is named by its SHA-256 in lowercase hex")
        return "\(objectsPrefix(collection))\(sha256).\(kind.rawValue)"
    }

    /// The kind and SHA-256 a version object key names, or nil for any other key.
    public func versionObject(fromKey key: String, collection: String) -> (kind: VersionObjectKind, sha256: String)? {
        let prefix = objectsPrefix(collection)
        guard key.hasPrefix(prefix) else { return nil }
        let name = key.dropFirst(prefix.count)
        guard let dot = name.firstIndex(of: "."),
            let kind = VersionObjectKind(rawValue: String(name[name.index(after: dot)...]))
        else { return nil }
        let sha = String(name[..<dot])
        return Layout.isSHA256Hex(sha) ? (kind, sha) : nil
    }

    static func isSHA256Hex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}
