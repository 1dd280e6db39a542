import CSQLite
import Foundation
import StrataCore

/// What a reader must find in a delta; nil fields are not checked.
public struct DeltaExpectation: Sendable, Equatable {
    public var collection: String?
    public var runId: String?
    /// The collection's dimension. A delta without upserts may say 0 and is accepted.
    public var dimension: Int?
    public var upserts: Int?
    public var deletes: Int?

    public init(
        collection: String? = nil, runId: String? = nil, dimension: Int? = nil, upserts: Int? = nil,
        deletes: Int? = nil
    ) {
        self.collection = collection
        self.runId = runId
        self.dimension = dimension
        self.upserts = upserts
        self.deletes = deletes
    }
}

/// What a delta says about itself (its `meta` table and row counts).
public struct DeltaInfo: Sendable, Equatable {
    public var formatVersion: String
    public var collection: String
    public var runId: String
    public var dimension: Int
    public var upserts: Int
    public var deletes: Int

    public init(formatVersion: String, collection: String, runId: String, dimension: Int, upserts: Int, deletes: Int) {
        self.formatVersion = formatVersion
        self.collection = collection
        self.runId = runId
        self.dimension = dimension
        self.upserts = upserts
        self.deletes = deletes
    }
}

/// Reads a delta written by any producer, treating it as untrusted input.
///
/// Opening checks the format and version, the schema, the meta values, the counts, that no id is
/// both upserted and deleted, and (by default) SQLite's `quick_check`. The cursors then stream
/// rows in id order (UTF-8 byte order), one row in memory at a time, and check each: a valid id,
/// ids strictly increasing, an embedding of exactly `dimension` finite float32 values, text
/// columns of valid UTF-8, metadata a flat JSON object (returned in canonical form).
///
/// Errors are `StrataError`: `.corrupt` for damaged or malformed files, `.unsupportedVersion`
/// for a newer major format, `.refused` for a delta that does not match what was expected.
public final class DeltaReader {
    public let path: String
    public let info: DeltaInfo
    private var db: Database?

    /// The most `meta` rows a delta may have (the format uses five).
    public static let maxMetaRows = 1000

