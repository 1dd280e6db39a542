import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages
import StrataTestSupport
import XCTest

/// A SQLite file like the snapshot (TEXT ids, float32 BLOBs) changed by a sequence of captured
/// writes; after each write the file itself is kept as the truth the chain must reproduce.
final class PageWorld {
    let dir = TempDir(prefix: "strata-pages")
    let live: String
    let base: String
    var hashes: PageHashList!
    var patches: [PagePatchSource] = []
    var truths: [String] = []
    var results: [PageCaptureResult] = []
    var rng = SeededRandom(seed: 0x5eed_9a9e)
    let dimension: Int
    var compression = PageCompression.zlib(level: 1)
    /// When set, each capture also writes the undo patch (back to the file before it).
    var withUndo = false
    var undos: [PagePatchSource] = []

    init(rows: Int, dimension: Int = 96, pageSize: Int = 4096) throws {
        self.dimension = dimension
        live = dir.file("live.sqlite3")
        base = dir.file("base.sqlite3")
        let db = try Database(path: live, mode: .readWriteCreate)
        try db.execute("PRAGMA page_size = \(pageSize)")
        try db.execute("CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT)")
        try db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        try db.execute("INSERT INTO meta VALUES ('row_count', '0')")
        try db.close()
        try upsert(db: nil, ids: (0..<rows).map { "id-\($0)" })
        try FileManager.default.copyItem(atPath: live, toPath: base)
        hashes = try PageHashList.build(database: live, to: dir.file("live.pagehash"))
    }

    /// Inserts or replaces rows with random vectors (opens its own connection when `db` is nil).
    func upsert(db: Database?, ids: [String]) throws {
        let db = try db ?? Database(path: live, mode: .readWriteCreate)
        try db.execute("BEGIN")
        let st = try db.prepare("INSERT OR REPLACE INTO embeddings(id, embedding, document) VALUES (?1, ?2, ?3)")
        for id in ids {
            let v = rng.vector(dimension)
            try st.bind(1, text: id)
            try v.withUnsafeBytes { try st.bind(2, blob: $0) }
            try st.bind(3, text: "doc \(id)")
            _ = try st.step()
            st.reset()
        }
        _ = consume st
        try db.execute("UPDATE meta SET value = (SELECT count(*) FROM embeddings) WHERE key = 'row_count'")
        try db.execute("COMMIT")
    }

    /// Captures one write into a new patch, and keeps a copy of the file it left.
    @discardableResult
    func step(_ body: (Database) throws -> Void) throws -> PageCaptureResult {
        let n = patches.count
        let path = dir.file("p\(n).strpatch")
        let undo = withUndo ? dir.file("u\(n).strpatch") : nil
        let r = try PageCapture.capture(
            database: live, hashes: hashes, patch: path, undo: undo,
            settings: PageCaptureSettings(compression: compression), body: body)
        patches.append(PagePatchSource(path: path, object: "test/p\(n).strpatch"))
        if let undo { undos.append(PagePatchSource(path: undo, object: "test/u\(n).strpatch")) }
        let truth = dir.file("truth\(n).sqlite3")
        try FileManager.default.copyItem(atPath: live, toPath: truth)
        truths.append(truth)
        results.append(r)
        return r
    }

    /// The standard history: grow, update, delete, shrink (VACUUM), regrow, several commits.
    func standardHistory() throws {
        let before = try fileSize(live)
        try step { db in try self.upsert(db: db, ids: (10_000..<10_400).map { "id-\($0)" }) }  // inserts
        try step { db in try self.upsert(db: db, ids: stride(from: 0, to: 1_000, by: 97).map { "id-\($0)" }) }
        try step { db in try db.execute("DELETE FROM embeddings WHERE id LIKE 'id-1%'") }
        try step { db in try db.execute("VACUUM") }  // shrinks the file
        try step { db in  // two commits in one capture, and regrowth
            try self.upsert(db: db, ids: (20_000..<20_300).map { "id-\($0)" })
            try db.execute("DELETE FROM embeddings WHERE id LIKE 'id-2000%'")
        }
        try step { db in try db.execute("DELETE FROM embeddings; VACUUM") }  // down to a few pages
        try step { db in try self.upsert(db: db, ids: (30_000..<30_500).map { "id-\($0)" }) }
        XCTAssertLessThan(try fileSize(truths[3]), try fileSize(truths[2]), "VACUUM must shrink the file")
        XCTAssertGreaterThan(try fileSize(truths[0]), before, "inserts must grow the file")
    }
}

