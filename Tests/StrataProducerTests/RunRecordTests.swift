import Foundation
import StrataCore
import XCTest

final class RunRecordTests: XCTestCase {
    let layout = Layout(prefix: "p")
    let runId = "20261121T201408123Z-4f1c0a9be203"

    func record() -> RunRecord {
        RunRecord(
            runId: runId, createdAt: Identifiers.date(of: runId)!,
            collections: [
                .init(
                    collection: "words", key: layout.deltaKey(collection: "words", runId: runId), size: 10,
                    sha256: String(repeating: "b", count: 64), upserts: 3, deletes: 0, dimension: 4),
                .init(
                    collection: "lines", key: layout.deltaKey(collection: "lines", runId: runId), size: 20,
                    sha256: String(repeating: "a", count: 64), upserts: 0, deletes: 2, dimension: 0),
            ], labels: ["image_id": "img-1"])
    }

    func testEncodesCanonicallyAndRoundTrips() throws {
        let r = record()
        XCTAssertEqual(r.collections.map(\.collection), ["lines", "words"])
        XCTAssertEqual(r.createdAt, "2026-11-21T20:14:08.123Z")
        let data = r.encoded()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(
            text.hasPrefix(#"{"collections":[{"collection":"lines","deletes":2,"delta_key":"p/lines/delta/"#), text)
        XCTAssertTrue(text.hasSuffix(#""run_id":"20261121T201408123Z-4f1c0a9be203"}"# + "\n"), text)
        let key = layout.runRecordKey(runId)
        XCTAssertEqual(try RunRecord.decode(data, key: key, layout: layout), r)
        XCTAssertEqual(r.createdDate, Identifiers.date(of: runId))
        XCTAssertEqual(RunRecord.date(from: "2026-11-21T20:14:08.123Z"), Identifiers.date(of: runId))
    }

    func testCreatedAtMatchesTheIdsMillisecondExactly() {
        // Dates parsed from ids are seconds + ms / 1000 in floating point; every millisecond
        // must print back as itself.
        for ms in 0..<1000 {
            let id = String(format: "20261121T201408%03dZ-4f1c0a9be203", ms)
            XCTAssertEqual(
                RunRecord.timestamp(Identifiers.date(of: id)!), String(format: "2026-11-21T20:14:08.%03dZ", ms))
        }
    }

    func testSameContentIgnoresCreationTime() {
        var a = record()
        let b = record()
        a.createdAt = "2030-01-01T00:00:00.000Z"
        XCTAssertTrue(a.sameContent(as: b))
        a.labels["x"] = "y"
        XCTAssertFalse(a.sameContent(as: b))
    }

    func testDecodeRefusesBadRecords() throws {
        let key = layout.runRecordKey(runId)
        func json(_ edit: (inout [String: Any]) -> Void) throws -> Data {
            var o = try JSONSerialization.jsonObject(with: record().encoded()) as! [String: Any]
            edit(&o)
            return try JSONSerialization.data(withJSONObject: o)
        }
        func expect(
            _ kind: StrataError.Kind, _ field: String?, key k: String? = nil, _ data: Data,
            line: UInt = #line
        ) {
            XCTAssertThrowsError(try RunRecord.decode(data, key: k ?? key, layout: layout), line: line) { e in
                XCTAssertEqual((e as? StrataError)?.kind, kind, "\(e)", line: line)
                if let field { XCTAssertEqual((e as? StrataError)?.field, field, "\(e)", line: line) }
            }
        }
        expect(.unsupportedVersion, "format_version", try json { $0["format_version"] = 2 })
        expect(.corrupt, "format", try json { $0["format"] = "chroma" })
        expect(.corrupt, nil, Data("not json".utf8))
        expect(.corrupt, "run_id", key: layout.runRecordKey("20261121T201408123Z-000000000000"), try json { _ in })
        expect(.corrupt, "created_at", try json { $0["created_at"] = "yesterday" })
        expect(.corrupt, "collections", try json { $0["collections"] = [] })
        expect(
            .corrupt, "collections[0].delta_key",
            try json {
                var c = $0["collections"] as! [[String: Any]]
                c[0]["delta_key"] = "elsewhere/delta.tar.gz"
                $0["collections"] = c
            })
        expect(
            .corrupt, "collections[1].sha256",
            try json {
                var c = $0["collections"] as! [[String: Any]]
                c[1]["sha256"] = "XYZ"
                $0["collections"] = c
            })
        expect(
            .corrupt, "collections[1].dimension",
            try json {
                var c = $0["collections"] as! [[String: Any]]
                c[1]["dimension"] = 0
                $0["collections"] = c
            })
        expect(.corrupt, "labels", try json { $0["labels"] = ["": "x"] })
        expect(.corrupt, nil, try json { $0.removeValue(forKey: "labels") })
    }
}
