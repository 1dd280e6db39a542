import Foundation
import StrataCore
import Synchronization

/// An `ObjectStore` decorator that injects the failures a real S3 service produces, seeded so a
/// randomized test replays exactly (the same seed and the same sequence of calls give the same
/// faults). It wraps any store (the file store, an `S3Store` on SeaweedFS) and is the one fault
/// injector of the test suite; hand-written forwarding stores are not needed.
///
/// Two ways to choose faults, which combine:
/// - random rates per operation kind (`setRates`), drawn from one `SeededRandom`;
/// - scripted rules (`inject(_:on:times:when:)`), checked first, for a fault at a precise point
///   ("lose the answer to the first record write").
///
/// `enabled` switches all injection off and on (a test sets up its world without faults, then
/// turns them on); `filter` limits random faults to some operations or keys. Every injected fault
/// is counted (`count(_:)`, `counts`) and logged (`events`), so a test can assert that the faults
/// it meant to exercise happened.
public final class FaultInjectingStore: ObjectStore, Sendable {
    /// The operation kinds of `ObjectStore`.
    public enum Operation: String, CaseIterable, Sendable {
        case head, get, getData, put, delete, deleteMany, list
        /// Operations that change the store.
        public var isWrite: Bool { self == .put || self == .delete || self == .deleteMany }
    }

    /// What can go wrong with one call.
    public enum Fault: String, CaseIterable, Sendable {
        /// HTTP 500 InternalError before the request is carried out (retryable, nothing happened).
        case serverError
        /// HTTP 503 SlowDown before the request is carried out (retryable, nothing happened).
        case throttled
        /// The connection is reset before the request reached the store (retryable, nothing happened).
        case connectionReset
        /// The request is carried out, then the answer is lost: the caller gets a retryable error
        /// although the write (or delete) happened. Only for writes; on a read it is ignored.
        case ambiguousSuccess
        /// The call is delayed by a random time in `latency`, then carried out normally.
        case latency
        /// A read fails mid-body: `get(toFile:)` leaves the first part of the object in the file
        /// and throws a retryable error; `getData` throws it. Only for `get` and `getData`.
        case truncatedRead
        /// A read silently returns fewer bytes than the object has (a broken proxy or store); the
        /// returned info still describes the whole object. Only for `get` and `getData`.
        case shortRead
        /// A read answers "not found" for an object that exists (a stale read, as an eventually
        /// consistent cache may give). For `head`, `get` and `getData`.
        case staleRead
        /// The store acknowledges a `put` but keeps only the first half of the body. Only for `put`.
        case truncatedWrite
    }

    /// Probabilities (0...1) of each fault for one operation kind; at most one fault per call,
    /// drawn in the order of `Fault.allCases`. Faults that do not apply to an operation are skipped.
    public struct Rates: Sendable, Equatable {
        public var rates: [Fault: Double]
        public init(_ rates: [Fault: Double] = [:]) { self.rates = rates }

        /// The faults of a flaky S3 service: 5xx, throttling, resets, lost answers, some latency
        /// and truncated reads, `total` being the probability that a call fails in some way.
        public static func flaky(_ total: Double) -> Rates {
            Rates([
                .serverError: total * 0.25, .throttled: total * 0.25, .connectionReset: total * 0.2,
                .ambiguousSuccess: total * 0.15, .truncatedRead: total * 0.15, .latency: total,
            ])
        }
    }

    /// One injected fault, for diagnostics.
    public struct Event: Sendable, CustomStringConvertible {
        public var fault: Fault
        public var operation: Operation
        public var key: String
        public var description: String { "\(fault.rawValue) on \(operation.rawValue) \(key)" }
    }

    /// A scripted fault: injected on the next calls that match, `remaining` times (nil: always).
    private struct Rule {
        var fault: Fault
        var operations: Set<Operation>
        var remaining: Int?
        var when: @Sendable (Operation, String) -> Bool
    }

