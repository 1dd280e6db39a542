import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataFileStore
import StrataInspect
import StrataPages
import StrataTestSupport
import XCTest

/// The reader cache on real page versions (PageCapture on a real snapshot made by the compactor).
final class ReaderCacheTests: XCTestCase {
    /// A collection with a whole-file version from the real compactor, and a builder on top of it.
    func world(_ store: any ObjectStore, rows: Int = 300) throws -> (CompactionWorld, PageVersionBuilder) {
        let w = CompactionWorld(store: store)
        try w.produce([
            "lines": (0..<rows).map { .upsert("r\($0)", w.row($0, doc: String(repeating: "d", count: 100))) }
        ])
        XCTAssertNotNil(try w.compactor().compact(collection: "lines").newVersion)
        return (w, try PageVersionBuilder(store: store, layout: w.layout, collection: "lines"))
    }

    func fileStore() throws -> (FileStore, TempDir) {
        let dir = TempDir(prefix: "strata-readers")
        return (try FileStore(root: URL(fileURLWithPath: dir.path + "/store")), dir)
    }

    func cache(_ store: any ObjectStore, _ dir: String, maxBytes: Int64 = 1 << 30) -> ReaderCache {
        ReaderCache(store: store, layout: Layout(), settings: ReaderCacheSettings(directory: dir, maxBytes: maxBytes))
    }

    func testMaterializedVersionsAreByteIdenticalAcrossChainsMergesAndNewBases() throws {
        let store = try S3TestStore.make("readers")
        let (_, b) = try world(store)
        let cacheDir = TempDir(prefix: "strata-cache")
        let warm = cache(store, cacheDir.path)
        var versions = [b.version]
        var sources: [String] = []
        func check(_ v: String, line: UInt = #line) throws {
            let got = try warm.open("lines", version: v)
            defer { got.close() }
            sources.append(got.source)
            XCTAssertTrue(filesEqual(got.path, b.expected[v]!), "warm \(v) (\(got.source))", line: line)
            // A cold reader (empty cache) gets the same bytes.
            let coldDir = TempDir(prefix: "strata-cold")
            let cold = try cache(store, coldDir.path).open("lines", version: v)
            XCTAssertEqual(cold.source, "cold", line: line)
            XCTAssertTrue(filesEqual(cold.path, b.expected[v]!), "cold \(v)", line: line)
            cold.close()
        }
        try check(b.version)
        for i in 0..<3 {
            versions.append(try b.publish(rows: 40, overwrite: ["r\(i)", "r\(i + 50)"], deletes: ["r\(i + 100)"]))
            try check(versions.last!)
        }
        versions.append(try b.mergeChain())
        try check(versions.last!)
        versions.append(try b.publish(rows: 10))
        try check(versions.last!)
        versions.append(try b.newBase())
        try check(versions.last!)
        versions.append(try b.publish(rows: 400, deletes: (150..<250).map { "r\($0)" }))  // grows and frees pages
        try check(versions.last!)
        // Whole file first; then each page version built on the version before it in the cache.
        XCTAssertEqual(sources, ["cold", "patches", "patches", "patches", "patches", "patches", "patches", "patches"])
        // Any older version, read again: the cache still holds it.
        let again = try warm.open("lines", version: versions[2])
        XCTAssertEqual(again.source, "cached")
        XCTAssertTrue(filesEqual(again.path, b.expected[versions[2]]!))
        again.close()
        // Through the locator (verify, rollback) too.
        let located = try SnapshotLocator(store: store, layout: Layout()).fetch("lines", into: cacheDir.path + "/loc")
        XCTAssertTrue(filesEqual(located.path, b.expected[b.version]!))
    }

