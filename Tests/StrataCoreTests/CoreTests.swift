import Foundation
import StrataCore
import XCTest

final class LayoutTests: XCTestCase {
    /// The keys users' pipelines, dashboards and lifecycle rules rely on (SPEC "Object layout").
    func testKeysFollowTheSpec() {
        let l = Layout()
        XCTAssertEqual(l.deltaKey(collection: "lines", runId: "R"), "lines/delta/R/delta.tar.gz")
        XCTAssertEqual(
            l.versionFileKey(collection: "lines", version: "V", file: "snapshot.sqlite3"),
            "lines/snapshot/timestamped/V/snapshot.sqlite3")
        XCTAssertEqual(l.manifestKey(collection: "lines", version: "V"), "lines/snapshot/timestamped/V/manifest.json")
        XCTAssertEqual(l.pointerKey("lines"), "lines/snapshot/latest-pointer.txt")
        XCTAssertEqual(l.runRecordKey("R"), "runs/R.json")
        XCTAssertEqual(l.quarantineKey(collection: "lines", runId: "R"), "lines/quarantine/R.json")
        XCTAssertEqual(l.leaseKey("lines"), "lines/snapshot/lease.json")
        let p = Layout(prefix: "team")
        XCTAssertEqual(p.prefix, "team/", "a prefix always ends in /")
        XCTAssertEqual(p.pointerKey("words"), "team/words/snapshot/latest-pointer.txt")
        XCTAssertEqual(p.runId(fromRecordKey: "team/runs/R1.json"), "R1")
        XCTAssertNil(p.runId(fromRecordKey: "runs/R1.json"), "another prefix")
        XCTAssertNil(p.runId(fromRecordKey: "team/runs/a/b.json"), "nested key")
    }

    func testCollectionNames() {
        for ok in ["lines", "words", "a", "receipt_lines-2", String(repeating: "x", count: 63)] {
            XCTAssertNoThrow(try Layout.validate(collection: ok), ok)
        }
        for bad in ["", "Lines", "a/b", "a b", "..", "runs", String(repeating: "x", count: 64), "é"] {
            XCTAssertThrowsError(try Layout.validate(collection: bad), bad) { error in
                XCTAssertEqual((error as? StrataError)?.kind, .invalidInput)
                XCTAssertNotNil((error as? StrataError)?.fix)
            }
        }
    }
}

final class IdentifierTests: XCTestCase {
    // Ids are strictly increasing per process, so these tests never make an id far in the future:
    // every later id in the test process would follow it.

    func testIdsSortByCreationTimeAndRoundTripTheirDate() {
        let a = Identifiers.make()
        let b = Identifiers.make()  // possibly the same millisecond: still strictly later
        XCTAssertLessThan(a, b)
        XCTAssertTrue(Identifiers.isValid(a))
        XCTAssertEqual(Identifiers.date(of: a)!.timeIntervalSinceNow, 0, accuracy: 5)
        let millis: Int64 = 1_790_000_000_123
        let stamped = Identifiers.timestamp(millis: millis) + "-000000000000"
        XCTAssertEqual(Identifiers.date(of: stamped)!.timeIntervalSince1970, 1_790_000_000.123, accuracy: 0.0005)
        XCTAssertLessThan(stamped, Identifiers.timestamp(millis: millis + 1) + "-000000000000")
        XCTAssertNil(Identifiers.date(of: "not-an-id"))
    }

    /// A host whose clock is behind still makes a version that sorts after the pointer's.
    func testMakeAfterMovesForwardDespiteASlowClock() {
        let ahead = Int64((Date().timeIntervalSince1970 + 2) * 1000)  // another host, 2 s ahead
        let previous = Identifiers.timestamp(millis: ahead) + "-ffffffffffff"
        let next = Identifiers.make(after: previous)
        XCTAssertGreaterThan(next, previous)
        XCTAssertGreaterThan(Identifiers.make(after: nil), "2020")
    }

    func testUnsafeIdsAreRefused() {
        for bad in ["", ".", "..", "a/b", "a b", String(repeating: "x", count: 129), "a\u{0}"] {
            XCTAssertFalse(Identifiers.isValid(bad), bad)
        }
    }
}

final class RecordTests: XCTestCase {
    func testPointerParsesOneVersionAndRefusesGarbage() throws {
        XCTAssertEqual(
            try Pointer.parse(Pointer.body(version: "20261121T204743355Z-39f9a720b193"), key: "p"),
            "20261121T204743355Z-39f9a720b193")
        XCTAssertEqual(try Pointer.parse(Data("  V1 \r\n".utf8), key: "p"), "V1")
        for bad in ["", "../etc", "two words", "<html>"] {
            XCTAssertThrowsError(try Pointer.parse(Data(bad.utf8), key: "lines/snapshot/latest-pointer.txt"), bad) {
                XCTAssertEqual(($0 as? StrataError)?.kind, .corrupt)
            }
        }
    }

    func manifest() -> SnapshotManifest {
        SnapshotManifest(
            collection: "lines", version: "V2", parentVersion: "V1", createdAt: Date(timeIntervalSince1970: 1),
            dimension: 384, rowCount: 3, files: [FileEntry(name: "snapshot.sqlite3", size: 10, sha256: "ab")],
            appliedRuns: [AppliedRun(runId: "R", upserts: 3, deletes: 0, newIds: 3, deletedExisting: 0)],
            createdBy: VersionCreator(compactorId: "c", host: "h", strataVersion: "t"))
    }

    func testManifestRoundTripsAndRefusesNewerMajorVersions() throws {
        let data = try StrataJSON.encoder().encode(manifest())
        XCTAssertEqual(try SnapshotManifest.decode(data, key: "m"), manifest())

        var obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        obj["formatVersion"] = 3
        XCTAssertThrowsError(try SnapshotManifest.decode(try JSONSerialization.data(withJSONObject: obj), key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .unsupportedVersion, "\($0)")
        }
        obj["formatVersion"] = 1
        obj.removeValue(forKey: "rowCount")
        XCTAssertThrowsError(try SnapshotManifest.decode(try JSONSerialization.data(withJSONObject: obj), key: "m")) {
            XCTAssertEqual(($0 as? StrataError)?.field, "rowCount", "\($0)")
        }
    }
}
