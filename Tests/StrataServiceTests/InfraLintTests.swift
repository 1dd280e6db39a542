import Foundation
import StrataTestSupport
import XCTest

/// The Dockerfiles pass hadolint and the CloudFormation template passes cfn-lint (both installed
/// by Scripts/setup.sh, so CI runs them; skipped with the reason where they are absent).
final class InfraLintTests: XCTestCase {
    func tool(_ name: String) throws -> String {
        let r = try TestPaths.run(["sh", "-c", "command -v \(name)"])
        guard r.status == 0 else { throw XCTSkip("\(name) is not installed (Scripts/setup.sh installs it)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testDockerfilesPassHadolint() throws {
        let hadolint = try tool("hadolint")
        let root = TestPaths.projectRoot
        let r = try TestPaths.run([hadolint, root + "/Infra/Dockerfile", root + "/Infra/Dockerfile.runtime"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        // The rules that matter here are on, not ignored wholesale: a root USER fails.
        let bad = TempDir(prefix: "strata-hadolint")
        try "FROM debian:latest\nRUN apt-get install curl\nUSER root\n".write(
            toFile: bad.file("Dockerfile"),
            atomically: false, encoding: .utf8)
        XCTAssertNotEqual(try TestPaths.run([hadolint, bad.file("Dockerfile")]).status, 0)
    }

    func testCloudFormationTemplatePassesCfnLint() throws {
        let cfnLint = try tool("cfn-lint")
        let r = try TestPaths.run([cfnLint, TestPaths.projectRoot + "/Infra/cloudformation/strata.yaml"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }
}
