import Foundation
import XCTest

/// Waits until `condition` holds, polling; fails the test with `what` if it does not within
/// `timeout` (a guard against hanging the suite, not a performance assertion: pick it generous).
/// Returns whether the condition held.
@discardableResult
public func waitUntil(
    _ what: String, timeout: TimeInterval = 60, poll: TimeInterval = 0.02,
    file: StaticString = #filePath, line: UInt = #line,
    _ condition: () throws -> Bool
) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline {
            XCTFail("timed out after \(Int(timeout)) s waiting for: \(what)", file: file, line: line)
            return false
        }
        Thread.sleep(forTimeInterval: poll)
    }
}
