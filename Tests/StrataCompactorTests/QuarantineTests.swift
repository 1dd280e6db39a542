import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// Shared quarantine scenarios, run on the file store here and on SeaweedFS beside.
struct QuarantineScenarios {
    let world: CompactionWorld

    /// Publishes a hostile run made by the Python fixture (record last, as a producer would).
    func publishHostile(_ kind: String, collection: String = "lines", dimension: Int? = nil) throws -> String {
        let runId = Identifiers.make()
        let out = world.tmp.file("hostile-\(kind)-\(runId)")
        let fixture = TestPaths.projectRoot + "/Tests/StrataCompactorTests/Fixtures/hostile_run.py"
        let r = try TestPaths.run([
            "python3", fixture, out, runId, collection, kind, String(dimension ?? world.dimension),
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        try world.store.put(world.layout.deltaKey(collection: collection, runId: runId), file: out + "/delta.tar.gz")
        try world.store.put(world.layout.runRecordKey(runId), file: out + "/record.json", condition: .ifNoneMatch)
        return runId
    }

    func quarantineRecord(_ collection: String, _ runId: String) throws -> QuarantineRecord? {
        let key = world.layout.quarantineKey(collection: collection, runId: runId)
        guard let (data, _) = try world.store.getDataIfExists(key) else { return nil }
        return try StrataJSON.decode(QuarantineRecord.self, from: data, object: key)
    }

    /// Good and bad runs interleaved: the bad ones are quarantined with their reasons, the good
    /// ones applied, and the published snapshot equals the model of the good ones alone.
    func brokenAndHostileDeltasAreQuarantined() throws {
        let w = world
        try w.produce(["lines": (0..<5).map { .upsert("g\($0)", w.row($0)) }])
        var expected: [String: String] = [:]
        for kind in ["nan", "traversal", "symlink", "both", "notgzip", "wrongrun"] {
            expected[try publishHostile(kind)] = kind
        }
        expected[try publishHostile("dimension", dimension: w.dimension + 1)] = "dimension"
        try w.produce(["lines": [.upsert("g5", w.row(5)), .delete("g0")]])

        // A run whose delta vanished, and one whose delta was replaced after its record was written.
        let missing = try w.produce(["lines": [.upsert("m1", w.row(50))]])
        try w.store.delete(w.layout.deltaKey(collection: "lines", runId: missing))
        w.model["lines"]?["m1"] = nil
        let tampered = try w.produce(["lines": [.upsert("t1", w.row(51))]])
        try w.store.put(w.layout.deltaKey(collection: "lines", runId: tampered), data: Data("tampered".utf8))
        w.model["lines"]?["t1"] = nil
        try w.produce(["lines": [.upsert("g6", w.row(6))]])

        let s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.runsApplied.count, 3)
        XCTAssertEqual(Set(s.runsQuarantined.map(\.runId)), Set(expected.keys).union([missing, tampered]))
        try w.assertMatchesModel("lines")

        let reasons: [String: String] = [
            "nan": "invalidDelta", "traversal": "pathTraversal", "symlink": "symlink",
            "both": "invalidDelta", "notgzip": "notGzip", "wrongrun": "wrongRun",
            "dimension": "dimensionMismatch",
        ]
        for (runId, kind) in expected {
            let q = try XCTUnwrap(try quarantineRecord("lines", runId), kind)
            XCTAssertEqual(q.reason, reasons[kind], "\(kind): \(q.detail)")
            XCTAssertFalse(q.detail.isEmpty)
            XCTAssertFalse(q.detail.contains(w.tmp.path), "\(kind): names store keys, not local paths: \(q.detail)")
        }
        XCTAssertEqual(try quarantineRecord("lines", missing)?.reason, "missingDelta")
        XCTAssertEqual(try quarantineRecord("lines", tampered)?.reason, "checksumMismatch")

        // Quarantined runs stay quarantined: the next round has nothing to do.
        let again = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(again.outcome, .upToDate)
        XCTAssertEqual(again.runsQuarantined.count, 0)
    }
}

final class QuarantineFileStoreTests: XCTestCase {
    func testBrokenAndHostileDeltasAreQuarantined() throws {
        let dir = TempDir(prefix: "strata-quarantine")
        let world = CompactionWorld(store: try FileStore(root: URL(fileURLWithPath: dir.path)))
        try QuarantineScenarios(world: world).brokenAndHostileDeltasAreQuarantined()
    }
}