func fileSize(_ path: String) throws -> Int64 {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? -1
}

func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

func integrity(_ path: String) throws -> String? {
    let db = try Database(path: path, mode: .readOnlyImmutable)
    return try db.scalarText("PRAGMA integrity_check")
}

final class PagePatchTests: XCTestCase {
    func testChainsAndMergedChainsMaterializeByteIdenticalToTheWrittenFile() throws {
        let w = try PageWorld(rows: 3_000)
        try w.standardHistory()
        for i in w.patches.indices {
            let chain = Array(w.patches[0...i])
            let out = w.dir.file("m\(i).sqlite3")
            let r = try PagePatchChain.materialize(
                base: w.base, chain: chain, to: out, hashList: w.dir.file("m\(i).ph"))
            XCTAssertEqual(try bytes(out), try bytes(w.truths[i]), "chain of \(i + 1) patches")
            XCTAssertEqual(r.root, try PageHashList.root(ofDatabase: w.truths[i]))
            XCTAssertEqual(try integrity(out), "ok")
            // The whole chain merged into one patch gives the same file.
            let merged = w.dir.file("merged\(i).strpatch")
            let summary = try PagePatchChain.merge(chain, to: merged)
            XCTAssertLessThanOrEqual(summary.header.frameCount, summary.header.toPageCount)
            let out2 = w.dir.file("mm\(i).sqlite3")
            try PagePatchChain.materialize(
                base: w.base, chain: [PagePatchSource(path: merged)], to: out2,
                hashList: w.dir.file("mm\(i).ph"))
            XCTAssertEqual(try bytes(out2), try bytes(w.truths[i]), "merged chain of \(i + 1) patches")
        }
        // A merged middle (across the shrink and the regrowth) in a chain.
        let mid = w.dir.file("mid.strpatch")
        try PagePatchChain.merge(Array(w.patches[2...5]), to: mid)
        let chain = [w.patches[0], w.patches[1], PagePatchSource(path: mid), w.patches[6]]
        let out = w.dir.file("mid.sqlite3")
        try PagePatchChain.materialize(base: w.base, chain: chain, to: out, hashList: w.dir.file("mid.ph"))
        XCTAssertEqual(try bytes(out), try bytes(w.truths[6]))
        // The cut below the regrown pages must have produced explicit zero frames or frames for them.
        XCTAssertEqual(try integrity(w.truths[6]), "ok")
        // An update touches far fewer pages than the file has.
        let upd = w.results[1].patch.header
        XCTAssertLessThan(upd.frameCount * 4, upd.toPageCount, "an update of 11 rows rewrote most pages")
        XCTAssertGreaterThan(w.results[4].commits, 1)
    }

