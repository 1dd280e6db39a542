import CSQLite
import Foundation
import StrataCore

/// A failed SQLite call: which operation, on which file, with which statement. It carries the
/// SQL text (which Strata writes itself, with `?` placeholders) but never a bound value, since
/// rows may hold private text.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The extended result code (`SQLITE_CONSTRAINT_PRIMARYKEY`, `SQLITE_FULL`, ...).
    public var code: Int32
    /// The database file.
    public var file: String
    /// What Strata was doing: "open", "prepare", "step", "bind", "close", ...
    public var operation: String
    /// The SQL text of the statement, when one was involved.
    public var statement: String?
    /// SQLite's message (`sqlite3_errmsg`), which names tables and columns but not values.
    public var message: String

    public init(code: Int32, file: String, operation: String, statement: String?, message: String) {
        self.code = code
        self.file = file
        self.operation = operation
        self.statement = statement
        self.message = message
    }

    /// The primary result code (the low byte of `code`).
    public var primaryCode: Int32 { code & 0xff }

    public var description: String {
        var s = "SQLite \(operation) failed on \(file)"
        if let statement { s += " (statement: \(statement))" }
        s += ": \(message) [code \(code)]"
        return s
    }

    /// The same failure as a `StrataError`: `.corrupt` when SQLite says the file is damaged or not
    /// a database, `.io` otherwise (disk full, permissions, ...).
    public var strataError: StrataError {
        let corrupt = primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB
        let fix: String
        switch primaryCode {
        case SQLITE_CORRUPT, SQLITE_NOTADB: fix = "the file is damaged or not SQLite; produce it again"
        case SQLITE_FULL: fix = "free disk space in the work directory, or point the work directory elsewhere"
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_READONLY: fix = "check that the directory exists and is writable"
        default: fix = "see SQLite's message; retry, or report it with this message"
        }
        return StrataError(
            corrupt ? .corrupt : .io, object: file, field: nil,
            message: "SQLite \(operation) failed: \(message) [code \(code)]"
                + (statement.map { " in \($0)" } ?? ""), fix: fix)
    }
}

/// An open SQLite connection, owned by this object alone.
///
/// The connection is closed with `sqlite3_close_v2` in `deinit` (which also copes with statements
/// finalized later); call `close()` to see a failure. Every `Statement` holds a strong reference
/// to its database, so a database never goes away while one of its statements is alive. Not
/// thread-safe: use one connection per thread (it is opened with `SQLITE_OPEN_NOMUTEX`).
public final class Database {
    public enum Mode {
        /// Create or open for reading and writing.
        case readWriteCreate
        /// Read only, and `immutable`: no locks, no journal or WAL files are looked at or made.
        /// For files this process owns and nobody changes (extracted deltas, downloaded snapshots).
        case readOnlyImmutable
    }

    public let path: String
    private(set) var handle: OpaquePointer?

    public init(path: String, mode: Mode) throws {
        self.path = path
        var db: OpaquePointer?
        let rc: Int32
        switch mode {
        case .readWriteCreate:
            rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        case .readOnlyImmutable:
            rc = sqlite3_open_v2(
                Database.immutableURI(path), &db,
                SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nil)
        }
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, file: path, operation: "open", statement: nil, message: message)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        if let handle { sqlite3_close_v2(handle) }
    }

    /// Closes the connection. Fails (and leaves it open) when a statement is still alive.
    public func close() throws {
        guard let h = handle else { return }
        let rc = sqlite3_close(h)
        guard rc == SQLITE_OK else { throw error(rc, "close", nil) }
        handle = nil
    }

    /// `file:` URI with `immutable=1` for a path (percent-encoding what a URI reserves).
    static func immutableURI(_ path: String) -> String {
        var out = "file:"
        for b in path.utf8 {
            let c = Character(Unicode.Scalar(b))
            if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || "/-_.~".contains(c)
            {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out + "?immutable=1"
    }

    func live(_ operation: String) throws -> OpaquePointer {
        guard let h = handle else {
            throw SQLiteError(
                code: SQLITE_MISUSE, file: path, operation: operation, statement: nil,
                message: "the database is closed")
        }
        return h
    }

    func error(_ rc: Int32, _ operation: String, _ sql: String?) -> SQLiteError {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        let code = handle.map { sqlite3_extended_errcode($0) } ?? rc
        return SQLiteError(
            code: code == 0 ? rc : code, file: path, operation: operation, statement: sql,
            message: message)
    }

    /// Runs SQL without parameters or results (pragmas, DDL, BEGIN/COMMIT).
    public func execute(_ sql: String) throws {
        let h = try live("execute")
        let rc = sqlite3_exec(h, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "execute", sql) }
    }

    public func prepare(_ sql: String) throws -> Statement {
        let h = try live("prepare")
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(h, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "prepare", sql) }
        return Statement(database: self, handle: stmt, sql: sql)
    }

    /// The first column of the first row of `sql` as text, or nil when there is no row or it is NULL.
    public func scalarText(_ sql: String, _ bindings: [String] = []) throws -> String? {
        let s = try prepare(sql)
        for (i, b) in bindings.enumerated() { try s.bind(Int32(i + 1), text: b) }
        return try s.step() ? s.columnText(0) : nil
    }

    public func scalarInt(_ sql: String) throws -> Int64? {
        let s = try prepare(sql)
        guard try s.step(), s.columnType(0) != SQLITE_NULL else { return nil }
        return s.columnInt64(0)
    }

    /// Sets a boolean `sqlite3_db_config` option; throws when SQLite does not know it.
    public func setConfig(_ op: Int32, _ value: Bool, name: String) throws {
        let h = try live("db_config")
        if strata_sqlite3_db_config_bool(h, op, value ? 1 : 0) != (value ? 1 : 0) {
            throw SQLiteError(
                code: SQLITE_ERROR, file: path, operation: "db_config \(name)", statement: nil,
                message: "the option could not be set")
        }
    }

    public func setLimit(_ id: Int32, _ value: Int32) throws {
        sqlite3_limit(try live("limit"), id, value)
    }

    /// Pages this connection read from the file so far (page-cache misses,
    /// `SQLITE_DBSTATUS_CACHE_MISS`): what a statement costs in I/O, for tests and diagnostics.
    public func pagesRead() throws -> Int {
        var current: Int32 = 0
        var high: Int32 = 0
        let rc = sqlite3_db_status(try live("db_status"), SQLITE_DBSTATUS_CACHE_MISS, &current, &high, 0)
        guard rc == SQLITE_OK else { throw error(rc, "db_status", nil) }
        return Int(current)
    }
}

