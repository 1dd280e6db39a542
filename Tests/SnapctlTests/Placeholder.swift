import XCTest

final class SnapctlTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