    func testARepeatedReadDownloadsOnlyThePointerAndTheManifestAndANewVersionOnlyItsPatch() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs)
        let v2 = try b.publish(rows: 30)
        let store = CountingStore(fs)
        let c = cache(store, dir.path + "/cache")
        let pointer = Layout().pointerKey("lines")
        let first = try c.open("lines")
        XCTAssertEqual(first.version, v2)
        first.close()
        store.reset()
        let second = try c.open("lines")
        XCTAssertEqual(second.source, "cached")
        XCTAssertEqual(store.gets, [pointer, Layout().manifestKey(collection: "lines", version: v2)])
        XCTAssertEqual(second.downloadedBytes, 0)
        second.close()
        // One new version: the pointer, its manifest and its one new patch; not the base.
        let v3 = try b.publish(rows: 30)
        store.reset()
        let third = try c.open("lines")
        XCTAssertEqual(third.source, "patches")
        XCTAssertEqual(
            store.gets, [pointer, Layout().manifestKey(collection: "lines", version: v3), b.patches.last!.key])
        XCTAssertEqual(third.downloadedBytes, b.patches.last!.size)
        XCTAssertLessThan(third.downloadedBytes, b.base.size / 2)
        XCTAssertTrue(filesEqual(third.path, b.expected[v3]!))
        third.close()
    }

    /// Every kind of object, missing or damaged, is detected and named (key and field); nothing
    /// partial is left in the cache, and a good version afterwards is still served.
    func testACorruptOrMissingObjectIsDetectedAndNamed() throws {
        let (fs, dir) = try fileStore()
        let (w, b) = try world(fs)
        let v1 = b.version
        let v1Key = b.base.key  // the base: a whole-file version's snapshot.sqlite3, or a base object
        try b.publish(rows: 20)
        let v3 = try b.publish(rows: 20)
        let goodFile = try fs.getData(v1Key).data
        var n = 0
        func expectFailure(_ key: String, field: String, kind: StrataError.Kind, line: UInt = #line) {
            n += 1
            let c = cache(fs, dir.path + "/cache-\(n)")
            XCTAssertThrowsError(try c.open("lines", version: v3), line: line) {
                let e = $0 as? StrataError
                XCTAssertEqual(e?.kind, kind, "\($0)", line: line)
                XCTAssertEqual(e?.object, key, "\($0)", line: line)
                XCTAssertTrue(e?.field?.hasPrefix(field) == true, "\($0)", line: line)
            }
            let left = (try? FileManager.default.subpathsOfDirectory(atPath: dir.path + "/cache-\(n)")) ?? []
            XCTAssertEqual(left.filter { $0.hasSuffix(".sqlite3") || $0.contains(".partial") }, [], line: line)
        }
        func flip(_ key: String) throws -> Data {
            let good = try fs.getData(key).data
            var bad = good
            bad[bad.count / 2] ^= 0x5a
            try fs.put(key, data: bad)
            return good
        }
        // The base (here a whole-file version's snapshot.sqlite3), damaged and missing.
        _ = try flip(v1Key)
        expectFailure(v1Key, field: "base.sha256", kind: .corrupt)
        try fs.delete(v1Key)
        expectFailure(v1Key, field: "base", kind: .notFound)
        try fs.put(v1Key, data: goodFile)
        // Each patch, damaged and missing.
        for (i, p) in b.patches.enumerated() {
            let good = try flip(p.key)
            expectFailure(p.key, field: "patches[\(i)].sha256", kind: .corrupt)
            try fs.delete(p.key)
            expectFailure(p.key, field: "patches[\(i)]", kind: .notFound)
            try fs.put(p.key, data: good)
        }
        // A patch replaced by another valid patch of the right size and hash claims (a manifest
        // that lies about the result): the page root check names the manifest.
        let mKey = w.layout.manifestKey(collection: "lines", version: v3)
        let goodManifest = try fs.getData(mKey).data
        var m = try SnapshotManifest.decode(goodManifest, key: mKey)
        m.result!.pageRoot = m.patches!.last!.toRoot.reversed().map(String.init).joined()
        m.patches![m.patches!.count - 1].toRoot = m.result!.pageRoot
        try fs.put(mKey, data: try StrataJSON.encoder().encode(m))
        n += 1
        XCTAssertThrowsError(try cache(fs, dir.path + "/cache-\(n)").open("lines", version: v3)) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .corrupt, "\($0)")
            XCTAssertTrue([mKey, b.patches.last!.key].contains(e?.object ?? ""), "\($0)")
            XCTAssertTrue(e?.field?.contains("oot") == true, "\($0)")
        }
        try fs.put(mKey, data: goodManifest)
        // A whole-file version's file, damaged.
        if b.startedFromWholeFile {
            _ = try flip(v1Key)
            n += 1
            XCTAssertThrowsError(try cache(fs, dir.path + "/cache-\(n)").open("lines", version: v1)) {
                XCTAssertEqual(($0 as? StrataError)?.object, v1Key, "\($0)")
                XCTAssertEqual(($0 as? StrataError)?.field, "snapshot.sqlite3.sha256", "\($0)")
            }
            try fs.put(v1Key, data: goodFile)
        }
        // All good again: served, byte-identical.
        let ok = try cache(fs, dir.path + "/cache-ok").open("lines", version: v3)
        XCTAssertTrue(filesEqual(ok.path, b.expected[v3]!))
        ok.close()
    }

    /// A damaged cached file is not served: the entry no longer matches (size) or fails the
    /// page-root check (`verifyHits`), and the version is materialized again.
    func testADamagedCachedFileIsNotServed() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs)
        let v2 = try b.publish(rows: 20)
        var settings = ReaderCacheSettings(directory: dir.path + "/cache")
        settings.verifyHits = true
        let c = ReaderCache(store: fs, layout: Layout(), settings: settings)
        let first = try c.open("lines", version: v2)
        let path = first.path
        first.close()
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seek(toOffset: 5000)
        h.write(Data([1, 2, 3, 4]))
        try h.close()
        XCTAssertFalse(filesEqual(path, b.expected[v2]!))
        let again = try c.open("lines", version: v2)
        XCTAssertNotEqual(again.source, "cached")
        XCTAssertTrue(filesEqual(again.path, b.expected[v2]!))
        again.close()
    }

    func testTheSizeBoundEvictsLeastRecentlyUsedButNeverAFileInUse() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs)
        let v1 = b.version
        let v2 = try b.publish(rows: 20)
        let v3 = try b.publish(rows: 20)
        // Room for about one version (file + page-hash list).
        let c = cache(fs, dir.path + "/cache", maxBytes: b.base.size + b.base.size / 2)
        let held = try c.open("lines", version: v1)
        let h2 = try c.open("lines", version: v2)  // v1 is in use: it stays although the cache is over its bound
        XCTAssertTrue(FileManager.default.fileExists(atPath: held.path))
        XCTAssertTrue(filesEqual(held.path, b.expected[v1]!))
        held.close()
        h2.close()
        let h3 = try c.open("lines", version: v3)  // now v1 and v2 (least recently used first) go
        XCTAssertEqual(h3.source, "patches")
        h3.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: held.path))
        XCTAssertLessThanOrEqual(c.totalBytes(), b.base.size + b.base.size / 2)
        let again = try c.open("lines", version: v3)
        XCTAssertEqual(again.source, "cached")
        again.close()
    }

    /// Several snapctl processes pull through one cache at once: every file is the version, the
    /// cache has no partial files afterwards, and a version is materialized once.
    func testACacheSharedByConcurrentReaderProcessesStaysConsistent() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs, rows: 600)
        var versions = [b.version]
        for _ in 0..<3 { versions.append(try b.publish(rows: 60, overwrite: ["r1", "r2"])) }
        let env = ["STRATA_CACHE_DIR": dir.path + "/cache", "STRATA_STORE": "file://\(dir.path)/store"]
        let group = DispatchGroup()
        let results = Locked<[(String, String, TestPaths.ProcessResult?)]>([])
        for i in 0..<8 {
            let v = versions[i % versions.count]
            let out = dir.path + "/out-\(i).sqlite3"
            DispatchQueue.global().async(group: group) {
                let r = try? TestPaths.run(
                    [TestPaths.snapctl, "pull", "lines", v, "--to", out, "--json"],
                    environment: env)
                results.update { $0.append((v, out, r)) }
            }
        }
        group.wait()
        var sources: [String: [String]] = [:]
        for (v, out, result) in results.value {
            let r = try XCTUnwrap(result, "snapctl did not start")
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(filesEqual(out, b.expected[v]!), "pull \(v)")
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            sources[v, default: []].append(obj?["source"] as? String ?? "?")
        }
        for (v, s) in sources {
            XCTAssertEqual(s.filter { $0 != "cached" }.count, 1, "\(v) materialized once: \(s)")
        }
        let left = try FileManager.default.subpathsOfDirectory(atPath: dir.path + "/cache")
        XCTAssertEqual(left.filter { $0.contains("/tmp/") || $0.contains(".partial") }, [])
        XCTAssertEqual(left.filter { $0.hasSuffix(".json") }.count, versions.count)
        // The pulled file is a plain SQLite file any client opens.
        let r = try TestPaths.run([
            "python3", "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1])"
                + ".execute('select count(*) from embeddings').fetchone()[0])",
            dir.path + "/out-3.sqlite3",
        ])
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(b.head.rowCount)", r.stderr)
    }

    /// A reader that crashed mid-way leaves temporary files and files without their JSON: they are
    /// never served, and the next reader removes them and serves the version.
    func testLeftoversOfACrashedReaderAreNeverServedAndAreRemoved() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs)
        let v2 = try b.publish(rows: 20)
        let c = cache(fs, dir.path + "/cache")
        let first = try c.open("lines", version: b.expected.keys.sorted()[0])
        let collectionDir = (first.path as NSString).deletingLastPathComponent + "/.."
        first.close()
        // A crash after the file was renamed into place but before its JSON: a truncated file.
        let v = collectionDir + "/v/\(v2)"
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: v + ".sqlite3"))
        try Data(repeating: 7, count: 64).write(to: URL(fileURLWithPath: v + ".pagehashes"))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: collectionDir + "/tmp/\(v2)-1-abc.sqlite3.partial"))
        let got = try c.open("lines", version: v2)
        XCTAssertNotEqual(got.source, "cached")
        XCTAssertTrue(filesEqual(got.path, b.expected[v2]!))
        got.close()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: collectionDir + "/tmp"), [])
    }

    /// Scripts/materialize_pages.py (stdlib only) gives the same file from the objects a manifest lists.
    func testThePythonMaterializerGivesTheSameFile() throws {
        let (fs, dir) = try fileStore()
        let (_, b) = try world(fs)
        for i in 0..<3 { try b.publish(rows: 30, deletes: ["r\(i)"]) }
        let m = b.head
        var args = ["python3", TestPaths.projectRoot + "/Scripts/materialize_pages.py"]
        let basePath = dir.path + "/py-base"
        _ = try fs.get(m.base!.key, toFile: basePath)
        args += ["--base", basePath, "--out", dir.path + "/py.sqlite3"]
        for (i, p) in m.patches!.enumerated() {
            _ = try fs.get(p.key, toFile: dir.path + "/py-\(i)")
            args.append(dir.path + "/py-\(i)")
        }
        let r = try TestPaths.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(filesEqual(dir.path + "/py.sqlite3", b.expected[m.version]!))
        XCTAssertEqual(Hex.encode(try PageHashList.root(ofDatabase: dir.path + "/py.sqlite3")), m.result!.pageRoot)
    }
}
