import XCTest

final class StrataBundleTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
