import Foundation
import XCTest

@testable import StrataCore

/// Format 2 of the snapshot manifest (page versions) beside format 1 (whole-file versions).
final class ManifestPagesTests: XCTestCase {
    let layout = Layout(prefix: "p")
    let creator = VersionCreator(compactorId: "c", host: "h", strataVersion: "t")

    func hex(_ c: Character) -> String { String(repeating: c, count: 64) }

    func pageManifest(patches n: Int = 2) -> SnapshotManifest {
        let baseSHA = hex("b")
        var patches: [ManifestPatch] = []
        var root = hex("0")
        var pages: UInt32 = 10
        for i in 0..<n {
            let sha = String(repeating: Character(String(i + 1)), count: 64)
            let to = String(repeating: Character(["a", "c", "d", "e"][i % 4]), count: 63) + "\(i)"
            pages += 1
            patches.append(
                ManifestPatch(
                    key: layout.versionObjectKey(collection: "lines", kind: .patch, sha256: sha),
                    size: 100 + Int64(i), sha256: sha, fromRoot: root, toRoot: to,
                    pageCount: pages, frames: 3))
            root = to
        }
        return SnapshotManifest(
            collection: "lines", version: "V3", parentVersion: "V2", createdAt: Date(timeIntervalSince1970: 1),
            dimension: 4, rowCount: 5, files: [],
            appliedRuns: [AppliedRun(runId: "R", upserts: 1, deletes: 0, newIds: 1, deletedExisting: 0)],
            createdBy: creator,
            base: ManifestBase(
                key: layout.versionObjectKey(collection: "lines", kind: .base, sha256: baseSHA),
                size: 40960, sha256: baseSHA, pageSize: 4096, pageCount: 10, pageRoot: hex("0")),
            patches: patches,
            result: ManifestResult(pageSize: 4096, pageCount: pages, pageRoot: root, size: 4096 * Int64(pages)))
    }

    func wholeManifest() -> SnapshotManifest {
        SnapshotManifest(
            collection: "lines", version: "V1", parentVersion: nil, createdAt: Date(timeIntervalSince1970: 1),
            dimension: 4, rowCount: 3, files: [FileEntry(name: "snapshot.sqlite3", size: 10, sha256: hex("f"))],
            appliedRuns: [], createdBy: creator)
    }

