import CSQLite
import Foundation
import StrataCore

/// The snapshot file format (SPEC "Snapshot", Docs/FORMATS.md): version 1.
public enum SnapshotFormat {
    public static let name = "strata-snapshot"
    public static let majorVersion = 1
    public static let fileName = "snapshot.sqlite3"
    public static let schema = [
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT)",
        // status: 'applied', or 'rolled_back' when a rollback dropped the run's effects.
        """
        CREATE TABLE applied_runs(run_id TEXT PRIMARY KEY, version TEXT NOT NULL, applied_at TEXT NOT NULL, \
        upserts INTEGER NOT NULL, deletes INTEGER NOT NULL, new_ids INTEGER NOT NULL, \
        deleted_existing INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'applied')
        """,
    ]
}

/// A snapshot file opened for merging. The compactor owns the file (a private copy or its cache),
/// so it is written without a rollback journal: a failed merge discards the whole file.
///
/// Deltas are merged set-based: the delta file is ATTACHed and SQLite moves the rows, so no row
/// passes through Swift and memory stays at SQLite's bounded page cache. Validate a delta with
/// `DeltaReader` (whose cursors check every row) before merging it.
public final class SnapshotDatabase {
    public let path: String
    public let collection: String
    public private(set) var dimension: Int
    let db: Database

    private init(path: String, collection: String, dimension: Int, db: Database) {
        self.path = path
        self.collection = collection
        self.dimension = dimension
        self.db = db
    }

