import Foundation

/// A value shared between test threads, behind a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    public init(_ value: Value) { _value = value }

    public var value: Value {
        lock.lock()
        defer { lock.unlock() }
        return _value
    }

    public func update<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&_value)
    }
}
