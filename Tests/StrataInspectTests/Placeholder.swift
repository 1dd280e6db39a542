import XCTest
final class StrataInspectPlaceholderTests: XCTestCase { func testBuilds() {} }