    public let inner: any ObjectStore
    private struct State {
        var random: SeededRandom
        var rates: [Operation: Rates] = [:]
        var rules: [Rule] = []
        var _enabled = true
        var _filter: @Sendable (Operation, String) -> Bool = { _, _ in true }
        var _ignoreConditions = false
        var _counts: [Fault: [Operation: Int]] = [:]
        var _events: [Event] = []
        var _calls: [Operation: Int] = [:]
        var batchFailures: [String: BatchFailure] = [:]
    }
    private struct BatchFailure: Sendable {
        var code: String
        var remaining: Int
    }
    private let state: Mutex<State>
    /// Range of injected delays, in seconds.
    public let latency: ClosedRange<Double>

    /// - Parameters:
    ///   - inner: the store that carries out the calls.
    ///   - seed: seeds the random faults.
    ///   - rates: the same rates for every operation kind (adjust per kind with `setRates`).
    ///   - latency: the range of injected delays, in seconds.
    public init(
        _ inner: any ObjectStore, seed: UInt64 = 1, rates: Rates = Rates(),
        latency: ClosedRange<Double> = 0.001...0.02
    ) {
        self.inner = inner
        var state = State(random: SeededRandom(seed: seed))
        for op in Operation.allCases { state.rates[op] = rates }
        self.state = Mutex(state)
        self.latency = latency
    }

    public var location: String { inner.location }

    // MARK: Configuration

    /// When false, nothing is injected (scripted rules keep their remaining counts).
    public var enabled: Bool {
        get { locked { $0._enabled } }
        set { locked { $0._enabled = newValue } }
    }

    /// Random faults are drawn only for calls where this returns true (scripted rules have their
    /// own predicate). Default: every call.
    public var filter: @Sendable (Operation, String) -> Bool {
        get { locked { $0._filter } }
        set { locked { $0._filter = newValue } }
    }

    /// When true, write conditions are dropped before the inner store sees them: a store that
    /// accepts If-Match / If-None-Match and ignores them (as some S3 implementations do).
    public var ignoresConditions: Bool {
        get { locked { $0._ignoreConditions } }
        set { locked { $0._ignoreConditions = newValue } }
    }

    /// Sets the random fault rates of some operation kinds.
    public func setRates(_ r: Rates, for operations: [Operation] = Operation.allCases) {
        locked { for op in operations { $0.rates[op] = r } }
    }

    /// Scripts `fault` for calls of `operations` whose key satisfies `when`, `times` times
    /// (nil: every matching call). Scripted rules are checked in the order they were added,
    /// before random faults, and count as injected faults.
    public func inject(
        _ fault: Fault, on operations: [Operation] = Operation.allCases, times: Int? = 1,
        when: @escaping @Sendable (Operation, String) -> Bool = { _, _ in true }
    ) {
        locked { $0.rules.append(Rule(fault: fault, operations: Set(operations), remaining: times, when: when)) }
    }

    /// Scripts `fault` for calls on exactly `key`.
    public func inject(
        _ fault: Fault, on operations: [Operation] = Operation.allCases, key: String,
        times: Int? = 1
    ) {
        inject(fault, on: operations, times: times) { $1 == key }
    }

    /// Removes every scripted rule.
    public func clearRules() { locked { $0.rules.removeAll() } }

    /// The next `times` batch deletes (`delete(keys:)`) that include `key` report it as failed
    /// with the S3 error code `code` (as a DeleteObjects response lists per-key errors) and leave it.
    public func failInBatch(_ key: String, code: String = "InternalError", times: Int = 1) {
        locked { $0.batchFailures[key] = BatchFailure(code: code, remaining: times) }
    }

    // MARK: Counters

    /// How many times `fault` was injected (on `operation`, or on any operation).
    public func count(_ fault: Fault, on operation: Operation? = nil) -> Int {
        locked {
            guard let byOp = $0._counts[fault] else { return 0 }
            if let operation { return byOp[operation] ?? 0 }
            return byOp.values.reduce(0, +)
        }
    }

