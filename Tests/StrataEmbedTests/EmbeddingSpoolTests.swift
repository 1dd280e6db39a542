import Foundation
import StrataTestSupport
import XCTest

@testable import StrataEmbed

#if canImport(Glibc)
    import Glibc
#endif

final class EmbeddingSpoolTests: XCTestCase {
    func testATornLastRecordIsCutOffAndTheRestKept() throws {
        let dir = TempDir(prefix: "strata-spool")
        var spool: EmbeddingSpool? = try EmbeddingSpool(directory: dir.path, modelKey: "m")
        try spool!.append([(TextKey("a"), [1, 2, 3]), (TextKey("b"), [4, 5, 6])])
        let path = spool!.path
        spool = nil
        // A crash in the middle of the next append: half a record at the end.
        let fh = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        fh.seekToEndOfFile()
        fh.write(Data(TextKey("c").bytes + [3, 0, 0, 0, 1, 2]))
        try fh.close()

        let reopened = try EmbeddingSpool(directory: dir.path, modelKey: "m")
        XCTAssertEqual(reopened.count, 2)
        XCTAssertEqual(try reopened.vector(TextKey("b")), [4, 5, 6])
        XCTAssertNil(try reopened.vector(TextKey("c")))
        try reopened.append([(TextKey("c"), [7, 8, 9])])
        XCTAssertEqual(try reopened.vector(TextKey("c")), [7, 8, 9])
        XCTAssertEqual(try reopened.vector(TextKey("a")), [1, 2, 3])
        // Another model has its own file.
        XCTAssertEqual(try EmbeddingSpool(directory: dir.path, modelKey: "other").count, 0)
    }

    func testKeysSharingTheirFirstEightBytesAreKeptApart() throws {
        let dir = TempDir(prefix: "strata-spool")
        let spool = try EmbeddingSpool(directory: dir.path, modelKey: "m")
        var x = [UInt8](repeating: 7, count: 32)
        let k1 = TextKey(bytes: x)
        x[31] = 8
        let k2 = TextKey(bytes: x)
        try spool.append([(k1, [1, 1])])
        XCTAssertFalse(spool.contains(k2))
        XCTAssertNil(try spool.vector(k2))
        try spool.append([(k2, [2, 2])])
        XCTAssertEqual(try spool.vector(k1), [1, 1])
        XCTAssertEqual(try spool.vector(k2), [2, 2])
        let reopened = try EmbeddingSpool(directory: dir.path, modelKey: "m")
        XCTAssertEqual(try reopened.vector(k2), [2, 2])
        XCTAssertEqual(reopened.count, 2)
    }

    func testAnotherDimensionIsRefused() throws {
        let dir = TempDir(prefix: "strata-spool")
        let spool = try EmbeddingSpool(directory: dir.path, modelKey: "m")
        try spool.append([(TextKey("a"), [1, 2, 3])])
        XCTAssertThrowsError(try spool.append([(TextKey("b"), [1, 2])])) {
            XCTAssertTrue("\($0)".contains("holds vectors of 3 values"), "\($0)")
        }
    }
}
