import CSQLite
import Foundation
import StrataCore

/// The snapshot file format (SPEC "Snapshot", Docs/FORMATS.md): version 2.
///
/// Version 2 records, for each row, the run that last wrote it (`run_id`, `run_created_at`), and
/// keeps deleted ids as `tombstones` with the run that deleted them, so a run applied late never
/// overwrites a newer row nor brings back an id a newer run deleted (SPEC invariant 4). Version 1
/// files (no writers, no tombstones) are upgraded when they are opened for a merge.
public enum SnapshotFormat {
    public static let name = "strata-snapshot"
    public static let majorVersion = 2
    public static let fileName = "snapshot.sqlite3"

    /// The page size a new snapshot file gets: the smallest that holds two typical rows of this
    /// dimension in one 4 KiB page, else one row in a page without overflow pages (a row is the
    /// float32 vector plus about 256 bytes of id, document, metadata, writer and cell overhead).
    /// Every merge uploads the pages it changes, and an overwrite changes at least the page of its
    /// row, so the smaller page halves what a 1,000-row delta publishes at dimension 384
    /// (Docs/design/0002, "Page size"). A file keeps its page size: a change needs a new base.
    public static func pageSize(dimension: Int) -> Int {
        let row = 4 * max(dimension, 1) + 256
        if 2 * row <= 4096 - 100 { return 4096 }
        for size in [8192, 16384, 32768] where row <= size - 100 { return size }
        return 65536
    }
    public static let schema = [
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        // run_created_at is the writer's creation time as `RunRecord.timestamp` writes it
        // (2026-11-21T20:14:08.123Z), so (run_created_at, run_id) sorts as the runs' order.
        """
        CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT, \
        run_id TEXT NOT NULL, run_created_at TEXT NOT NULL)
        """,
        "CREATE TABLE tombstones(id TEXT PRIMARY KEY, run_id TEXT NOT NULL, run_created_at TEXT NOT NULL)",
        "CREATE INDEX tombstones_by_age ON tombstones(run_created_at)",
        // status: 'applied', or 'rolled_back' when a rollback dropped the run's effects.
        // superseded: writes of the run that lost to a later run's write of the same id.
        """
        CREATE TABLE applied_runs(run_id TEXT PRIMARY KEY, version TEXT NOT NULL, applied_at TEXT NOT NULL, \
        upserts INTEGER NOT NULL, deletes INTEGER NOT NULL, new_ids INTEGER NOT NULL, \
        deleted_existing INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'applied', run_created_at TEXT, \
        superseded INTEGER NOT NULL DEFAULT 0)
        """,
    ]
}

