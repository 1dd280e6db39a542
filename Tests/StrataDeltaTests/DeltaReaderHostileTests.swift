import Foundation
import StrataCore
import StrataDelta
import StrataTestSupport
import XCTest

/// Deltas written by Python's sqlite3, valid and not, as another producer (or an attacker) would.
final class DeltaReaderHostileTests: XCTestCase {
    /// Writes a delta with Python; `edit` is Python run after the valid content is in place,
    /// with `db` the connection.
    /// Temporary directories live until the test ends.
    var keep: [TempDir] = []

    func pythonDelta(edit: String = "", dimension: Int = 2) throws -> String {
        let dir = TempDir()
        keep.append(dir)
        let path = dir.file("delta.sqlite3")
        let script = """
            import sqlite3, struct, sys
            db = sqlite3.connect(sys.argv[1])
            db.executescript('''
              CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
              CREATE TABLE upserts(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT);
              CREATE TABLE deletes(id TEXT PRIMARY KEY);
            ''')
            dim = \(dimension)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "strata-delta"), ("format_version", "1"),
                ("collection", "words"), ("run_id", "run-1"), ("dimension", str(dim))])
            def vec(*xs): return struct.pack("<%df" % len(xs), *xs)
            db.execute("INSERT INTO upserts VALUES (?, ?, ?, ?)", ("w2", vec(*[2.0] * dim), "two", '{"b": true, "a": 1}'))
            db.execute("INSERT INTO upserts VALUES (?, ?, ?, ?)", ("w1", vec(*[1.0] * dim), None, None))
            db.execute("INSERT INTO deletes VALUES (?)", ("gone",))
            \(edit)
            db.commit()
            db.close()
            """
        let out = try TestPaths.run(["python3", "-c", script, path])
        XCTAssertEqual(out.status, 0, out.stderr)
        return path
    }

    func readAll(_ path: String, expecting: DeltaExpectation = .init()) throws -> ([DeltaRow], [String]) {
        let r = try DeltaReader(path: path, expecting: expecting)
        var rows: [DeltaRow] = []
        var dels: [String] = []
        try r.forEachUpsert { rows.append($0) }
        try r.forEachDelete { dels.append($0) }
        return (rows, dels)
    }

    func expectError(
        _ path: String, _ kind: StrataError.Kind, field: String?, expecting: DeltaExpectation = .init(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try readAll(path, expecting: expecting), file: file, line: line) { e in
            guard let e = e as? StrataError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            if let field { XCTAssertEqual(e.field, field, "\(e)", file: file, line: line) }
        }
    }

