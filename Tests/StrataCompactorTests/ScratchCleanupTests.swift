import Foundation
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

@testable import StrataCompactor

/// A compactor killed with SIGKILL leaves its scratch copy of the snapshot in TMPDIR; the next
/// compactor on the host removes the scratch of processes that are gone, and only that.
final class ScratchCleanupTests: XCTestCase {
    func scratch(in dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(ScratchOwner.prefix) }.sorted()
    }

    func testScratchOfAKilledCompactorIsRemovedByTheNextOne() throws {
        let storeDir = TempDir(prefix: "strata-scratch-store")
        let tmp = TempDir(prefix: "strata-scratch-tmp")
        let w = CompactionWorld(store: try FileStore(root: URL(fileURLWithPath: storeDir.path)))
        try w.produce(["lines": (0..<50).map { .upsert("r\($0)", w.row($0)) }])
        let env = ["TMPDIR": tmp.path, "STRATA_LOG_FORMAT": "json"]
        let args = [
            TestPaths.snapctl, "compact", "--collection", "lines", "--cache-mode", "s3",
            "--store", "file://" + storeDir.path,
        ]

        // Directories the next compactor must keep: a live process's (this test's), and a gone
        // process's of another host (a shared work directory).
        let me = ScratchOwner.current
        let live = me.directoryName(collection: "lines", id: "live")
        let otherHost = ScratchOwner(pid: me.pid, startTime: me.startTime, host: "0000ffff")
            .directoryName(collection: "lines", id: "other-host")
        // And one it must remove: this pid, but another start time (the pid was reused).
        let reused = ScratchOwner(pid: me.pid, startTime: me.startTime + 1, host: me.host)
            .directoryName(collection: "lines", id: "reused")
        for name in [live, otherHost, reused] {
            try FileManager.default.createDirectory(atPath: tmp.path + "/" + name, withIntermediateDirectories: true)
        }
        XCTAssertNotEqual(me.startTime, 0, "Linux has /proc: the start time is known")

        let crashed = try TestPaths.run(args, environment: env.merging(["STRATA_CRASH_AT": "after-merge"]) { $1 })
        XCTAssertEqual(crashed.status, 9, "killed by SIGKILL: \(crashed.stderr.suffix(500))")
        let left = try scratch(in: tmp.path).filter { ![live, otherHost].contains($0) }
        XCTAssertEqual(left.count, 1, "the killed compactor's scratch, with its snapshot copy: \(left)")
        let killed = try XCTUnwrap(left.first)
        let owner = try XCTUnwrap(ScratchOwner.parse(killed))
        XCTAssertNotEqual(owner.pid, me.pid)
        XCTAssertTrue(owner.isGoneFromThisHost)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path + "/" + killed + "/snapshot.sqlite3"))

        let rerun = try TestPaths.run(args, environment: env)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        try w.assertMatchesModel("lines")
        XCTAssertEqual(
            try scratch(in: tmp.path), [live, otherHost].sorted(),
            "the killed process's and the reused pid's scratch are gone; the others are kept")
    }

    func testOwnerNamesParse() throws {
        let o = ScratchOwner(pid: 4242, startTime: 987_654, host: "abcd1234")
        let name = o.directoryName(collection: "lines-2026", id: "20260101T000000000Z-0123456789ab")
        XCTAssertEqual(ScratchOwner.parse(name), o)
        XCTAssertNil(
            ScratchOwner.parse("strata-compact-lines-20260101T000000000Z-0123456789ab"),
            "scratch without an owner (made before owners were recorded) is not touched")
        XCTAssertNil(ScratchOwner.parse("something-else.owner-1-2-abcd1234"))
        XCTAssertFalse(ScratchOwner.current.isGoneFromThisHost)
    }
}
