import Foundation
import StrataCore
import StrataDelta
import StrataPages
import StrataTestSupport
import XCTest

/// Seeded random histories: inserts, overwrites, deletes, VACUUM, rolled-back transactions whose
/// pages spilled into the WAL, several commits per capture; then random chains, merged ranges and
/// in-place applies, each compared byte for byte with the file SQLite wrote.
final class PagePatchRandomizedTests: XCTestCase {
    func testRandomHistoriesMaterializeByteIdentical() throws {
        for seed in [UInt64(1), 2, 3] {
            try run(seed: seed)
        }
    }

    func run(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let w = try PageWorld(rows: Int(rng.next() % 1_500) + 200)
        w.compression = [PageCompression.none, .zeroRun, .zlib(level: 1)][Int(seed % 3)]
        var nextId = 100_000
        var described: [String] = []
        // Every kind of write at least once, in a seeded order, and two more at random.
        let ops = Array(0..<6).shuffled(using: &rng) + [Int(rng.next() % 6), Int(rng.next() % 6)]
        for op in ops {
            let count = Int(rng.next() % 300) + 1
            let start = Int(rng.next() % 3_000)
            described.append("op\(op)x\(count)")
            var walBytes: Int64 = 0
            let r = try w.step { db in
                switch op {
                case 0:
                    try w.upsert(db: db, ids: (nextId..<(nextId + count)).map { "id-\($0)" })
                    nextId += count
                case 1: try w.upsert(db: db, ids: (start..<(start + count)).map { "id-\($0)" })
                case 2: try db.execute("DELETE FROM embeddings WHERE rowid % \(count + 1) = 0")
                case 3: try db.execute("VACUUM")
                case 4:
                    // A transaction large enough to spill pages into the WAL, rolled back; then a
                    // small commit. The spilled frames are not committed and must not be applied.
                    try db.execute("PRAGMA cache_size = 8")
                    try db.execute("BEGIN")
                    let st = try db.prepare("INSERT INTO embeddings(id, embedding) VALUES (?1, zeroblob(3000))")
                    for i in 0..<400 {
                        try st.bind(1, text: "rolled-\(i)")
                        _ = try st.step()
                        st.reset()
                    }
                    _ = consume st
                    try db.execute("ROLLBACK")
                    try db.execute("PRAGMA cache_size = -2000")
                    try w.upsert(db: db, ids: ["id-\(start)"])
                    walBytes = try fileSize(w.live + "-wal")
                default:
                    for _ in 0..<3 { try w.upsert(db: db, ids: (start..<(start + count / 3 + 1)).map { "id-\($0)" }) }
                }
            }
            if op == 4 {
                // The WAL file still holds the rolled-back frames; the parser stopped before them.
                XCTAssertGreaterThan(walBytes / Int64(4096 + 24), Int64(r.walFrames + 100), "seed \(seed)")
            }
        }
        let context = "seed \(seed): \(described.joined(separator: " "))"
        let n = w.patches.count
        // Random prefixes, with a random range merged into one patch.
        for _ in 0..<4 {
            let end = Int(rng.next() % UInt64(n))
            let lo = Int(rng.next() % UInt64(end + 1))
            let hi = lo + Int(rng.next() % UInt64(end - lo + 1))
            let merged = w.dir.file("r\(lo)-\(hi).strpatch")
            try PagePatchChain.merge(Array(w.patches[lo...hi]), to: merged)
            let chain =
                Array(w.patches[0..<lo]) + [PagePatchSource(path: merged)] + Array(w.patches[(hi + 1)..<(end + 1)])
            let out = w.dir.file("r.sqlite3")
            try PagePatchChain.materialize(base: w.base, chain: chain, to: out, hashList: w.dir.file("r.ph"))
            XCTAssertEqual(try bytes(out), try bytes(w.truths[end]), "\(context); version \(end), merged \(lo)...\(hi)")
            // A reader holding version lo-1 (or the base) catches up in place.
            let held = w.dir.file("h.sqlite3")
            try? FileManager.default.removeItem(atPath: held)
            try FileManager.default.copyItem(atPath: lo == 0 ? w.base : w.truths[lo - 1], toPath: held)
            let list = try PageHashList.build(database: held, to: w.dir.file("h.ph"))
            try PagePatchChain.apply(Array(w.patches[lo...end]), onto: held, hashes: list)
            XCTAssertEqual(try bytes(held), try bytes(w.truths[end]), "\(context); in place \(lo)...\(end)")
        }
        XCTAssertEqual(try integrity(w.truths.last!), "ok")
    }
}
