import XCTest

final class StrataProducerTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
