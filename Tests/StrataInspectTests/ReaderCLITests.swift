import Foundation
import StrataCore
import StrataCrypto
import StrataFileStore
import StrataInspect
import StrataS3
import StrataTestSupport
import XCTest

/// The readers' commands, run as the real snapctl: pull, pin, presign on page versions, and the
/// shared-directory mode of compact and query.
final class ReaderCLITests: XCTestCase {
    func run(_ args: [String], store: String, env: [String: String] = [:]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args,
            environment: ["STRATA_STORE": store, "STRATA_LOG_FORMAT": "json"].merging(env) { $1 })
    }

    func json(_ r: TestPaths.ProcessResult) throws -> [String: Any] {
        try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout + r.stderr)
    }

    func testPullPinAndPresignOnPageVersions() throws {
        let s3 = try S3TestStore.make("readcli")
        let env = try SeaweedFS.shared().awsEnvironment
        let url = "s3://\(s3.configuration.bucket)"
        let w = CompactionWorld(store: s3)
        try w.produce(["lines": (0..<150).map { .upsert("r\($0)", w.row($0)) }])
        _ = try w.compactor().compact(collection: "lines")
        let b = try PageVersionBuilder(store: s3, layout: w.layout, collection: "lines")
        try b.publish(rows: 20)
        let v3 = try b.publish(rows: 20, deletes: ["r3"])
        let cache = TempDir(prefix: "strata-cli-cache")
        let out = TempDir(prefix: "strata-cli-out")
        let e = env.merging(["STRATA_CACHE_DIR": cache.path]) { $1 }

        // pull: byte-identical; again: from the cache, nothing but pointer and manifest downloaded.
        var r = try run(["pull", "lines", "--to", out.file("a.sqlite3"), "--json"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try json(r)["version"] as? String, v3)
        XCTAssertEqual(try json(r)["source"] as? String, "cold")
        XCTAssertTrue(filesEqual(out.file("a.sqlite3"), b.expected[v3]!))
        r = try run(["pull", "lines", "--to", out.file("b.sqlite3"), "--json"], store: url, env: e)
        XCTAssertEqual(try json(r)["source"] as? String, "cached", r.stdout)
        XCTAssertEqual(try json(r)["downloadedBytes"] as? Int, 0)
        XCTAssertTrue(filesEqual(out.file("b.sqlite3"), b.expected[v3]!))
        // query and get read the same cached file.
        r = try run(["query", "lines", "--id", "r1", "-k", "2", "--json"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try run(["get", "lines", "p1-0"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("doc 1-0"), r.stdout)
        // The read pins were removed after the download.
        XCTAssertEqual(try ReaderPins(store: s3, layout: w.layout).list("lines").pins, [])

        // pin, list, remove.
        r = try run(
            ["pin", "lines", b.expected.keys.sorted()[1], "--ttl", "2h", "--reason", "export", "--json"],
            store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        let pinId = try XCTUnwrap(try json(r)["pinId"] as? String)
        XCTAssertNotNil(try s3.head(w.layout.pinKey(collection: "lines", pinId: pinId)))
        r = try run(["pin", "lines", "--list"], store: url, env: e)
        XCTAssertTrue(r.stdout.contains(pinId) && r.stdout.contains("export"), r.stdout)
        // verify lists the pin (and the whole page version checks out).
        r = try run(["verify", "--collection", "lines", "--json"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let findings = try XCTUnwrap(try json(r)["findings"] as? [[String: Any]], r.stdout)
        let pinFinding = try XCTUnwrap(findings.first { $0["check"] as? String == VerifyCheck.readerPins }, r.stdout)
        XCTAssertEqual(pinFinding["status"] as? String, "info")
        XCTAssertTrue((pinFinding["message"] as? String ?? "").contains(b.expected.keys.sorted()[1]), "\(pinFinding)")
        XCTAssertTrue("\(pinFinding["evidence"] ?? "")".contains(pinId), "\(pinFinding)")
        r = try run(["pin", "lines", "NOT-A-VERSION-\(UUID().uuidString.prefix(4))"], store: url, env: e)
        XCTAssertEqual(r.status, 1, "a version without a manifest cannot be pinned: \(r.stderr)")
        r = try run(["pin", "lines", "--remove", pinId], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNil(try s3.head(w.layout.pinKey(collection: "lines", pinId: pinId)))

        // verify --deep materializes the page version and checks it in full.
        r = try run(["verify", "--collection", "lines", "--deep", "--json"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)

        // A rollback to a page version restores its rows (materialized from base and patches).
        let target = b.expected.keys.sorted()[1]
        r = try run(["rollback", "lines", target, "--reason", "test"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let restored = try Pointer.read(from: s3, layout: w.layout, collection: "lines")!.version
        let rm = try SnapshotManifest.fetch(from: s3, layout: w.layout, collection: "lines", version: restored)
        let tm = try SnapshotManifest.fetch(from: s3, layout: w.layout, collection: "lines", version: target)
        XCTAssertEqual(rm.rowCount, tm.rowCount)
        r = try run(["get", "lines", "p1-0", "--version", restored], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try run(["get", "lines", "p2-0", "--version", restored], store: url, env: e)
        XCTAssertEqual(r.status, 1, "a row of the version after the target is gone: \(r.stdout)")

        // presign: every object of the version in order, then its manifest; the URLs download them.
        r = try run(["presign", "lines", v3], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(lines.map { $0[0] }, ["base", "patches[0]", "patches[1]", "manifest.json"])
        let m = b.head
        for (i, ref) in m.objects(layout: w.layout).enumerated() {
            let path = out.file("presigned-\(i)")
            let py = try TestPaths.run([
                "python3", "-c",
                "import urllib.request,sys; "
                    + "open(sys.argv[2],'wb').write(urllib.request.urlopen(sys.argv[1]).read())",
                lines[i][1], path,
            ])
            XCTAssertEqual(py.status, 0, py.stderr)
            XCTAssertEqual(try SHA256.hexOfFile(atPath: path).hex, ref.sha256, ref.name)
        }
    }

    func testCompactPublishDirAndReadersWithNoStore() throws {
        let root = TempDir(prefix: "strata-pubdir")
        let store = try FileStore(root: URL(fileURLWithPath: root.path + "/store"))
        let url = "file://" + root.path + "/store"
        let shared = root.path + "/shared"
        let w = CompactionWorld(store: store)
        let e = ["STRATA_CACHE_DIR": root.path + "/cache"]
        var published: [String] = []
        for i in 0..<4 {
            try w.produce(["lines": (0..<20).map { .upsert("r\(i)-\($0)", w.row($0 + i * 20)) }])
            let r = try run(
                ["compact", "--collection", "lines", "--publish-dir", shared, "--publish-keep", "2", "--json"],
                store: url, env: e)
            XCTAssertEqual(r.status, 0, r.stderr)
            published.append(try Pointer.read(from: store, layout: w.layout, collection: "lines")!.version)
        }
        let dir = PublishDirectory(root: shared, keep: 2)
        XCTAssertEqual(try dir.latest("lines"), published.last)
        let kept = try FileManager.default.contentsOfDirectory(atPath: shared + "/lines").filter { $0 != "latest" }
        XCTAssertEqual(Set(kept), Set(published.suffix(2)))
        // The shared file is the version: byte-identical to what pull materializes from the store.
        var r = try run(["pull", "lines", "--to", root.path + "/pulled.sqlite3"], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(filesEqual(root.path + "/pulled.sqlite3", dir.snapshotPath("lines", version: published.last!)))
        // Readers with no store at all.
        let noStore = ["STRATA_STORE": "", "STRATA_CACHE_DIR": root.path + "/nocache"]
        r = try TestPaths.run(
            [
                TestPaths.snapctl, "query", "lines", "--id", "r3-1", "-k", "3", "--json",
                "--publish-dir", shared,
            ], environment: noStore)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try json(r)["version"] as? String, published.last, r.stdout)
        r = try TestPaths.run(
            [
                TestPaths.snapctl, "pull", "lines", "--publish-dir", shared, "--to",
                root.path + "/dir.sqlite3",
            ], environment: noStore)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(filesEqual(root.path + "/dir.sqlite3", root.path + "/pulled.sqlite3"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/nocache"))
        // A round with nothing to do catches the directory up (e.g. after a crash before it was written).
        try FileManager.default.removeItem(atPath: shared + "/lines")
        r = try run(["compact", "--collection", "lines", "--publish-dir", shared], store: url, env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try dir.latest("lines"), published.last)
        // An old version that is no longer kept is named as such.
        r = try TestPaths.run(
            [
                TestPaths.snapctl, "pull", "lines", published[0], "--publish-dir", shared, "--to",
                root.path + "/old.sqlite3",
            ], environment: noStore)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("is not in"), r.stderr)
    }
}
