import Foundation
import StrataCore
import XCTest

/// The run catalog's key parsers invert the builders (Layout+Catalog, Layout+Runs, Layout.swift).
final class LayoutCatalogTests: XCTestCase {
    func testParsersInvertTheBuilders() {
        for layout in [Layout(), Layout(prefix: "team/strata")] {
            let run = Identifiers.make()
            XCTAssertEqual(layout.runId(fromRecordKey: layout.runRecordKey(run)), run)
            XCTAssertEqual(
                layout.runId(
                    fromQuarantineKey: layout.quarantineKey(collection: "lines", runId: run),
                    collection: "lines"), run)
            XCTAssertNil(
                layout.runId(
                    fromQuarantineKey: layout.quarantineKey(collection: "lines", runId: run),
                    collection: "words"))
            let delta = layout.deltaObject(layout.deltaKey(collection: "lines", runId: run), collection: "lines")
            XCTAssertEqual(delta?.runId, run)
            XCTAssertEqual(delta?.isDelta, true)
            let other = layout.deltaObject(layout.deltasPrefix("lines") + "\(run)/part-1.tmp", collection: "lines")
            XCTAssertEqual(other?.runId, run)
            XCTAssertEqual(other?.isDelta, false)
            XCTAssertNil(layout.deltaObject(layout.deltasPrefix("lines") + "loose-file", collection: "lines"))
            XCTAssertNil(layout.deltaObject(layout.deltasPrefix("lines") + "/x", collection: "lines"))
            XCTAssertNil(layout.deltaObject(layout.deltaKey(collection: "lines", runId: run), collection: "words"))
            let v = Identifiers.make()
            XCTAssertEqual(
                layout.version(
                    ofVersionObject: layout.manifestKey(collection: "lines", version: v),
                    collection: "lines"), v)
            XCTAssertNil(layout.version(ofVersionObject: layout.pointerKey("lines"), collection: "lines"))
            XCTAssertEqual(Layout.collection(ofPointerKey: layout.pointerKey("lines")), "lines")
            XCTAssertNil(Layout.collection(ofPointerKey: layout.leaseKey("lines")))
        }
        XCTAssertNil(Layout.collection(ofPointerKey: "Bad Name/snapshot/latest-pointer.txt"))
        // Other objects under runs/ are not records.
        XCTAssertNil(Layout().runId(fromRecordKey: "runs/README.txt"))
        XCTAssertNil(Layout().runId(fromRecordKey: "runs/sub/x.json"))
    }
}
