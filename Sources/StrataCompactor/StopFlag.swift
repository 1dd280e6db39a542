import Foundation

/// Set when the process is asked to stop (SIGTERM, SIGINT). Checked between steps, so a stop
/// never leaves half a publish; sleepers wake at once.
public final class StopFlag: @unchecked Sendable {
    private let condition = NSCondition()
    private var value = false

    public init() {}

    public var isSet: Bool {
        condition.lock()
        defer { condition.unlock() }
        return value
    }

    public func set() {
        condition.lock()
        value = true
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps up to `seconds`; returns true when woken by a stop.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !value {
            if !condition.wait(until: deadline) { break }
        }
        return value
    }
}