    func testPythonWrittenDeltaIsRead() throws {
        let (rows, dels) = try readAll(
            try pythonDelta(),
            expecting: .init(
                collection: "words", runId: "run-1", dimension: 2, upserts: 2,
                deletes: 1))
        XCTAssertEqual(
            rows,
            [
                DeltaRow(id: "w1", embedding: [1, 1]),
                DeltaRow(id: "w2", embedding: [2, 2], document: "two", metadata: #"{"a":1,"b":true}"#),
            ])
        XCTAssertEqual(dels, ["gone"])
    }

    func testNewerMajorVersionIsRefusedClearly() throws {
        let p = try pythonDelta(edit: "db.execute(\"UPDATE meta SET value='2.0' WHERE key='format_version'\")")
        expectError(p, .unsupportedVersion, field: "meta.format_version")
        let minor = try pythonDelta(edit: "db.execute(\"UPDATE meta SET value='1.3' WHERE key='format_version'\")")
        XCTAssertEqual(try readAll(minor).0.count, 2)
    }

    func testMetaProblems() throws {
        expectError(
            try pythonDelta(edit: "db.execute(\"UPDATE meta SET value='chroma' WHERE key='format'\")"),
            .corrupt, field: "meta.format")
        expectError(
            try pythonDelta(edit: "db.execute(\"DELETE FROM meta WHERE key='dimension'\")"),
            .corrupt, field: "meta.dimension")
        expectError(
            try pythonDelta(edit: "db.execute(\"UPDATE meta SET value='../x' WHERE key='run_id'\")"),
            .corrupt, field: "meta.run_id")
        expectError(
            try pythonDelta(), .refused, field: "meta.collection",
            expecting: .init(collection: "lines"))
        expectError(try pythonDelta(), .refused, field: "meta.run_id", expecting: .init(runId: "run-2"))
        expectError(try pythonDelta(), .refused, field: "meta.dimension", expecting: .init(dimension: 384))
        expectError(try pythonDelta(), .corrupt, field: "upserts", expecting: .init(upserts: 3))
        expectError(try pythonDelta(), .corrupt, field: "deletes", expecting: .init(deletes: 0))
    }

    func testRowProblems() throws {
        expectError(
            try pythonDelta(edit: "db.execute(\"INSERT INTO upserts VALUES ('w3', x'0000', NULL, NULL)\")"),
            .corrupt, field: "upserts.embedding")
        // NaN as float32 little-endian: 00 00 c0 7f.
        expectError(
            try pythonDelta(edit: "db.execute(\"INSERT INTO upserts VALUES ('w3', x'0000c07f0000803f', NULL, NULL)\")"),
            .corrupt, field: "upserts.embedding")
        expectError(
            try pythonDelta(edit: "db.execute(\"INSERT INTO upserts VALUES ('w3', 'text', NULL, NULL)\")"),
            .corrupt, field: "upserts.embedding")
        expectError(
            try pythonDelta(
                edit: "db.execute(\"INSERT INTO upserts VALUES ('w3', x'0000803f0000803f', NULL, '{\\\"a\\\": [1]}')\")"
            ),
            .corrupt, field: "upserts.metadata.a")
        expectError(
            try pythonDelta(
                edit:
                    "db.execute(\"INSERT INTO upserts VALUES (CAST(x'ff' AS TEXT), x'0000803f0000803f', NULL, NULL)\")"),
            .corrupt, field: "upserts.id")
        expectError(
            try pythonDelta(
                edit: "db.execute(\"INSERT INTO upserts VALUES (x'6869', x'0000803f0000803f', NULL, NULL)\")"),
            .corrupt, field: "upserts.id")
        expectError(
            try pythonDelta(edit: "db.execute(\"INSERT INTO deletes VALUES ('w1')\")"),
            .corrupt, field: "deletes.id")
    }

    func testSchemaProblems() throws {
        expectError(try pythonDelta(edit: "db.execute('DROP TABLE deletes')"), .corrupt, field: "deletes")
        expectError(
            try pythonDelta(
                edit: "db.execute('DROP TABLE deletes'); db.execute('CREATE VIEW deletes AS SELECT id FROM upserts')"),
            .corrupt, field: "deletes")
        // Without a primary key, duplicate ids are caught while streaming.
        let dup = try pythonDelta(
            edit: """
                db.execute('DROP TABLE upserts')
                db.execute('CREATE TABLE upserts(id TEXT, embedding BLOB NOT NULL, document TEXT, metadata TEXT)')
                db.execute("INSERT INTO upserts VALUES ('a', x'0000803f0000803f', NULL, NULL)")
                db.execute("INSERT INTO upserts VALUES ('a', x'0000803f0000803f', NULL, NULL)")
                """)
        expectError(dup, .corrupt, field: "upserts.id")
    }

    func testNotADatabase() throws {
        let dir = TempDir()
        try Data("this is not sqlite, just text long enough to look like a header........".utf8)
            .write(to: URL(fileURLWithPath: dir.file("x.sqlite3")))
        expectError(dir.file("x.sqlite3"), .corrupt, field: nil)
        expectError(dir.file("missing.sqlite3"), .io, field: nil)
    }

    func testDamagedPageFailsQuickCheckOrRead() throws {
        let p = try pythonDelta(dimension: 512)
        // Overwrite part of the second page (a table's b-tree) with garbage.
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: p))
        try fh.seek(toOffset: 4096 + 8)
        fh.write(Data(repeating: 0xA5, count: 64))
        try fh.close()
        expectError(p, .corrupt, field: nil)
    }
}
