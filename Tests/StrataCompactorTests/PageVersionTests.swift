import Foundation
import StrataCompactor
import StrataCore
import StrataCrypto
import StrataFileStore
import StrataInspect
import StrataPages
import StrataTestSupport
import XCTest

/// Page-patch versions (Docs/design/0002): what the compactor publishes materializes, in Swift and
/// in Python, byte for byte to the compactor's own working file, across chains, merged chains,
/// new bases, rollbacks and whole-file versions of the previous release; damaged objects are named.
class PageVersionTests: XCTestCase {
    var dir: TempDir!
    var world: CompactionWorld!

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-pages-compactor")
        world = try makeWorld()
    }

    func makeWorld() throws -> CompactionWorld {
        CompactionWorld(store: try FileStore(root: URL(fileURLWithPath: dir.file("store"))))
    }

    var cacheDir: String { dir.file("cache") }
    var workingFile: String { cacheDir + "/lines/snapshot.sqlite3" }

    /// A cache-mode compactor with a small chain policy, so a few rounds exercise every decision.
    /// The test files are a few dozen pages, where any delta touches a large share of them: the
    /// share limits are off unless a test sets them.
    func compactor(tail: Int = 2, merged: Int = 2, share: Double = 100, rewrite: Double = 1) -> Compactor {
        world.compactor {
            $0.cacheMode = .cache
            $0.cacheDirectory = cacheDir
            $0.chainPolicy.maxTailLength = tail
            $0.chainPolicy.maxMergedPatches = merged
            $0.chainPolicy.maxPatchShare = share
            $0.chainPolicy.rewriteShare = rewrite
        }
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func pointerManifest(_ c: String = "lines") throws -> SnapshotManifest {
        let v = try Pointer.parse(try world.store.getData(world.layout.pointerKey(c)).data, key: c)
        return try SnapshotManifest.fetch(from: world.store, layout: world.layout, collection: c, version: v)
    }

    /// The pointer's version materialized by the readers' code and by Scripts/materialize_pages.py.
    func materializedBoth(_ m: SnapshotManifest) throws -> (swift: Data, python: Data) {
        let out = dir.file("m-\(m.version).sqlite3")
        try world.materialize(m, to: out)
        let objects = m.objects(layout: world.layout)
        var local: [String] = []
        for (i, o) in objects.enumerated() {
            let p = dir.file("obj-\(m.version)-\(i)")
            _ = try world.store.get(o.key, toFile: p)
            local.append(p)
        }
        let py = dir.file("py-\(m.version).sqlite3")
        if local.count == 1 {
            try FileManager.default.copyItem(atPath: local[0], toPath: py)
        } else {
            let script = TestPaths.projectRoot + "/Scripts/materialize_pages.py"
            let r = try TestPaths.run(["python3", script, "--base", local[0], "--out", py] + local.dropFirst())
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        return (try bytes(out), try bytes(py))
    }

    func produceRound(_ round: Int, rows: Int = 40) throws {
        let w = world!
        // Half new ids, half overwrites, and a delete: the shape of the benchmark's delta.
        var ops: [CompactionWorld.Op] = (0..<rows / 2).map { .upsert("n\(round)-\($0)", w.row(round * 1000 + $0)) }
        ops += (0..<rows / 2).map { .upsert("base-\(($0 * 7 + round) % 200)", w.row(round * 1000 + 500 + $0)) }
        ops.append(.delete("n\(round - 1)-0"))
        try w.produce(["lines": ops])
    }

    func testChainsMergedChainsAndNewBasesMaterializeByteIdentical() throws {
        let w = world!
        try w.produce(["lines": (0..<200).map { .upsert("base-\($0)", w.row($0)) }])
        var seen: [String] = []
        var s = try compactor().compact(collection: "lines")
        XCTAssertEqual(s.publishedAs, "new base (first version)")
        for round in 1...9 {
            try produceRound(round)
            s = try compactor().compact(collection: "lines")
            XCTAssertEqual(s.outcome, .published)
            XCTAssertTrue(s.baseFromCache, "round \(round): warm cache")
            seen.append(s.publishedAs ?? "-")
            let m = try pointerManifest()
            XCTAssertTrue(m.isPageVersion)
            XCTAssertEqual(m.patches?.count, s.chainLength)
            XCTAssertLessThanOrEqual(s.chainLength, 4, "K = 2 tail + 2 merged")
            let (swift, python) = try materializedBoth(m)
            XCTAssertEqual(swift, try bytes(workingFile), "round \(round) (\(s.publishedAs ?? "-")): Swift")
            XCTAssertEqual(python, swift, "round \(round): Python")
            try w.assertMatchesModel("lines")
            // No whole-file hash on a patch version; only a new base has one.
            XCTAssertEqual(m.result?.sha256 != nil, s.publishedAs?.hasPrefix("new base") == true, "round \(round)")
            // A single-merge patch carries the pages it changed, not the file (here a few dozen
            // 4 KiB pages, of which a 40-row round changes about half; the share at scale is the
            // benchmark's).
            if s.publishedAs == "patch" {
                XCTAssertLessThan(m.patches?.last?.size ?? 0, m.result!.size * 3 / 4, "round \(round)")
            }
        }
        XCTAssertTrue(seen.contains("patch"), "\(seen)")
        XCTAssertTrue(seen.contains("merged tail"), "\(seen)")
        XCTAssertTrue(seen.contains("merged chain"), "\(seen)")
        try w.assertEveryRunAppliedOnce("lines")
    }

    func testRewriteShareWritesANewBase() throws {
        let w = world!
        try w.produce(["lines": (0..<200).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor(rewrite: 0.5).compact(collection: "lines")
        try produceRound(1, rows: 200)  // rewrites most pages of a small file
        let s = try compactor(rewrite: 0.5).compact(collection: "lines")
        XCTAssertEqual(s.publishedAs, "new base (rewrite)")
        let m = try pointerManifest()
        XCTAssertEqual(m.patches, [])
        XCTAssertEqual(m.result?.sha256, m.base?.sha256, "a new base is hashed whole")
        XCTAssertEqual(try materializedBoth(m).swift, try bytes(workingFile))
        try w.assertMatchesModel("lines")
    }

    func testPatchShareWritesANewBase() throws {
        let w = world!
        try w.produce(["lines": (0..<200).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor(share: 0.05).compact(collection: "lines")
        var reasons: [String] = []
        for round in 1...4 {
            try produceRound(round, rows: 60)
            let s = try compactor(share: 0.05).compact(collection: "lines")
            reasons.append(s.publishedAs ?? "-")
            let (swift, python) = try materializedBoth(try pointerManifest())
            XCTAssertEqual(swift, try bytes(workingFile), "round \(round)")
            XCTAssertEqual(python, swift)
        }
        XCTAssertTrue(reasons.contains("new base (patchShare)"), "\(reasons)")
        try w.assertMatchesModel("lines")
    }

    /// A cold compactor (empty cache, s3 mode) materializes base + chain and continues the chain.
    func testColdCompactorMaterializesTheChainAndContinuesIt() throws {
        let w = world!
        try w.produce(["lines": (0..<200).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor(tail: 8).compact(collection: "lines")
        for round in 1...3 {
            try produceRound(round)
            _ = try compactor(tail: 8).compact(collection: "lines")
        }
        let before = try pointerManifest()
        XCTAssertEqual(before.patches?.count, 3)
        try produceRound(4)
        let s = try w.compactor { $0.chainPolicy = self.compactor(tail: 8).settings.chainPolicy }
            .compact(collection: "lines")  // s3 mode: nothing cached
        XCTAssertFalse(s.baseFromCache)
        XCTAssertEqual(s.publishedAs, "patch")
        XCTAssertEqual(s.bytesDownloaded > before.storedSize, true)
        let after = try pointerManifest()
        XCTAssertEqual(after.base, before.base)
        XCTAssertEqual(Array(after.patches!.prefix(3)), before.patches!)
        let (swift, python) = try materializedBoth(after)
        XCTAssertEqual(python, swift)
        try w.assertMatchesModel("lines")
    }

    /// A damaged or missing object of each kind stops a cold compactor with its key and field;
    /// nothing is published and nothing is quarantined.
    func testDamagedOrMissingObjectsAreNamedOnAColdStart() throws {
        let w = world!
        try w.produce(["lines": (0..<100).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor(tail: 8).compact(collection: "lines")
        for round in 1...2 {
            try produceRound(round)
            _ = try compactor(tail: 8).compact(collection: "lines")
        }
        let m = try pointerManifest()
        let objects = m.objects(layout: w.layout)
        XCTAssertEqual(objects.map(\.name), ["base", "patches[0]", "patches[1]"])
        try produceRound(3)
        for o in objects {
            let original = try w.store.getData(o.key).data
            for damage in ["flip", "missing"] {
                if damage == "flip" {
                    var bad = original
                    bad[bad.count / 2] ^= 0xff
                    try w.store.put(o.key, data: bad)
                } else {
                    try w.store.delete(o.key)
                }
                XCTAssertThrowsError(try w.compactor().compact(collection: "lines"), "\(o.name) \(damage)") { e in
                    guard let e = e as? StrataError else { return XCTFail("\(e)") }
                    XCTAssertEqual(e.object, o.key, "\(o.name) \(damage)")
                    XCTAssertEqual(e.kind, damage == "flip" ? .corrupt : .notFound, "\(e)")
                    XCTAssertTrue(e.field?.hasPrefix(o.name) == true, "\(o.name) \(damage): \(e)")
                }
                XCTAssertEqual(try pointerManifest().version, m.version)
                try w.store.put(o.key, data: original)
            }
        }
        XCTAssertEqual(try w.store.list(prefix: w.layout.quarantinePrefix("lines")).map(\.key), [])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .published)
        try w.assertMatchesModel("lines")
    }

    /// A store made by the previous release: whole-file versions (format 1 manifests, `files:
    /// [snapshot.sqlite3]`) are bases with no patches; page versions build on them, no migration.
    func testWholeFileVersionOfThePreviousReleaseIsABase() throws {
        let w = world!
        try w.produce(["lines": (0..<150).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor().compact(collection: "lines")
        // Republish the pointer's file the old way: timestamped/{v}/snapshot.sqlite3 + a format-1 manifest.
        let v1 = try pointerManifest()
        let file = dir.file("old.sqlite3")
        try w.materialize(v1, to: file)
        let v2 = Identifiers.make(after: v1.version)
        let (sha, size) = try SHA256.hexOfFile(atPath: file)
        let fileKey = w.layout.versionFileKey(collection: "lines", version: v2, file: "snapshot.sqlite3")
        try w.store.put(fileKey, file: file)
        let old = SnapshotManifest(
            collection: "lines", version: v2, parentVersion: v1.version, createdAt: Date(), dimension: v1.dimension,
            rowCount: v1.rowCount, files: [FileEntry(name: "snapshot.sqlite3", size: size, sha256: sha)],
            appliedRuns: [],
            createdBy: VersionCreator(compactorId: "old", host: "old", strataVersion: "0.0.9"))
        XCTAssertEqual(old.formatVersion, 1)
        try w.store.put(
            w.layout.manifestKey(collection: "lines", version: v2), data: try StrataJSON.encoder().encode(old))
        try w.store.put(w.layout.pointerKey("lines"), data: Pointer.body(version: v2))

        for round in 1...3 {
            try produceRound(round)
            let s = try compactor(tail: 8).compact(collection: "lines")
            XCTAssertEqual(s.baseVersion, round == 1 ? v2 : s.baseVersion)
            XCTAssertEqual(s.publishedAs, "patch", "round \(round)")
            let m = try pointerManifest()
            XCTAssertEqual(m.base?.key, fileKey, "the old version's file is the base")
            XCTAssertEqual(m.base?.sha256, sha)
            let (swift, python) = try materializedBoth(m)
            XCTAssertEqual(swift, try bytes(workingFile))
            XCTAssertEqual(python, swift)
            try w.assertMatchesModel("lines")
        }
        try w.assertEveryRunAppliedOnce("lines")
    }

    /// A rollback publishes the target plus one patch through the same publisher; its version
    /// materializes to the target's rows, and the compactor continues from it, warm or cold.
    func testRollbackIsAPatchOnTheTargetAndTheCompactorContinues() throws {
        let w = world!
        try w.produce(["lines": (0..<100).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor().compact(collection: "lines")
        try produceRound(1)
        _ = try compactor().compact(collection: "lines")
        let target = try pointerManifest()
        let targetFile = dir.file("target.sqlite3")
        try w.materialize(target, to: targetFile)
        try produceRound(2)
        _ = try compactor().compact(collection: "lines")
        let rollback = Rollback(
            store: w.store, layout: w.layout,
            creator: VersionCreator(compactorId: "op", host: "op", strataVersion: "test"),
            workDirectory: dir.path)
        let r = try rollback.run(collection: "lines", to: target.version, reason: "test", requeue: true)
        let m = try pointerManifest()
        XCTAssertEqual(m.version, r.newVersion)
        XCTAssertEqual(m.base, target.base)
        XCTAssertEqual(Array(m.patches!.dropLast()), target.patches!)
        XCTAssertLessThan(m.patches!.last!.size, m.result!.size / 4, "a rollback uploads O(delta)")
        let (swift, python) = try materializedBoth(m)
        XCTAssertEqual(python, swift)
        // The cache holds the version before the rollback: the next round materializes the new one
        // and re-applies the requeued run; then the working file is the published version again.
        let s = try compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertFalse(s.baseFromCache)
        XCTAssertEqual(try materializedBoth(try pointerManifest()).swift, try bytes(workingFile))
        try w.assertMatchesModel("lines")
    }

    /// Two compactors with their own caches race for the pointer: the loser rebuilds on the
    /// winner's version (a PointerConflict, as before) and both chains stay materializable.
    func testLostRaceRebuildsOnTheWinnersChain() throws {
        let w = world!
        try w.produce(["lines": (0..<100).map { .upsert("base-\($0)", w.row($0)) }])
        _ = try compactor().compact(collection: "lines")
        let otherCache = dir.file("cache-b")
        let b = w.compactor {
            $0.cacheMode = .cache
            $0.cacheDirectory = otherCache
            $0.chainPolicy = self.compactor().settings.chainPolicy
        }
        try produceRound(1)
        _ = try b.compact(collection: "lines")  // b publishes; a's cache is now one version behind
        try produceRound(2)
        let s = try compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertFalse(s.baseFromCache, "a's cache held an older version")
        let (swift, python) = try materializedBoth(try pointerManifest())
        XCTAssertEqual(swift, try bytes(workingFile))
        XCTAssertEqual(python, swift)
        try w.assertMatchesModel("lines")
        try w.assertEveryRunAppliedOnce("lines")
    }
}
