import Foundation
import StrataCore
import StrataTestSupport

/// A minimal fault-injecting decorator for the compactor's reads: `getData`, `get`, `head` and
/// listings of keys that `affects` accepts fail with a retryable S3 error (503 SlowDown, or a
/// reset connection), either the next `failNext` times or at random with probability `rate`
/// (seeded). Writes pass through. (The `store` branch's FaultInjectingStore does more; this is
/// what the compactor tests need until it lands.)
final class ReadFailingStore: ObjectStore, @unchecked Sendable {
    let base: any ObjectStore
    private let lock = NSLock()
    private var rng: SeededRandom
    private var rate: Double
    private var failNext = 0
    private let affects: @Sendable (String) -> Bool
    private(set) var injected = 0

    init(_ base: any ObjectStore, seed: UInt64 = 1, rate: Double = 0,
         affects: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.base = base
        rng = SeededRandom(seed: seed)
        self.rate = rate
        self.affects = affects
    }

    var location: String { base.location }

    /// The next `n` affected reads fail.
    func failNextReads(_ n: Int) {
        lock.lock()
        failNext = n
        lock.unlock()
    }

    func setRate(_ r: Double) {
        lock.lock()
        rate = r
        lock.unlock()
    }

    private func maybeFail(_ operation: String, _ key: String) throws {
        guard affects(key) else { return }
        lock.lock()
        var fail = false
        if failNext > 0 {
            failNext -= 1
            fail = true
        } else if rate > 0, Double.random(in: 0..<1, using: &rng) < rate {
            fail = true
        }
        let throttle = Bool.random(using: &rng)
        if fail { injected += 1 }
        lock.unlock()
        guard fail else { return }
        if throttle {
            throw StoreError(.throttled, operation: operation, key: key, status: 503, code: "SlowDown",
                             message: "injected: reduce your request rate")
        }
        throw StoreError(.transient, operation: operation, key: key, message: "injected: connection reset by peer")
    }

    func head(_ key: String) throws -> ObjectInfo? {
        try maybeFail("HEAD", key)
        return try base.head(key)
    }

    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try maybeFail("GET", key)
        return try base.get(key, toFile: path, range: range)
    }

    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        try maybeFail("GET", key)
        return try base.getData(key)
    }

    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        try base.put(key, body: body, condition: condition, options: options)
    }

    func delete(_ key: String) throws { try base.delete(key) }

    func delete(keys: [String]) throws -> [DeleteFailure] { try base.delete(keys: keys) }

    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try maybeFail("LIST", prefix)
        return try base.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
    }
}
