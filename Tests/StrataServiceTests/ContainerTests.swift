import Foundation
import StrataCore
import StrataS3
import StrataTestSupport
import XCTest

/// The runtime image (Infra/Dockerfile.runtime) built with podman around the host's release
/// snapctl and run as non-root against the tests' SeaweedFS (../shared/CONTAINERS.md): /metrics
/// scraped, the HEALTHCHECK run, SIGTERM via `podman stop`, the published version checked.
final class ContainerTests: XCTestCase {
    let podman = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    let ulimits = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]

    func which(_ tool: String) -> Bool {
        (try? TestPaths.run(["sh", "-c", "command -v \(tool)"]).status) == 0
    }

    @discardableResult
    func run(_ argv: [String], file: StaticString = #filePath, line: UInt = #line) throws -> TestPaths.ProcessResult {
        let r = try TestPaths.run(argv)
        XCTAssertEqual(r.status, 0, "\(argv.joined(separator: " ")):\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
        return r
    }

    func testTheRuntimeImageRunsTheWorkerAsNonRootAndStopsOnSIGTERM() throws {
        continueAfterFailure = false
        guard which("podman"), which("debootstrap") else {
            throw XCTSkip(
                "podman or debootstrap is not installed (Scripts/setup.sh installs them); "
                    + "the container is not tested on this machine")
        }
        let root = TestPaths.projectRoot
        // The shipped binary, which `make test` builds (`make release`) before the tests run. It is
        // not built from here: `swift test` holds the build directory's lock, so a nested build
        // would wait for it forever.
        let binary = root + "/.build/release/snapctl"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("no release snapctl at \(binary): `make test` builds it (or run `make release` first)")
        }
        let base = try run([root + "/Scripts/container-base.sh", "localhost/strata-test-base:bookworm"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try SeaweedFS.shared()
        let bucket = SeaweedFS.uniqueBucketName("container")
        let store = try S3Store(configuration: S3TestStore.configuration(bucket: bucket, server: server))
        try store.createBucket()
        let world = CompactionWorld(store: store)
        let runs = [
            try world.produce(["lines": (1...10).map { .upsert("id\($0)", world.row($0)) }]),
            try world.produce(["lines": [.delete("id2")]]),
        ]

        let out = TempDir(prefix: "strata-container")
        let r = try TestPaths.run(
            [root + "/Scripts/container-smoke.sh", binary, base, out.path, "lines", "2"],
            environment: server.awsEnvironment.merging(["STRATA_STORE": "s3://\(bucket)"]) { $1 })
        func read(_ name: String) -> String {
            ((try? String(contentsOfFile: out.file(name), encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(r.status, 0, r.stderr + "\n" + read("logs.txt"))
        XCTAssertEqual(read("uid"), "10001", "the worker runs as the image's non-root user")
        let m = try PrometheusText(read("metrics.txt") + "\n")
        XCTAssertEqual(m.value("strata_runs_applied_total", ["collection": "lines"]), 2)
        XCTAssertEqual(m.value("strata_rows_deleted_total", ["collection": "lines"]), 1)
        XCTAssertEqual(read("health-code"), "0", "the HEALTHCHECK command: " + read("health.txt"))
        XCTAssertEqual(read("exit-code"), "0", "SIGTERM ends the worker cleanly")
        XCTAssertTrue(read("logs.txt").contains("stop requested"), read("logs.txt"))
        let published = try world.published("lines")
        XCTAssertEqual(Set(published.applied).intersection(runs), Set(runs))
        try world.assertMatchesModel("lines")
    }
}
