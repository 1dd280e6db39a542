import Foundation
import Synchronization

/// Counts the payload bytes a store moves (uploaded request bodies, downloaded object bodies),
/// so a caller can show progress. Thread-safe: parallel parts add to one meter.
public final class TransferMeter: Sendable {
    private let bytes = Mutex<Int64>(0)

    public init() {}

    public func add(_ n: Int64) {
        bytes.withLock { $0 += n }
    }

    public var total: Int64 {
        bytes.withLock { $0 }
    }
}
