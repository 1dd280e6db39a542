import Foundation
import Logging
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataS3
import StrataTestSupport
import XCTest

@testable import StrataService

/// Several `snapctl compactor --cooperate` processes on one bucket: heartbeats, rendezvous
/// assignment, takeover after a SIGKILL, and no two workers on one collection in steady state.
final class ManyWorkersTests: XCTestCase {
    var dir: TempDir!

    override func setUp() { dir = TempDir(prefix: "strata-workers") }
    override func tearDown() { dir = nil }

    let collections = (0..<6).map { "c\($0)" }

    func start(_ server: SeaweedFS, bucket: String, name: String, lease: Int) throws -> WorkerProcess {
        try WorkerProcess(
            arguments: [
                "--collections", collections.joined(separator: ","), "--poll", "0.3",
                "--cooperate", "--lease-seconds", String(lease),
            ],
            environment: server.awsEnvironment.merging([
                "STRATA_STORE": "s3://\(bucket)",
                "TMPDIR": dir.path,
            ]) { $1 },
            dir: dir, name: name)
    }

    /// Waits until the worker logs a membership of `count` and returns (its id, its collections).
    func membership(_ w: WorkerProcess, count: Int) throws -> (id: String, mine: Set<String>) {
        let line = try w.waitForLog("workers changed") { "\($0["live"] ?? "")" == String(count) }
        let workers = (line["workers"] as? String ?? "").split(separator: ",").map(String.init)
        let mine = Set((line["mine"] as? String ?? "").split(separator: ",").map(String.init))
        let id = try XCTUnwrap(
            workers.first { wid in
                self.collections.filter { WorkerMembership.owner(of: $0, among: workers) == wid }.sorted()
                    == mine.sorted()
            })
        return (id, mine)
    }

