import XCTest

final class StrataStoreTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