    public init(path: String, expecting expected: DeltaExpectation = DeltaExpectation(), verifyIntegrity: Bool = true)
        throws
    {
        self.path = path
        let object = "delta \(path)"
        func corrupt(_ field: String?, _ message: String, fix: String? = nil) -> StrataError {
            StrataError(
                .corrupt, object: object, field: field, message: message,
                fix: fix ?? "the delta is damaged or was not written to Docs/FORMATS.md; produce it again")
        }
        func refused(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .refused, object: object, field: field, message: message,
                fix: "the delta does not belong here: check the run record and the bundle it came from")
        }
        do {
            let db = try Database(path: path, mode: .readOnlyImmutable)
            // Defences for files from elsewhere (SQLite's "Defense Against The Dark Arts"): no schema
            // tricks that run functions, checked cell sizes, no memory mapping, no writes.
            try db.setConfig(SQLITE_DBCONFIG_DEFENSIVE, true, name: "DEFENSIVE")
            try db.setConfig(SQLITE_DBCONFIG_TRUSTED_SCHEMA, false, name: "TRUSTED_SCHEMA")
            try db.execute("PRAGMA cell_size_check = ON")
            try db.execute("PRAGMA mmap_size = 0")
            try db.execute("PRAGMA query_only = ON")
            self.db = db

            if verifyIntegrity {
                let check = try db.scalarText("PRAGMA quick_check(1)")
                if check != "ok" {
                    throw corrupt(nil, "SQLite's quick_check failed: \(check ?? "no result")")
                }
            }

            // The three tables must be ordinary tables (not views or virtual tables).
            for table in ["meta", "upserts", "deletes"] {
                let s = try db.prepare("SELECT type, sql FROM sqlite_schema WHERE name = ?1")
                try s.bind(1, text: table)
                guard try s.step() else { throw corrupt(table, "table is missing") }
                let type = s.columnText(0) ?? ""
                let sql = (s.columnText(1) ?? "").uppercased()
                if type != "table" || sql.hasPrefix("CREATE VIRTUAL") {
                    throw corrupt(table, "is a \(type == "table" ? "virtual table" : type), not a table")
                }
            }

            // meta
            var meta: [String: String] = [:]
            let m = try db.prepare("SELECT key, value FROM meta")
            var rows = 0
            while try m.step() {
                rows += 1
                if rows > DeltaReader.maxMetaRows {
                    throw corrupt("meta", "has more than \(DeltaReader.maxMetaRows) rows")
                }
                guard m.columnType(0) == SQLITE_TEXT, let k = m.columnText(0) else {
                    throw corrupt("meta.key", "is not text")
                }
                if meta[k] != nil { throw corrupt("meta.\(k)", "appears twice") }
                meta[k] = m.columnText(1)
            }
            guard let format = meta["format"] else { throw corrupt("meta.format", "is missing") }
            guard format == DeltaFormat.name else {
                throw corrupt(
                    "meta.format", "is \(JSONScanner.quoted(String(format.prefix(64)))), not \"\(DeltaFormat.name)\"",
                    fix: "this is not a Strata delta")
            }
            guard let version = meta["format_version"] else { throw corrupt("meta.format_version", "is missing") }
            guard let major = DeltaFormat.major(ofVersion: version) else {
                throw corrupt(
                    "meta.format_version", "is \(JSONScanner.quoted(String(version.prefix(32)))), not a version")
            }
            if major > DeltaFormat.majorVersion {
                throw StrataError(
                    .unsupportedVersion, object: object, field: "meta.format_version",
                    message: "is \(version); this build reads version \(DeltaFormat.majorVersion) deltas",
                    fix: "upgrade Strata on this machine")
            }
            if major < 1 { throw corrupt("meta.format_version", "is \(version); versions start at 1") }
            guard let collection = meta["collection"] else { throw corrupt("meta.collection", "is missing") }
            do { try Layout.validate(collection: collection) } catch {
                throw corrupt("meta.collection", "is not a valid collection name")
            }
            guard let runId = meta["run_id"], Identifiers.isValid(runId) else {
                throw corrupt("meta.run_id", meta["run_id"] == nil ? "is missing" : "is not a valid run id")
            }
            guard let dimText = meta["dimension"], let dimension = Int(dimText),
                dimension >= 0 && dimension <= DeltaFormat.maxDimension
            else {
                throw corrupt(
                    "meta.dimension",
                    meta["dimension"] == nil
                        ? "is missing"
                        : "is not an integer from 0 to \(DeltaFormat.maxDimension)")
            }

            let upserts = Int(try db.scalarInt("SELECT count(*) FROM upserts") ?? 0)
            let deletes = Int(try db.scalarInt("SELECT count(*) FROM deletes") ?? 0)
            if upserts > 0 && dimension == 0 { throw corrupt("meta.dimension", "is 0 but the delta has upserts") }
            info = DeltaInfo(
                formatVersion: version, collection: collection, runId: runId, dimension: dimension,
                upserts: upserts, deletes: deletes)

            if let c = expected.collection, c != collection {
                throw refused("meta.collection", "is \"\(collection)\", expected \"\(c)\"")
            }
            if let r = expected.runId, r != runId { throw refused("meta.run_id", "is \"\(runId)\", expected \"\(r)\"") }
            if let d = expected.dimension, dimension != 0, d != dimension {
                throw refused("meta.dimension", "is \(dimension), the collection's dimension is \(d)")
            }
            if let u = expected.upserts, u != upserts {
                throw corrupt("upserts", "has \(upserts) rows, the manifest says \(u)")
            }
            if let d = expected.deletes, d != deletes {
                throw corrupt("deletes", "has \(deletes) rows, the manifest says \(d)")
            }

            if let both = try db.scalarText(
                "SELECT id FROM upserts WHERE id IN (SELECT id FROM deletes) LIMIT 1")
            {
                throw corrupt(
                    "deletes.id",
                    "id \(DeltaWriter.quotedId(both)) is both upserted and deleted; "
                        + "an id may be in only one of the two tables")
            }
        } catch let e as SQLiteError {
            throw e.strataError
        }
    }

    /// Closes the file. Fails while a cursor is still alive.
    public func close() throws {
        do { try db?.close() } catch let e as SQLiteError { throw e.strataError }
        db = nil
    }

    private func live() throws -> Database {
        guard let db else {
            throw StrataError(.refused, object: "delta \(path)", message: "is closed", fix: "open it again")
        }
        return db
    }

    /// Upserts in id order.
    public func upserts() throws -> UpsertCursor {
        do {
            let s = try live().prepare(
                "SELECT id, embedding, document, metadata FROM upserts ORDER BY id COLLATE BINARY")
            return UpsertCursor(statement: s, path: path, dimension: info.dimension)
        } catch let e as SQLiteError { throw e.strataError }
    }

    /// Deleted ids in id order.
    public func deletes() throws -> DeleteCursor {
        do {
            let s = try live().prepare("SELECT id FROM deletes ORDER BY id COLLATE BINARY")
            return DeleteCursor(statement: s, path: path)
        } catch let e as SQLiteError { throw e.strataError }
    }

    public func forEachUpsert(_ body: (DeltaRow) throws -> Void) throws {
        let c = try upserts()
        while let row = try c.next() { try body(row) }
    }

    public func forEachDelete(_ body: (String) throws -> Void) throws {
        let c = try deletes()
        while let id = try c.next() { try body(id) }
    }
}

