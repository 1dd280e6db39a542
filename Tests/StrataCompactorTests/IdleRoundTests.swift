import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// A worker's round with nothing new costs a pointer GET and a listing, not the lease, the
/// manifest and the quarantine listing; anything new (a run, another compactor's version, a
/// record to quarantine) gets a full round.
final class IdleRoundTests: XCTestCase {
    func testIdleRoundsSkipTheLeaseAndWakeOnAnythingNew() throws {
        let dir = TempDir(prefix: "strata-idle")
        let store = FaultInjectingStore(try FileStore(root: URL(fileURLWithPath: dir.path)))
        let w = CompactionWorld(store: store)
        let worker = w.compactor()
        try w.produce(["lines": [.upsert("a", w.row(1))]])
        XCTAssertEqual(try worker.compact(collection: "lines").outcome, .published)
        // The first round with nothing to do is a full one (it learns the idle state) ...
        XCTAssertEqual(try worker.compact(collection: "lines").outcome, .upToDate)
        // ... the next ones read the pointer and list runs/, and write nothing.
        for _ in 0..<3 {
            store.resetCounters()
            let s = try worker.compact(collection: "lines")
            XCTAssertEqual(s.outcome, .upToDate)
            XCTAssertEqual(store.calls(.put), 0, "no lease taken on an idle round")
            XCTAssertEqual(store.calls(.delete), 0)
            XCTAssertEqual(store.calls(.getData) + store.calls(.get), 1, "the pointer only")
            XCTAssertLessThanOrEqual(store.calls(.list), 2)
        }

        // A new run: applied at once.
        try w.produce(["lines": [.upsert("b", w.row(2))]])
        var s = try worker.compact(collection: "lines")
        XCTAssertEqual(s.outcome, .published)
        XCTAssertEqual(s.runsApplied.count, 1)
        XCTAssertEqual(try worker.compact(collection: "lines").outcome, .upToDate)

        // Another compactor publishes: the pointer moved, so a full round (it finds nothing to do).
        try w.produce(["lines": [.upsert("c", w.row(3))]])
        XCTAssertEqual(try w.compactor().compact(collection: "lines").outcome, .published)
        store.resetCounters()
        s = try worker.compact(collection: "lines")
        XCTAssertEqual(s.outcome, .upToDate)
        XCTAssertGreaterThan(store.calls(.put), 0, "a full round took the lease")
        try w.assertMatchesModel("lines")

        // A record that cannot be used is quarantined by the next round, idle or not.
        try store.put(w.layout.runRecordKey(Identifiers.make()), data: Data("not json".utf8))
        s = try worker.compact(collection: "lines")
        XCTAssertEqual(s.runsQuarantined.count, 1, "\(s)")
        try w.assertMatchesModel("lines")
    }
}