/// A prepared statement, finalized in `deinit`. Reuse it with `reset()` for the next row.
public final class Statement {
    public let database: Database
    public let sql: String
    private let handle: OpaquePointer

    init(database: Database, handle: OpaquePointer, sql: String) {
        self.database = database
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    private func check(_ rc: Int32, _ operation: String) throws {
        guard rc == SQLITE_OK else { throw database.error(rc, operation, sql) }
    }

    // MARK: binding (1-based indexes)

    public func bind(_ index: Int32, text: String) throws {
        var t = text
        let rc = t.withUTF8 { buf in
            // An empty string must still be TEXT, not NULL: pass a non-null pointer.
            buf.withMemoryRebound(to: CChar.self) { c in
                strata_sqlite3_bind_text_transient(handle, index, c.baseAddress ?? Statement.empty, Int32(c.count))
            }
        }
        try check(rc, "bind")
    }

    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.initialize(to: 0)
        return UnsafePointer(p)
    }()

    public func bind(_ index: Int32, optionalText: String?) throws {
        if let optionalText { try bind(index, text: optionalText) } else { try bindNull(index) }
    }

    /// Binds bytes that SQLite copies (so the buffer may go away after this call).
    public func bind(_ index: Int32, blob: UnsafeRawBufferPointer) throws {
        // A zero-length blob must still be a BLOB, not NULL: pass a non-null pointer.
        let rc = strata_sqlite3_bind_blob_transient(
            handle, index, blob.baseAddress ?? UnsafeRawPointer(Statement.empty),
            Int32(blob.count))
        try check(rc, "bind")
    }

    public func bind(_ index: Int32, int: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, int), "bind")
    }

    public func bindNull(_ index: Int32) throws {
        try check(sqlite3_bind_null(handle, index), "bind")
    }

    // MARK: stepping

    /// Advances: true when a row is available, false when the statement is done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        // sqlite3_reset returns the same error; clear it so the statement is usable again.
        let e = database.error(rc, "step", sql)
        sqlite3_reset(handle)
        throw e
    }

    /// Ready for the next execution; bindings are kept unless `clearBindings` is called.
    public func reset() {
        sqlite3_reset(handle)
    }

    public func clearBindings() {
        sqlite3_clear_bindings(handle)
    }

    // MARK: columns (0-based indexes)

    public func columnType(_ index: Int32) -> Int32 { sqlite3_column_type(handle, index) }

    public func columnInt64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    /// The column's text, converted by SQLite when it is not TEXT; nil for NULL. Invalid UTF-8 is
    /// replaced (use `columnBytes` to validate).
    public func columnText(_ index: Int32) -> String? {
        guard sqlite3_column_type(handle, index) != SQLITE_NULL, let p = sqlite3_column_text(handle, index) else {
            return nil
        }
        let n = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// The column's bytes as stored (TEXT or BLOB), valid until the next step, reset or column
    /// call on this statement.
    public func columnBytes(_ index: Int32) -> UnsafeRawBufferPointer {
        // Per SQLite's documentation: ask for the pointer first, then the size.
        let type = sqlite3_column_type(handle, index)
        let p: UnsafeRawPointer? =
            type == SQLITE_TEXT
            ? UnsafeRawPointer(sqlite3_column_text(handle, index)) : sqlite3_column_blob(handle, index)
        let n = Int(sqlite3_column_bytes(handle, index))
        return UnsafeRawBufferPointer(start: n > 0 ? p : nil, count: p == nil ? 0 : n)
    }
}
