import Foundation
import StrataCompactor
import StrataCore
import XCTest

/// The planner's pure parts: the late-run window, future run ids, durations, quarantine keys.
final class RunPlannerTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func run(_ offset: TimeInterval, id: String? = nil) -> PendingRun {
        let created = now.addingTimeInterval(offset)
        let millis = Int64(created.timeIntervalSince1970 * 1000)
        let runId = id ?? Identifiers.timestamp(millis: millis) + "-00000000000\(Int(abs(offset)) % 10)"
        return PendingRun(
            runId: runId, createdAt: created, deltaKey: "lines/delta/\(runId)/delta.tar.gz", size: 1,
            sha256: String(repeating: "0", count: 64), upserts: 1, deletes: 0)
    }

    func testTriageByWindowAndClock() {
        var settings = CompactorSettings(compactorId: "t", host: "h")
        settings.lateRunWindow = 86400
        let inside = run(-86399)
        let outside = run(-86401)
        let soon = run(3599)
        let future = run(3601)
        // A record whose created_at looks fine but whose id names a time two hours ahead.
        let twoHoursAhead = Int64(now.timeIntervalSince1970 * 1000) + 7_200_000
        let futureId = run(0, id: Identifiers.timestamp(millis: twoHoursAhead) + "-abc")
        var t = RunPlanner.triage(
            [future, soon, outside, inside, futureId], collection: "lines", now: now,
            settings: settings)
        XCTAssertEqual(t.accepted.map(\.runId), [inside.runId, soon.runId])
        XCTAssertEqual(
            Dictionary(uniqueKeysWithValues: t.refused.map { ($0.run.runId, $0.reason) }),
            [outside.runId: "tooLate", future.runId: "futureRunId", futureId.runId: "futureRunId"])
        let late = t.refused.first { $0.reason == "tooLate" }!
        XCTAssertTrue(
            late.detail.contains("snapctl compact --collection lines --allow-late \(outside.runId)"),
            late.detail)
        XCTAssertTrue(late.detail.contains("1d"), late.detail)

        settings.allowLateRuns = [outside.runId, future.runId]
        t = RunPlanner.triage([future, outside], collection: "lines", now: now, settings: settings)
        XCTAssertEqual(t.accepted.map(\.runId), [outside.runId], "--allow-late lifts the window, not the clock check")
        XCTAssertEqual(t.refused.map(\.reason), ["futureRunId"])
    }

    func testDurations() {
        XCTAssertEqual(CompactorSettings.parseDuration("7d"), 7 * 86400)
        XCTAssertEqual(CompactorSettings.parseDuration("36h"), 36 * 3600)
        XCTAssertEqual(CompactorSettings.parseDuration("90m"), 5400)
        XCTAssertEqual(CompactorSettings.parseDuration("45s"), 45)
        XCTAssertEqual(CompactorSettings.parseDuration("120"), 120)
        for bad in ["", "soon", "-1d", "1y", "d"] { XCTAssertNil(CompactorSettings.parseDuration(bad), bad) }
        XCTAssertEqual(CompactorSettings.describe(seconds: 7 * 86400), "7d")
        XCTAssertEqual(CompactorSettings.describe(seconds: 5400), "90m")
        XCTAssertEqual(CompactorSettings.describe(seconds: 61), "61s")
        XCTAssertEqual(CompactorSettings(compactorId: "t", host: "h").lateRunWindow, 7 * 86400, "default 7 days")
    }

    func testQuarantineKeysRoundTrip() {
        let l = Layout(prefix: "team")
        let key = l.quarantineKey(collection: "lines", runId: "R1")
        XCTAssertEqual(key, "team/lines/quarantine/R1.json")
        XCTAssertEqual(l.runId(fromQuarantineKey: key, collection: "lines"), "R1")
        XCTAssertNil(l.runId(fromQuarantineKey: key, collection: "words"))
        XCTAssertNil(l.runId(fromQuarantineKey: "team/lines/quarantine/a/b.json", collection: "lines"))
        XCTAssertNil(l.runId(fromQuarantineKey: "team/lines/quarantine/R1.txt", collection: "lines"))
    }
}
