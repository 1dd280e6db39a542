import Foundation

// Format 2 of the snapshot manifest: a version stored as a base file plus an ordered chain of page
// patches (Docs/design/0002-page-patch-versions.md, Docs/FORMATS.md "Page versions"). Hashes and
// page-hash roots are 64 lowercase hex digits.

/// The whole SQLite file a page version's chain starts from: a content-addressed
/// `{c}/snapshot/objects/{sha256}.sqlite3`, or a whole-file version's `timestamped/{v}/snapshot.sqlite3`.
public struct ManifestBase: Codable, Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var sha256: String
    public var pageSize: Int
    public var pageCount: UInt32
    /// The page-hash root of the base (StrataPages' `PageHashList`).
    public var pageRoot: String

    public init(key: String, size: Int64, sha256: String, pageSize: Int, pageCount: UInt32, pageRoot: String) {
        self.key = key
        self.size = size
        self.sha256 = sha256
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.pageRoot = pageRoot
    }
}

/// One page patch of a chain: `{c}/snapshot/objects/{sha256}.strpatch`.
public struct ManifestPatch: Codable, Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var sha256: String
    /// The page-hash root of the file the patch applies to.
    public var fromRoot: String
    /// The page-hash root of the file it produces.
    public var toRoot: String
    /// The page count of the file it produces.
    public var pageCount: UInt32
    /// How many pages (frames) the patch holds.
    public var frames: Int
    /// True for a merge of several patches (the chain policy counts them apart); absent for one merge's.
    public var merged: Bool?

    public init(
        key: String, size: Int64, sha256: String, fromRoot: String, toRoot: String, pageCount: UInt32,
        frames: Int, merged: Bool? = nil
    ) {
        self.merged = merged
        self.key = key
        self.size = size
        self.sha256 = sha256
        self.fromRoot = fromRoot
        self.toRoot = toRoot
        self.pageCount = pageCount
        self.frames = frames
    }
}

/// What identifies the materialized file of a page version.
public struct ManifestResult: Codable, Sendable, Equatable {
    public var pageSize: Int
    public var pageCount: UInt32
    public var pageRoot: String
    /// Bytes of the materialized file (`pageSize * pageCount`).
    public var size: Int64
    /// Present only when the whole file was hashed: on a version that is a new base.
    public var sha256: String?

    public init(pageSize: Int, pageCount: UInt32, pageRoot: String, size: Int64, sha256: String? = nil) {
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.pageRoot = pageRoot
        self.size = size
        self.sha256 = sha256
    }
}

/// One object a version needs, with what the manifest says about it.
public struct VersionObjectRef: Sendable, Equatable {
    public enum Role: String, Sendable {
        /// A file of a whole-file version (format 1).
        case file
        /// The base of a page version.
        case base
        /// A page patch of a page version.
        case patch
    }
    public var key: String
    public var size: Int64
    public var sha256: String
    public var role: Role
    /// `snapshot.sqlite3`, `base`, or `patch[i]`: how errors and findings name it.
    public var name: String
}

extension SnapshotManifest {
    public static let pagesLayout = "pages"

    /// True for a page version (format 2, `layout: "pages"`).
    public var isPageVersion: Bool { layout == SnapshotManifest.pagesLayout }

    /// Every object the version needs, in the order a reader uses them (the manifest itself excluded):
    /// a whole-file version's files, or a page version's base and then its patches.
    public func objects(layout: Layout) -> [VersionObjectRef] {
        if let base {
            return [VersionObjectRef(key: base.key, size: base.size, sha256: base.sha256, role: .base, name: "base")]
                + (patches ?? []).enumerated().map {
                    VersionObjectRef(
                        key: $1.key, size: $1.size, sha256: $1.sha256, role: .patch, name: "patches[\($0)]")
                }
        }
        return files.map {
            VersionObjectRef(
                key: layout.versionFileKey(collection: collection, version: version, file: $0.name),
                size: $0.size, sha256: $0.sha256, role: .file, name: $0.name)
        }
    }

    /// The keys of `objects(layout:)`; with `includingManifest`, the manifest's key last.
    public func objectKeys(layout: Layout, includingManifest: Bool = false) -> [String] {
        objects(layout: layout).map(\.key)
            + (includingManifest ? [layout.manifestKey(collection: collection, version: version)] : [])
    }

    /// Bytes of the materialized snapshot file: `result.size`, or a whole-file version's
    /// `snapshot.sqlite3` (the sum of its files when it lists none by that name).
    public var materializedSize: Int64 {
        result?.size ?? files.first { $0.name == "snapshot.sqlite3" }?.size ?? files.reduce(0) { $0 + $1.size }
    }

    /// Bytes a cold reader downloads: every object of the version.
    public var storedSize: Int64 {
        if let base { return base.size + (patches ?? []).reduce(0) { $0 + $1.size } }
        return files.reduce(0) { $0 + $1.size }
    }

