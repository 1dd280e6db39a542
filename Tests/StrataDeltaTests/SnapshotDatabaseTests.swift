import CSQLite
import Foundation
import StrataCore
import StrataDelta
import StrataTestSupport
import XCTest

/// The per-row rule in the snapshot's SQL (SPEC invariant 4): whatever order runs are applied
/// in, the rows, their writers and the tombstones are those of applying them in creation order,
/// and every apply's counts add up exactly.
final class SnapshotDatabaseTests: XCTestCase {
    struct Run {
        var writer: RowWriter
        var upserts: [String: Float]
        var deletes: Set<String>
    }

    func delta(_ run: Run, in dir: TempDir) throws -> String {
        let path = dir.file("delta-\(run.writer.runId).sqlite3")
        let w = try DeltaWriter(path: path, collection: "lines", runId: run.writer.runId, dimension: 2)
        for (id, v) in run.upserts.sorted(by: { $0.key < $1.key }) {
            try w.upsert(id: id, embedding: [v, -v], document: "doc \(v)")
        }
        for id in run.deletes.sorted() { try w.delete(id: id) }
        return try w.finish().path
    }

    /// id -> embedding's first value, or nil for a tombstone; with each id's writer.
    func state(_ path: String) throws -> [String: (Float?, String)] {
        let db = try Database(path: path, mode: .readOnlyImmutable)
        var out: [String: (Float?, String)] = [:]
        let rows = try db.prepare("SELECT id, embedding, run_id FROM embeddings")
        while try rows.step() {
            let blob = rows.columnBytes(1)
            out[rows.columnText(0)!] = (blob.load(as: Float.self), rows.columnText(2)!)
        }
        let tombs = try db.prepare("SELECT id, run_id FROM tombstones")
        while try tombs.step() {
            let id = tombs.columnText(0)!
            XCTAssertNil(out[id], "\(id) is a row and a tombstone")
            out[id] = (nil, tombs.columnText(1)!)
        }
        return out
    }

    func testAnyApplyOrderGivesTheCreationOrderResult() throws {
        let dir = TempDir()
        var rng = SeededRandom(seed: 7)
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        var runs: [Run] = []
        for k in 0..<12 {
            var ups: [String: Float] = [:]
            var dels = Set<String>()
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let id = "id\(Int.random(in: 0..<12, using: &rng))"
                if ups[id] != nil || dels.contains(id) { continue }
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    dels.insert(id)
                } else {
                    ups[id] = Float(k * 100 + ups.count)
                }
            }
            // Runs 4 and 5 share a creation time: the run id breaks the tie.
            let created = base.addingTimeInterval(Double(k == 5 ? 4 : k))
            let millis = Int64(created.timeIntervalSince1970 * 1000)
            let id = Identifiers.timestamp(millis: millis) + "-" + String(format: "%012x", k)
            runs.append(Run(writer: RowWriter(runId: id, created: created), upserts: ups, deletes: dels))
        }
        let deltas = try runs.map { try delta($0, in: dir) }
        var expected: [String: (Float?, String)] = [:]
        for r in runs.sorted(by: { $0.writer < $1.writer }) {
            for (id, v) in r.upserts { expected[id] = (v, r.writer.runId) }
            for id in r.deletes { expected[id] = (nil, r.writer.runId) }
        }
        for trial in 0..<6 {
            let order = trial == 0 ? Array(runs.indices) : runs.indices.shuffled(using: &rng)
            let path = dir.file("snapshot-\(trial).sqlite3")
            let db = try SnapshotDatabase.create(path: path, collection: "lines", dimension: 2)
            var rows = 0
            var superseded = 0
            for i in order {
                let a = try db.apply(deltaPath: deltas[i], writer: runs[i].writer, version: "v", appliedAt: Date())
                rows += a.newIds - a.deletedExisting
                superseded += a.superseded ?? 0
                XCTAssertEqual(try db.rowCount(), rows, "trial \(trial): counts add up after \(runs[i].writer)")
            }
            try db.close()
            let got = try state(path)
            XCTAssertEqual(Set(got.keys), Set(expected.keys), "trial \(trial)")
            for (id, e) in expected {
                XCTAssertEqual(got[id]?.0, e.0, "trial \(trial): \(id)")
                XCTAssertEqual(got[id]?.1, e.1, "trial \(trial): writer of \(id)")
            }
            if trial == 0 { XCTAssertEqual(superseded, 0, "in creation order nothing is superseded") }
        }
    }

    func testTombstonesArePurgedByTheirRunsAge() throws {
        let dir = TempDir()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let old = Run(
            writer: RowWriter(runId: "a", created: now.addingTimeInterval(-10 * 86400)), upserts: ["x": 1],
            deletes: ["gone-old"])
        let recent = Run(
            writer: RowWriter(runId: "b", created: now.addingTimeInterval(-86400)), upserts: [:],
            deletes: ["gone-new", "x"])
        let db = try SnapshotDatabase.create(path: dir.file("s.sqlite3"), collection: "lines", dimension: 2)
        for r in [old, recent] {
            _ = try db.apply(deltaPath: try delta(r, in: dir), writer: r.writer, version: "v", appliedAt: now)
        }
        XCTAssertEqual(try db.tombstoneCount(), 3)
        XCTAssertEqual(try db.purgeTombstones(createdBefore: now.addingTimeInterval(-7 * 86400)), 1)
        XCTAssertNil(try db.writer(of: "gone-old"))
        XCTAssertEqual(try db.writer(of: "x")?.deleted, true)
        XCTAssertEqual(try db.rowCount(), 0)
        try db.close()
    }
}

