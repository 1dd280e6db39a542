import Foundation
import StrataCore
import StrataDelta
import StrataTestSupport
import XCTest

@testable import StrataInspect

/// `SnapshotReader` on snapshots made by the real producer and compactor on a file store.
final class SnapshotReaderTests: XCTestCase {
    var fixture: QueryFixture!
    var rows: [FixtureRow] = []

    override func setUpWithError() throws {
        fixture = try QueryFixture()
        var rng = SeededRandom(seed: 2024)
        rows = (0..<60).map { i in
            FixtureRow(
                id: "img-\(i / 10)/line-\(i % 10)", embedding: rng.vector(13),
                document: i % 7 == 0 ? nil : "line \(i) of image \(i / 10)",
                metadata: i % 11 == 0 ? nil : #"{"image_id":"img-\#(i / 10)","has_price":\#(i % 2 == 0),"n":\#(i)}"#)
        }
        try fixture.publish("lines", rows: rows)
    }

    override func tearDown() { fixture = nil }

    func testMetaLookupsAndScan() throws {
        let path = try fixture.snapshotFile("lines")
        let reader = try SnapshotReader(path: path)
        XCTAssertEqual(reader.collection, "lines")
        XCTAssertEqual(reader.dimension, 13)
        XCTAssertEqual(reader.formatVersion, "2")
        XCTAssertEqual(reader.recordedRowCount, 60)
        XCTAssertNotNil(reader.version)
        XCTAssertEqual(try reader.rowCount(), 60)

        let r8 = try XCTUnwrap(try reader.row(id: "img-0/line-8"))
        XCTAssertEqual(r8.embedding, rows[8].embedding, "float32 survives NDJSON, delta and snapshot exactly")
        XCTAssertEqual(r8.document, "line 8 of image 0")
        XCTAssertEqual(r8.metadata, #"{"has_price":true,"image_id":"img-0","n":8}"#, "canonical: keys sorted")
        XCTAssertNil(try reader.row(id: "img-0/line-0")?.document, "a NULL document stays nil")
        XCTAssertNil(try reader.row(id: "img-1/line-1")?.metadata, "row 11 has no metadata")
        XCTAssertNil(try reader.row(id: "nope"))

        let got = try reader.rows(ids: ["img-5/line-9", "missing", "img-0/line-1", "img-5/line-9"])
        XCTAssertEqual(got.map(\.id), ["img-5/line-9", "img-0/line-1"], "asked order, once each, missing left out")

        var seen: [String: SnapshotRow] = [:]
        try reader.scan { v in
            seen[v.idString] = v.row()
            return true
        }
        XCTAssertEqual(seen.count, 60)
        for r in rows {
            XCTAssertEqual(seen[r.id]?.embedding, r.embedding, r.id)
            XCTAssertEqual(seen[r.id]?.document, r.document, r.id)
        }
        var bare = 0
        try reader.scan(fields: []) { v in
            XCTAssertNil(v.document)
            XCTAssertNil(v.metadata)
            XCTAssertEqual(v.embedding.count, 13 * 4)
            bare += 1
            return bare < 5
        }
        XCTAssertEqual(bare, 5, "the closure stops the scan")
        try reader.close()
    }

    func testSearchOverTheSnapshotEqualsSearchOverTheRows() throws {
        let reader = try SnapshotReader(path: try fixture.snapshotFile("lines"))
        let query = rows[3].embedding
        let filter = try MetadataFilter(parsing: ["has_price=true"])
        for metric in VectorMetric.allCases {
            let got = try VectorSearch.search(
                reader, query: query, metric: metric, k: 5, filter: filter,
                excluding: [rows[3].id])
            var mem = try VectorSearcher(
                query: query, dimension: 13, metric: metric, k: 5, filter: filter,
                excluding: [rows[3].id])
            for r in rows { try mem.add(id: r.id, embedding: r.embedding, metadata: r.metadata) }
            XCTAssertEqual(got, mem.result(), "\(metric)")
            XCTAssertEqual(got.scanned, 60)
            XCTAssertFalse(got.hits.contains { $0.id == rows[3].id })
        }
    }

    func testLaterVersionsAreRead() throws {
        try fixture.publish(
            "lines",
            rows: [
                FixtureRow(
                    id: "img-0/line-1", embedding: Array(repeating: 0.5, count: 13),
                    document: "replaced")
            ],
            deletes: ["img-0/line-2"])
        let reader = try SnapshotReader(path: try fixture.snapshotFile("lines"))
        XCTAssertEqual(try reader.rowCount(), 59)
        XCTAssertEqual(try reader.row(id: "img-0/line-1")?.document, "replaced")
        XCTAssertNil(try reader.row(id: "img-0/line-2"))
    }

    func testFetchLeavesNothingBehindAndChecksTheManifest() throws {
        let tmp = TempDir(prefix: "strata-fetch")
        let (reader, snap) = try SnapshotReader.fetch(
            "lines", store: fixture.store, layout: fixture.layout,
            temporaryDirectory: tmp.path)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: tmp.path), [],
            "the private directory is gone as soon as the file is open")
        XCTAssertEqual(try reader.rowCount(), 60, "the open file is still readable")
        XCTAssertEqual(snap.manifest.rowCount, 60)
        XCTAssertNotNil(snap.pointerETag)
        let older = try SnapshotReader.fetch(
            "lines", version: snap.version, store: fixture.store, layout: fixture.layout,
            temporaryDirectory: tmp.path)
        XCTAssertEqual(older.snapshot.version, snap.version)
        XCTAssertNil(older.snapshot.pointerETag)

        XCTAssertThrowsError(
            try SnapshotReader.fetch(
                "words", store: fixture.store, layout: fixture.layout,
                temporaryDirectory: tmp.path)
        ) { e in
            XCTAssertEqual((e as? StrataError)?.kind, .notFound)
            XCTAssertTrue("\(e)".contains("snapctl compact --collection words"), "names the fix: \(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [], "removed after a failure too")
    }

    // MARK: files that are not what they claim

    /// A copy of the snapshot with `sql` applied.
    func altered(_ sql: String) throws -> String {
        let path = fixture.dir.file("altered-\(UInt32.random(in: 0...UInt32.max)).sqlite3")
        try FileManager.default.copyItem(atPath: try fixture.snapshotFile("lines"), toPath: path)
        let db = try Database(path: path, mode: .readWriteCreate)
        try db.execute(sql)
        try db.close()
        return path
    }

    func assertRefused(
        _ path: String, _ kind: StrataError.Kind, _ text: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try SnapshotReader(path: path), file: file, line: line) { e in
            XCTAssertEqual((e as? StrataError)?.kind, kind, "\(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains(text), "\(e)", file: file, line: line)
        }
    }

    func testNewerMajorFormatAsksForAnUpgrade() throws {
        assertRefused(
            try altered("UPDATE meta SET value = '3' WHERE key = 'format_version'"), .unsupportedVersion,
            "upgrade snapctl")
        XCTAssertNoThrow(
            try SnapshotReader(path: try altered("UPDATE meta SET value = '2.3' WHERE key = 'format_version'")),
            "a newer minor version of the same major is read")
    }

    func testOtherFilesAreRefused() throws {
        assertRefused(
            try altered("UPDATE meta SET value = 'strata-delta' WHERE key = 'format'"), .corrupt, "meta.format")
        assertRefused(try altered("DELETE FROM meta WHERE key = 'dimension'"), .corrupt, "meta.dimension")
        assertRefused(try altered("UPDATE meta SET value = 'x' WHERE key = 'dimension'"), .corrupt, "meta.dimension")
        assertRefused(try altered("DROP TABLE meta"), .corrupt, "no meta table")
        assertRefused(try altered("DROP TABLE embeddings"), .corrupt, "embeddings")
        let junk = fixture.dir.file("junk.sqlite3")
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: junk))
        assertRefused(junk, .corrupt, "not a database")
        assertRefused(fixture.dir.file("absent.sqlite3"), .notFound, "no such file")
    }

    func testWrongEmbeddingLengthIsCorrupt() throws {
        let path = try altered("UPDATE embeddings SET embedding = x'00000000' WHERE id = 'img-2/line-2'")
        let reader = try SnapshotReader(path: path)
        XCTAssertThrowsError(try reader.scan { _ in true }) { e in
            XCTAssertEqual((e as? StrataError)?.kind, .corrupt)
            XCTAssertTrue("\(e)".contains("img-2/line-2"), "\(e)")
        }
        XCTAssertThrowsError(try reader.row(id: "img-2/line-2"))
    }
}
