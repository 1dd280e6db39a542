import Foundation
import StrataCore
import StrataFileStore
import StrataInspect
import StrataTestSupport
import XCTest

final class PublishDirectoryTests: XCTestCase {
    /// `latest` only moves forward, the newest N stay (never the one `latest` names), a version
    /// already there is not rewritten, and a damaged file is refused by size.
    func testLatestMovesForwardOnlyAndTheNewestNStay() throws {
        let root = TempDir(prefix: "strata-pubdir-unit")
        let store = try FileStore(root: URL(fileURLWithPath: root.path + "/store"))
        let w = CompactionWorld(store: store)
        try w.produce(["lines": (0..<30).map { .upsert("r\($0)", w.row($0)) }])
        _ = try w.compactor().compact(collection: "lines")
        let b = try PageVersionBuilder(store: store, layout: w.layout, collection: "lines")
        var versions = [b.version]
        for _ in 0..<3 { versions.append(try b.publish(rows: 5)) }
        let cache = ReaderCache(
            store: store, layout: w.layout,
            settings: ReaderCacheSettings(directory: root.path + "/cache"))
        let dir = PublishDirectory(root: root.path + "/shared", keep: 2)
        func publish(_ v: String) throws {
            let c = try cache.open("lines", version: v)
            defer { c.close() }
            try dir.publish(c.manifest, file: c.path)
        }
        try publish(versions[2])
        XCTAssertEqual(try dir.latest("lines"), versions[2])
        try publish(versions[0])  // older: written, but `latest` stays
        XCTAssertEqual(try dir.latest("lines"), versions[2])
        try publish(versions[3])
        XCTAssertEqual(try dir.latest("lines"), versions[3])
        let kept = try FileManager.default.contentsOfDirectory(atPath: root.path + "/shared/lines")
            .filter { $0 != "latest" }.sorted()
        XCTAssertEqual(kept, [versions[2], versions[3]])
        let found = try dir.locate("lines")
        XCTAssertEqual(found.version, versions[3])
        XCTAssertTrue(filesEqual(found.path, b.expected[versions[3]]!))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: root.path + "/shared/lines/\(versions[3])")
                .filter { $0.hasPrefix(".") }, [], "no temporary files left")
        // A truncated file is refused, naming it.
        try FileHandle(forWritingTo: URL(fileURLWithPath: found.path)).truncate(atOffset: 4096)
        XCTAssertThrowsError(try dir.locate("lines")) {
            XCTAssertEqual(($0 as? StrataError)?.object, found.path, "\($0)")
        }
        // Publishing again repairs it.
        try publish(versions[3])
        XCTAssertTrue(filesEqual(try dir.locate("lines").path, b.expected[versions[3]]!))
    }
}
