import CSQLite
import Foundation
import StrataCore

#if canImport(Glibc)
    import Glibc
#endif

/// What `DeltaWriter.finish()` wrote.
public struct DeltaSummary: Sendable, Equatable {
    public var path: String
    public var collection: String
    public var runId: String
    /// The vectors' dimension; 0 only for a delta without upserts whose dimension was not given.
    public var dimension: Int
    /// Rows in `upserts` (ids upserted, after "last wins" within the delta).
    public var upserts: Int
    /// Rows in `deletes`.
    public var deletes: Int
    /// The file's size in bytes.
    public var size: Int64
}

/// Writes one `delta.sqlite3` (Docs/FORMATS.md, "Delta").
///
/// Rows are validated as they arrive; a bad row is refused with an error naming its id and
/// field, and the writer stays usable. Within a delta the last operation on an id wins: an
/// upsert after a delete of the same id replaces the delete, and a delete after an upsert
/// replaces the upsert.
///
/// Crash safety: the file is built at `path + ".partial"` and renamed to `path` by `finish()`
/// after an fsync, so a file at `path` is always complete. The partial file is scratch: if the
/// process dies it is rebuilt from the input, never repaired. That is why the SQLite journal
/// and its fsyncs are turned off (see `init`), which makes writing several times faster.
public final class DeltaWriter {
    public let path: String
    public let collection: String
    public let runId: String
    /// The dimension given, or fixed by the first upsert.
    public private(set) var dimension: Int?
    /// Operations accepted so far (upserts plus deletes, before "last wins").
    public private(set) var operations = 0

    private let partialPath: String
    private let batchSize: Int
    private var db: Database?
    private var insertUpsert: Statement?
    private var removeUpsert: Statement?
    private var insertDelete: Statement?
    private var removeDelete: Statement?
    private var inTransaction = false
    private var pending = 0
    private var state: State = .open

    private enum State { case open, finished, failed }

    /// Creates the delta. `dimension` nil means "fixed by the first upsert".
    /// `batchSize` is the number of operations per SQLite transaction.
    public init(path: String, collection: String, runId: String, dimension: Int?, batchSize: Int = 5000) throws {
        try Layout.validate(collection: collection)
        guard Identifiers.isValid(runId) else {
            throw StrataError(
                .invalidInput, object: "run id \"\(runId)\"", field: "run_id",
                message: "is not a valid run id (1 to 128 of A-Z a-z 0-9 - _ .)",
                fix: "use Identifiers.make() or a similar id")
        }
        if let dimension {
            do { try DeltaRules.check(dimension: dimension) } catch let p as FieldProblem {
                throw p.strataError(object: "delta \(path)")
            }
        }
        self.path = path
        self.collection = collection
        self.runId = runId
        self.dimension = dimension
        self.batchSize = max(1, batchSize)
        partialPath = path + ".partial"
        // A partial file left by a crashed attempt is scratch.
        for p in [partialPath, partialPath + "-journal"] { unlink(p) }

        do {
            let db = try Database(path: partialPath, mode: .readWriteCreate)
            self.db = db
            // Pragmas for a file written once, by one process, and thrown away if that process fails:
            // - page_size 8192: vectors of dimension 384 to 1536 (1.5 to 6 KiB) mostly fit in a page
            //   with their document, so fewer overflow chains than with 4096; must precede any write.
            // - journal_mode OFF and synchronous OFF: no rollback journal and no fsync per commit. A
            //   crash leaves a damaged ".partial" file that is rebuilt, never used; `finish()` fsyncs
            //   once and renames. (We never ROLLBACK: rows are validated before they reach SQLite.)
            // - locking_mode EXCLUSIVE: nobody else opens the file; skip lock traffic per transaction.
            // - cache_size -16384: at most 16 MiB of page cache, so memory does not grow with the file.
            try db.execute("PRAGMA page_size = 8192")
            try db.execute("PRAGMA journal_mode = OFF")
            try db.execute("PRAGMA synchronous = OFF")
            try db.execute("PRAGMA locking_mode = EXCLUSIVE")
            try db.execute("PRAGMA cache_size = -16384")
            try db.execute("BEGIN")
            for ddl in DeltaFormat.schema { try db.execute(ddl) }
            let meta = try db.prepare("INSERT INTO meta(key, value) VALUES (?1, ?2)")
            for (k, v) in [
                ("format", DeltaFormat.name), ("format_version", String(DeltaFormat.majorVersion)),
                ("collection", collection), ("run_id", runId),
            ] {
                try meta.bind(1, text: k)
                try meta.bind(2, text: v)
                try meta.step()
                meta.reset()
            }
            try db.execute("COMMIT")
            insertUpsert = try db.prepare(
                "INSERT OR REPLACE INTO upserts(id, embedding, document, metadata) VALUES (?1, ?2, ?3, ?4)")
            removeUpsert = try db.prepare("DELETE FROM upserts WHERE id = ?1")
            insertDelete = try db.prepare("INSERT OR REPLACE INTO deletes(id) VALUES (?1)")
            removeDelete = try db.prepare("DELETE FROM deletes WHERE id = ?1")
        } catch let e as SQLiteError {
            abandon()
            throw e.strataError
        }
    }

    deinit {
        if state != .finished { abandon() }
    }

    /// Removes the partial file. The writer cannot be used afterwards.
    public func abandon() {
        insertUpsert = nil
        removeUpsert = nil
        insertDelete = nil
        removeDelete = nil
        try? db?.close()
        db = nil
        if state != .finished {
            state = .failed
            unlink(partialPath)
            unlink(partialPath + "-journal")
        }
    }

