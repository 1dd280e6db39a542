import Foundation

/// Set when the process is asked to stop (the service's graceful-shutdown handler, SIGTERM,
/// SIGINT). Checked between steps, so a stop never leaves half a publish; sleepers wake at once.
/// It also carries wake-ups (`POST /wake`): a wake ends the current sleep early without stopping.
// Unchecked: `value` and `wakePending` are guarded by `condition`, which `wait` sleeps on (Mutex cannot wait).
public final class StopFlag: @unchecked Sendable {
    private let condition = NSCondition()
    private var value = false
    private var wakePending = false

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

    /// Ends the current (or the next) `wait` early, so the worker starts a pass at once.
    public func wake() {
        condition.lock()
        wakePending = true
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps up to `seconds`, or until stopped or woken; returns true when stopped.
    /// A wake that arrived while not sleeping ends the next wait at once (it is not lost).
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !value && !wakePending {
            if !condition.wait(until: deadline) { break }
        }
        wakePending = false
        return value
    }
}
