import XCTest

final class StrataDeltaTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
