import Foundation
import StrataCore
import StrataTestSupport
import XCTest

@testable import StrataInspect

/// The SIMD search against a brute-force scalar reference in Double on seeded random data.
final class QueryVectorSearchTests: XCTestCase {
    struct Row {
        var id: String
        var v: [Float]
        var metadata: String?
    }

    /// Nearer first, ties by id bytes; scores in the metric's own terms.
    static func reference(
        _ rows: [Row], query: [Float], metric: VectorMetric, k: Int,
        keep: (Row) -> Bool = { _ in true }
    ) -> [(id: String, score: Double)] {
        let q = query.map(Double.init)
        let qn = q.map { $0 * $0 }.reduce(0, +).squareRoot()
        var scored: [(id: String, score: Double)] = []
        for r in rows where keep(r) {
            let x = r.v.map(Double.init)
            var dot = 0.0
            var xx = 0.0
            var d2 = 0.0
            for i in 0..<x.count {
                dot += q[i] * x[i]
                xx += x[i] * x[i]
                d2 += (q[i] - x[i]) * (q[i] - x[i])
            }
            let s: Double
            switch metric {
            case .cosine: s = xx > 0 ? dot / (qn * xx.squareRoot()) : 0
            case .ip: s = dot
            case .l2: s = d2.squareRoot()
            }
            scored.append((r.id, s))
        }
        scored.sort { a, b in
            if a.score != b.score { return metric.higherIsNearer ? a.score > b.score : a.score < b.score }
            return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
        }
        return Array(scored.prefix(k))
    }

    func search(
        _ rows: [Row], query: [Float], metric: VectorMetric, k: Int,
        filter: MetadataFilter = MetadataFilter(), excluding: [String] = []
    ) throws -> VectorSearchResult {
        var s = try VectorSearcher(
            query: query, dimension: query.count, metric: metric, k: k, filter: filter,
            excluding: excluding)
        for r in rows { try s.add(id: r.id, embedding: r.v, metadata: r.metadata) }
        return s.result()
    }

    /// Same length, scores within float32 rounding, and ids equal except where the reference's
    /// own scores of the two ids are that close (a near-tie that rounding may order either way).
    func assertAgrees(
        _ got: VectorSearchResult, _ ref: [(id: String, score: Double)], scale: Double,
        _ context: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(got.hits.count, ref.count, context, file: file, line: line)
        let refScore = Dictionary(uniqueKeysWithValues: ref.map { ($0.id, $0.score) })
        let tol = 1e-4 * max(1, scale)
        for (i, (h, r)) in zip(got.hits, ref).enumerated() {
            XCTAssertEqual(Double(h.score), r.score, accuracy: tol, "\(context) rank \(i + 1)", file: file, line: line)
            if h.id != r.id {
                let other = refScore[h.id]
                XCTAssertNotNil(
                    other, "\(context) rank \(i + 1): \(h.id) is not in the reference's top k",
                    file: file, line: line)
                if let other {
                    XCTAssertEqual(
                        other, r.score, accuracy: tol, "\(context) rank \(i + 1): \(h.id) vs \(r.id)",
                        file: file, line: line)
                }
            }
        }
        XCTAssertEqual(
            Set(got.hits.map(\.id)).count, got.hits.count, "\(context): duplicate ids", file: file, line: line)
    }

    func testMatchesScalarReferenceAcrossDimensionsMetricsAndK() throws {
        var rng = SeededRandom(seed: 0x5eed)
        // Around the SIMD widths (8, 16) and their sums, plus realistic sizes.
        for dimension in [1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 33, 100, 384] {
            let rows = (0..<150).map { Row(id: "r\($0)", v: rng.vector(dimension)) }
            let query = rng.vector(dimension)
            for metric in VectorMetric.allCases {
                for k in [1, 7, 150, 1000] {
                    let got = try search(rows, query: query, metric: metric, k: k)
                    let ref = Self.reference(rows, query: query, metric: metric, k: k)
                    assertAgrees(got, ref, scale: Double(dimension), "dim \(dimension) \(metric) k \(k)")
                    XCTAssertEqual(got.scanned, 150)
                    XCTAssertEqual(got.matched, 150)
                }
            }
        }
    }

    func testUnalignedRowBytesScoreTheSame() throws {
        var rng = SeededRandom(seed: 7)
        let q = rng.vector(37)
        let x = rng.vector(37)
        var s = try VectorSearcher(query: q, dimension: 37, metric: .l2, k: 1)
        // One byte of padding in front: the embedding starts at an odd address.
        var raw = [UInt8](repeating: 0, count: 1 + 37 * 4)
        x.withUnsafeBytes { src in
            raw.withUnsafeMutableBytes {
                $0.baseAddress!.advanced(by: 1).copyMemory(from: src.baseAddress!, byteCount: src.count)
            }
        }
        let id = Array("odd".utf8)
        try raw.withUnsafeBytes { all in
            try id.withUnsafeBytes {
                try s.add(id: $0, embedding: UnsafeRawBufferPointer(rebasing: all[1...]), metadata: nil)
            }
        }
        let ref = Self.reference([Row(id: "odd", v: x)], query: q, metric: .l2, k: 1)
        XCTAssertEqual(Double(s.result().hits[0].score), ref[0].score, accuracy: 1e-4)
    }

