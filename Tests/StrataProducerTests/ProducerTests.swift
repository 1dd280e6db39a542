import Foundation
import StrataBundle
import StrataCore
import StrataCrypto
import StrataDelta
import StrataFileStore
import StrataProducer
import StrataS3
import StrataTestSupport
import XCTest

class ProducerTests: XCTestCase {
    var dir: TempDir!
    var store: (any ObjectStore)!
    let layout = Layout(prefix: "p/")

    /// The store under test; the SeaweedFS subclass runs every test against S3.
    func makeStore() throws -> any ObjectStore {
        try FileStore(root: URL(fileURLWithPath: dir.file("store")))
    }

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-producer")
        store = try makeStore()
        try FileManager.default.createDirectory(atPath: dir.file("work"), withIntermediateDirectories: true)
    }

    override func tearDown() {
        store = nil
        dir = nil
    }

    var settings: ProducerSettings { ProducerSettings(workDirectory: dir.file("work")) }

    func producer(_ store: (any ObjectStore)? = nil, settings: ProducerSettings? = nil) -> RunProducer {
        RunProducer(store: store ?? self.store, layout: layout, settings: settings ?? self.settings)
    }

    func input(_ name: String, _ text: String) throws -> String {
        let p = dir.file(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    func keys(_ prefix: String = "") throws -> [String] { try store.list(prefix: prefix).map(\.key) }

    /// Downloads, extracts and reads the delta of `collection` in `run`.
    func readDelta(_ run: PublishedRun, _ collection: String) throws -> ([DeltaRow], [String]) {
        let d = try XCTUnwrap(run.deltas.first { $0.collection == collection })
        let local = TempDir(prefix: "strata-read")
        try store.get(d.key, toFile: local.file("b.tar.gz"))
        XCTAssertEqual(try SHA256.hexOfFile(atPath: local.file("b.tar.gz")).hex, d.sha256)
        let x = try BundleExtractor.extract(
            bundle: local.file("b.tar.gz"), into: local.file("x"),
            expectedRunId: run.runId, expectedCollection: collection, name: d.key)
        let r = try DeltaReader(
            path: x.deltaPath,
            expecting: .init(
                collection: collection, runId: run.runId,
                upserts: x.manifest.upserts,
                deletes: x.manifest.deletes))
        var rows: [DeltaRow] = []
        var dels: [String] = []
        try r.forEachUpsert { rows.append($0) }
        try r.forEachDelete { dels.append($0) }
        return (rows, dels)
    }

    // MARK: publish

    func testProduceRoundTripTwoCollections() throws {
        let lines = try input(
            "lines.ndjson",
            Rows.upsert("l2", [1, 2, 3], doc: "second", meta: #"{"page": 1}"#)
                + Rows.upsert("l1", [0.5, 0.25, -1]) + Rows.delete("old"))
        let words = try input("words.ndjson", Rows.upsert("w1", [9, 8]) + Rows.upsert("w1", [7, 6], doc: "again"))
        let runs = try producer().produce(
            inputs: [(collection: "words", path: words), (collection: "lines", path: lines)],
            labels: ["image_id": "img-42"])
        XCTAssertEqual(runs.count, 1)
        let run = runs[0]
        XCTAssertTrue(run.created)
        XCTAssertEqual(run.deltas.map(\.collection), ["lines", "words"])
        XCTAssertEqual(run.deltas.map(\.upserts), [2, 1])
        XCTAssertEqual(run.deltas.map(\.deletes), [1, 0])
        XCTAssertEqual(run.deltas.map(\.dimension), [3, 2])
        XCTAssertEqual(run.recordKey, "p/runs/\(run.runId).json")
        XCTAssertEqual(
            try keys().sorted(),
            [
                "p/lines/delta/\(run.runId)/delta.tar.gz", "p/runs/\(run.runId).json",
                "p/words/delta/\(run.runId)/delta.tar.gz",
            ])

        // The record as the compactor will read it.
        let (data, _) = try store.getData(run.recordKey)
        let record = try RunRecord.decode(data, key: run.recordKey, layout: layout)
        XCTAssertEqual(record.labels, ["image_id": "img-42"])
        XCTAssertEqual(record.collections, run.deltas)
        XCTAssertEqual(record.createdAt, run.createdAt)
        XCTAssertEqual(
            record.createdAt.filter { $0.isNumber || $0 == "T" || $0 == "Z" }, String(run.runId.prefix(19)))
        for d in record.collections {
            XCTAssertEqual(try store.head(d.key)?.size, d.size)
        }

        let (l, ld) = try readDelta(run, "lines")
        XCTAssertEqual(
            l,
            [
                DeltaRow(id: "l1", embedding: [0.5, 0.25, -1]),
                DeltaRow(id: "l2", embedding: [1, 2, 3], document: "second", metadata: #"{"page":1}"#),
            ])
        XCTAssertEqual(ld, ["old"])
        XCTAssertEqual(try readDelta(run, "words").0, [DeltaRow(id: "w1", embedding: [7, 6], document: "again")])
        // The work directory is cleaned up.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.file("work")), [])
    }

    func testBadLinePublishesNothing() throws {
        let lines = try input("lines.ndjson", Rows.upsert("a", [1, 2]))
        let words = try input(
            "words.ndjson",
            Rows.upsert("w1", [1, 2]) + Rows.upsert("w2", [1, 2])
                + "{\"id\": \"w3\", \"embedding\": [1, 2], \"metadata\": {\"x\": [1]}}\n")
        XCTAssertThrowsError(
            try producer().produce(inputs: [
                (collection: "lines", path: lines),
                (collection: "words", path: words),
            ])
        ) { e in
            let e = e as? StrataError
            XCTAssertEqual(e?.kind, .invalidInput)
            XCTAssertEqual(e?.object, "\(words) line 3 (id \"w3\")")
            XCTAssertEqual(e?.field, "metadata.x")
        }
        XCTAssertEqual(try keys(), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.file("work")), [])
    }

    func testInvalidArgumentsAreRefused() throws {
        let p = try input("a.ndjson", Rows.upsert("a", [1]))
        let prod = producer()
        XCTAssertThrowsError(try prod.produce(inputs: [ProducerInput]())) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .invalidInput)
        }
        XCTAssertThrowsError(try prod.produce(inputs: [(collection: "Lines", path: p)])) {
            XCTAssertEqual(($0 as? StrataError)?.field, "collection")
        }
        XCTAssertThrowsError(try prod.produce(inputs: [(collection: "a", path: p), (collection: "a", path: p)]))
        XCTAssertThrowsError(try prod.produce(inputs: [(collection: "a", path: p)], labels: ["": "x"])) {
            XCTAssertEqual(($0 as? StrataError)?.field, "labels")
        }
        XCTAssertThrowsError(try prod.produce(inputs: [(collection: "a", path: p)], runId: "../x"))
        XCTAssertThrowsError(try prod.produce(inputs: [(collection: "a", path: dir.file("missing.ndjson"))])) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .notFound)
        }
        XCTAssertThrowsError(try prod.produce(inputs: [ProducerInput(collection: "a", path: p, dimension: 2)])) {
            XCTAssertEqual(($0 as? StrataError)?.field, "embedding")
        }
        XCTAssertEqual(try keys(), [])
    }

    func testEmptyInputPublishesNothing() throws {
        let p = try input("a.ndjson", "\n\n")
        XCTAssertEqual(try producer().produce(inputs: [(collection: "a", path: p)]), [])
        XCTAssertEqual(try keys(), [])
    }

    func testLargeInputIsSplitIntoOrderedRuns() throws {
        var text = ""
        for i in 0..<7 { text += Rows.upsert("r\(i % 5)", [Float(i), 1]) }
        text += Rows.delete("r0")
        let p = try input("big.ndjson", text)
        var s = settings
        s.maxRowsPerRun = 3
        let runs = try producer(settings: s).produce(
            inputs: [(collection: "lines", path: p)],
            runId: "20260102T030405006Z-abcdefabcdef")
        XCTAssertEqual(
            runs.map(\.runId),
            [
                "20260102T030405006Z-abcdefabcdef",
                "20260102T030405006Z-abcdefabcdef-p000002",
                "20260102T030405006Z-abcdefabcdef-p000003",
            ])
        XCTAssertEqual(runs.map(\.runId), runs.map(\.runId).sorted())
        XCTAssertEqual(Set(runs.map(\.createdAt)), ["2026-01-02T03:04:05.006Z"])
        XCTAssertEqual(runs.map(\.part), [1, 2, 3])
        XCTAssertEqual(runs.map(\.parts), [3, 3, 3])
        XCTAssertEqual(try readDelta(runs[0], "lines").0.map(\.id), ["r0", "r1", "r2"])
        XCTAssertEqual(
            try readDelta(runs[1], "lines").0.map { "\($0.id)=\($0.embedding[0])" }, ["r0=5.0", "r3=3.0", "r4=4.0"])
        XCTAssertEqual(try readDelta(runs[2], "lines").0.map(\.id), ["r1"])
        XCTAssertEqual(try readDelta(runs[2], "lines").1, ["r0"])

        // Splitting by bytes too.
        s.maxRowsPerRun = 1000
        s.maxInputBytesPerRun = Int64(Rows.upsert("r0", [0, 1]).utf8.count * 2)
        let byBytes = try producer(settings: s).produce(inputs: [(collection: "words", path: p)])
        XCTAssertEqual(byBytes.count, 4)
        XCTAssertEqual(byBytes.map { $0.deltas[0].upserts + $0.deltas[0].deletes }, [2, 2, 2, 2])
    }

    // MARK: crashes and retries

    func testCrashBeforeRecordThenRetryPublishesOnce() throws {
        let lines = try input("lines.ndjson", Rows.upsert("a", [1, 2]) + Rows.upsert("b", [3, 4]))
        let runId = "20260103T000000000Z-0123456789ab"
        let faulty = FaultInjectingStore(store)
        faulty.inject(.connectionReset, on: [.put], times: nil) { $1.hasPrefix("p/runs/") }
        XCTAssertThrowsError(try producer(faulty).produce(inputs: [(collection: "lines", path: lines)], runId: runId)) {
            XCTAssertEqual(($0 as? StoreError)?.kind, .transient)
        }
        // The delta is there (an orphan until the record exists); the record is not.
        XCTAssertEqual(try keys(), ["p/lines/delta/\(runId)/delta.tar.gz"])
        let orphan = try XCTUnwrap(try store.head("p/lines/delta/\(runId)/delta.tar.gz"))

        // The retry publishes exactly one record and one delta, with the same bytes.
        let retry = try producer().produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        XCTAssertEqual(retry.count, 1)
        XCTAssertTrue(retry[0].created)
        XCTAssertEqual(try keys().sorted(), ["p/lines/delta/\(runId)/delta.tar.gz", "p/runs/\(runId).json"])
        let delta = try XCTUnwrap(try store.head("p/lines/delta/\(runId)/delta.tar.gz"))
        XCTAssertEqual(delta.size, orphan.size)
        XCTAssertEqual(retry[0].deltas[0].size, delta.size)
        let record = try store.head("p/runs/\(runId).json")

        // A retry after the record: no change at all (nothing uploaded, same objects).
        let counting = FaultInjectingStore(store)
        let again = try producer(counting).produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        XCTAssertFalse(again[0].created)
        XCTAssertEqual(again[0].deltas, retry[0].deltas)
        XCTAssertEqual(counting.calls(.put), 0)
        XCTAssertEqual(try store.head("p/lines/delta/\(runId)/delta.tar.gz")?.etag, delta.etag)
        XCTAssertEqual(try store.head("p/runs/\(runId).json")?.etag, record?.etag)
    }

    func testCrashBetweenDeltaUploadsThenRetry() throws {
        let a = try input("a.ndjson", Rows.upsert("a", [1]))
        let b = try input("b.ndjson", Rows.upsert("b", [2]))
        let runId = "20260103T000000000Z-00000000beef"
        let faulty = FaultInjectingStore(store)
        faulty.inject(.serverError, on: [.put], times: nil) { $1.hasPrefix("p/words/") }
        XCTAssertThrowsError(
            try producer(faulty).produce(
                inputs: [
                    (collection: "lines", path: a),
                    (collection: "words", path: b),
                ], runId: runId))
        XCTAssertEqual(try keys(), ["p/lines/delta/\(runId)/delta.tar.gz"])
        let runs = try producer().produce(
            inputs: [(collection: "lines", path: a), (collection: "words", path: b)],
            runId: runId)
        XCTAssertEqual(runs[0].deltas.count, 2)
        XCTAssertEqual(try keys().count, 3)
    }

    func testLostAnswerToRecordWriteIsRecognised() throws {
        // The record write reaches the store but its answer is lost (timeout): the retry finds
        // the record with the same content and succeeds without writing anything.
        let lines = try input("lines.ndjson", Rows.upsert("a", [1]))
        let runId = "20260103T000000000Z-0000000000aa"
        let faulty = FaultInjectingStore(store)
        faulty.inject(.ambiguousSuccess, on: [.put], times: nil) { $1.hasPrefix("p/runs/") }
        XCTAssertThrowsError(try producer(faulty).produce(inputs: [(collection: "lines", path: lines)], runId: runId))
        XCTAssertEqual(try keys("p/runs/"), ["p/runs/\(runId).json"])
        let counting = FaultInjectingStore(store)
        let runs = try producer(counting).produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        XCTAssertFalse(runs[0].created)
        XCTAssertEqual(counting.calls(.put), 0)
        XCTAssertEqual(try keys().count, 2)
    }

    func testRecordWrittenConcurrentlyBetweenCheckAndWrite() throws {
        // Another attempt writes the same record after this one checked for it: the create-only
        // write fails, the record is read back, and the run counts as published.
        let lines = try input("lines.ndjson", Rows.upsert("a", [1]))
        let runId = "20260103T000000000Z-0000000000bb"
        _ = try producer().produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        let stale = FaultInjectingStore(store)
        stale.inject(.staleRead, on: [.getData], times: 1) { $1.hasPrefix("p/runs/") }
        let runs = try producer(stale).produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        XCTAssertEqual(stale.count(.staleRead), 1)
        XCTAssertFalse(runs[0].created)
        XCTAssertEqual(try keys("p/runs/").count, 1)
    }

    func testRetryWithDifferentContentIsAConflictAndChangesNothing() throws {
        let runId = "20260103T000000000Z-0000000000cc"
        let first = try input("first.ndjson", Rows.upsert("a", [1, 2]))
        let published = try producer().produce(inputs: [(collection: "lines", path: first)], runId: runId)
        let before = try store.list(prefix: "")
        let other = try input("other.ndjson", Rows.upsert("a", [3, 4]))
        XCTAssertThrowsError(try producer().produce(inputs: [(collection: "lines", path: other)], runId: runId)) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .conflict, "\($0)")
        }
        XCTAssertThrowsError(
            try producer().produce(
                inputs: [(collection: "lines", path: first)],
                labels: ["image_id": "x"], runId: runId)
        ) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .conflict)
        }
        XCTAssertEqual(try store.list(prefix: "").map(\.etag), before.map(\.etag))
        XCTAssertEqual(try readDelta(published[0], "lines").0[0].embedding, [1, 2])
    }

    func testUploadThatDoesNotStickIsNeverReferenced() throws {
        // A store that acknowledges the delta upload but keeps a truncated object.
        let truncating = FaultInjectingStore(store)
        truncating.inject(.truncatedWrite, on: [.put], times: nil) { $1.hasSuffix(".tar.gz") }
        let lines = try input("lines.ndjson", Rows.upsert("a", [1, 2, 3]))
        XCTAssertThrowsError(try producer(truncating).produce(inputs: [(collection: "lines", path: lines)])) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .corrupt, "\($0)")
        }
        XCTAssertEqual(try keys("p/runs/"), [])
    }

    func testOrphanDeltaWithOtherContentIsNeverOverwritten() throws {
        // An attempt with other inputs uploaded its delta and died before its record.
        let runId = "20260103T000000000Z-0000000000ee"
        let first = try input("first.ndjson", Rows.upsert("a", [1, 2]))
        let faulty = FaultInjectingStore(store)
        faulty.inject(.connectionReset, on: [.put], times: nil) { $1.hasPrefix("p/runs/") }
        XCTAssertThrowsError(try producer(faulty).produce(inputs: [(collection: "lines", path: first)], runId: runId))
        let deltaKey = "p/lines/delta/\(runId)/delta.tar.gz"
        let orphan = try XCTUnwrap(try store.head(deltaKey))

        let other = try input("other.ndjson", Rows.upsert("a", [3, 4]))
        XCTAssertThrowsError(try producer().produce(inputs: [(collection: "lines", path: other)], runId: runId)) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .conflict, "\($0)")
            let text = "\($0)"
            XCTAssertTrue(text.contains(runId) && text.contains(deltaKey) && text.contains("new --run-id"), text)
        }
        XCTAssertEqual(try store.head(deltaKey)?.etag, orphan.etag, "the delta was not overwritten")
        XCTAssertEqual(try keys("p/runs/"), [], "no record was written")
        // The original inputs still publish under that id (their delta is there already).
        let runs = try producer().produce(inputs: [(collection: "lines", path: first)], runId: runId)
        XCTAssertTrue(runs[0].created)
        XCTAssertEqual(try readDelta(runs[0], "lines").0[0].embedding, [1, 2])
    }

    /// Two producers given one run id and different inputs, started together: exactly one
    /// succeeds, the other fails with a conflict, and the winner's record, its delta and the
    /// snapshot the compactor makes of it agree (the issue found 6 of 24 trials losing the rows).
    func testConcurrentProducersWithOneRunIdExactlyOneWins() throws {
        let trials = 12
        var winners: [Int: Int] = [:]
        for trial in 0..<trials {
            let layout = Layout(prefix: "race-\(trial)/")
            let runId = String(format: "20260103T000000000Z-%012x", 0xace000 + trial)
            var paths: [String] = []
            for side in 0..<2 {
                // Two collections: "lines" differs between the sides, "words" is the same.
                let p = try input(
                    "race-\(trial)-\(side)-lines.ndjson",
                    Rows.upsert("a", [Float(trial), Float(side)]) + Rows.upsert("s\(side)", [1, 1]))
                let w = try input("race-\(trial)-\(side)-words.ndjson", Rows.upsert("w", [5, 5]))
                paths += [p, w]
            }
            let results = Locked<[Int: Result<[PublishedRun], Error>]>([:])
            let start = DispatchSemaphore(value: 0)
            let group = DispatchGroup()
            for side in 0..<2 {
                let inputs = [
                    (collection: "lines", path: paths[side * 2]),
                    (collection: "words", path: paths[side * 2 + 1]),
                ]
                DispatchQueue.global().async(group: group) { [store = self.store!, dir = self.dir!] in
                    // Made here: a RunProducer is not Sendable, each thread has its own.
                    let producer = RunProducer(
                        store: store, layout: layout,
                        settings: ProducerSettings(workDirectory: dir.file("work")))
                    start.wait()
                    let r = Result { try producer.produce(inputs: inputs, runId: runId) }
                    results.update { $0[side] = r }
                }
            }
            start.signal()
            start.signal()
            group.wait()
            let all = results.value
            let won = all.filter { (try? $0.value.get()) != nil }.map(\.key)
            XCTAssertEqual(won.count, 1, "trial \(trial): \(all)")
            guard won.count == 1, let winner = won.first, let run = try? all[winner]!.get().first else { continue }
            winners[winner, default: 0] += 1
            if case .failure(let e) = all[1 - winner]! {
                XCTAssertEqual((e as? StrataError)?.kind, .conflict, "trial \(trial): \(e)")
            }
            // The record names the delta that is stored, and the delta holds the winner's rows.
            let (data, _) = try store.getData(layout.runRecordKey(runId))
            let record = try RunRecord.decode(data, key: layout.runRecordKey(runId), layout: layout)
            XCTAssertEqual(record.collections, run.deltas)
            for d in record.collections {
                let copy = dir.file("race-\(trial)-stored")
                try store.get(d.key, toFile: copy)
                XCTAssertEqual(try SHA256.hexOfFile(atPath: copy).hex, d.sha256, "trial \(trial) \(d.key)")
            }
            XCTAssertEqual(try readDelta(run, "lines").0.map(\.id), ["a", "s\(winner)"])
            // The compactor applies it, and the snapshot holds exactly the winner's rows.
            let world = CompactionWorld(store: store, layout: layout, dimension: 2)
            // (The fixed run id is older than the late-run window: applied on the operator's word.)
            let summary = try world.compactor { $0.allowLateRuns = [runId] }.compact(collection: "lines")
            XCTAssertEqual(summary.outcome, .published, "trial \(trial)")
            let published = try world.published("lines")
            XCTAssertEqual(published.applied, [runId])
            XCTAssertEqual(published.rows.keys.sorted(), ["a", "s\(winner)"])
            XCTAssertEqual(published.rows["a"]?.embedding, [Float(trial), Float(winner)])
        }
        XCTAssertEqual(winners.values.reduce(0, +), trials)
    }

    func testSameInputGivesSameBundleBytes() throws {
        let lines = try input("lines.ndjson", Rows.upsert("a", [1, 2]) + Rows.delete("z"))
        let runId = "20260103T000000000Z-0000000000dd"
        let one = try producer().produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        let store2 = try FileStore(root: URL(fileURLWithPath: dir.file("store2")))
        let two = try producer(store2).produce(inputs: [(collection: "lines", path: lines)], runId: runId)
        XCTAssertEqual(one[0].deltas, two[0].deltas)
    }
}

/// The same producer tests, crashes and retries included, against a real S3 server.
final class ProducerSeaweedFSTests: ProducerTests {
    override func makeStore() throws -> any ObjectStore { try S3TestStore.make("producer") }

    // Declaring one test here makes SwiftPM's Linux test discovery list this class, and with it
    // every inherited test of ProducerTests (no hand-kept list to forget a test in).
    func testRunsOnS3() throws { XCTAssertTrue(store is S3Store, "\(type(of: store!))") }
}
