import Foundation
import StrataCore
import StrataDelta

/// One row of a snapshot, copied out of SQLite.
public struct SnapshotRow: Sendable, Equatable {
    public var id: String
    public var embedding: [Float]
    public var document: String?
    /// The metadata JSON as stored (canonical, flat), or nil.
    public var metadata: String?

    public init(id: String, embedding: [Float], document: String?, metadata: String?) {
        self.id = id
        self.embedding = embedding
        self.document = document
        self.metadata = metadata
    }
}

/// A row during a scan: views into SQLite's buffers, valid only inside the scan's closure (the
/// next step reuses them). Copy what must outlive it (`idString`, `row()`).
public struct SnapshotRowView {
    /// The id's UTF-8 bytes.
    public let id: UnsafeRawBufferPointer
    /// The embedding BLOB: float32 little-endian; its length is checked against the dimension.
    public let embedding: UnsafeRawBufferPointer
    /// The document's UTF-8 bytes; nil when NULL or not asked for.
    public let document: UnsafeRawBufferPointer?
    /// The metadata JSON's UTF-8 bytes; nil when NULL or not asked for.
    public let metadata: UnsafeRawBufferPointer?

    public var idString: String { String(decoding: id, as: UTF8.self) }

    public func row() -> SnapshotRow {
        SnapshotRow(
            id: idString, embedding: SnapshotReader.floats(embedding),
            document: document.map { String(decoding: $0, as: UTF8.self) },
            metadata: metadata.map { String(decoding: $0, as: UTF8.self) })
    }
}

/// Reads a published snapshot file (SPEC "Snapshot"): checks its `meta`, looks rows up by id and
/// streams every row.
///
/// The file is opened read-only and `immutable` (no locks, no journal), with a small page cache
/// and memory mapping off, so a scan's memory stays at about `cacheKiB` whatever the snapshot's
/// size: rows are read one page at a time and handed out as views, never collected.
/// Not thread-safe: one reader per thread.
public final class SnapshotReader {
    public let path: String
    /// `meta.collection`.
    public let collection: String
    /// `meta.dimension`: every embedding is `dimension × 4` bytes.
    public let dimension: Int
    /// `meta.format_version` as written (e.g. "1").
    public let formatVersion: String
    /// `meta.version` (the version that wrote the file), when present.
    public let version: String?
    /// `meta.row_count`, when present (the manifest's count is authoritative).
    public let recordedRowCount: Int?

    private let db: Database
    private var lookup: Statement?

    /// Page cache for a reader: SQLite's default is 2 MiB as well; said here so it cannot grow.
    public static let defaultCacheKiB = 2048