    /// Waits until every collection's published version has applied `runs`.
    func waitApplied(_ world: CompactionWorld, _ runs: [String: String], timeout: Double = 180) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var missing = Set(runs.keys)
        while !missing.isEmpty && Date() < deadline {
            for c in missing {
                if let applied = try? world.published(c).applied, applied.contains(runs[c]!) { missing.remove(c) }
            }
            if !missing.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
        }
        XCTAssertEqual(missing, [], "not applied in time")
    }

    func produceAll(_ world: CompactionWorld, round: Int) throws -> [String: String] {
        var runs: [String: String] = [:]
        for c in collections {
            runs[c] = try world.produce([c: [.upsert("r\(round)", world.row(round))]])
        }
        return runs
    }

    func testTakeoverAfterAWorkerIsKilled() throws {
        let server = try SeaweedFS.shared()
        let bucket = SeaweedFS.uniqueBucketName("takeover")
        let store = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        try store.createBucket()
        let world = CompactionWorld(store: store)
        let a = try start(server, bucket: bucket, name: "a", lease: 3)
        let b = try start(server, bucket: bucket, name: "b", lease: 3)
        let ma = try membership(a, count: 2)
        let mb = try membership(b, count: 2)
        XCTAssertTrue(ma.mine.isDisjoint(with: mb.mine), "\(ma) \(mb)")
        XCTAssertEqual(ma.mine.union(mb.mine), Set(collections))
        let orphaned = mb.mine.isEmpty ? ma.mine : mb.mine
        let (survivor, killed) = mb.mine.isEmpty ? (b, a) : (a, b)

        killed.signal(SIGKILL)
        _ = killed.waitForExit()
        let runs = try produceAll(world, round: 1)
        try waitApplied(world, runs)
        let after = try survivor.waitForLog("workers changed") { "\($0["live"] ?? "")" == "1" }
        XCTAssertEqual(Set((after["mine"] as? String ?? "").split(separator: ",").map(String.init)), Set(collections))
        let survivorId = survivor === a ? ma.id : mb.id
        for c in orphaned {
            XCTAssertEqual(
                try world.published(c).manifest.createdBy.compactorId, survivorId,
                "\(c) was not taken over by the survivor")
        }
        for c in collections { try world.assertMatchesModel(c) }
        survivor.signal(SIGTERM)
        XCTAssertEqual(survivor.waitForExit(), 0, survivor.log)
        XCTAssertEqual(
            try store.list(prefix: world.layout.workersPrefix).count, 1,
            "the clean stop removes its heartbeat; the killed worker's stays (expired)")
    }

    func testInSteadyStateEachCollectionHasOneWorker() throws {
        let server = try SeaweedFS.shared()
        let bucket = SeaweedFS.uniqueBucketName("steady")
        let store = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        try store.createBucket()
        let world = CompactionWorld(store: store)
        let workers = try ["a", "b", "c"].map { try start(server, bucket: bucket, name: $0, lease: 30) }
        let views = try workers.map { try membership($0, count: 3) }
        var owner: [String: String] = [:]
        for v in views {
            for c in v.mine {
                XCTAssertNil(owner[c], "\(c) assigned twice")
                owner[c] = v.id
            }
        }
        XCTAssertEqual(Set(owner.keys), Set(collections))
        let steadyLogLines = workers.map { $0.logLines.count }

        var produced: [String: [String]] = [:]
        for round in 1...3 {
            let runs = try produceAll(world, round: round)
            for (c, r) in runs { produced[c, default: []].append(r) }
            try waitApplied(world, runs)
        }
        for c in collections {
            let history = try world.history(c)
            let steady = history.filter { m in m.appliedRuns.contains { produced[c]!.contains($0.runId) } }
            XCTAssertFalse(steady.isEmpty)
            XCTAssertEqual(Set(steady.map(\.createdBy.compactorId)), [owner[c]!], "\(c) compacted by another worker")
            try world.assertEveryRunAppliedOnce(c)
        }
        for (w, start) in zip(workers, steadyLogLines) {
            let later = w.logLines.dropFirst(start)
            XCTAssertFalse(
                later.contains { ($0["msg"] as? String)?.contains("lease held") == true },
                "two workers contended for a lease in steady state:\n\(w.log)")
            XCTAssertFalse(later.contains { ($0["msg"] as? String)?.contains("published first") == true })
        }
        for w in workers { w.signal(SIGTERM) }
        for w in workers { XCTAssertEqual(w.waitForExit(), 0, w.log) }
        XCTAssertEqual(try store.list(prefix: world.layout.workersPrefix).map(\.key), [], "heartbeats left behind")
    }

    // MARK: units

    func testRendezvousIsBalancedAndMovesOnlyWhatItMust() {
        let names = (0..<300).map { "col\($0)" }
        let three = ["w1", "w2", "w3"]
        var counts: [String: Int] = [:]
        for c in names { counts[WorkerMembership.owner(of: c, among: three)!, default: 0] += 1 }
        for w in three { XCTAssertTrue((70...130).contains(counts[w] ?? 0), "\(counts)") }
        let two = ["w1", "w3"]
        for c in names {
            let before = WorkerMembership.owner(of: c, among: three)!
            let after = WorkerMembership.owner(of: c, among: two)!
            if before != "w2" { XCTAssertEqual(before, after, "\(c) moved though its worker stayed") }
        }
        XCTAssertEqual(
            WorkerMembership.owner(of: "x", among: ["w3", "w1", "w2"]),
            WorkerMembership.owner(of: "x", among: three), "independent of order")
        XCTAssertNil(WorkerMembership.owner(of: "x", among: []))
    }

    func testHeartbeatsUseConditionalWritesAndExpire() throws {
        let fs = try FileStore(root: URL(fileURLWithPath: dir.file("fs")))
        let log = Logger(label: "t")
        let a = try WorkerMembership(store: fs, layout: Layout(), workerId: "host-a", host: "h", ttl: 30, logger: log)
        let b = try WorkerMembership(store: fs, layout: Layout(), workerId: "host-b", host: "h", ttl: 30, logger: log)
        let now = Date()
        XCTAssertEqual(
            Set(a.assign(["x", "y", "z"], now: now) + b.assign(["x", "y", "z"], now: now)), ["x", "y", "z"])
        XCTAssertEqual(try a.liveWorkers(now: now), ["host-a", "host-b"])
        // After b's expiry a alone owns everything.
        XCTAssertEqual(try a.liveWorkers(now: now.addingTimeInterval(31)), ["host-a"])
        XCTAssertEqual(a.assign(["x", "y", "z"], now: now.addingTimeInterval(31)), ["x", "y", "z"])
        // Someone else overwrote a's heartbeat: a's If-Match renew fails and it writes anew.
        try fs.put(Layout().heartbeatKey(worker: "host-a"), data: Data("{}".utf8))
        XCTAssertNoThrow(try a.beat(now: now.addingTimeInterval(40)))
        b.leave()
        XCTAssertEqual(try fs.list(prefix: Layout().workersPrefix).map(\.key), [".strata-workers/host-a.json"])
        XCTAssertThrowsError(
            try WorkerMembership(
                store: fs, layout: Layout(), workerId: "a/b", host: "h", ttl: 1,
                logger: log))
    }
}
