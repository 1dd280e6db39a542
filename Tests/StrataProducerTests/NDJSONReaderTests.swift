import Foundation
import StrataCore
import StrataDelta
import StrataProducer
import StrataTestSupport
import XCTest

final class NDJSONReaderTests: XCTestCase {
    var dir: TempDir!

    override func setUp() { dir = TempDir(prefix: "strata-ndjson") }
    override func tearDown() { dir = nil }

    func file(_ text: String, name: String = "in.ndjson") throws -> String {
        try write(Data(text.utf8), name: name)
    }

    func write(_ data: Data, name: String = "in.ndjson") throws -> String {
        let p = dir.file(name)
        try data.write(to: URL(fileURLWithPath: p))
        return p
    }

    func readAll(_ path: String, dimension: Int? = nil, maxLineBytes: Int = 1 << 20) throws -> [InputRow] {
        let r = try NDJSONReader(path: path, dimension: dimension, maxLineBytes: maxLineBytes)
        var rows: [InputRow] = []
        while let row = try r.next() { rows.append(row) }
        return rows
    }

    func testParsesEveryShape() throws {
        let p = try file(
            """
            \u{FEFF}{"id": "a", "embedding": [0.5, -1, 2e-3, 1E+2, -0.0], "document": "line\\n\\"q\\" \\u00e9 \\ud83d\\ude00 \\/ \\t", "metadata": {"page": 3, "conf": 0.97, "ok": true, "lang": "en", "no": false}}

            {"embedding":[1,2,3,4,5],"id":"b","document":null,"metadata":null}\r
               {"id": "c", "delete": true}
            {"id": "d", "embedding": [1, 2, 3, 4, 5], "delete": false}
            {"id":"é😀","embedding":[0,0,0,0,0],"metadata":{}}
            """)
        let rows = try readAll(p)
        XCTAssertEqual(rows.count, 5)
        XCTAssertEqual(
            rows[0],
            .upsert(
                DeltaRow(
                    id: "a", embedding: [0.5, -1, 0.002, 100, -0.0],
                    document: "line\n\"q\" é 😀 / \t",
                    metadata: #"{"conf":0.97,"lang":"en","no":false,"ok":true,"page":3}"#)))
        XCTAssertEqual(rows[1], .upsert(DeltaRow(id: "b", embedding: [1, 2, 3, 4, 5])))
        XCTAssertEqual(rows[2], .delete(id: "c"))
        XCTAssertEqual(rows[3].id, "d")
        XCTAssertEqual(rows[4], .upsert(DeltaRow(id: "é😀", embedding: [0, 0, 0, 0, 0], metadata: "{}")))
    }

    func testFloatsAreCorrectlyRounded() throws {
        let values = ["0.1", "-3.4028234e38", "1.17549435e-38", "0.333333343267", "123456789", "1e-45"]
        let p = try file("{\"id\":\"x\",\"embedding\":[\(values.joined(separator: ","))]}")
        guard case .upsert(let row)? = try readAll(p).first else { return XCTFail() }
        XCTAssertEqual(row.embedding, values.map { Float($0)! })
    }

    /// Asserts that reading fails on `line`, naming `field` (and `id` when given).
    func expectError(
        _ text: String, line: Int, field: String?, id: String? = nil, dimension: Int? = nil,
        maxLineBytes: Int = 1 << 20, contains: String? = nil,
        file: StaticString = #filePath, fileLine: UInt = #line
    ) throws {
        let p = try self.file(text)
        XCTAssertThrowsError(
            try readAll(p, dimension: dimension, maxLineBytes: maxLineBytes), file: file,
            line: fileLine
        ) { e in
            guard let e = e as? StrataError else { return XCTFail("\(e)", file: file, line: fileLine) }
            XCTAssertEqual(e.kind, .invalidInput, "\(e)", file: file, line: fileLine)
            XCTAssertTrue(e.object.hasPrefix("\(p) line \(line)"), "\(e)", file: file, line: fileLine)
            XCTAssertEqual(e.field, field, "\(e)", file: file, line: fileLine)
            if let id { XCTAssertTrue(e.object.contains("(id \"\(id)\")"), "\(e)", file: file, line: fileLine) }
            if let contains { XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: fileLine) }
        }
    }

    func testErrorsNameFileLineIdAndField() throws {
        let ok = #"{"id": "ok", "embedding": [1, 2, 3]}"# + "\n"
        try expectError(
            ok + ok + #"{"id": "r3", "embedding": [1, 2]}"#, line: 3, field: "embedding", id: "r3",
            contains: "2 values")
        try expectError(ok + #"{"embedding": [1, NaN, 3], "id": "late"}"#, line: 2, field: "embedding[1]", id: "late")
        try expectError(ok + #"{"id": "i", "embedding": [1, Infinity, 3]}"#, line: 2, field: "embedding[1]", id: "i")
        try expectError(
            ok + #"{"id": "i", "embedding": [1, 1e39, 3]}"#, line: 2, field: "embedding[1]", id: "i",
            contains: "float32")
        try expectError(ok + #"{"id": "i", "embedding": [1, "2", 3]}"#, line: 2, field: "embedding[1]")
        try expectError(ok + #"{"id": "", "embedding": [1, 2, 3]}"#, line: 2, field: "id")
        try expectError(ok + #"{"id": 7, "embedding": [1, 2, 3]}"#, line: 2, field: "id")
        try expectError(ok + #"{"id": "a\u0000b", "embedding": [1, 2, 3]}"#, line: 2, field: "id")
        try expectError(ok + #"{"id": "\ud800x", "embedding": [1, 2, 3]}"#, line: 2, field: "id")
        try expectError(#"{"embedding": [1, 2, 3]}"#, line: 1, field: "id")
        try expectError(
            #"{"id": "m", "embedding": [1], "metadata": {"box": {"x": 1}}}"#, line: 1, field: "metadata.box",
            id: "m")
        try expectError(#"{"id": "m", "embedding": [1], "metadata": {"tags": ["a"]}}"#, line: 1, field: "metadata.tags")
        try expectError(#"{"id": "m", "embedding": [1], "metadata": {"n": null}}"#, line: 1, field: "metadata.n")
        try expectError(#"{"id": "m", "embedding": [1], "metadata": {"a": 1, "a": 2}}"#, line: 1, field: "metadata.a")
        try expectError(#"{"id": "m", "embedding": [1], "metadata": [1]}"#, line: 1, field: "metadata")
        try expectError(#"{"id": "u", "embedding": [1], "vector": [1]}"#, line: 1, field: "vector", id: "u")
        try expectError(#"{"id": "u", "id": "v", "embedding": [1]}"#, line: 1, field: "id")
        try expectError(#"{"id": "u"}"#, line: 1, field: "embedding", id: "u")
        try expectError(#"{"id": "u", "delete": true, "embedding": [1]}"#, line: 1, field: "delete", id: "u")
        try expectError(#"{"id": "u", "delete": "yes"}"#, line: 1, field: "delete")
        try expectError(#"{"id": "u", "embedding": [1]} trailing"#, line: 1, field: nil, id: "u")
        try expectError(#"{"id": "u", "embedding": [1]"#, line: 1, field: nil, id: "u")
        try expectError(#"{"id": "u", "document": "unterminated}"#, line: 1, field: "document", id: "u")
        try expectError(#"{"id": "u", "document": "a\qb", "embedding": [1]}"#, line: 1, field: "document")
        try expectError("{\"id\": \"u\", \"document\": \"tab\there\", \"embedding\": [1]}", line: 1, field: "document")
        try expectError(#"[1, 2]"#, line: 1, field: nil)
        try expectError(#"{"id": "n", "embedding": [01]}"#, line: 1, field: "embedding[0]")
        try expectError(#"{"id": "n", "embedding": [1.]}"#, line: 1, field: "embedding[0]")
        try expectError(#"{"id": "n", "embedding": [1, 2]}"#, line: 1, field: "embedding", dimension: 3)
        try expectError(#"{"id": "n", "embedding": []}"#, line: 1, field: "embedding")
        try expectError(#"{"id": "n", "document": "x\u0000y", "embedding": [1]}"#, line: 1, field: "document")
    }

    func testInvalidUTF8IsRefusedWithLine() throws {
        var data = Data(#"{"id": "ok", "embedding": [1]}"#.utf8 + [0x0a])
        data.append(contentsOf: Array(#"{"id": "bad"#.utf8) + [0xff, 0xfe] + Array(#"", "embedding": [1]}"#.utf8))
        let p = try write(data)
        XCTAssertThrowsError(try readAll(p)) { e in
            let e = e as? StrataError
            XCTAssertEqual(e?.field, "id")
            XCTAssertTrue(e?.object.hasPrefix("\(p) line 2") ?? false, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains("UTF-8") ?? false)
        }
    }

    func testLineLengthIsBounded() throws {
        let long = "{\"id\": \"x\", \"document\": \"" + String(repeating: "a", count: 5000) + "\", \"embedding\": [1]}"
        try expectError(
            "{\"id\":\"a\",\"embedding\":[1]}\n" + long, line: 2, field: nil, maxLineBytes: 2000,
            contains: "longer than 2000 bytes")
        XCTAssertEqual(try readAll(try file(long), maxLineBytes: 6000).count, 1)
    }

    /// Many rows across 1 MiB chunk boundaries, with lines longer than a chunk in between.
    func testChunkBoundariesAndLongLines() throws {
        var text = ""
        var expected: [String] = []
        for i in 0..<3000 {
            let doc = i % 1000 == 7 ? String(repeating: "z", count: 1_500_000) : "d\(i)"
            text += "{\"id\":\"r\(i)\",\"embedding\":[\(i),0.25,-\(i)],\"document\":\"\(doc)\"}\n"
            expected.append("r\(i)")
        }
        let rows = try readAll(try file(text), maxLineBytes: 4 << 20)
        XCTAssertEqual(rows.map(\.id), expected)
        guard case .upsert(let r) = rows[1007] else { return XCTFail() }
        XCTAssertEqual(r.document?.count, 1_500_000)
        XCTAssertEqual(r.embedding, [1007, 0.25, -1007])
    }

    func testSyntheticInputParses() throws {
        let p = dir.file("synthetic.ndjson")
        try SyntheticInput.write(path: p, rows: 120, dimension: 16, deleteEvery: 10)
        let rows = try readAll(p)
        XCTAssertEqual(rows.count, 120)
        XCTAssertEqual(rows.filter { if case .delete = $0 { return true } else { return false } }.count, 11)
    }
}