    func testTiesAreBrokenByIdWhateverTheInsertionOrder() throws {
        var rng = SeededRandom(seed: 42)
        let dimension = 19
        let shared = rng.vector(dimension)
        // Ten rows with the very same vector (exact ties), and ten others.
        var rows = ["t09", "t1", "t10", "t2", "T3", "t00", "tz", "t-", "té", "t05"].map { Row(id: $0, v: shared) }
        rows += (0..<10).map { Row(id: "o\($0)", v: rng.vector(dimension)) }
        for metric in VectorMetric.allCases {
            // The shared vector itself as query: the ties are the nearest (for ip, scale it up).
            let query = metric == .ip ? shared.map { $0 * 100 } : shared
            var first: [VectorHit]?
            for round in 0..<5 {
                var order = rows
                order.shuffle(using: &rng)
                let got = try search(order, query: query, metric: metric, k: 4)
                XCTAssertEqual(got.hits.map(\.id), ["T3", "t-", "t00", "t05"], "\(metric) round \(round)")
                if let first { XCTAssertEqual(got.hits, first, "\(metric): same result in any order") }
                first = got.hits
                let all = try search(order, query: query, metric: metric, k: 100)
                XCTAssertEqual(
                    Array(all.hits.prefix(10)).map(\.id),
                    ["T3", "t-", "t00", "t05", "t09", "t1", "t10", "t2", "tz", "té"], "\(metric)")
            }
        }
    }

    func testKLargerThanRowsAndEmptyInput() throws {
        let rows = [Row(id: "a", v: [1, 0]), Row(id: "b", v: [0, 1]), Row(id: "c", v: [1, 1])]
        let got = try search(rows, query: [1, 0], metric: .cosine, k: 1_000_000)
        XCTAssertEqual(got.hits.map(\.id), ["a", "c", "b"])
        XCTAssertEqual(got.hits[0].score, 1, accuracy: 1e-6)
        XCTAssertEqual(got.hits[1].score, Float(2).squareRoot() / 2, accuracy: 1e-6)
        XCTAssertEqual(got.hits[2].score, 0, accuracy: 1e-6)
        let l2 = try search(rows, query: [1, 0], metric: .l2, k: 10)
        XCTAssertEqual(l2.hits.map(\.id), ["a", "c", "b"])
        XCTAssertEqual(l2.hits.map(\.score), [0, 1, Float(2).squareRoot()])
        let none = try search([], query: [1, 0], metric: .ip, k: 3)
        XCTAssertEqual(none.hits, [])
        XCTAssertEqual(none.scanned, 0)
    }

    func testZeroRowsScoreZeroForCosine() throws {
        let rows = [Row(id: "zero", v: [0, 0, 0]), Row(id: "neg", v: [-1, 0, 0])]
        let got = try search(rows, query: [1, 0, 0], metric: .cosine, k: 2)
        XCTAssertEqual(got.hits, [VectorHit(id: "zero", score: 0), VectorHit(id: "neg", score: -1)])
    }

    func testExcludedIdIsNeverReturned() throws {
        let rows = [Row(id: "self", v: [1, 0]), Row(id: "near", v: [0.9, 0.1]), Row(id: "far", v: [0, 1])]
        let got = try search(rows, query: [1, 0], metric: .cosine, k: 5, excluding: ["self"])
        XCTAssertEqual(got.hits.map(\.id), ["near", "far"])
        XCTAssertEqual(got.scanned, 3)
        XCTAssertEqual(got.matched, 2)
    }