    /// A new, empty snapshot.
    public static func create(path: String, collection: String, dimension: Int) throws -> SnapshotDatabase {
        for suffix in ["", "-journal"] { unlink(path + suffix) }
        let db = try Database(path: path, mode: .readWriteCreate)
        try db.execute("PRAGMA page_size = 8192")
        try configure(db)
        try db.execute("BEGIN")
        for sql in SnapshotFormat.schema { try db.execute(sql) }
        let meta = try db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)")
        for (k, v) in [("format", SnapshotFormat.name), ("format_version", String(SnapshotFormat.majorVersion)),
                       ("collection", collection), ("dimension", String(dimension)), ("row_count", "0")] {
            try meta.bind(1, text: k)
            try meta.bind(2, text: v)
            try meta.step()
            meta.reset()
        }
        try db.execute("COMMIT")
        return SnapshotDatabase(path: path, collection: collection, dimension: dimension, db: db)
    }

    /// An existing snapshot; checks format, version and collection.
    public static func open(path: String, collection: String) throws -> SnapshotDatabase {
        let db = try Database(path: path, mode: .readWriteCreate)
        try configure(db)
        let object = "snapshot \(path)"
        let format = try db.scalarText("SELECT value FROM meta WHERE key = 'format'")
        guard format == SnapshotFormat.name else {
            throw StrataError(.corrupt, object: object, field: "meta.format",
                              message: "is \(format.map { "\"\($0)\"" } ?? "missing"), expected \"\(SnapshotFormat.name)\"")
        }
        let v = try db.scalarText("SELECT value FROM meta WHERE key = 'format_version'").flatMap(DeltaFormat.major(ofVersion:))
        guard let v, v <= SnapshotFormat.majorVersion else {
            throw StrataError(.unsupportedVersion, object: object, field: "meta.format_version",
                              message: "is newer than this Strata reads (\(SnapshotFormat.majorVersion))",
                              fix: "upgrade snapctl")
        }
        let c = try db.scalarText("SELECT value FROM meta WHERE key = 'collection'")
        guard c == collection else {
            throw StrataError(.corrupt, object: object, field: "meta.collection",
                              message: "is \(c ?? "missing"), expected \(collection)")
        }
        guard let d = try db.scalarText("SELECT value FROM meta WHERE key = 'dimension'").flatMap({ Int($0) }), d > 0 else {
            throw StrataError(.corrupt, object: object, field: "meta.dimension", message: "is missing or not a positive number")
        }
        return SnapshotDatabase(path: path, collection: collection, dimension: d, db: db)
    }

    private static func configure(_ db: Database) throws {
        // The file is private to this compaction and re-downloaded after any failure, so a rollback
        // journal would only cost a second write of every changed page.
        try db.execute("PRAGMA journal_mode = OFF")
        try db.execute("PRAGMA synchronous = OFF")
        try db.execute("PRAGMA locking_mode = EXCLUSIVE")
        // A bounded page cache (about 8 MiB): memory must not grow with snapshot size.
        try db.execute("PRAGMA cache_size = -8192")
        try db.execute("PRAGMA temp_store = FILE")
        try db.execute("PRAGMA mmap_size = 0")
    }

    public func close() throws { try db.close() }

    /// Run ids this snapshot has seen: applied, or rolled back.
    public func processedRunIds() throws -> Set<String> {
        let s = try db.prepare("SELECT run_id FROM applied_runs")
        var out = Set<String>()
        while try s.step() { if let id = s.columnText(0) { out.insert(id) } }
        return out
    }

    public func rowCount() throws -> Int { Int(try db.scalarInt("SELECT count(*) FROM embeddings") ?? 0) }

    public func quickCheck() throws -> String {
        let s = try db.prepare("PRAGMA quick_check")
        var lines: [String] = []
        while try s.step(), lines.count < 10 { lines.append(s.columnText(0) ?? "") }
        return lines.joined(separator: "; ")
    }

    public func transaction(_ body: () throws -> Void) throws {
        try db.execute("BEGIN")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    public func setMeta(version: String, parent: String?, rowCount: Int) throws {
        let s = try db.prepare("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        for (k, v) in [("version", version), ("parent_version", parent ?? ""), ("row_count", String(rowCount))] {
            try s.bind(1, text: k)
            try s.bind(2, text: v)
            try s.step()
            s.reset()
        }
    }

    /// Merges a validated delta in one transaction: deletes remove, upserts replace; records the
    /// run. Counts new and deleted ids exactly. (SQLite cannot ATTACH inside a transaction, so each
    /// run is its own; the publish stays all-or-nothing because a failed merge discards the file.)
    public func apply(deltaPath: String, runId: String, version: String, appliedAt: Date) throws -> AppliedRun {
        try attach(deltaPath)
        defer { detach() }
        var result: AppliedRun!
        try transaction { result = try applyAttached(runId: runId, version: version, appliedAt: appliedAt) }
        return result
    }

    private func applyAttached(runId: String, version: String, appliedAt: Date) throws -> AppliedRun {
        let upserts = Int(try db.scalarInt("SELECT count(*) FROM d.upserts") ?? 0)
        let deletes = Int(try db.scalarInt("SELECT count(*) FROM d.deletes") ?? 0)
        let deletedExisting = Int(try db.scalarInt("SELECT count(*) FROM d.deletes WHERE id IN (SELECT id FROM main.embeddings)") ?? 0)
        let newIds = Int(try db.scalarInt("SELECT count(*) FROM d.upserts WHERE id NOT IN (SELECT id FROM main.embeddings)") ?? 0)
        try db.execute("DELETE FROM main.embeddings WHERE id IN (SELECT id FROM d.deletes)")
        try db.execute("""
            INSERT INTO main.embeddings(id, embedding, document, metadata) \
            SELECT id, embedding, document, metadata FROM d.upserts WHERE true \
            ON CONFLICT(id) DO UPDATE SET embedding = excluded.embedding, document = excluded.document, \
            metadata = excluded.metadata
            """)
        let r = AppliedRun(runId: runId, upserts: upserts, deletes: deletes, newIds: newIds, deletedExisting: deletedExisting)
        let s = try db.prepare("""
            INSERT INTO applied_runs(run_id, version, applied_at, upserts, deletes, new_ids, deleted_existing, status) \
            VALUES (?, ?, ?, ?, ?, ?, ?, 'applied')
            """)
        try s.bind(1, text: runId)
        try s.bind(2, text: version)
        try s.bind(3, text: StrataJSON.iso8601(appliedAt))
        try s.bind(4, int: Int64(upserts))
        try s.bind(5, int: Int64(deletes))
        try s.bind(6, int: Int64(newIds))
        try s.bind(7, int: Int64(deletedExisting))
        try s.step()
        return r
    }

    /// Records runs as rolled back: seen, so never applied again, but with no effect on the rows.
    public func recordRolledBack(runIds: [String], version: String, at date: Date) throws {
        let s = try db.prepare("""
            INSERT INTO applied_runs(run_id, version, applied_at, upserts, deletes, new_ids, deleted_existing, status) \
            VALUES (?, ?, ?, 0, 0, 0, 0, 'rolled_back') \
            ON CONFLICT(run_id) DO UPDATE SET status = 'rolled_back', version = excluded.version
            """)
        for id in runIds {
            try s.bind(1, text: id)
            try s.bind(2, text: version)
            try s.bind(3, text: StrataJSON.iso8601(date))
            try s.step()
            s.reset()
        }
    }

    private func attach(_ deltaPath: String) throws {
        let s = try db.prepare("ATTACH DATABASE ? AS d")
        try s.bind(1, text: deltaPath)
        try s.step()
    }

    private func detach() { try? db.execute("DETACH DATABASE d") }
}
