import XCTest

final class StrataS3TestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