/// The run that wrote a row or a tombstone: runs are ordered by creation time, then run id.
public struct RowWriter: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var runId: String
    /// `RunRecord.timestamp` of the run's creation time (sorts as a string).
    public var createdAt: String

    public init(runId: String, createdAt: String) {
        self.runId = runId
        self.createdAt = createdAt
    }

    public init(runId: String, created: Date) {
        self.init(runId: runId, createdAt: RunRecord.timestamp(created))
    }

    public static func < (a: RowWriter, b: RowWriter) -> Bool {
        a.createdAt != b.createdAt ? a.createdAt < b.createdAt : a.runId < b.runId
    }

    public var description: String { "\(runId) (created \(createdAt))" }
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
        try db.execute("PRAGMA page_size = \(SnapshotFormat.pageSize(dimension: dimension))")
        try configure(db)
        try db.execute("BEGIN")
        for sql in SnapshotFormat.schema { try db.execute(sql) }
        let meta = try db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)")
        for (k, v) in [
            ("format", SnapshotFormat.name), ("format_version", String(SnapshotFormat.majorVersion)),
            ("collection", collection), ("dimension", String(dimension)), ("row_count", "0"),
        ] {
            try meta.bind(1, text: k)
            try meta.bind(2, text: v)
            try meta.step()
            meta.reset()
        }
        try db.execute("COMMIT")
        return SnapshotDatabase(path: path, collection: collection, dimension: dimension, db: db)
    }

    /// An existing snapshot; checks format, version and collection. A format-1 file is read as it
    /// is; `upgradeIfNeeded()` makes it format 2 before a merge writes to it.
    public static func open(path: String, collection: String) throws -> SnapshotDatabase {
        let db = try Database(path: path, mode: .readWriteCreate)
        try configure(db)
        return try open(db, path: path, collection: collection)
    }

    /// An existing snapshot on a connection the caller opened and keeps (a page capture's, in WAL
    /// mode with its exclusive lock): the journal mode and locking are left as they are, `close()`
    /// does not close it. The merge's SQL is the same as on a file opened by `open(path:)`.
    public static func open(connection db: Database, collection: String) throws -> SnapshotDatabase {
        try db.execute("PRAGMA synchronous = OFF")
        try db.execute("PRAGMA cache_size = -8192")
        try db.execute("PRAGMA temp_store = FILE")
        try db.execute("PRAGMA mmap_size = 0")
        let snapshot = try open(db, path: db.path, collection: collection)
        snapshot.ownsConnection = false
        return snapshot
    }

    private static func open(_ db: Database, path: String, collection: String) throws -> SnapshotDatabase {
        let object = "snapshot \(path)"
        let format = try db.scalarText("SELECT value FROM meta WHERE key = 'format'")
        guard format == SnapshotFormat.name else {
            throw StrataError(
                .corrupt, object: object, field: "meta.format",
                message: "is \(format.map { "\"\($0)\"" } ?? "missing"), expected \"\(SnapshotFormat.name)\"")
        }
        let v = try db.scalarText("SELECT value FROM meta WHERE key = 'format_version'").flatMap(
            DeltaFormat.major(ofVersion:))
        guard let v, v <= SnapshotFormat.majorVersion else {
            throw StrataError(
                .unsupportedVersion, object: object, field: "meta.format_version",
                message: "is newer than this Strata reads (\(SnapshotFormat.majorVersion))",
                fix: "upgrade snapctl")
        }
        let c = try db.scalarText("SELECT value FROM meta WHERE key = 'collection'")
        guard c == collection else {
            throw StrataError(
                .corrupt, object: object, field: "meta.collection",
                message: "is \(c ?? "missing"), expected \(collection)")
        }
        guard let d = try db.scalarText("SELECT value FROM meta WHERE key = 'dimension'").flatMap({ Int($0) }), d > 0
        else {
            throw StrataError(
                .corrupt, object: object, field: "meta.dimension", message: "is missing or not a positive number")
        }
        let snapshot = SnapshotDatabase(path: path, collection: collection, dimension: d, db: db)
        snapshot.formatVersion = v
        return snapshot
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

    /// False for a connection passed to `open(connection:collection:)`: its owner closes it.
    private var ownsConnection = true

    public func close() throws { if ownsConnection { try db.close() } }

    /// Run ids this snapshot has seen: applied, or rolled back.
    public func processedRunIds() throws -> Set<String> {
        let s = try db.prepare("SELECT run_id FROM applied_runs")
        var out = Set<String>()
        while try s.step() { if let id = s.columnText(0) { out.insert(id) } }
        return out
    }

    /// Run id -> status (`applied` or `rolled_back`) of every run in applied_runs: what this
    /// version processed, for `ProcessedRuns(appliedRunsTable:)`.
    public func runStatuses() throws -> [String: String] {
        let s = try db.prepare("SELECT run_id, status FROM applied_runs")
        var out: [String: String] = [:]
        while try s.step() { if let id = s.columnText(0) { out[id] = s.columnText(1) ?? "applied" } }
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
        let s = try db.prepare(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        for (k, v) in [("version", version), ("parent_version", parent ?? ""), ("row_count", String(rowCount))] {
            try s.bind(1, text: k)
            try s.bind(2, text: v)
            try s.step()
            s.reset()
        }
    }

    /// Merges a validated delta in one transaction, under the per-row rule (SPEC invariant 4): an
    /// id is written (upserted, or deleted and tombstoned) only where `writer` is later than the
    /// id's current writer, row or tombstone. Records the run. Counts exactly the ids the run
    /// added and the rows it removed, so rows(after) = rows(before) + newIds - deletedExisting.
    /// (SQLite cannot ATTACH inside a transaction, so each run is its own; the publish stays
    /// all-or-nothing because a failed merge discards the file.)
    public func apply(deltaPath: String, writer: RowWriter, version: String, appliedAt: Date) throws -> AppliedRun {
        try attach(deltaPath)
        defer { detach() }
        var result: AppliedRun!
        try transaction { result = try applyAttached(writer: writer, version: version, appliedAt: appliedAt) }
        return result
    }

    // `?1, ?2` are the run's (run_created_at, run_id); a row value compares as the runs' order.
    private static let newerRow = """
        EXISTS (SELECT 1 FROM main.embeddings e WHERE e.id = x.id AND (e.run_created_at, e.run_id) >= (?1, ?2))
        """
    private static let newerTombstone = """
        EXISTS (SELECT 1 FROM main.tombstones t WHERE t.id = x.id AND (t.run_created_at, t.run_id) >= (?1, ?2))
        """

    private func applyAttached(writer: RowWriter, version: String, appliedAt: Date) throws -> AppliedRun {
        let w = [writer.createdAt, writer.runId]
        let upserts = try count("SELECT count(*) FROM d.upserts")
        let deletes = try count("SELECT count(*) FROM d.deletes")
        let newIds = try count(
            """
            SELECT count(*) FROM d.upserts x WHERE NOT EXISTS (SELECT 1 FROM main.embeddings e WHERE e.id = x.id) \
            AND NOT \(Self.newerTombstone)
            """, w)
        // EXISTS, not a join: with no statistics SQLite may pick the snapshot as the outer loop and
        // read every page of it for a delta of a few rows.
        let deletedExisting = try count(
            """
            SELECT count(*) FROM d.deletes x WHERE EXISTS (SELECT 1 FROM main.embeddings e WHERE e.id = x.id \
            AND (e.run_created_at, e.run_id) < (?1, ?2))
            """, w)
        let superseded = try count(
            """
            SELECT (SELECT count(*) FROM d.upserts x WHERE \(Self.newerRow) OR \(Self.newerTombstone)) \
            + (SELECT count(*) FROM d.deletes x WHERE \(Self.newerRow) OR \(Self.newerTombstone))
            """, w)
        // Deletes: remove older rows, then tombstone every deleted id that no newer row holds.
        try run(
            """
            DELETE FROM main.embeddings WHERE id IN (SELECT id FROM d.deletes) AND (run_created_at, run_id) < (?1, ?2)
            """, w)
        try run(
            """
            INSERT INTO main.tombstones(id, run_created_at, run_id) \
            SELECT id, ?1, ?2 FROM d.deletes WHERE id NOT IN (SELECT id FROM main.embeddings) \
            ON CONFLICT(id) DO UPDATE SET run_created_at = excluded.run_created_at, run_id = excluded.run_id \
            WHERE (tombstones.run_created_at, tombstones.run_id) < (excluded.run_created_at, excluded.run_id)
            """, w)
        // Upserts: insert unless a newer tombstone holds the id; replace only an older row.
        try run(
            """
            INSERT INTO main.embeddings(id, embedding, document, metadata, run_created_at, run_id) \
            SELECT x.id, x.embedding, x.document, x.metadata, ?1, ?2 FROM d.upserts x WHERE NOT \(Self.newerTombstone) \
            ON CONFLICT(id) DO UPDATE SET embedding = excluded.embedding, document = excluded.document, \
            metadata = excluded.metadata, run_created_at = excluded.run_created_at, run_id = excluded.run_id \
            WHERE (embeddings.run_created_at, embeddings.run_id) < (excluded.run_created_at, excluded.run_id)
            """, w)
        try run(
            """
            DELETE FROM main.tombstones WHERE id IN (SELECT id FROM d.upserts) AND (run_created_at, run_id) < (?1, ?2)
            """, w)
        let r = AppliedRun(
            runId: writer.runId, upserts: upserts, deletes: deletes, newIds: newIds,
            deletedExisting: deletedExisting, superseded: superseded)
        let s = try db.prepare(
            """
            INSERT INTO applied_runs(run_id, version, applied_at, upserts, deletes, new_ids, deleted_existing, status, \
            run_created_at, superseded) VALUES (?, ?, ?, ?, ?, ?, ?, 'applied', ?, ?)
            """)
        try s.bind(1, text: writer.runId)
        try s.bind(2, text: version)
        try s.bind(3, text: StrataJSON.iso8601(appliedAt))
        try s.bind(4, int: Int64(upserts))
        try s.bind(5, int: Int64(deletes))
        try s.bind(6, int: Int64(newIds))
        try s.bind(7, int: Int64(deletedExisting))
        try s.bind(8, text: writer.createdAt)
        try s.bind(9, int: Int64(superseded))
        try s.step()
        return r
    }

    /// Deletes tombstones whose run was created before `cutoff` (now minus the late-run window):
    /// a run older than that is quarantined as too late, so nothing needs them. Returns how many.
    @discardableResult
    public func purgeTombstones(createdBefore cutoff: Date) throws -> Int {
        let c = [RunRecord.timestamp(cutoff)]
        let n = try count("SELECT count(*) FROM tombstones WHERE run_created_at < ?1", c)
        if n > 0 { try run("DELETE FROM tombstones WHERE run_created_at < ?1", c) }
        return n
    }

    public func tombstoneCount() throws -> Int { Int(try db.scalarInt("SELECT count(*) FROM tombstones") ?? 0) }

    /// The run that last wrote `id` (a row, or a tombstone when `deleted`), or nil when neither holds it.
    public func writer(of id: String) throws -> (writer: RowWriter, deleted: Bool)? {
        for (table, deleted) in [("embeddings", false), ("tombstones", true)] {
            let s = try db.prepare("SELECT run_id, run_created_at FROM \(table) WHERE id = ?")
            try s.bind(1, text: id)
            if try s.step(), let r = s.columnText(0), let c = s.columnText(1) {
                return (RowWriter(runId: r, createdAt: c), deleted)
            }
        }
        return nil
    }

    private func count(_ sql: String, _ bindings: [String] = []) throws -> Int {
        let s = try db.prepare(sql)
        for (i, b) in bindings.enumerated() { try s.bind(Int32(i + 1), text: b) }
        guard try s.step() else { return 0 }
        return Int(s.columnInt64(0))
    }

    private func run(_ sql: String, _ bindings: [String]) throws {
        let s = try db.prepare(sql)
        for (i, b) in bindings.enumerated() { try s.bind(Int32(i + 1), text: b) }
        while try s.step() {}
    }

    /// Format 1 to 2, in place and in one transaction (Docs/FORMATS.md, "Upgrading format 1"). A
    /// format-1 row does not say which run wrote it, so every row gets the safe writer: the newest
    /// run the file's applied_runs records as applied (its creation time read from its id, or the
    /// version's time for an id that encodes none; a version is made after the runs it applies).
    /// A run created before that writer then never overwrites an old row. The columns are added
    /// with that writer as their default, so no row is rewritten. Format 1 kept no tombstones.
    private func upgradeFromFormat1() throws {
        let versionId = try db.scalarText("SELECT value FROM meta WHERE key = 'version'") ?? ""
        let versionDate = Identifiers.date(of: versionId)
        var newest: RowWriter?
        let s = try db.prepare("SELECT run_id FROM applied_runs WHERE status = 'applied'")
        while try s.step() {
            guard let id = s.columnText(0), let created = Identifiers.date(of: id) ?? versionDate else { continue }
            let w = RowWriter(runId: id, created: created)
            if newest.map({ $0 < w }) ?? true { newest = w }
        }
        let writer =
            newest
            ?? RowWriter(
                runId: versionId.isEmpty ? "format-1" : versionId,
                created: versionDate ?? Date(timeIntervalSince1970: 0))
        func literal(_ v: String) -> String { "'" + v.replacingOccurrences(of: "'", with: "''") + "'" }
        try transaction {
            for (column, value) in [("run_id", writer.runId), ("run_created_at", writer.createdAt)] {
                try db.execute("ALTER TABLE embeddings ADD COLUMN \(column) TEXT NOT NULL DEFAULT \(literal(value))")
            }
            try db.execute(SnapshotFormat.schema[2])
            try db.execute(SnapshotFormat.schema[3])
            try db.execute("ALTER TABLE applied_runs ADD COLUMN run_created_at TEXT")
            try db.execute("ALTER TABLE applied_runs ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0")
            try db.execute("UPDATE meta SET value = '\(SnapshotFormat.majorVersion)' WHERE key = 'format_version'")
            try run(
                """
                INSERT INTO meta(key, value) VALUES ('upgraded_from', ?1) \
                ON CONFLICT(key) DO UPDATE SET value = excluded.value
                """, ["1 in version \(versionId); old rows written by \(writer)"])
        }
        upgradedFromFormat1 = writer
    }

    /// The file's major format version (1 until `upgradeIfNeeded()` upgrades it).
    public private(set) var formatVersion = SnapshotFormat.majorVersion

    /// Set when `upgradeIfNeeded()` upgraded a format-1 file: the writer every old row was given.
    public private(set) var upgradedFromFormat1: RowWriter?

    /// Upgrades a format-1 file to format 2 (see `upgradeFromFormat1`); nothing for format 2.
    /// Call it before merging, once the file may be modified: only a merge needs the new tables.
    public func upgradeIfNeeded() throws {
        guard formatVersion < 2 else { return }
        try upgradeFromFormat1()
        formatVersion = 2
    }

    /// Records runs as rolled back: seen, so never applied again, but with no effect on the rows.
    public func recordRolledBack(runIds: [String], version: String, at date: Date) throws {
        let s = try db.prepare(
            """
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