    func json(_ m: SnapshotManifest) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: StrataJSON.encoder().encode(m)) as! [String: Any]
    }

    func decode(_ obj: [String: Any]) throws -> SnapshotManifest {
        try SnapshotManifest.decode(JSONSerialization.data(withJSONObject: obj), key: "m")
    }

    func assertCorrupt(_ obj: [String: Any], field: String, line: UInt = #line) {
        XCTAssertThrowsError(try decode(obj), line: line) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .corrupt, "\($0)", line: line)
            XCTAssertEqual(e?.field, field, "\($0)", line: line)
            XCTAssertEqual(e?.object, "m", line: line)
        }
    }

    func testAPageVersionRoundTripsAsFormat2() throws {
        let m = pageManifest()
        XCTAssertEqual(m.formatVersion, 2)
        XCTAssertEqual(m.layout, "pages")
        XCTAssertTrue(m.isPageVersion)
        let data = try StrataJSON.encoder().encode(m)
        XCTAssertEqual(try SnapshotManifest.decode(data, key: "m"), m)
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let base = obj["base"] as! [String: Any]
        XCTAssertEqual(Set(base.keys), ["key", "size", "sha256", "pageSize", "pageCount", "pageRoot"])
        let patch = (obj["patches"] as! [[String: Any]])[0]
        XCTAssertEqual(Set(patch.keys), ["key", "size", "sha256", "fromRoot", "toRoot", "pageCount", "frames"])
        XCTAssertEqual(Set((obj["result"] as! [String: Any]).keys), ["pageSize", "pageCount", "pageRoot", "size"])

        // `files` may be left out of a page version.
        var noFiles = obj
        noFiles.removeValue(forKey: "files")
        XCTAssertEqual(try decode(noFiles), m)
        // A new base: no patches, the result is the base and carries its SHA-256.
        var newBase = pageManifest(patches: 0)
        newBase.result!.sha256 = newBase.base!.sha256
        XCTAssertEqual(try SnapshotManifest.decode(StrataJSON.encoder().encode(newBase), key: "m"), newBase)
    }

    func testAFormat1ManifestStillDecodesAndIsWrittenAsFormat1() throws {
        let m = wholeManifest()
        XCTAssertEqual(m.formatVersion, 1)
        let obj = try json(m)
        XCTAssertNil(obj["layout"])
        XCTAssertNil(obj["base"])
        XCTAssertNil(obj["patches"])
        XCTAssertEqual(try decode(obj), m)
        // A format-1 manifest as an older Strata wrote it (no format-2 keys at all), read from JSON text.
        let text = #"""
            {"appliedRuns":[],"collection":"lines","createdAt":"2026-11-21T20:47:43.355Z",
             "createdBy":{"compactorId":"c","host":"h","strataVersion":"0.1"},"dimension":4,
             "files":[{"name":"snapshot.sqlite3","sha256":"\#(hex("f"))","size":10}],
             "format":"strata-snapshot","formatVersion":1,"parentVersion":null,"rowCount":3,"version":"V1"}
            """#
        let old = try SnapshotManifest.decode(Data(text.utf8), key: "m")
        XCTAssertFalse(old.isPageVersion)
        XCTAssertEqual(old.objectKeys(layout: layout), ["p/lines/snapshot/timestamped/V1/snapshot.sqlite3"])
        // Format 1 must list its files.
        var noFiles = obj
        noFiles.removeValue(forKey: "files")
        assertCorrupt(noFiles, field: "files")
        // A format-1 manifest with a page chain is not one.
        var mixed = obj
        mixed["layout"] = "pages"
        assertCorrupt(mixed, field: "layout")
    }

    func testAFormat1ReaderRefusesAPageVersionClearly() throws {
        let data = try StrataJSON.encoder().encode(pageManifest())
        XCTAssertThrowsError(
            try SnapshotManifest.decode(
                data, key: "lines/snapshot/timestamped/V3/manifest.json",
                readsUpTo: 1)
        ) {
            let e = $0 as? StrataError
            XCTAssertEqual(e?.kind, .unsupportedVersion)
            XCTAssertEqual(e?.field, "formatVersion")
            XCTAssertEqual(e?.object, "lines/snapshot/timestamped/V3/manifest.json")
            XCTAssertTrue("\($0)".contains("is 2; this Strata reads up to 1"), "\($0)")
            XCTAssertTrue(e?.fix?.contains("upgrade snapctl") == true, "\($0)")
        }
        // And this build refuses format 3 the same way.
        var obj = try json(pageManifest())
        obj["formatVersion"] = 3
        XCTAssertThrowsError(try decode(obj)) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .unsupportedVersion, "\($0)")
            XCTAssertTrue("\($0)".contains("reads up to 2"), "\($0)")
        }
        obj["formatVersion"] = 0
        assertCorrupt(obj, field: "formatVersion")
    }

    func testABrokenChainIsRefusedAndNamed() throws {
        let obj = try json(pageManifest())
        var o = obj
        o["layout"] = "chunks"
        assertCorrupt(o, field: "layout")
        for field in ["base", "patches", "result"] {
            o = obj
            o.removeValue(forKey: field)
            assertCorrupt(o, field: field)
        }
        // Patches out of order: the second's fromRoot is not the first's toRoot.
        o = obj
        var patches = obj["patches"] as! [[String: Any]]
        patches.swapAt(0, 1)
        o["patches"] = patches
        assertCorrupt(o, field: "patches[0].fromRoot")
        // A gap: one patch left out.
        o = obj
        o["patches"] = [(obj["patches"] as! [[String: Any]])[1]]
        assertCorrupt(o, field: "patches[0].fromRoot")
        // The result does not match the chain's end.
        o = obj
        var result = obj["result"] as! [String: Any]
        result["pageRoot"] = hex("9")
        o["result"] = result
        assertCorrupt(o, field: "result.pageRoot")
        result = obj["result"] as! [String: Any]
        result["size"] = 1
        o["result"] = result
        assertCorrupt(o, field: "result.size")
        var base = obj["base"] as! [String: Any]
        base["pageSize"] = 1000
        o = obj
        o["base"] = base
        assertCorrupt(o, field: "base.pageSize")
        base = obj["base"] as! [String: Any]
        base["sha256"] = "XYZ"
        o = obj
        o["base"] = base
        assertCorrupt(o, field: "base.sha256")
        patches = obj["patches"] as! [[String: Any]]
        patches[1]["toRoot"] = "short"
        o = obj
        o["patches"] = patches
        assertCorrupt(o, field: "patches[1].toRoot")
    }

    func testKeysMustBeTheCollectionsAndNameTheirHashes() throws {
        let m = pageManifest()
        try m.checkKeys(layout: layout, key: "m")
        var w = m
        w.base!.key = "p/other/snapshot/objects/\(m.base!.sha256).sqlite3"
        XCTAssertThrowsError(try w.checkKeys(layout: layout, key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.field, "base.key", "\($0)")
        }
        w = m
        w.base!.sha256 = hex("c")
        XCTAssertThrowsError(try w.checkKeys(layout: layout, key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.field, "base.key", "\($0)")
        }
        // A whole-file version's snapshot file may be a base.
        w = m
        w.base!.key = layout.versionFileKey(collection: "lines", version: "V1", file: "snapshot.sqlite3")
        try w.checkKeys(layout: layout, key: "m")
        w.base!.key = layout.versionFileKey(collection: "lines", version: "V1", file: "../x")
        XCTAssertThrowsError(try w.checkKeys(layout: layout, key: "m"))
        w = m
        w.patches![1].key = layout.versionObjectKey(collection: "lines", kind: .patch, sha256: hex("7"))
        XCTAssertThrowsError(try w.checkKeys(layout: layout, key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.field, "patches[1].key", "\($0)")
        }
        w = m
        w.patches![0].key = layout.versionObjectKey(collection: "lines", kind: .base, sha256: m.patches![0].sha256)
        XCTAssertThrowsError(try w.checkKeys(layout: layout, key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.field, "patches[0].key", "\($0)")
        }
    }

    func testObjectKeysListEveryObjectAVersionNeedsInOrder() {
        let m = pageManifest(patches: 3)
        XCTAssertEqual(
            m.objectKeys(layout: layout),
            [m.base!.key] + m.patches!.map(\.key))
        XCTAssertEqual(m.objects(layout: layout).map(\.role), [.base, .patch, .patch, .patch])
        XCTAssertEqual(m.objects(layout: layout).map(\.name), ["base", "patches[0]", "patches[1]", "patches[2]"])
        XCTAssertEqual(
            m.objectKeys(layout: layout, includingManifest: true).last,
            "p/lines/snapshot/timestamped/V3/manifest.json")
        XCTAssertEqual(m.storedSize, 40960 + 100 + 101 + 102)
        XCTAssertEqual(m.materializedSize, 4096 * 13)
        let w = wholeManifest()
        XCTAssertEqual(
            w.objects(layout: layout),
            [
                VersionObjectRef(
                    key: "p/lines/snapshot/timestamped/V1/snapshot.sqlite3", size: 10,
                    sha256: hex("f"), role: .file, name: "snapshot.sqlite3")
            ])
        XCTAssertEqual(w.materializedSize, 10)
    }
}
