import Foundation
import StrataCompactor
import StrataCore
import StrataInspect
import StrataS3
import StrataTestSupport
import XCTest

final class RollbackTests: XCTestCase {
    let creator = VersionCreator(compactorId: "test-rollback", host: "test", strataVersion: "test")

    func testRollbackPublishesOlderRowsAsANewVersionAndDropsLaterRuns() throws {
        let w = CompactionWorld(store: try S3TestStore.make("rollback"))
        try w.produce(["lines": (0..<5).map { .upsert("a\($0)", w.row($0)) }])
        let v1 = try w.compactor().compact(collection: "lines").newVersion!
        let modelAtV1 = w.model["lines"]!
        let b = try w.produce(["lines": [.upsert("b", w.row(10)), .delete("a0")]])
        _ = try w.compactor().compact(collection: "lines")
        let c = try w.produce(["lines": [.upsert("a1", w.row(11))]])
        let v3 = try w.compactor().compact(collection: "lines").newVersion!

        let r = try Rollback(store: w.store, layout: w.layout, creator: creator, workDirectory: w.tmp.path)
            .run(collection: "lines", to: v1, reason: "bad batch", requeue: false)
        XCTAssertEqual(r.from, v3)
        XCTAssertGreaterThan(r.newVersion, v3, "the pointer moves forward")
        XCTAssertEqual(Set(r.rolledBack), [b, c])
        w.model["lines"] = modelAtV1
        try w.assertMatchesModel("lines")
        let m = try w.published("lines").manifest
        XCTAssertEqual(m.parentVersion, v3)
        XCTAssertEqual(m.note, "rollback to \(v1): bad batch")

        // Rolled-back runs are not applied again; new runs apply on top of the restored rows.
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .upToDate)
        try w.produce(["lines": [.upsert("d", w.row(20))]])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").runsApplied.count, 1)
        try w.assertMatchesModel("lines")
        XCTAssertEqual(try RunLedger(store: w.store, layout: w.layout).ledger("lines").pending.count, 0)
    }

    func testRollbackWithRequeueAppliesTheRunsAgain() throws {
        let w = CompactionWorld(store: try S3TestStore.make("requeue"))
        try w.produce(["lines": (0..<5).map { .upsert("a\($0)", w.row($0)) }])
        let v1 = try w.compactor().compact(collection: "lines").newVersion!
        try w.produce(["lines": [.upsert("b", w.row(10)), .delete("a0")]])
        _ = try w.compactor().compact(collection: "lines")

        let r = try Rollback(store: w.store, layout: w.layout, creator: creator, workDirectory: w.tmp.path)
            .run(collection: "lines", to: v1, reason: "re-run with a fixed compactor", requeue: true)
        XCTAssertEqual(r.requeued.count, 1)
        XCTAssertEqual(try RunLedger(store: w.store, layout: w.layout).ledger("lines").pending.map(\.runId), r.requeued)
        let s = try w.compactor().compact(collection: "lines")
        XCTAssertEqual(s.runsApplied, r.requeued)
        try w.assertMatchesModel("lines")  // the model never lost the run
    }

    func testRollbackRefusesUnknownVersionsAndLosesRacesCleanly() throws {
        let w = CompactionWorld(store: try S3TestStore.make("rbrefuse"))
        try w.produce(["lines": [.upsert("x", w.row(1))]])
        let v1 = try w.compactor().compact(collection: "lines").newVersion!
        let rb = Rollback(store: w.store, layout: w.layout, creator: creator, workDirectory: w.tmp.path)
        XCTAssertThrowsError(try rb.run(collection: "lines", to: v1, reason: "x", requeue: false)) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .invalidInput, "\($0)")
        }
        XCTAssertThrowsError(
            try rb.run(collection: "lines", to: "20200101T000000000Z-000000000000", reason: "x", requeue: false)
        ) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .invalidInput, "\($0)")
        }
    }
}
