import StrataCore
import XCTest

final class LayoutPagesTests: XCTestCase {
    func testVersionObjectKeysRoundTripAndRejectOthers() {
        let layout = Layout(prefix: "p")
        let sha = String(repeating: "ab", count: 32)
        let key = layout.versionObjectKey(collection: "lines", kind: .patch, sha256: sha)
        XCTAssertEqual(key, "p/lines/snapshot/objects/\(sha).strpatch")
        XCTAssertEqual(layout.versionObject(fromKey: key, collection: "lines")?.kind, .patch)
        XCTAssertEqual(layout.versionObject(fromKey: key, collection: "lines")?.sha256, sha)
        let base = layout.versionObjectKey(collection: "lines", kind: .base, sha256: sha)
        XCTAssertEqual(layout.versionObject(fromKey: base, collection: "lines")?.kind, .base)
        for other in [
            key.replacingOccurrences(of: ".strpatch", with: ".tmp"), "p/lines/snapshot/objects/xyz.strpatch",
            "p/words/snapshot/objects/\(sha).strpatch", "p/lines/snapshot/latest-pointer.txt",
            "p/lines/snapshot/objects/\(sha.uppercased()).sqlite3",
        ] {
            XCTAssertNil(layout.versionObject(fromKey: other, collection: "lines"), other)
        }
    }
}