/// Reads and checks the id column shared by both cursors; keeps the previous id for ordering.
struct IdColumnChecker {
    let path: String
    let table: String
    private var previous: [UInt8] = []
    private var first = true

    init(path: String, table: String) {
        self.path = path
        self.table = table
    }

    mutating func id(_ s: Statement) throws -> String {
        guard s.columnType(0) == SQLITE_TEXT else {
            throw StrataError(
                .corrupt, object: "delta \(path)", field: "\(table).id",
                message:
                    "has a value that is not TEXT after \(first ? "the start" : DeltaWriter.quotedId(String(decoding: previous, as: UTF8.self)))",
                fix: "ids are TEXT; produce the delta again")
        }
        let bytes = s.columnBytes(0)
        let id: String
        do { id = try DeltaRules.id(fromUTF8: bytes) } catch let p as FieldProblem {
            throw StrataError(.corrupt, object: "delta \(path)", field: "\(table).id", message: p.message, fix: p.fix)
        }
        let cur = Array(bytes)
        if !first && !previous.lexicographicallyPrecedes(cur) {
            throw StrataError(
                .corrupt, object: "delta \(path)", field: "\(table).id",
                message: "id \(DeltaWriter.quotedId(id)) is not unique (ids must be a primary key)",
                fix: "declare id TEXT PRIMARY KEY as in Docs/FORMATS.md")
        }
        previous = cur
        first = false
        return id
    }
}

/// Streams `upserts` in id order, validating each row.
public final class UpsertCursor {
    private let statement: Statement
    private let path: String
    private let dimension: Int
    private var ids: IdColumnChecker
    private var done = false

    init(statement: Statement, path: String, dimension: Int) {
        self.statement = statement
        self.path = path
        self.dimension = dimension
        ids = IdColumnChecker(path: path, table: "upserts")
    }

    /// The next row, or nil at the end.
    public func next() throws -> DeltaRow? {
        if done { return nil }
        let s = statement
        do {
            guard try s.step() else {
                done = true
                return nil
            }
        } catch let e as SQLiteError { throw e.strataError }
        let id = try ids.id(s)
        func bad(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: "delta \(path) row \(DeltaWriter.quotedId(id))", field: "upserts.\(field)",
                message: message, fix: "produce the delta again (Docs/FORMATS.md, \"Delta\")")
        }
        guard s.columnType(1) == SQLITE_BLOB else { throw bad("embedding", "is not a BLOB") }
        let blob = s.columnBytes(1)
        guard blob.count == dimension * 4 else {
            throw bad(
                "embedding",
                "is \(blob.count) bytes; dimension \(dimension) needs \(dimension * 4) "
                    + "(float32 little-endian)")
        }
        var embedding = [Float](repeating: 0, count: dimension)
        embedding.withUnsafeMutableBytes { $0.copyMemory(from: blob) }
        #if _endian(big)
            for i in 0..<dimension { embedding[i] = Float(bitPattern: UInt32(littleEndian: embedding[i].bitPattern)) }
        #endif
        for i in 0..<dimension where !embedding[i].isFinite {
            throw bad("embedding", "value \(i) is \(embedding[i].isNaN ? "NaN" : "infinite")")
        }
        let document = try text(2, field: "document", bad: bad)
        var metadata = try text(3, field: "metadata", bad: bad)
        if let m = metadata {
            do { metadata = try DeltaRules.canonicalMetadata(m) } catch let p as FieldProblem {
                throw bad(p.field, p.message)
            }
        }
        return DeltaRow(id: id, embedding: embedding, document: document, metadata: metadata)
    }

    private func text(_ i: Int32, field: String, bad: (String, String) -> StrataError) throws -> String? {
        switch statement.columnType(i) {
        case SQLITE_NULL: return nil
        case SQLITE_TEXT:
            let bytes = statement.columnBytes(i)
            guard let s = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw bad(field, "is not valid UTF-8")
            }
            return s
        default: throw bad(field, "is neither TEXT nor NULL")
        }
    }
}

/// Streams `deletes` in id order.
public final class DeleteCursor {
    private let statement: Statement
    private var ids: IdColumnChecker
    private var done = false

    init(statement: Statement, path: String) {
        self.statement = statement
        ids = IdColumnChecker(path: path, table: "deletes")
    }

    public func next() throws -> String? {
        if done { return nil }
        do {
            guard try statement.step() else {
                done = true
                return nil
            }
        } catch let e as SQLiteError { throw e.strataError }
        return try ids.id(statement)
    }
}