/// A merge reads the pages its rows touch, not the snapshot: a small delta on a large file must
/// not make SQLite scan the table (a join without statistics did: every page of the file was read
/// for each version).
final class SnapshotMergeIOTests: XCTestCase {
    func testASmallDeltaReadsAFewPagesOfALargeSnapshot() throws {
        let dir = TempDir()
        let dim = 64
        let path = dir.file("s.sqlite3")
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        let bulk = dir.file("bulk.sqlite3")
        let w = try DeltaWriter(path: bulk, collection: "lines", runId: "bulk", dimension: dim)
        for i in 0..<20_000 {
            try w.upsert(id: String(format: "img-%06d/line", i), embedding: [Float](repeating: Float(i), count: dim))
        }
        let snapshot = try SnapshotDatabase.create(path: path, collection: "lines", dimension: dim)
        _ = try snapshot.apply(
            deltaPath: try w.finish().path, writer: RowWriter(runId: "bulk", created: created), version: "v1",
            appliedAt: created)
        try snapshot.close()
        let pages = try pageCount(path)

        let small = dir.file("small.sqlite3")
        let d = try DeltaWriter(path: small, collection: "lines", runId: "small", dimension: dim)
        for i in stride(from: 7, to: 20_000, by: 4_000) {
            try d.upsert(id: String(format: "img-%06d/line", i), embedding: [Float](repeating: -1, count: dim))
        }
        for i in stride(from: 11, to: 20_000, by: 4_000) { try d.delete(id: String(format: "img-%06d/line", i)) }
        try d.delete(id: "never-written")
        let conn = try Database(path: path, mode: .readWriteCreate)
        let db = try SnapshotDatabase.open(connection: conn, collection: "lines")
        let before = try conn.pagesRead()
        let r = try db.apply(
            deltaPath: try d.finish().path, writer: RowWriter(runId: "small", created: created.addingTimeInterval(1)),
            version: "v2", appliedAt: created)
        let read = try conn.pagesRead() - before
        XCTAssertEqual(r.deletedExisting, 5)
        XCTAssertEqual(r.upserts, 5)
        XCTAssertLessThan(read, pages / 10, "the merge of 11 ids read \(read) of the file's \(pages) pages")
        XCTAssertEqual(try db.rowCount(), 20_000 - 5)
        try conn.close()
    }

    /// The file's page count from its header (offset 28, big-endian).
    func pageCount(_ path: String) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: path)).prefix(32)
        return data[28..<32].reduce(0) { $0 << 8 | Int($1) }
    }
}
