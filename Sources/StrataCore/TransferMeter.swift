import Foundation

/// Counts the payload bytes a store moves (uploaded request bodies, downloaded object bodies),
/// so a caller can show progress. Thread-safe: parallel parts add to one meter.
public final class TransferMeter: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: Int64 = 0

    public init() {}

    public func add(_ n: Int64) {
        lock.lock()
        bytes += n
        lock.unlock()
    }

    public var total: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return bytes
    }
}