    /// The structural checks of a decoded manifest (no store access): a whole-file version has files
    /// and no chain; a page version has a base, patches and a result that link root to root.
    func checkLayout(key: String) throws {
        func bad(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: key, field: field, message: message,
                fix: "the manifest was not written by a compatible Strata; "
                    + "`snapctl verify --collection \(collection)` names the newest usable version")
        }
        if formatVersion < SnapshotManifest.pagesMajor {
            if layout != nil || base != nil || patches != nil || result != nil {
                throw bad(
                    "layout", "a format \(formatVersion) manifest has no page layout (layout, base, patches, result)")
            }
            return
        }
        guard layout == SnapshotManifest.pagesLayout else {
            throw bad(
                "layout", "is \(layout.map { "\"\($0)\"" } ?? "missing"); format \(formatVersion) needs \"pages\"")
        }
        guard let base else { throw bad("base", "is missing") }
        guard let patches else { throw bad("patches", "is missing") }
        guard let result else { throw bad("result", "is missing") }
        guard Layout.isSHA256Hex(base.sha256) else { throw bad("base.sha256", "is not 64 lowercase hex digits") }
        guard Layout.isSHA256Hex(base.pageRoot) else { throw bad("base.pageRoot", "is not 64 lowercase hex digits") }
        guard Layout.isSHA256Hex(result.pageRoot) else {
            throw bad("result.pageRoot", "is not 64 lowercase hex digits")
        }
        if let sha = result.sha256, !Layout.isSHA256Hex(sha) {
            throw bad("result.sha256", "is not 64 lowercase hex digits")
        }
        for (field, size) in [("base.pageSize", base.pageSize), ("result.pageSize", result.pageSize)] {
            guard size >= 512, size <= 65536, size & (size - 1) == 0 else {
                throw bad(field, "is \(size); an SQLite page size is a power of two from 512 to 65536")
            }
        }
        guard base.pageSize == result.pageSize else {
            throw bad(
                "result.pageSize", "is \(result.pageSize); the base's is \(base.pageSize) (a chain keeps its page size)"
            )
        }
        guard base.size == Int64(base.pageSize) * Int64(base.pageCount) else {
            throw bad(
                "base.size", "is \(base.size); pageSize x pageCount is \(Int64(base.pageSize) * Int64(base.pageCount))")
        }
        guard result.size == Int64(result.pageSize) * Int64(result.pageCount) else {
            throw bad(
                "result.size",
                "is \(result.size); pageSize x pageCount is \(Int64(result.pageSize) * Int64(result.pageCount))")
        }
        var root = base.pageRoot
        var pageCount = base.pageCount
        for (i, p) in patches.enumerated() {
            guard Layout.isSHA256Hex(p.sha256) else {
                throw bad("patches[\(i)].sha256", "is not 64 lowercase hex digits")
            }
            guard Layout.isSHA256Hex(p.toRoot) else {
                throw bad("patches[\(i)].toRoot", "is not 64 lowercase hex digits")
            }
            guard p.fromRoot == root else {
                throw bad(
                    "patches[\(i)].fromRoot",
                    "is \(p.fromRoot.prefix(12))...; the file before it has root "
                        + "\(root.prefix(12))... (the chain is out of order or has a gap)")
            }
            guard p.size > 0, p.frames >= 0 else {
                throw bad("patches[\(i)].size", "is \(p.size) bytes, \(p.frames) frames")
            }
            root = p.toRoot
            pageCount = p.pageCount
        }
        guard result.pageRoot == root, result.pageCount == pageCount else {
            throw bad(
                "result.pageRoot",
                "is \(result.pageRoot.prefix(12))... with \(result.pageCount) pages; the chain "
                    + "ends at \(root.prefix(12))... with \(pageCount) pages")
        }
        if patches.isEmpty, let sha = result.sha256, sha != base.sha256 {
            throw bad("result.sha256", "differs from base.sha256 in a version with no patches (the result is the base)")
        }
    }

    /// The checks that need the layout: every object of a page version is this collection's, and a
    /// content-addressed object's key names the SHA-256 the manifest gives it.
    public func checkKeys(layout: Layout, key: String) throws {
        guard let base else { return }
        func bad(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: key, field: field, message: message,
                fix: "the manifest was not written by a compatible Strata; "
                    + "`snapctl verify --collection \(collection)` names the newest usable version")
        }
        if let obj = layout.versionObject(fromKey: base.key, collection: collection) {
            guard obj.kind == .base, obj.sha256 == base.sha256 else {
                throw bad("base.key", "is \(base.key), which does not name a base with SHA-256 \(base.sha256)")
            }
        } else {
            let versions = layout.versionsPrefix(collection)
            let rest = base.key.hasPrefix(versions) ? base.key.dropFirst(versions.count).split(separator: "/") : []
            guard rest.count == 2, Identifiers.isValid(String(rest[0])), rest[1].hasSuffix(".sqlite3") else {
                throw bad(
                    "base.key",
                    "is \(base.key); a base is under \(layout.objectsPrefix(collection)) "
                        + "or a version's file under \(versions)")
            }
        }
        for (i, p) in (patches ?? []).enumerated() {
            guard let obj = layout.versionObject(fromKey: p.key, collection: collection), obj.kind == .patch,
                obj.sha256 == p.sha256
            else {
                throw bad(
                    "patches[\(i)].key", "is \(p.key); expected \(layout.objectsPrefix(collection))\(p.sha256).strpatch"
                )
            }
        }
    }
}
