import Foundation
import StrataTestSupport
import XCTest

/// `snapctl runs` prints one state per run, as the compactor and verify classify it (the shared
/// run catalog): applied, rolled_back, pending (requeued ones say so), quarantined, invalid.
final class RunsCommandTests: XCTestCase {
    func snapctl(_ args: [String]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args,
            environment: ["STRATA_LOG_FORMAT": "json", "STRATA_LOG_LEVEL": "error"])
    }

    struct Row: Decodable {
        var runId: String
        var collection: String
        var status: String
        var reason: String?
    }

    func runs(_ store: [String], _ extra: [String] = []) throws -> [String: Row] {
        let r = try snapctl(["runs"] + store + ["--json"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try d.decode([Row].self, from: Data(r.stdout.utf8))
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.runId, $0) })
    }

    /// The run id of the last `produce` (its run record is the newest file under runs/).
    func newestRun(_ dir: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").sorted()
        return String(try XCTUnwrap(names.last).dropLast(".json".count))
    }

    func testEveryStateAsTheCompactorSeesIt() throws {
        let dir = TempDir(prefix: "strata-runs-cli")
        let store = ["--store", "file://" + dir.path]
        let input = dir.path + "-in.ndjson"
        defer { try? FileManager.default.removeItem(atPath: input) }
        try "{\"id\":\"a\",\"embedding\":[1,2,3]}\n".write(toFile: input, atomically: false, encoding: .utf8)
        func produce() throws -> String {
            let r = try snapctl(["produce"] + store + ["--collection", "lines", "--input", input])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try newestRun(dir.path)
        }
        func compact() throws -> String {
            let r = try snapctl(["compact"] + store + ["--collection", "lines", "--json"])
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
            return try XCTUnwrap(json?.first?["newVersion"] as? String, r.stdout + r.stderr)
        }
        let applied = try produce()
        let v1 = try compact()
        let rolledBack = try produce()
        _ = try compact()
        var r = try snapctl(["rollback"] + store + ["lines", v1, "--reason", "test"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let requeued = try produce()
        _ = try compact()
        // Back to the rollback's version, re-queueing the run applied since.
        let rollbackVersion = try snapctl(["versions"] + store + ["lines", "--json"]).stdout
        let versions = try JSONSerialization.jsonObject(with: Data(rollbackVersion.utf8)) as! [[String: Any]]
        let target = try XCTUnwrap(
            versions.first { ($0["note"] as? String)?.hasPrefix("rollback") == true }?["version"]
                as? String)
        r = try snapctl(["rollback"] + store + ["lines", target, "--reason", "again", "--requeue"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let pending = try produce()
        let garbage = String(pending.prefix(19)) + "-ffffffffffff"
        try "{oops".write(toFile: dir.path + "/runs/\(garbage).json", atomically: false, encoding: .utf8)

        var rows = try runs(store)
        XCTAssertEqual(
            rows.mapValues(\.status),
            [
                applied: "applied", rolledBack: "rolled_back", requeued: "pending", pending: "pending",
                garbage: "invalid",
            ])
        XCTAssertEqual(rows[requeued]?.reason, "requeued")
        XCTAssertEqual(rows[garbage]?.reason, "invalidRecord")
        XCTAssertEqual(Set(try runs(store, ["--pending"]).keys), [requeued, pending])

        // The compactor applies what `runs` called pending and quarantines what it called invalid.
        r = try snapctl(["compact"] + store + ["--collection", "lines"])
        XCTAssertEqual(r.status, 3, "quarantined the invalid record: \(r.stdout)")
        rows = try runs(store)
        XCTAssertEqual(
            rows.mapValues(\.status),
            [
                applied: "applied", rolledBack: "rolled_back", requeued: "applied", pending: "applied",
                garbage: "quarantined",
            ])
        XCTAssertEqual(try runs(store, ["--quarantined"]).mapValues(\.reason), [garbage: "invalidRecord"])
    }
}
