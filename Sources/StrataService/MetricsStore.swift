import Foundation
import StrataCore

/// An ObjectStore decorator that counts every request by operation and outcome and times it
/// (`strata_store_requests_total`, `strata_store_request_duration_seconds`). Keys never become
/// labels: a key names a collection's private data and would make the series unbounded.
public final class MetricsStore: ObjectStoreDecorator, StartAfterListing, Sendable {
    public let base: any ObjectStore
    let metrics: CompactorMetrics

    public init(_ base: any ObjectStore, metrics: CompactorMetrics) {
        self.base = base
        self.metrics = metrics
    }

    public var location: String { base.location }

    /// Outcome vocabulary: ok, not_found, precondition_failed, throttled, transient, ... (StoreError.Kind),
    /// or error for anything else.
    static func outcome(of error: Error) -> String {
        if let e = error as? StoreError { return snake(e.kind.rawValue) }
        return "error"
    }

    static func snake(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    func measure<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        do {
            let value = try body()
            metrics.recordRequest(operation: operation, outcome: "ok", seconds: seconds())
            return value
        } catch {
            metrics.recordRequest(operation: operation, outcome: Self.outcome(of: error), seconds: seconds())
            throw error
        }
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try measure("head") { try base.head(key) }
    }

    public func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try measure("get") { try base.get(key, toFile: path, range: range) }
    }

    public func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        try measure("get") { try base.getData(key) }
    }

    public func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        let op: String
        switch condition {
        case .none: op = "put"
        case .ifNoneMatch: op = "put_if_none_match"
        case .ifMatch: op = "put_if_match"
        }
        return try measure(op) { try base.put(key, body: body, condition: condition, options: options) }
    }

    public func delete(_ key: String) throws {
        try measure("delete") { try base.delete(key) }
    }

    public func delete(keys: [String]) throws -> [DeleteFailure] {
        try measure("delete_batch") { try base.delete(keys: keys) }
    }

    public func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try measure("list") {
            try base.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
        }
    }

    public func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage {
        try measure("list") {
            try base.listPageAfter(
                prefix: prefix, delimiter: delimiter, startAfter: startAfter, continuation: continuation,
                maxKeys: maxKeys)
        }
    }
}