    /// Opens `path`; throws `.unsupportedVersion` for a newer major format and `.corrupt` for a
    /// file that is not a Strata snapshot.
    public init(path: String, cacheKiB: Int = SnapshotReader.defaultCacheKiB) throws {
        self.path = path
        let object = "snapshot \(path)"
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw StrataError(.notFound, object: object, message: "no such file, or not readable")
        }
        do {
            db = try Database(path: path, mode: .readOnlyImmutable)
            // Bounded memory: a negative cache_size is in KiB; no mmap, so the whole file is never
            // mapped into the address space; temporary b-trees (none expected) go to disk.
            try db.execute("PRAGMA cache_size = -\(max(64, cacheKiB))")
            try db.execute("PRAGMA mmap_size = 0")
            try db.execute("PRAGMA temp_store = FILE")
            try db.execute("PRAGMA query_only = 1")
            let meta = try SnapshotReader.readMeta(db, object: object)
            guard meta["format"] == SnapshotFormat.name else {
                throw StrataError(
                    .corrupt, object: object, field: "meta.format",
                    message:
                        "is \(meta["format"].map { "\"\($0)\"" } ?? "missing"), expected \"\(SnapshotFormat.name)\"",
                    fix: "this is not a Strata snapshot; fetch it with `snapctl get`/`query`, or check the path")
            }
            guard let fv = meta["format_version"], let major = DeltaFormat.major(ofVersion: fv) else {
                throw StrataError(
                    .corrupt, object: object, field: "meta.format_version",
                    message:
                        "is \(meta["format_version"].map { "\"\($0)\"" } ?? "missing"), expected a version like \"1\"")
            }
            guard major <= SnapshotFormat.majorVersion else {
                throw StrataError(
                    .unsupportedVersion, object: object, field: "meta.format_version",
                    message: "is \(fv); this Strata reads snapshot format \(SnapshotFormat.majorVersion) and older",
                    fix: "upgrade snapctl to a release that reads snapshot format \(major)")
            }
            guard let c = meta["collection"], !c.isEmpty else {
                throw StrataError(.corrupt, object: object, field: "meta.collection", message: "is missing")
            }
            guard let d = meta["dimension"].flatMap({ Int($0) }), d > 0, d <= DeltaFormat.maxDimension else {
                throw StrataError(
                    .corrupt, object: object, field: "meta.dimension",
                    message: "is \(meta["dimension"] ?? "missing"), expected 1 to \(DeltaFormat.maxDimension)")
            }
            formatVersion = fv
            collection = c
            dimension = d
            version = meta["version"].flatMap { $0.isEmpty ? nil : $0 }
            recordedRowCount = meta["row_count"].flatMap { Int($0) }
            do {
                _ = try db.prepare("SELECT id, embedding, document, metadata FROM embeddings LIMIT 0")
            } catch let e as SQLiteError {
                throw StrataError(
                    .corrupt, object: object, field: "embeddings",
                    message: "has no table embeddings(id, embedding, document, metadata): \(e.message)")
            }
        } catch let e as SQLiteError {
            throw e.strataError
        }
    }

    private static func readMeta(_ db: Database, object: String) throws -> [String: String] {
        let s: Statement
        do {
            s = try db.prepare("SELECT key, value FROM meta")
        } catch let e as SQLiteError where e.primaryCode == 1 {  // SQLITE_ERROR: no such table (not NOTADB/CORRUPT)
            throw StrataError(
                .corrupt, object: object, field: "meta", message: "has no meta table: \(e.message)",
                fix: "this is not a Strata snapshot; check the path")
        }
        var out: [String: String] = [:]
        while try s.step() {
            if let k = s.columnText(0), let v = s.columnText(1) { out[k] = v }
        }
        return out
    }

    /// Releases the file. Later calls fail.
    public func close() throws {
        lookup = nil
        do { try db.close() } catch let e as SQLiteError { throw e.strataError }
    }

    /// Rows counted in the file.
    public func rowCount() throws -> Int {
        do { return Int(try db.scalarInt("SELECT count(*) FROM embeddings") ?? 0) } catch let e as SQLiteError {
            throw e.strataError
        }
    }

    /// The row with this id, or nil.
    public func row(id: String) throws -> SnapshotRow? {
        do {
            if lookup == nil {
                lookup = try db.prepare("SELECT id, embedding, document, metadata FROM embeddings WHERE id = ?")
            }
            let s = lookup!
            defer { s.reset() }
            try s.bind(1, text: id)
            guard try s.step() else { return nil }
            let view = try self.view(s, document: true, metadata: true)
            return view.row()
        } catch let e as SQLiteError {
            throw e.strataError
        }
    }

    /// The rows found for `ids`, in the order asked (each id once); ids not in the snapshot are
    /// left out: compare with the input to list them.
    public func rows(ids: [String]) throws -> [SnapshotRow] {
        var seen = Set<String>()
        var out: [SnapshotRow] = []
        for id in ids where seen.insert(id).inserted {
            if let r = try row(id: id) { out.append(r) }
        }
        return out
    }

    /// Which parts of a row a scan reads. Leaving out documents saves reading them (they can be
    /// large and are not needed to score).
    public struct ScanFields: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let document = ScanFields(rawValue: 1)
        public static let metadata = ScanFields(rawValue: 2)
        public static let all: ScanFields = [.document, .metadata]
    }

    /// Streams every row (in storage order) to `body`, which returns false to stop early. Each
    /// row's embedding length is checked. The views are valid only during the call.
    public func scan(fields: ScanFields = .all, _ body: (SnapshotRowView) throws -> Bool) throws {
        let columns =
            "id, embedding" + (fields.contains(.document) ? ", document" : ", NULL")
            + (fields.contains(.metadata) ? ", metadata" : ", NULL")
        do {
            let s = try db.prepare("SELECT \(columns) FROM embeddings")
            while try s.step() {
                let view = try self.view(s, document: fields.contains(.document), metadata: fields.contains(.metadata))
                if try !body(view) { break }
            }
        } catch let e as SQLiteError {
            throw e.strataError
        }
    }

    private func view(_ s: Statement, document: Bool, metadata: Bool) throws -> SnapshotRowView {
        let id = s.columnBytes(0)
        let embedding = s.columnBytes(1)
        guard embedding.count == dimension * 4 else {
            throw StrataError(
                .corrupt, object: "snapshot \(path)",
                field: "embeddings[\(String(decoding: id, as: UTF8.self))].embedding",
                message: "is \(embedding.count) bytes; dimension \(dimension) needs \(dimension * 4)",
                fix: "the snapshot is damaged; roll back to a good version")
        }
        let nullDocument = s.columnType(2) == SnapshotReader.sqliteNull
        let nullMetadata = s.columnType(3) == SnapshotReader.sqliteNull
        return SnapshotRowView(
            id: id, embedding: embedding,
            document: document && !nullDocument ? s.columnBytes(2) : nil,
            metadata: metadata && !nullMetadata ? s.columnBytes(3) : nil)
    }

    /// SQLITE_NULL, as `Statement.columnType` reports it (CSQLite is StrataDelta's to import).
    static let sqliteNull: Int32 = 5

    /// Float32 little-endian bytes as floats (the BLOB may not be aligned for Float).
    public static func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        let n = bytes.count / 4
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n {
                buf[i] = Float(
                    bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
            count = n
        }
    }
}

extension SnapshotReader {
    /// Fetches a collection's snapshot (the pointer's version, or `version`) into a new private
    /// directory under `temporaryDirectory` (default: $TMPDIR or /tmp), verifies it against its
    /// manifest, opens it, and removes the directory at once: the open file stays readable until
    /// the reader goes away, and nothing is left behind even if the process is killed later.
    /// Checks that the file's collection and dimension agree with the manifest.
    public static func fetch(
        _ collection: String, version: String? = nil, store: any ObjectStore, layout: Layout,
        temporaryDirectory: String? = nil
    ) throws -> (reader: SnapshotReader, snapshot: LocatedSnapshot) {
        let base = temporaryDirectory ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let dir = "\(base)/strata-snapshot-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(
            atPath: dir, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let located = try SnapshotLocator(store: store, layout: layout).fetch(collection, version: version, into: dir)
        let reader = try SnapshotReader(path: located.path)
        let key = layout.versionFileKey(collection: collection, version: located.version, file: SnapshotFormat.fileName)
        let object = "snapshot \(key)"
        guard reader.collection == collection else {
            throw StrataError(
                .corrupt, object: object, field: "meta.collection",
                message: "is \(reader.collection), expected \(collection)")
        }
        guard reader.dimension == located.manifest.dimension else {
            throw StrataError(
                .corrupt, object: object, field: "meta.dimension",
                message: "is \(reader.dimension); the manifest says \(located.manifest.dimension)")
        }
        return (reader, located)
    }
}