    func testEveryPageEncodingRoundTripsInSwiftAndPython() throws {
        let script = TestPaths.projectRoot + "/Scripts/materialize_pages.py"
        for compression in [PageCompression.none, .zeroRun, .zlib(level: 1), .zlib(level: 9)] {
            let w = try PageWorld(rows: 1_200)
            w.compression = compression
            try w.standardHistory()
            let encoded = w.results.map(\.patch.compressedFrames).reduce(0, +)
            if compression == .none {
                XCTAssertEqual(encoded, 0)
            } else {
                XCTAssertGreaterThan(encoded, 0, "\(compression)")
            }
            let out = w.dir.file("o.sqlite3")
            try PagePatchChain.materialize(base: w.base, chain: w.patches, to: out, hashList: w.dir.file("o.ph"))
            XCTAssertEqual(try bytes(out), try bytes(w.truths.last!), "\(compression)")
            let py = w.dir.file("py.sqlite3")
            let r = try TestPaths.run(["python3", script, "--base", w.base, "--out", py] + w.patches.map(\.path))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try bytes(py), try bytes(w.truths.last!), "python, \(compression)")
            // A merge keeps each frame's encoding and re-encodes only zero pages.
            let merged = try PagePatchChain.merge(w.patches, to: w.dir.file("m.strpatch"), compression: compression)
            try PagePatchChain.materialize(
                base: w.base, chain: [PagePatchSource(path: merged.path)], to: out,
                hashList: w.dir.file("o.ph"))
            XCTAssertEqual(try bytes(out), try bytes(w.truths.last!), "merged, \(compression)")
        }
    }

    func testUndoPatchesReturnEachVersionToItsParent() throws {
        let w = try PageWorld(rows: 2_000)
        w.withUndo = true
        try w.standardHistory()
        XCTAssertEqual(w.undos.count, w.patches.count)
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.undos[0].path + ".pages"))
        for i in w.patches.indices {
            let parent = i == 0 ? w.base : w.truths[i - 1]
            let held = w.dir.file("undo\(i).sqlite3")
            try FileManager.default.copyItem(atPath: w.truths[i], toPath: held)
            let list = try PageHashList.build(database: held, to: w.dir.file("undo\(i).ph"))
            let r = try PagePatchChain.apply([w.undos[i]], onto: held, hashes: list)
            XCTAssertEqual(try bytes(held), try bytes(parent), "undo of version \(i)")
            XCTAssertEqual(r.root, w.results[i].patch.header.fromRoot)
        }
        // Forward then back in one chain, in Swift and in Python: the chain's first file again.
        let script = TestPaths.projectRoot + "/Scripts/materialize_pages.py"
        let chain = [w.patches[0], w.patches[1], w.patches[2], w.patches[3], w.undos[3], w.undos[2]]
        let out = w.dir.file("fb.sqlite3")
        try PagePatchChain.materialize(base: w.base, chain: chain, to: out, hashList: w.dir.file("fb.ph"))
        XCTAssertEqual(try bytes(out), try bytes(w.truths[1]))
        let py = w.dir.file("fbpy.sqlite3")
        let r = try TestPaths.run(["python3", script, "--base", w.base, "--out", py] + chain.map(\.path))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try bytes(py), try bytes(w.truths[1]))
    }

    func testApplyInPlaceFromAnIntermediateVersionAndHashListFromPatchesOnly() throws {
        let w = try PageWorld(rows: 2_000)
        try w.standardHistory()
        // A reader holding version 2 applies the patches after it, in place.
        let held = w.dir.file("held.sqlite3")
        try FileManager.default.copyItem(atPath: w.truths[1], toPath: held)
        let list = try PageHashList.build(database: held, to: w.dir.file("held.ph"))
        let r = try PagePatchChain.apply(Array(w.patches[2...]), onto: held, hashes: list)
        XCTAssertEqual(try bytes(held), try bytes(w.truths.last!))
        XCTAssertEqual(r.root, w.results.last!.patch.header.toRoot)
        // The capture's incrementally updated list equals a list built from the final file.
        let rebuilt = try PageHashList.build(database: w.live, to: w.dir.file("rebuilt.ph"))
        XCTAssertEqual(w.hashes.root, rebuilt.root)
        XCTAssertEqual(try bytes(w.hashes.path), try bytes(rebuilt.path))
        // Updating a base's list from the patches alone (no page read) reaches the same root.
        let fromBase = try PageHashList.build(database: w.base, to: w.dir.file("frombase.ph"))
        for p in w.patches { try fromBase.apply(patch: p.path, object: p.object) }
        XCTAssertEqual(fromBase.root, rebuilt.root)
        let reopened = try PageHashList.open(path: fromBase.path)
        XCTAssertEqual(reopened.root, rebuilt.root)
        // Applying the same patch twice is refused: the list is no longer at its from root.
        XCTAssertThrowsError(try fromBase.apply(patch: w.patches[0].path, object: w.patches[0].object)) { e in
            XCTAssertEqual((e as? StrataError)?.field, "header.from_root")
            XCTAssertEqual((e as? StrataError)?.object, "test/p0.strpatch")
        }
    }

    func testWrongBaseAndChainOrderAreRefusedAndNamed() throws {
        let w = try PageWorld(rows: 1_500)
        try w.standardHistory()
        let out = w.dir.file("o.sqlite3")
        let ph = w.dir.file("o.ph")
        // Patch 1 applied to the base (it was made for truth 0).
        XCTAssertThrowsError(try PagePatchChain.materialize(base: w.base, chain: [w.patches[1]], to: out, hashList: ph))
        {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .refused)
            XCTAssertEqual(e?.object, "test/p1.strpatch")
            XCTAssertEqual(e?.field, "header.from_root")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"))
        // A base whose content differs in one byte (same size) is a wrong base too.
        let other = w.dir.file("other.sqlite3")
        var d = try bytes(w.base)
        d[d.count - 10] ^= 0xff
        try d.write(to: URL(fileURLWithPath: other))
        XCTAssertThrowsError(try PagePatchChain.materialize(base: other, chain: [w.patches[0]], to: out, hashList: ph))
        {
            XCTAssertEqual(($0 as? StrataError)?.field, "header.from_root")
        }
        // Out of order and with a gap.
        for chain in [[w.patches[1], w.patches[0]], [w.patches[0], w.patches[2]]] {
            XCTAssertThrowsError(try PagePatchChain.materialize(base: w.base, chain: chain, to: out, hashList: ph)) {
                let e = $0 as? StrataError
                XCTAssertEqual(e?.field, "header.from_root")
                XCTAssertEqual(e?.object, chain[1].object)
            }
            XCTAssertThrowsError(try PagePatchChain.merge(chain, to: w.dir.file("x.strpatch")))
        }
        // In place onto the wrong file: refused before the file is touched.
        let held = w.dir.file("held.sqlite3")
        try FileManager.default.copyItem(atPath: w.truths[0], toPath: held)
        let before = try bytes(held)
        let list = try PageHashList.build(database: held, to: w.dir.file("held.ph"))
        XCTAssertThrowsError(try PagePatchChain.apply([w.patches[0]], onto: held, hashes: list))
        XCTAssertEqual(try bytes(held), before)
    }

    func testPageSizeChangeIsRefused() throws {
        let w = try PageWorld(rows: 500)
        // Inside a capture: leaving WAL to change the page size is refused.
        XCTAssertThrowsError(
            try w.step { db in
                try db.execute("PRAGMA journal_mode = DELETE")
                try db.execute("PRAGMA page_size = 8192")
                try db.execute("VACUUM")
            }
        ) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .refused)
            XCTAssertEqual(e?.field, "journal_mode")
        }
        // A patch of a 4096-byte-page file onto an 8192-byte-page base.
        let w8 = try PageWorld(rows: 300, pageSize: 8192)
        let w4 = try PageWorld(rows: 300, pageSize: 4096)
        try w4.step { db in try w4.upsert(db: db, ids: ["new"]) }
        XCTAssertThrowsError(
            try PagePatchChain.materialize(
                base: w8.base, chain: w4.patches,
                to: w8.dir.file("o"), hashList: w8.dir.file("o.ph"))
        ) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .refused)
            XCTAssertEqual(e?.field, "header.page_size")
            XCTAssertEqual(e?.object, "test/p0.strpatch")
        }
        XCTAssertThrowsError(try w8.hashes.apply(patch: w4.patches[0].path)) {
            XCTAssertEqual(($0 as? StrataError)?.field, "header.page_size")
        }
    }

    func testCaptureRefusesAnOpenTransactionAndALeftoverJournal() throws {
        let w = try PageWorld(rows: 200)
        XCTAssertThrowsError(
            try w.step { db in
                try db.execute("BEGIN")
                try db.execute("DELETE FROM embeddings WHERE id = 'id-1'")
            }
        ) { XCTAssertEqual(($0 as? StrataError)?.kind, .refused) }
        let w2 = try PageWorld(rows: 200)
        FileManager.default.createFile(atPath: w2.live + "-journal", contents: Data("x".utf8))
        XCTAssertThrowsError(try w2.step { _ in }) {
            XCTAssertEqual(($0 as? StrataError)?.object, w2.live + "-journal")
        }
        // A capture with no write still gives a valid patch (page 1 only) that reproduces the file.
        let w3 = try PageWorld(rows: 200)
        let r = try w3.step { _ in }
        XCTAssertEqual(r.patch.header.frameCount, 1)
        try PagePatchChain.materialize(
            base: w3.base, chain: w3.patches, to: w3.dir.file("o"), hashList: w3.dir.file("o.ph"))
        XCTAssertEqual(try bytes(w3.dir.file("o")), try bytes(w3.truths[0]))
    }
}

