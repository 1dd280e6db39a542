import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataTestSupport
import Synchronization
import XCTest

/// Crash and race scenarios through the real `snapctl` binary, shared by the file store and S3
/// test classes. `storeURL` and `environment` say how the child processes reach the store.
struct ProcessScenarios {
    let world: CompactionWorld
    let storeURL: String
    let environment: [String: String]

    func snapctl(_ args: [String], extraEnv: [String: String] = [:]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args + ["--store", storeURL],
            environment: environment.merging(extraEnv) { $1 }.merging(["STRATA_LOG_FORMAT": "json"]) { $1 })
    }

    /// SIGKILL at each step boundary, then a plain re-run: the same state as without the crash.
    func crashAtEveryStepConverges(cacheDir: String) throws {
        let w = world
        try w.produce(["lines": (0..<10).map { .upsert("c\($0)", w.row($0)) }])
        XCTAssertEqual(try snapctl(["compact", "--collection", "lines"]).status, 0)
        var round = 0
        var late: (String, Int)? = nil
        for point in ["after-download", "after-merge", "after-objects", "after-upload", "after-pointer"] {
            for mode in ["s3", "cache"] {
                round += 1
                // The previous round's late run: created before that round's runs, visible only
                // now that they are applied. It loses c0, n and c (newer writes) and lands l.
                if let (id, r) = late {
                    try w.produce(
                        [
                            "lines": [
                                .upsert("c0", w.row(400 + r)), .delete("n\(r)"),
                                .upsert("c\(r)", w.row(500 + r)), .upsert("l\(r)", w.row(600 + r)),
                            ]
                        ],
                        runId: id)
                }
                late = (Identifiers.make(), round)
                try w.produce([
                    "lines": [
                        .upsert("n\(round)", w.row(100 + round)), .delete("c\(round)"),
                        .upsert("c0", w.row(200 + round)),
                    ]
                ])
                try w.produce(["lines": [.upsert("m\(round)", w.row(300 + round))]])
                let args = ["compact", "--collection", "lines", "--cache-mode", mode, "--cache-dir", cacheDir]
                let crashed = try snapctl(args, extraEnv: ["STRATA_CRASH_AT": point])
                XCTAssertEqual(
                    crashed.status, 9, "\(point)/\(mode): killed by SIGKILL; stderr: \(crashed.stderr.suffix(500))")
                let rerun = try snapctl(args)
                XCTAssertEqual(rerun.status, 0, "\(point)/\(mode): \(rerun.stderr)")
                try w.assertMatchesModel("lines")
                try w.assertEveryRunAppliedOnce("lines")
                // A further round has nothing to do.
                XCTAssertTrue(try snapctl(args + ["--json"]).stdout.contains("\"outcome\" : \"upToDate\""), point)
            }
        }
    }

    /// Three compactor workers on one collection while two producers keep adding runs; then a
    /// graceful SIGTERM. Every run is applied exactly once, and nothing is lost.
    /// With `leaseSeconds` near zero every worker takes the lease over at once, so they really
    /// race and only the conditional pointer write keeps them correct.
    func concurrentCompactorsAndProducers(leaseSeconds: String = "2") throws {
        let w = world
        try w.produce(["lines": [.upsert("seed", w.row(0))], "words": [.upsert("seed", w.row(0))]])
        var workers: [Process] = []
        for _ in 0..<3 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: TestPaths.snapctl)
            p.arguments = [
                "compactor", "--collections", "lines,words", "--poll", "0.05", "--lease-seconds", leaseSeconds,
                "--cache-mode", "s3", "--store", storeURL,
            ]
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                .merging(["STRATA_LOG_FORMAT": "json", "STRATA_LOG_LEVEL": "warning"]) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            workers.append(p)
        }
        // Producers start once the workers are up (they have published the seed).
        let up = Date().addingTimeInterval(30)
        while Date() < up, (try? w.store.head(w.layout.pointerKey("lines"))) == nil { usleep(20_000) }
        XCTAssertNotNil(try w.store.head(w.layout.pointerKey("lines")), "the workers published the seed")
        let errors = LockedErrors()
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            var late: String? = nil
            for i in 0..<8 {
                usleep(40_000)  // work arrives over time, as OCR jobs finish
                do {
                    // Every other step reserves a run id and publishes it one step later, after
                    // newer runs (its writes of their ids lose; its delete of a shared id is a write).
                    if i % 2 == 0 { late = Identifiers.make() }
                    try w.produce([
                        "lines": [.upsert("p\(t)-\(i)", w.row(t * 100 + i)), .delete("p\(t)-\(i - 2)")],
                        "words": [.upsert("p\(t)-\(i)", w.row(i))],
                    ])
                    if i % 2 == 1, let id = late {
                        try w.produce(
                            [
                                "lines": [
                                    .upsert("p\(t)-\(i)", w.row(t * 100 + i + 50)), .delete("shared"),
                                    .upsert("late-\(t)-\(i)", w.row(i)),
                                ],
                                "words": [.upsert("shared", w.row(t * 10 + i))],
                            ], runId: id)
                    }
                } catch { errors.add(error) }
            }
        }
        XCTAssertEqual(errors.all.map { "\($0)" }, [])
        // Let the workers catch up, then stop them gracefully.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let pending = try ["lines", "words"].map { c -> Int in
                let applied = (try? w.history(c).flatMap { $0.appliedRuns.map(\.runId) }) ?? []
                return try w.recordedRuns(c).subtracting(applied).count
            }.reduce(0, +)
            if pending == 0 { break }
            usleep(100_000)
        }
        for p in workers { p.terminate() }  // SIGTERM
        for p in workers { p.waitUntilExit() }
        for p in workers { XCTAssertEqual(p.terminationStatus, 0, "a worker stops cleanly on SIGTERM") }
        let publishedByWorkers = try w.history("lines").count
        XCTAssertGreaterThan(publishedByWorkers, 2, "the workers published while the producers ran")
        XCTAssertEqual(try snapctl(["compact", "--collection", "lines", "--collection", "words"]).status, 0)
        for c in ["lines", "words"] {
            try w.assertMatchesModel(c)
            try w.assertEveryRunAppliedOnce(c)
        }
    }
}

final class LockedErrors: Sendable {
    private let errors = Mutex<[Error]>([])
    func add(_ e: Error) { errors.withLock { $0.append(e) } }
    var all: [Error] { errors.withLock { $0 } }
}

final class ProcessScenarioFileStoreTests: XCTestCase {
    func scenarios() throws -> (ProcessScenarios, TempDir) {
        let dir = TempDir(prefix: "strata-proc")
        let world = CompactionWorld(store: try FileStore(root: URL(fileURLWithPath: dir.path)))
        return (ProcessScenarios(world: world, storeURL: "file://" + dir.path, environment: [:]), dir)
    }

    func testCrashAtEveryStepConverges() throws {
        let (s, dir) = try scenarios()
        let cache = TempDir(prefix: "strata-cache")
        try s.crashAtEveryStepConverges(cacheDir: cache.path)
        _ = dir
    }

    func testConcurrentCompactorsAndProducers() throws {
        let (s, dir) = try scenarios()
        try s.concurrentCompactorsAndProducers()
        _ = dir
    }

    func testConcurrentCompactorsWithoutLeases() throws {
        let (s, dir) = try scenarios()
        try s.concurrentCompactorsAndProducers(leaseSeconds: "0.001")
        _ = dir
    }
}
