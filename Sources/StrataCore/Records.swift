import Foundation

/// JSON as Strata writes it: sorted keys (stable bytes), ISO-8601 dates with milliseconds.
public enum StrataJSON {
    public static func encoder(pretty: Bool = true) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting =
            pretty
            ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            : [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(iso8601(date))
        }
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = parseISO8601(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO-8601 date: \(s)")
            }
            return date
        }
        return d
    }

    public static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    public static func parseISO8601(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }

    /// Decodes `T` from `data`, turning any failure into a `StrataError` that names `object`.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, object: String) throws -> T {
        do {
            return try decoder().decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw StrataError(
                .corrupt, object: object, field: path(ctx.codingPath + [key]),
                message: "is missing", fix: "the object was not written by a compatible Strata")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw StrataError(
                .corrupt, object: object, field: path(ctx.codingPath),
                message: "has the wrong type: \(ctx.debugDescription)")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw StrataError(
                .corrupt, object: object, field: ctx.codingPath.isEmpty ? nil : path(ctx.codingPath),
                message: "is not valid: \(ctx.debugDescription)")
        } catch {
            throw StrataError(.corrupt, object: object, message: "is not valid JSON: \(error)")
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// The atomic pointer's body: the version, one line.
public enum Pointer {
    /// The version `collection`'s pointer names and the pointer's ETag; nil when there is none.
    public static func read(from store: any ObjectStore, layout: Layout, collection: String) throws
        -> (version: String, etag: String)?
    {
        let key = layout.pointerKey(collection)
        guard let (data, info) = try store.getDataIfExists(key) else { return nil }
        return (try parse(data, key: key), info.etag)
    }

    public static func body(version: String) -> Data { Data((version + "\n").utf8) }

    public static func parse(_ data: Data, key: String) throws -> String {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Identifiers.isValid(text) else {
            throw StrataError(
                .corrupt, object: key,
                message: "does not hold a version id (found \(text.prefix(80).debugDescription))",
                fix:
                    "restore it with `snapctl rollback \(Layout.collection(ofPointerKey: key) ?? "COLLECTION") VERSION --reason R` "
                    + "(`snapctl verify` names the newest complete version); never delete it: "
                    + "a collection without its pointer cannot be compacted")
        }
        return text
    }
}

/// One file of a snapshot version.
public struct FileEntry: Codable, Sendable, Equatable {
    public var name: String
    public var size: Int64
    public var sha256: String
    public init(name: String, size: Int64, sha256: String) {
        self.name = name
        self.size = size
        self.sha256 = sha256
    }
}

/// What one applied run did to a collection, recorded in the version that applied it.
public struct AppliedRun: Codable, Sendable, Equatable {
    public var runId: String
    public var upserts: Int
    public var deletes: Int
    /// Upserted ids that were not in the snapshot before.
    public var newIds: Int
    /// Deleted ids that were in the snapshot before.
    public var deletedExisting: Int
    /// Upserts and deletes that did not take effect because a later run had written the id
    /// (SPEC invariant 4). Absent in versions made before snapshot format 2.
    public var superseded: Int?
    public init(runId: String, upserts: Int, deletes: Int, newIds: Int, deletedExisting: Int, superseded: Int? = nil) {
        self.runId = runId
        self.upserts = upserts
        self.deletes = deletes
        self.newIds = newIds
        self.deletedExisting = deletedExisting
        self.superseded = superseded
    }
}

/// Who made a version.
public struct VersionCreator: Codable, Sendable, Equatable {
    public var compactorId: String
    public var host: String
    public var strataVersion: String
    public init(compactorId: String, host: String, strataVersion: String) {
        self.compactorId = compactorId
        self.host = host
        self.strataVersion = strataVersion
    }
}

/// `manifest.json` of a snapshot version, uploaded after its files.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    public static let formatName = "strata-snapshot"
    /// The newest major format version this build reads.
    public static let currentMajor = 2
    /// Format of a whole-file version (`files`), what every Strata reads.
    public static let wholeFileMajor = 1
    /// Format of a page version (`layout: "pages"`: `base`, `patches`, `result`).
    public static let pagesMajor = 2

    public var format: String
    public var formatVersion: Int
    public var collection: String
    public var version: String
    public var parentVersion: String?
    public var createdAt: Date
    public var dimension: Int
    public var rowCount: Int
    public var files: [FileEntry]
    public var appliedRuns: [AppliedRun]
    /// Runs whose effects this version drops (a rollback); they are not applied again unless requeued.
    public var rolledBackRuns: [String]?
    /// Runs whose effects this version drops and that are pending again (a rollback with --requeue):
    /// their application in older versions no longer counts.
    public var requeuedRuns: [String]?
    /// Why this version exists when it is not a plain compaction (e.g. "rollback to V: reason").
    public var note: String?
    public var createdBy: VersionCreator
    /// Format 2 only: `"pages"`, a base file plus a chain of page patches (Records+Pages.swift).
    public var layout: String?
    /// Format 2 only: the whole SQLite file the chain starts from.
    public var base: ManifestBase?
    /// Format 2 only: the page patches, in the order they apply (empty for a version that is a new base).
    public var patches: [ManifestPatch]?
    /// Format 2 only: what identifies the materialized file.
    public var result: ManifestResult?

    /// A whole-file version (format 1, `files`); pass `base`, `patches` and `result` for a page version
    /// (format 2, `layout: "pages"`, `files` empty).
    public init(
        collection: String, version: String, parentVersion: String?, createdAt: Date, dimension: Int,
        rowCount: Int, files: [FileEntry], appliedRuns: [AppliedRun], rolledBackRuns: [String]? = nil,
        requeuedRuns: [String]? = nil, note: String? = nil, createdBy: VersionCreator,
        base: ManifestBase? = nil, patches: [ManifestPatch]? = nil, result: ManifestResult? = nil
    ) {
        format = SnapshotManifest.formatName
        formatVersion = base == nil ? SnapshotManifest.wholeFileMajor : SnapshotManifest.pagesMajor
        layout = base == nil ? nil : SnapshotManifest.pagesLayout
        self.base = base
        self.patches = base == nil ? patches : (patches ?? [])
        self.result = result
        self.collection = collection
        self.version = version
        self.parentVersion = parentVersion
        self.createdAt = createdAt
        self.dimension = dimension
        self.rowCount = rowCount
        self.files = files
        self.appliedRuns = appliedRuns
        self.rolledBackRuns = rolledBackRuns
        self.requeuedRuns = requeuedRuns
        self.note = note
        self.createdBy = createdBy
    }

    public func file(_ name: String) -> FileEntry? { files.first { $0.name == name } }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        collection = try c.decode(String.self, forKey: .collection)
        version = try c.decode(String.self, forKey: .version)
        parentVersion = try c.decodeIfPresent(String.self, forKey: .parentVersion)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        dimension = try c.decode(Int.self, forKey: .dimension)
        rowCount = try c.decode(Int.self, forKey: .rowCount)
        layout = try c.decodeIfPresent(String.self, forKey: .layout)
        // A page version may leave `files` out; a whole-file version must list them.
        files =
            formatVersion >= SnapshotManifest.pagesMajor
            ? try c.decodeIfPresent([FileEntry].self, forKey: .files) ?? []
            : try c.decode([FileEntry].self, forKey: .files)
        appliedRuns = try c.decode([AppliedRun].self, forKey: .appliedRuns)
        rolledBackRuns = try c.decodeIfPresent([String].self, forKey: .rolledBackRuns)
        requeuedRuns = try c.decodeIfPresent([String].self, forKey: .requeuedRuns)
        note = try c.decodeIfPresent(String.self, forKey: .note)
        createdBy = try c.decode(VersionCreator.self, forKey: .createdBy)
        base = try c.decodeIfPresent(ManifestBase.self, forKey: .base)
        patches = try c.decodeIfPresent([ManifestPatch].self, forKey: .patches)
        result = try c.decodeIfPresent(ManifestResult.self, forKey: .result)
    }

    /// Reads and checks the manifest of `collection`'s `version`: it must exist and name itself.
    public static func fetch(from store: any ObjectStore, layout: Layout, collection: String, version: String) throws
        -> SnapshotManifest
    {
        let key = layout.manifestKey(collection: collection, version: version)
        guard let (data, _) = try store.getDataIfExists(key) else {
            throw StrataError(
                .notFound, object: key, message: "version \(version) of \(collection) has no manifest",
                fix:
                    "run `snapctl verify --collection \(collection)`; list versions with `snapctl versions \(collection)`"
            )
        }
        let m = try decode(data, key: key)
        guard m.collection == collection, m.version == version else {
            throw StrataError(
                .corrupt, object: key, field: "collection/version",
                message: "names \(m.collection)/\(m.version), not \(collection)/\(version)")
        }
        try m.checkKeys(layout: layout, key: key)
        return m
    }

    /// Parses and checks a manifest read from `key`.
    public static func decode(_ data: Data, key: String) throws -> SnapshotManifest {
        try decode(data, key: key, readsUpTo: currentMajor)
    }

    /// `decode(_:key:)` as a build that reads majors up to `readsUpTo` (tests use 1 to check what an
    /// older reader says about a page version).
    static func decode(_ data: Data, key: String, readsUpTo: Int) throws -> SnapshotManifest {
        struct Head: Decodable {
            var format: String?
            var formatVersion: Int?
        }
        let head = try StrataJSON.decode(Head.self, from: data, object: key)
        guard head.format == formatName else {
            throw StrataError(
                .corrupt, object: key, field: "format",
                message: "is \(head.format.map { "\"\($0)\"" } ?? "missing"), expected \"\(formatName)\"")
        }
        guard let v = head.formatVersion, v <= readsUpTo else {
            throw StrataError(
                .unsupportedVersion, object: key, field: "formatVersion",
                message: "is \(head.formatVersion.map(String.init) ?? "missing"); this Strata reads up to \(readsUpTo)",
                fix: "upgrade snapctl to a release that reads format version \(head.formatVersion ?? 0)")
        }
        guard v >= 1 else {
            throw StrataError(
                .corrupt, object: key, field: "formatVersion", message: "is \(v); format versions start at 1")
        }
        let m = try StrataJSON.decode(SnapshotManifest.self, from: data, object: key)
        try m.checkLayout(key: key)
        return m
    }
}