/// Every kind of damage to a patch is detected and named (object and field).
final class PagePatchCorruptionTests: XCTestCase {
    var world: PageWorld!
    var patch: Data!

    override func setUpWithError() throws {
        world = try PageWorld(rows: 1_000)
        try world.step { db in try self.world.upsert(db: db, ids: (0..<60).map { "id-\($0 * 13)" }) }
        patch = try bytes(world.patches[0].path)
    }

    /// Writes `data` as a patch and expects every reader path to fail naming `field`.
    func expect(
        _ data: Data, field: String, kind: StrataError.Kind = .corrupt, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let path = world.dir.file("bad.strpatch")
        try data.write(to: URL(fileURLWithPath: path))
        let src = PagePatchSource(path: path, object: "store/bad.strpatch")
        let attempts: [(String, () throws -> Void)] = [
            ("verify", { try PagePatchReader.verify(path: path, object: src.object) }),
            (
                "materialize",
                {
                    try PagePatchChain.materialize(
                        base: self.world.base, chain: [src], to: self.world.dir.file("o"),
                        hashList: self.world.dir.file("o.ph"))
                }
            ),
            ("merge", { try PagePatchChain.merge([src], to: self.world.dir.file("m.strpatch")) }),
        ]
        for (name, attempt) in attempts {
            XCTAssertThrowsError(try attempt(), name, file: file, line: line) { e in
                let e = e as? StrataError
                XCTAssertEqual(e?.kind, kind, "\(name): \(String(describing: e))", file: file, line: line)
                XCTAssertEqual(e?.object, "store/bad.strpatch", name, file: file, line: line)
                XCTAssertTrue(
                    e?.field?.contains(field) ?? false, "\(name): \(String(describing: e))", file: file, line: line)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: world.dir.file("o")), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: world.dir.file("m.strpatch")), file: file, line: line)
    }

    func frameOffsets() -> [Int] {
        let count = Int(patch[24..<28].reduce(0) { $0 << 8 | UInt32($1) })
        let indexStart = patch.count - 32 - count * 12
        return (0..<count).map { i in
            patch[(indexStart + i * 12 + 4)..<(indexStart + i * 12 + 12)].reduce(0) { $0 << 8 | Int($1) }
        }
    }

    func testTheValidPatchPasses() throws {
        XCTAssertEqual(try PagePatchReader.verify(path: world.patches[0].path).frameCount, UInt32(frameOffsets().count))
    }

    func testTruncated() throws {
        try expect(patch.prefix(50), field: "header")
        try expect(patch.prefix(patch.count - 1), field: "file")
        try expect(patch.prefix(frameOffsets()[1] + 20), field: "file")
    }

    func testBadChecksums() throws {
        var d = patch!
        d[d.count - 1] ^= 1
        try expect(d, field: "trailer.sha256")
        // A byte of a page (the first frame's stored data).
        d = patch!
        let f0 = frameOffsets()[0]
        let stored = d[(f0 + 8)..<(f0 + 12)].reduce(0) { $0 << 8 | Int($1) }
        d[f0 + 44 + stored / 2] ^= 0x40
        try expect(d, field: "frame 0 (page 1)")
        // zlib data that does not inflate.
        d = patch!
        XCTAssertEqual(d[f0 + 4], PagePatchFormat.Encoding.zlib.rawValue, "page 1 is mostly free space")
        d[f0 + 44] ^= 0xff
        try expect(d, field: "frame 0 (page 1).data")
        // A byte of the header's to_root: only the trailer sees it.
        d = patch!
        d[70] ^= 1
        try expect(d, field: "trailer.sha256")
        // The index pointing elsewhere.
        d = patch!
        d[d.count - 32 - 1] ^= 1
        try expect(d, field: "index")
    }

    func testZeroRunThatDoesNotFitThePage() throws {
        world = try PageWorld(rows: 300)
        world.compression = .zeroRun
        try world.step { db in try self.world.upsert(db: db, ids: ["x"]) }
        patch = try bytes(world.patches[0].path)
        var d = patch!
        let f0 = frameOffsets()[0]
        XCTAssertEqual(d[f0 + 4], PagePatchFormat.Encoding.zeroRun.rawValue, "page 1 is mostly free space")
        d[f0 + 44] = 0x7f
        try expect(d, field: "frame 0 (page 1).data")
    }

    func testOutOfOrderPages() throws {
        var d = patch!
        let offsets = frameOffsets()
        let first = d[offsets[0]..<(offsets[0] + 4)]
        let second = d[offsets[1]..<(offsets[1] + 4)]
        d.replaceSubrange(offsets[0]..<(offsets[0] + 4), with: second)
        d.replaceSubrange(offsets[1]..<(offsets[1] + 4), with: first)
        try expect(d, field: "page_number")
    }

    func testWrongPageSizeAndVersionInTheHeader() throws {
        // 8192: the patch no longer fits the 4096-byte base; alone, its frames no longer fit.
        var d = patch!
        d.replaceSubrange(12..<16, with: [0, 0, 0x20, 0])
        let path = world.dir.file("bad.strpatch")
        try d.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try PagePatchReader.verify(path: path)) {
            XCTAssertEqual(($0 as? StrataError)?.field, "frame 0 (page 1).data")
        }
        XCTAssertThrowsError(
            try PagePatchChain.materialize(
                base: world.base, chain: [PagePatchSource(path: path)],
                to: world.dir.file("o"), hashList: world.dir.file("o.ph"))
        ) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .refused)
            XCTAssertEqual(($0 as? StrataError)?.field, "header.page_size")
        }
        d = patch!
        d.replaceSubrange(12..<16, with: [0, 0, 0x10, 1])  // not a power of two
        try expect(d, field: "header.page_size")
        // A header that would grow the file by a billion pages with a handful of frames.
        d = patch!
        d.replaceSubrange(20..<24, with: [0x40, 0, 0, 0])
        try expect(d, field: "header.to_page_count")
        d = patch!
        d[9] = 2
        try expect(d, field: "header.format_version", kind: .unsupportedVersion)
        d = patch!
        d[0] = UInt8(ascii: "X")
        try expect(d, field: "header.magic")
    }
}

