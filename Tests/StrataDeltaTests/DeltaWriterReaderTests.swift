import Foundation
import StrataCore
import StrataDelta
import StrataTestSupport
import XCTest

final class DeltaWriterReaderTests: XCTestCase {
    let runId = "20260101T000000000Z-0123456789ab"

    func makeWriter(_ dir: TempDir, dimension: Int? = 3, batchSize: Int = 2) throws -> DeltaWriter {
        try DeltaWriter(
            path: dir.file("delta.sqlite3"), collection: "lines", runId: runId, dimension: dimension,
            batchSize: batchSize)
    }

    func testRoundTripInIdOrderWithLastWins() throws {
        let dir = TempDir()
        let w = try makeWriter(dir)
        try w.upsert(id: "b", embedding: [1, 2, 3], document: "bee", metadata: #"{"z": 1, "a": "x\"y", "t": true}"#)
        try w.upsert(id: "a", embedding: [0.5, -0.25, 1e-3])
        try w.delete(id: "c")
        try w.upsert(id: "c", embedding: [7, 8, 9], document: "")  // replaces the delete
        try w.upsert(id: "d", embedding: [1, 1, 1])
        try w.delete(id: "d")  // replaces the upsert
        try w.upsert(id: "é", embedding: [0, 0, 0])
        try w.upsert(id: "a", embedding: [4, 5, 6], document: "again")  // last wins
        let s = try w.finish()
        XCTAssertEqual(s.upserts, 4)
        XCTAssertEqual(s.deletes, 1)
        XCTAssertEqual(s.dimension, 3)
        XCTAssertEqual(w.operations, 8)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("delta.sqlite3.partial")))

        let r = try DeltaReader(
            path: s.path,
            expecting: .init(
                collection: "lines", runId: runId, dimension: 3,
                upserts: 4, deletes: 1))
        XCTAssertEqual(
            r.info,
            DeltaInfo(
                formatVersion: "1", collection: "lines", runId: runId, dimension: 3,
                upserts: 4, deletes: 1))
        var rows: [DeltaRow] = []
        try r.forEachUpsert { rows.append($0) }
        XCTAssertEqual(rows.map(\.id), ["a", "b", "c", "é"])
        XCTAssertEqual(rows[0], DeltaRow(id: "a", embedding: [4, 5, 6], document: "again"))
        XCTAssertEqual(rows[1].metadata, #"{"a":"x\"y","t":true,"z":1}"#)
        XCTAssertEqual(rows[2].document, "")
        var deletes: [String] = []
        try r.forEachDelete { deletes.append($0) }
        XCTAssertEqual(deletes, ["d"])
        try r.close()
    }

    func testSameInputGivesIdenticalFile() throws {
        func write(_ dir: TempDir) throws -> Data {
            let w = try makeWriter(dir, batchSize: 3)
            for i in (0..<50).reversed() {
                try w.upsert(
                    id: "id-\(i)", embedding: [Float(i), 0, 1], document: "doc \(i)", metadata: #"{"i": \#(i)}"#)
            }
            try w.delete(id: "id-7")
            return try Data(contentsOf: URL(fileURLWithPath: try w.finish().path))
        }
        XCTAssertEqual(try write(TempDir()), try write(TempDir()))
    }

    func testDimensionFixedByFirstUpsertAndDeleteOnlyDelta() throws {
        let dir = TempDir()
        let w = try makeWriter(dir, dimension: nil)
        try w.delete(id: "x")
        try w.upsert(id: "y", embedding: [1, 2])
        XCTAssertEqual(w.dimension, 2)
        XCTAssertThrowsError(try w.upsert(id: "z", embedding: [1, 2, 3])) { e in
            XCTAssertEqual((e as? StrataError)?.field, "embedding")
        }
        XCTAssertEqual(try w.finish().dimension, 2)

        let dir2 = TempDir()
        let w2 = try makeWriter(dir2, dimension: nil)
        try w2.delete(id: "x")
        let s = try w2.finish()
        XCTAssertEqual(s.dimension, 0)
        XCTAssertEqual(try DeltaReader(path: s.path, expecting: .init(dimension: 384)).info.deletes, 1)
    }

    func testRowValidationNamesIdAndField() throws {
        let dir = TempDir()
        let w = try makeWriter(dir)
        func expect(
            _ field: String, _ kind: StrataError.Kind = .invalidInput, id: String = "r1",
            _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line
        ) {
            XCTAssertThrowsError(try body(), file: file, line: line) { e in
                guard let e = e as? StrataError else { return XCTFail("\(e)", file: file, line: line) }
                XCTAssertEqual(e.kind, kind, file: file, line: line)
                XCTAssertEqual(e.field, field, "\(e)", file: file, line: line)
                XCTAssertTrue(e.object.contains(id), "\(e)", file: file, line: line)
            }
        }
        expect("id", id: "\"\"") { try w.upsert(id: "", embedding: [1, 2, 3]) }
        expect("id", id: "\"a") { try w.upsert(id: "a\u{0}b", embedding: [1, 2, 3]) }
        expect("id", id: "xxxx") { try w.upsert(id: String(repeating: "x", count: 1025), embedding: [1, 2, 3]) }
        expect("embedding") { try w.upsert(id: "r1", embedding: [1, 2]) }
        expect("embedding[1]") { try w.upsert(id: "r1", embedding: [1, .nan, 3]) }
        expect("embedding[2]") { try w.upsert(id: "r1", embedding: [1, 2, -.infinity]) }
        expect("metadata.a") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"a": {"b": 1}}"#) }
        expect("metadata.a") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"a": [1]}"#) }
        expect("metadata.a") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"a": null}"#) }
        expect("metadata.a") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"a": 1, "a": 2}"#) }
        expect("metadata") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: "[1]") }
        expect("metadata") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"a": 1} x"#) }
        expect("metadata.n") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"n": NaN}"#) }
        expect("metadata.n") { try w.upsert(id: "r1", embedding: [1, 2, 3], metadata: #"{"n": 1e999}"#) }
        expect("document") { try w.upsert(id: "r1", embedding: [1, 2, 3], document: "a\u{0}") }
        // The writer is still usable after refused rows.
        try w.upsert(id: "ok", embedding: [1, 2, 3], metadata: #"{"s": "\u00e9\ud83d\ude00", "f": -1.5e-3}"#)
        let s = try w.finish()
        XCTAssertEqual(s.upserts, 1)
        let row = try DeltaReader(path: s.path).upserts().next()
        XCTAssertEqual(row?.metadata, #"{"f":-1.5e-3,"s":"é😀"}"#)
    }

    func testInvalidConstructorArguments() throws {
        let dir = TempDir()
        XCTAssertThrowsError(try DeltaWriter(path: dir.file("d"), collection: "Bad Name", runId: runId, dimension: 3))
        XCTAssertThrowsError(try DeltaWriter(path: dir.file("d"), collection: "lines", runId: "a/b", dimension: 3))
        XCTAssertThrowsError(try DeltaWriter(path: dir.file("d"), collection: "lines", runId: runId, dimension: 0))
        XCTAssertThrowsError(
            try DeltaWriter(
                path: dir.file("nodir/d"), collection: "lines", runId: runId,
                dimension: 3)
        ) { e in
            XCTAssertEqual((e as? StrataError)?.kind, .io, "\(e)")
        }
    }

    func testAbandonedWriterLeavesNothing() throws {
        let dir = TempDir()
        do {
            let w = try makeWriter(dir)
            try w.upsert(id: "a", embedding: [1, 2, 3])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
