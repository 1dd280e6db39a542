import CSQLite
import Foundation
import StrataCore
import StrataDelta
import StrataTestSupport
import XCTest

final class SQLiteWrapperTests: XCTestCase {
    func testErrorsNameTheStatementAndFileButNotValues() throws {
        let dir = TempDir()
        let path = dir.file("t.sqlite3")
        let db = try Database(path: path, mode: .readWriteCreate)
        try db.execute("CREATE TABLE t(id TEXT PRIMARY KEY)")
        XCTAssertThrowsError(try db.prepare("SELEKT 1")) { e in
            let e = e as? SQLiteError
            XCTAssertEqual(e?.operation, "prepare")
            XCTAssertEqual(e?.statement, "SELEKT 1")
            XCTAssertEqual(e?.file, path)
        }
        let insert = try db.prepare("INSERT INTO t(id) VALUES (?1)")
        try insert.bind(1, text: "secret-value-1")
        try insert.step()
        insert.reset()
        try insert.bind(1, text: "secret-value-1")
        XCTAssertThrowsError(try insert.step()) { e in
            let e = e as? SQLiteError
            XCTAssertEqual(e?.operation, "step")
            XCTAssertEqual(e?.primaryCode, SQLITE_CONSTRAINT)
            XCTAssertEqual(e?.code, SQLITE_CONSTRAINT | (6 << 8))  // SQLITE_CONSTRAINT_PRIMARYKEY
            XCTAssertEqual(e?.statement, "INSERT INTO t(id) VALUES (?1)")
            XCTAssertFalse("\(String(describing: e))".contains("secret-value"))
            XCTAssertEqual(e?.strataError.kind, .io)
        }
        // close() refuses while a statement is alive, and works once it is gone.
        XCTAssertThrowsError(try db.close())
        _ = insert
    }

    func testCloseAfterStatementsAreGone() throws {
        let dir = TempDir()
        let db = try Database(path: dir.file("t.sqlite3"), mode: .readWriteCreate)
        do {
            let s = try db.prepare("SELECT 1")
            XCTAssertTrue(try s.step())
            XCTAssertEqual(s.columnInt64(0), 1)
        }
        try db.close()
        XCTAssertThrowsError(try db.execute("SELECT 1"))
    }

    func testImmutableURIEscapesReservedCharacters() throws {
        let dir = TempDir()
        let path = dir.file("a ?#%é.sqlite3")
        do {
            let db = try Database(path: path, mode: .readWriteCreate)
            try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (42)")
            try db.close()
        }
        let ro = try Database(path: path, mode: .readOnlyImmutable)
        XCTAssertEqual(try ro.scalarInt("SELECT x FROM t"), 42)
        XCTAssertThrowsError(try ro.execute("INSERT INTO t VALUES (1)"))
    }
}