    /// Injected faults by kind (kinds never injected are absent).
    public var counts: [Fault: Int] {
        locked { $0._counts.mapValues { $0.values.reduce(0, +) }.filter { $0.value > 0 } }
    }

    /// Faults injected, excluding latency (which does not fail a call).
    public var failuresInjected: Int { locked { $0._events.filter { $0.fault != .latency }.count } }

    /// Every injected fault in order.
    public var events: [Event] { locked { $0._events } }

    /// Calls seen per operation kind (faulted or not).
    public func calls(_ operation: Operation) -> Int { locked { $0._calls[operation] ?? 0 } }

    /// Zeroes counters and events.
    public func resetCounters() {
        locked {
            $0._counts.removeAll()
            $0._events.removeAll()
            $0._calls.removeAll()
        }
    }

    // MARK: ObjectStore

    public func head(_ key: String) throws -> ObjectInfo? {
        let fault = try before(.head, key)
        if fault == .staleRead { return nil }
        return try inner.head(key)
    }

    public func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        let fault = try before(.get, key)
        switch fault {
        case .staleRead:
            throw StoreError(
                .notFound, operation: "GetObject", key: key, status: 404, code: "NoSuchKey",
                message: "injected stale read: the key does not exist")
        case .truncatedRead, .shortRead:
            let info = try inner.get(key, toFile: path, range: range)
            let full = try Data(contentsOf: URL(fileURLWithPath: path))
            let kept = full.count / 2
            try full.prefix(kept).write(to: URL(fileURLWithPath: path))
            if fault == .shortRead { return info }
            throw StoreError(
                .transient, operation: "GetObject", key: key, code: "ConnectionReset",
                message: "injected: connection reset after \(kept) of \(full.count) body bytes")
        default:
            return try inner.get(key, toFile: path, range: range)
        }
    }

    public func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        let fault = try before(.getData, key)
        switch fault {
        case .staleRead:
            throw StoreError(
                .notFound, operation: "GetObject", key: key, status: 404, code: "NoSuchKey",
                message: "injected stale read: the key does not exist")
        case .truncatedRead:
            let (data, _) = try inner.getData(key)
            throw StoreError(
                .transient, operation: "GetObject", key: key, code: "ConnectionReset",
                message: "injected: connection reset after \(data.count / 2) of \(data.count) body bytes")
        case .shortRead:
            let (data, info) = try inner.getData(key)
            return (data.prefix(data.count / 2), info)
        default:
            return try inner.getData(key)
        }
    }

    public func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws
        -> ObjectInfo
    {
        let fault = try before(.put, key)
        let condition = ignoresConditions ? .none : condition
        switch fault {
        case .truncatedWrite:
            let data: Data
            switch body {
            case .data(let d): data = d
            case .file(let path): data = try Data(contentsOf: URL(fileURLWithPath: path))
            }
            // The store keeps half the body and knows no checksum for it (as a store that lost
            // the rest of the upload would).
            return try inner.put(
                key, body: .data(data.prefix(data.count / 2)), condition: condition,
                options: PutOptions(contentType: options.contentType))
        case .ambiguousSuccess:
            _ = try inner.put(key, body: body, condition: condition, options: options)
            throw lostAnswer("PutObject", key)
        default:
            return try inner.put(key, body: body, condition: condition, options: options)
        }
    }

    public func delete(_ key: String) throws {
        let fault = try before(.delete, key)
        try inner.delete(key)
        if fault == .ambiguousSuccess { throw lostAnswer("DeleteObject", key) }
    }

    public func delete(keys: [String]) throws -> [DeleteFailure] {
        let fault = try before(.deleteMany, keys.first ?? "")
        let refused: [DeleteFailure] = locked { state in
            keys.compactMap { k in
                guard let f = state.batchFailures[k], f.remaining > 0 else { return nil }
                state.batchFailures[k] = BatchFailure(code: f.code, remaining: f.remaining - 1)
                return DeleteFailure(key: k, code: f.code, message: "injected: per-key failure in a batch delete")
            }
        }
        let skip = Set(refused.map(\.key))
        let failures = try inner.delete(keys: keys.filter { !skip.contains($0) }) + refused
        if fault == .ambiguousSuccess { throw lostAnswer("DeleteObjects", keys.first) }
        return failures
    }

    public func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws
        -> ListPage
    {
        _ = try before(.list, prefix)
        return try inner.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
    }

    // MARK: Choosing and raising faults

    private func lostAnswer(_ operation: String, _ key: String?) -> StoreError {
        StoreError(
            .transient, operation: operation, key: key, code: "ConnectionReset",
            message: "injected: the request was carried out but the connection was reset before the answer")
    }

    private static func applies(_ fault: Fault, to op: Operation) -> Bool {
        switch fault {
        case .serverError, .throttled, .connectionReset, .latency: return true
        case .ambiguousSuccess: return op.isWrite
        case .truncatedRead, .shortRead: return op == .get || op == .getData
        case .staleRead: return op == .head || op == .get || op == .getData
        case .truncatedWrite: return op == .put
        }
    }

    /// Chooses the fault of this call (recording it), sleeps for latency, and throws the faults
    /// that happen before the request reaches the store. Returns the fault the caller must apply.
    private func before(_ op: Operation, _ key: String) throws -> Fault? {
        let (fault, delay) = choose(op, key)
        guard let fault else { return nil }
        switch fault {
        case .latency:
            Thread.sleep(forTimeInterval: delay)
            return nil
        case .serverError:
            throw StoreError(
                .transient, operation: op.rawValue, key: key, status: 500, code: "InternalError",
                message: "injected: We encountered an internal error. Please try again.")
        case .throttled:
            throw StoreError(
                .throttled, operation: op.rawValue, key: key, status: 503, code: "SlowDown",
                message: "injected: Please reduce your request rate.")
        case .connectionReset:
            throw StoreError(
                .transient, operation: op.rawValue, key: key, code: "ConnectionReset",
                message: "injected: connection reset by peer before the request was sent")
        default:
            return fault
        }
    }

    private func choose(_ op: Operation, _ key: String) -> (Fault?, Double) {
        locked { s in
            s._calls[op, default: 0] += 1
            guard s._enabled else { return (nil, 0) }
            var chosen: Fault? = nil
            for i in s.rules.indices {
                let r = s.rules[i]
                guard r.operations.contains(op), r.remaining.map({ $0 > 0 }) ?? true,
                    Self.applies(r.fault, to: op), r.when(op, key)
                else { continue }
                if let n = r.remaining { s.rules[i].remaining = n - 1 }
                chosen = r.fault
                break
            }
            if chosen == nil, s._filter(op, key), let r = s.rates[op] {
                // One draw per call whatever the rates, so the sequence does not depend on them.
                let u = Double.random(in: 0..<1, using: &s.random)
                let v = Double.random(in: 0..<1, using: &s.random)
                var acc = 0.0
                for f in Fault.allCases where f != .latency && Self.applies(f, to: op) {
                    acc += r.rates[f] ?? 0
                    if u < acc {
                        chosen = f
                        break
                    }
                }
                if chosen == nil, v < r.rates[.latency] ?? 0 { chosen = .latency }
            }
            guard let chosen else { return (nil, 0) }
            s._counts[chosen, default: [:]][op, default: 0] += 1
            s._events.append(Event(fault: chosen, operation: op, key: key))
            let delay = chosen == .latency ? Double.random(in: latency, using: &s.random) : 0
            return (chosen, delay)
        }
    }

    private func locked<T: Sendable>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }
}