    private func rowObject(_ id: String) -> String {
        "delta \(collection)/\(runId) row \(DeltaWriter.quotedId(id))"
    }

    /// An id for a message: quoted, and cut to 100 characters.
    public static func quotedId(_ id: String) -> String {
        id.count > 100 ? JSONScanner.quoted(String(id.prefix(100))) + "..." : JSONScanner.quoted(id)
    }

    private func usable() throws {
        switch state {
        case .open: return
        case .finished:
            throw StrataError(
                .refused, object: "delta \(path)", message: "is already finished",
                fix: "create a new DeltaWriter")
        case .failed:
            throw StrataError(
                .refused, object: "delta \(path)", message: "an earlier write failed; it is abandoned",
                fix: "fix the earlier error and write the delta again")
        }
    }

    // MARK: rows

    public func upsert(_ row: DeltaRow) throws {
        try upsert(id: row.id, embedding: row.embedding, document: row.document, metadata: row.metadata)
    }

    /// Adds or replaces `id`. `metadata` is a flat JSON object (stored in canonical form).
    public func upsert(id: String, embedding: [Float], document: String? = nil, metadata: String? = nil) throws {
        try usable()
        let canonical: String?
        do {
            try DeltaRules.check(id: id)
            if let dimension {
                try embedding.withUnsafeBufferPointer { try DeltaRules.check(embedding: $0, dimension: dimension) }
            } else {
                if embedding.isEmpty || embedding.count > DeltaFormat.maxDimension {
                    throw FieldProblem(
                        field: "embedding",
                        message: "has \(embedding.count) values; a dimension is 1 to "
                            + "\(DeltaFormat.maxDimension)", fix: "pass the embedding vector")
                }
                try embedding.withUnsafeBufferPointer { try DeltaRules.check(embedding: $0, dimension: $0.count) }
            }
            if let document { try DeltaRules.check(document: document) }
            canonical = try metadata.map { try DeltaRules.canonicalMetadata($0) }
        } catch let p as FieldProblem {
            throw p.strataError(object: rowObject(id))
        }
        if dimension == nil { dimension = embedding.count }
        try write {
            try removeDelete!.bind(1, text: id)
            try removeDelete!.step()
            removeDelete!.reset()
            let s = insertUpsert!
            try s.bind(1, text: id)
            #if _endian(little)
                try embedding.withUnsafeBytes { try s.bind(2, blob: $0) }
            #else
                let le = embedding.map { $0.bitPattern.littleEndian }
                try le.withUnsafeBytes { try s.bind(2, blob: $0) }
            #endif
            try s.bind(3, optionalText: document)
            try s.bind(4, optionalText: canonical)
            try s.step()
            s.reset()
        }
    }

    /// Records a delete of `id` (replacing an upsert of it in this delta).
    public func delete(id: String) throws {
        try usable()
        do { try DeltaRules.check(id: id) } catch let p as FieldProblem { throw p.strataError(object: rowObject(id)) }
        try write {
            try removeUpsert!.bind(1, text: id)
            try removeUpsert!.step()
            removeUpsert!.reset()
            try insertDelete!.bind(1, text: id)
            try insertDelete!.step()
            insertDelete!.reset()
        }
    }

    /// Runs one operation inside the current batch transaction.
    private func write(_ body: () throws -> Void) throws {
        do {
            if !inTransaction {
                try db!.execute("BEGIN")
                inTransaction = true
            }
            try body()
            operations += 1
            pending += 1
            if pending >= batchSize {
                try db!.execute("COMMIT")
                inTransaction = false
                pending = 0
            }
        } catch let e as SQLiteError {
            abandon()
            throw e.strataError
        }
    }

    // MARK: finishing

    /// Commits, records the dimension, closes, fsyncs and renames the file into place.
    @discardableResult
    public func finish() throws -> DeltaSummary {
        try usable()
        do {
            let db = self.db!
            if !inTransaction { try db.execute("BEGIN") }
            do {
                let meta = try db.prepare("INSERT INTO meta(key, value) VALUES ('dimension', ?1)")
                try meta.bind(1, text: String(dimension ?? 0))
                try meta.step()
            }
            try db.execute("COMMIT")
            inTransaction = false
            let upserts = Int(try db.scalarInt("SELECT count(*) FROM upserts") ?? 0)
            let deletes = Int(try db.scalarInt("SELECT count(*) FROM deletes") ?? 0)
            insertUpsert = nil
            removeUpsert = nil
            insertDelete = nil
            removeDelete = nil
            try db.close()
            self.db = nil
            try DeltaWriter.syncAndRename(partialPath, to: path)
            state = .finished
            var st = stat()
            stat(path, &st)
            return DeltaSummary(
                path: path, collection: collection, runId: runId, dimension: dimension ?? 0,
                upserts: upserts, deletes: deletes, size: Int64(st.st_size))
        } catch let e as SQLiteError {
            abandon()
            throw e.strataError
        } catch {
            abandon()
            throw error
        }
    }

    static func syncAndRename(_ from: String, to: String) throws {
        func fail(_ what: String) -> StrataError {
            StrataError(
                .io, object: to, message: "\(what): \(String(cString: strerror(errno)))",
                fix: "check the work directory's disk space and permissions")
        }
        let fd = open(from, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open the written delta") }
        let ok = fsync(fd) == 0
        close(fd)
        guard ok else { throw fail("fsync failed") }
        guard rename(from, to) == 0 else { throw fail("cannot rename the delta into place") }
        let dir = (to as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}
