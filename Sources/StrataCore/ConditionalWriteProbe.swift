import Foundation

/// What a store was seen to do with conditional writes.
public struct ProbeReport: Sendable, Codable, Equatable {
    public var store: String
    /// `If-None-Match: *` on an existing key was refused.
    public var createOnlyEnforced: Bool
    /// `If-Match` with a stale ETag was refused.
    public var staleIfMatchRefused: Bool
    /// `If-Match` on a missing key was refused (412 or 404).
    public var missingIfMatchRefused: Bool
    /// `If-Match` with the current ETag succeeded (the condition is usable, not just refusing).
    public var currentIfMatchAccepted: Bool
    /// Anything unexpected that happened, in words.
    public var notes: [String]

    public var conditionalWritesEnforced: Bool {
        createOnlyEnforced && staleIfMatchRefused && missingIfMatchRefused && currentIfMatchAccepted
    }
}

/// Checks that a store enforces conditional writes instead of accepting the headers and ignoring
/// them (Garage does; older MinIO had holes). Writes scratch objects under the reserved
/// `Layout.probePrefix` and removes them.
public enum ConditionalWriteProbe {
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [String: ProbeReport] = [:]

    /// The cached report for this store location, probing on first use.
    public static func cached(store: any ObjectStore, layout: Layout) throws -> ProbeReport {
        let id = store.location + "|" + layout.prefix
        cacheLock.lock()
        if let hit = cache[id] {
            cacheLock.unlock()
            return hit
        }
        cacheLock.unlock()
        let report = try run(store: store, layout: layout)
        cacheLock.lock()
        cache[id] = report
        cacheLock.unlock()
        return report
    }

    public static func run(store: any ObjectStore, layout: Layout) throws -> ProbeReport {
        let base = layout.probePrefix + Identifiers.make()
        let existing = base + "/existing"
        let missing = base + "/missing"
        var report = ProbeReport(
            store: store.location, createOnlyEnforced: false, staleIfMatchRefused: false,
            missingIfMatchRefused: false, currentIfMatchAccepted: false, notes: [])
        defer { _ = try? store.delete(keys: [existing, missing]) }

        let first = try store.put(existing, data: Data("strata probe 1\n".utf8), condition: .ifNoneMatch)

        // 1. Create-only on an existing key must be refused.
        report.createOnlyEnforced = try refused(report: &report, "If-None-Match: * on an existing key") {
            try store.put(existing, data: Data("strata probe 2\n".utf8), condition: .ifNoneMatch)
        }

        // 2. Replace with the current ETag must succeed, and yield a new ETag.
        var current = first
        do {
            current = try store.put(existing, data: Data("strata probe 3\n".utf8), condition: .ifMatch(first.etag))
            report.currentIfMatchAccepted = true
            if current.etag == first.etag {
                report.notes.append("the store returned the same ETag for different contents")
                report.currentIfMatchAccepted = false
            }
        } catch let e as StoreError where e.kind == .preconditionFailed {
            report.notes.append("If-Match with the current ETag was refused: \(e)")
        }

        // 3. Replace with a stale ETag must be refused.
        if current.etag != first.etag {
            report.staleIfMatchRefused = try refused(report: &report, "If-Match with a stale ETag") {
                try store.put(existing, data: Data("strata probe 4\n".utf8), condition: .ifMatch(first.etag))
            }
        } else {
            report.notes.append("could not test a stale ETag: the store did not change the ETag")
        }

        // 4. If-Match on a missing key must be refused (AWS: 404, SeaweedFS: 412).
        report.missingIfMatchRefused = try refused(
            report: &report, "If-Match on a missing key",
            alsoAccept: .notFound
        ) {
            try store.put(missing, data: Data("strata probe 5\n".utf8), condition: .ifMatch(first.etag))
        }
        return report
    }

    /// Runs `write`; true when the store refused it with a precondition (or `alsoAccept`) error.
    private static func refused(
        report: inout ProbeReport, _ what: String, alsoAccept: StoreError.Kind? = nil,
        _ write: () throws -> ObjectInfo
    ) throws -> Bool {
        do {
            _ = try write()
            report.notes.append("\(what) was accepted: the store ignores the condition")
            return false
        } catch let e as StoreError where e.kind == .preconditionFailed || e.kind == alsoAccept {
            return true
        }
    }
}
