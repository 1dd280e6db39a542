import Foundation
import StrataCore
import StrataS3
import StrataTestSupport
import XCTest

/// Every conformance test of `FileStoreConformanceTests`, against S3 (the private SeaweedFS).
final class S3StoreConformanceTests: FileStoreConformanceTests {
    override func makeStore() throws -> any ObjectStore { try S3TestStore.make("conf") }

    // Declaring one test here makes SwiftPM's Linux test discovery list this class, and with it
    // every inherited test (no hand-kept list to forget a test in).
    func testRunsOnS3() throws { XCTAssertTrue(suite.store is S3Store, "\(type(of: suite.store))") }

    /// SeaweedFS (the S3 under test) orders keys by path segment, not by byte: it lists "o/a/x"
    /// before "o/a-z" and "o/a.b" (AWS S3 lists them after), a start-after inside a directory
    /// returns keys outside the prefix, and with delimiter "." a start-after equal to a common
    /// prefix returns that prefix again (so paging never ends). The file store follows S3; Strata
    /// lists with "/" or none, and `runs/` is flat (`listingFlatStartAfter` holds on both).
    override func testListingOrderEdgeCases() throws {
        throw XCTSkip("SeaweedFS does not list in byte order across directories (see the comment)")
    }
}
