import Foundation
import StrataCore
import StrataFileStore
import StrataTestSupport

/// A store that forwards to another store and fails chosen operations, to simulate a crash (the
/// process dies, or its connection does) at a precise point.
final class FaultyStore: ObjectStore, @unchecked Sendable {
    let inner: any ObjectStore
    private let lock = NSLock()
    /// Called before each operation with its name ("put", "head", "get") and key; return true to
    /// make it fail.
    var failWhen: (String, String) -> Bool
    /// Like `failWhen`, but the operation is carried out first and only its answer is lost.
    var loseAnswerWhen: (String, String) -> Bool = { _, _ in false }
    /// When true for a "get", answer "not found" (a stale read) instead of forwarding.
    var hideOnceWhen: (String, String) -> Bool = { _, _ in false }
    private(set) var puts: [String] = []

    init(_ inner: any ObjectStore, failWhen: @escaping (String, String) -> Bool = { _, _ in false }) {
        self.inner = inner
        self.failWhen = failWhen
    }

    var location: String { inner.location }

    private func maybeFail(_ op: String, _ key: String) throws {
        lock.lock()
        defer { lock.unlock() }
        if failWhen(op, key) {
            throw StoreError(.transient, operation: op, key: key, message: "simulated crash")
        }
    }

    func head(_ key: String) throws -> ObjectInfo? {
        try maybeFail("head", key)
        return try inner.head(key)
    }

    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try maybeFail("get", key)
        return try inner.get(key, toFile: path, range: range)
    }

    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        try maybeFail("get", key)
        lock.lock()
        let hide = hideOnceWhen("get", key)
        lock.unlock()
        if hide { throw StoreError(.notFound, operation: "get", key: key, message: "simulated stale read") }
        return try inner.getData(key)
    }

    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        try maybeFail("put", key)
        lock.lock()
        puts.append(key)
        let lose = loseAnswerWhen("put", key)
        lock.unlock()
        let info = try inner.put(key, body: body, condition: condition, options: options)
        if lose { throw StoreError(.transient, operation: "put", key: key, message: "simulated lost answer") }
        return info
    }

    func delete(_ key: String) throws { try inner.delete(key) }
    func delete(keys: [String]) throws -> [DeleteFailure] { try inner.delete(keys: keys) }

    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try inner.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
    }
}

/// Rows of NDJSON for tests.
enum Rows {
    static func upsert(_ id: String, _ v: [Float], doc: String? = nil, meta: String? = nil) -> String {
        var s = "{\"id\":\"\(id)\",\"embedding\":[\(v.map { "\($0)" }.joined(separator: ","))]"
        if let doc { s += ",\"document\":\"\(doc)\"" }
        if let meta { s += ",\"metadata\":\(meta)" }
        return s + "}\n"
    }

    static func delete(_ id: String) -> String { "{\"id\":\"\(id)\",\"delete\":true}\n" }
}