    func testFilterAppliesBeforeScoringAndAgreesWithReference() throws {
        var rng = SeededRandom(seed: 99)
        let dimension = 21
        var rows: [Row] = []
        for i in 0..<300 {
            let image = ["abc", "def", "1"][i % 3 == 0 ? i % 2 : 2]
            let meta = #"{"has_price":\#(i % 3 == 0),"image_id":"\#(image)","receipt_id":\#(i % 5)}"#
            rows.append(
                Row(id: String(format: "row-%03d", i), v: rng.vector(dimension), metadata: i % 17 == 0 ? nil : meta))
        }
        let query = rng.vector(dimension)
        let filter = try MetadataFilter(parsing: ["has_price=true", "receipt_id=1"])
        for metric in VectorMetric.allCases {
            let got = try search(rows, query: query, metric: metric, k: 8, filter: filter)
            let ref = Self.reference(rows, query: query, metric: metric, k: 8) { r in filter.matches(r.metadata) }
            assertAgrees(got, ref, scale: 21, "filtered \(metric)")
            let expected = rows.filter { r in
                let i = Int(r.id.dropFirst(4))!
                return i % 17 != 0 && i % 3 == 0 && i % 5 == 1
            }
            XCTAssertEqual(got.matched, expected.count)
            XCTAssertTrue(got.hits.allSatisfy { h in expected.contains { $0.id == h.id } })
        }
        let none = try search(
            rows, query: query, metric: .l2, k: 8, filter: try MetadataFilter(parsing: ["image_id=zzz"]))
        XCTAssertEqual(none.hits, [])
        XCTAssertEqual(none.matched, 0)
        XCTAssertEqual(none.scanned, 300)
    }

    // MARK: bad inputs

    func assertInvalid(
        _ body: @autoclosure () throws -> Any, contains text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard let e = e as? StrataError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(e.kind, .invalidInput, file: file, line: line)
            XCTAssertTrue(e.description.contains(text), e.description, file: file, line: line)
        }
    }

    func testBadQueriesAreRefusedWithClearErrors() {
        assertInvalid(
            try VectorSearcher(query: [1, 2], dimension: 3, metric: .ip, k: 1),
            contains: "has 2 values; the collection's dimension is 3")
        assertInvalid(try VectorSearcher(query: [1, .nan, 2], dimension: 3, metric: .l2, k: 1), contains: "[1]")
        assertInvalid(
            try VectorSearcher(query: [1, 2, .infinity], dimension: 3, metric: .l2, k: 1), contains: "finite")
        assertInvalid(try VectorSearcher(query: [0, 0, 0], dimension: 3, metric: .cosine, k: 1), contains: "all zeros")
        XCTAssertNoThrow(try VectorSearcher(query: [0, 0, 0], dimension: 3, metric: .l2, k: 1))
        assertInvalid(try VectorSearcher(query: [1, 2, 3], dimension: 3, metric: .ip, k: 0), contains: "at least 1")
        assertInvalid(try MetadataFilter(parsing: ["novalue"]), contains: "is not key=value")
        assertInvalid(try MetadataFilter(parsing: ["=x"]), contains: "is not key=value")
    }

    func testBadRowsAreReportedAsCorrupt() throws {
        var s = try VectorSearcher(query: [1, 2, 3], dimension: 3, metric: .ip, k: 2)
        XCTAssertThrowsError(try s.add(id: "short", embedding: [1, 2])) { e in
            XCTAssertEqual((e as? StrataError)?.kind, .corrupt)
            XCTAssertTrue("\(e)".contains("short"), "\(e)")
        }
        XCTAssertThrowsError(try s.add(id: "nan", embedding: [1, .nan, 2])) { e in
            XCTAssertEqual((e as? StrataError)?.kind, .corrupt)
            XCTAssertTrue("\(e)".contains("not finite"), "\(e)")
        }
    }

    func testHugeKDoesNotAllocateUpFront() throws {
        var s = try VectorSearcher(query: [1], dimension: 1, metric: .ip, k: Int.max)
        for i in 0..<5 { try s.add(id: "r\(i)", embedding: [Float(i)]) }
        XCTAssertEqual(s.result().hits.map(\.id), ["r4", "r3", "r2", "r1", "r0"])
    }

    // MARK: query vector input

    func testQueryVectorParsing() throws {
        XCTAssertEqual(
            try VectorSearch.parseQueryVector(Data(" [0.5, -1, 3e-3 ]\n".utf8), source: "q"), [0.5, -1, 0.003])
        XCTAssertEqual(
            try VectorSearch.parseQueryVector(
                Data(#"{"id":"x","embedding":[1,2],"metadata":{"a":[1]}}"#.utf8),
                source: "q"), [1, 2])
        for (bad, text) in [
            ("", "is empty"), ("[]", "has no values"), ("[1, \"2\"]", "vector[1]"), ("[1, true]", "vector[1]"),
            ("[1e39]", "outside the float32 range"), ("[NaN]", "expected a number"), ("[1] [2]", "text after"),
            ("{\"id\": \"x\"}", "without an \"embedding\""), ("42", "not a JSON array"), ("[1, 2", "not terminated"),
        ] {
            XCTAssertThrowsError(try VectorSearch.parseQueryVector(Data(bad.utf8), source: "query vector q.json"), bad)
            { e in
                XCTAssertTrue("\(e)".contains(text), "\(bad): \(e)")
                XCTAssertTrue("\(e)".contains("q.json"), "\(bad): \(e)")
            }
        }
    }
}
