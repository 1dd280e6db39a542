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
}