/// Apply keeps memory flat: a base several times larger than the process's peak so far is
/// materialized without the peak resident size growing by more than a few MiB.
final class PagePatchMemoryTests: XCTestCase {
    func testMaterializeDoesNotBufferTheFile() throws {
        let dir = TempDir(prefix: "strata-pages-mem")
        let live = dir.file("big.sqlite3")
        let db = try Database(path: live, mode: .readWriteCreate)
        try db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, b BLOB NOT NULL)")
        try db.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 48000)
            INSERT INTO t SELECT 'id-' || i, randomblob(6000) FROM n
            """)
        try db.close()
        let size = try fileSize(live)
        XCTAssertGreaterThan(size, 250_000_000)
        let base = dir.file("base.sqlite3")
        try FileManager.default.copyItem(atPath: live, toPath: base)
        let hashes = try PageHashList.build(database: live, to: dir.file("live.ph"))
        _ = try PageCapture.capture(database: live, hashes: hashes, patch: dir.file("p.strpatch")) { db in
            try db.execute("UPDATE t SET b = randomblob(6000) WHERE rowid % 500 = 0")
            try db.execute("DELETE FROM t WHERE rowid % 777 = 0")
        }
        // The peak is reset first (Linux: `5` to /proc/self/clear_refs), so what other tests in this
        // process allocated before does not hide or fake a growth.
        try resetPeakRSS()
        let before = try status("VmRSS")
        let out = dir.file("out.sqlite3")
        try PagePatchChain.materialize(
            base: base, chain: [PagePatchSource(path: dir.file("p.strpatch"))], to: out,
            hashList: dir.file("out.ph"))
        let after = try status("VmHWM")
        XCTAssertLessThan(after - before, 32 << 20, "peak RSS grew by \(after - before) bytes for a \(size)-byte file")
        XCTAssertEqual(try SHA256.hexOfFile(atPath: out).hex, try SHA256.hexOfFile(atPath: live).hex)
    }

    func resetPeakRSS() throws {
        guard FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs") else {
            throw XCTSkip("needs Linux's /proc/self/clear_refs to reset the peak resident size")
        }
        try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .ascii)
    }

    /// A size line of /proc/self/status (`VmRSS`, `VmHWM`), in bytes.
    func status(_ field: String) throws -> Int64 {
        let text = try String(contentsOfFile: "/proc/self/status", encoding: .ascii)
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            if let kb = Int64(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") {
                return kb * 1024
            }
        }
        XCTFail("no \(field) in /proc/self/status")
        return 0
    }
}

/// The stdlib-only Python materializer reproduces the library's files from its patches.
final class PythonMaterializerTests: XCTestCase {
    func testPythonMaterializesChainsAndMergedChainsByteIdentical() throws {
        let w = try PageWorld(rows: 1_500)
        try w.standardHistory()
        let script = TestPaths.projectRoot + "/Scripts/materialize_pages.py"
        let out = w.dir.file("py.sqlite3")
        for i in [0, 3, w.patches.count - 1] {
            let r = try TestPaths.run(
                ["python3", script, "--base", w.base, "--out", out]
                    + w.patches[0...i].map(\.path))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try bytes(out), try bytes(w.truths[i]), "python, chain of \(i + 1)")
        }
        let merged = w.dir.file("merged.strpatch")
        try PagePatchChain.merge(w.patches, to: merged)
        var r = try TestPaths.run(["python3", script, "--base", w.base, "--out", out, merged])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try bytes(out), try bytes(w.truths.last!))
        // Damage is named by the script too.
        var d = try bytes(merged)
        d[d.count - 3] ^= 1
        try d.write(to: URL(fileURLWithPath: merged))
        try FileManager.default.removeItem(atPath: out)
        r = try TestPaths.run(["python3", script, "--base", w.base, "--out", out, merged])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("trailer.sha256"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        r = try TestPaths.run(["python3", script, "--base", w.base, "--out", out, w.patches[1].path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("header.from_"), r.stderr)
    }
}