/// `{collection}/quarantine/{run_id}.json`: why a run could not be applied to a collection.
public struct QuarantineRecord: Codable, Sendable, Equatable {
    public var formatVersion: Int = 1
    public var runId: String
    public var collection: String
    public var deltaKey: String?
    /// A short machine-readable cause: missingDelta, checksumMismatch, tooLarge, dimensionMismatch,
    /// wrongRun, unsupportedVersion, invalidDelta, or a bundle problem (pathTraversal, symlink,
    /// expansionLimit, truncated, corrupt, ...; see StrataBundle's BundleError.Reason).
    public var reason: String
    /// The error in words.
    public var detail: String
    public var quarantinedAt: Date
    public var compactorId: String

    public init(
        runId: String, collection: String, deltaKey: String?, reason: String, detail: String,
        quarantinedAt: Date, compactorId: String
    ) {
        self.runId = runId
        self.collection = collection
        self.deltaKey = deltaKey
        self.reason = reason
        self.detail = detail
        self.quarantinedAt = quarantinedAt
        self.compactorId = compactorId
    }
}

/// `{collection}/snapshot/lease.json`: a compactor's claim on a collection. It only saves wasted
/// work; correctness rests on the pointer's conditional write.
public struct Lease: Codable, Sendable, Equatable {
    public var owner: String
    public var host: String
    /// The owner's process id on `host`: a compactor on the same host takes over a lease whose
    /// process is gone (crashed, killed) without waiting for it to expire.
    public var pid: Int32?
    public var acquiredAt: Date
    public var expiresAt: Date

    public init(owner: String, host: String, pid: Int32? = nil, acquiredAt: Date, expiresAt: Date) {
        self.owner = owner
        self.host = host
        self.pid = pid
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
    }
}
