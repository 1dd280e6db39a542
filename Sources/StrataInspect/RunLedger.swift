import Foundation
import StrataCore

/// What the store says about a collection's runs, computed from manifests and records only (no
/// snapshot download): which runs the pointer's history has processed, which are pending, which
/// are quarantined. Shared by `snapctl ls`, `runs`, `gc` and `rollback`.
public struct CollectionLedger: Sendable {
    public var collection: String
    public var pointerVersion: String?
    /// The pointer's version and its ancestors that still exist, newest first.
    public var history: [SnapshotManifest]
    /// Runs applied or rolled back along `history`, minus runs a newer rollback requeued.
    public var processed: Set<String>
    /// Run id -> quarantine record.
    public var quarantined: [String: QuarantineRecord]
    /// Records naming this collection that are neither processed nor quarantined.
    public var pending: [RunRecord]
    /// Unreadable records, by key, with the reason.
    public var unreadable: [String: String]
    /// Why the pointer cannot be read (then `history` is empty and `processed` unknown), or nil.
    public var pointerProblem: String? = nil
}

/// Reads run records once and builds `CollectionLedger`s.
public final class RunLedger {
    public let store: any ObjectStore
    public let layout: Layout
    public private(set) var records: [String: RunRecord] = [:]
    public private(set) var recordInfo: [String: ObjectInfo] = [:]
    public private(set) var unreadable: [String: String] = [:]
    private var loaded = false

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    /// Lists and reads every run record (once).
    public func loadRecords() throws {
        if loaded { return }
        for o in try store.list(prefix: layout.runsPrefix) {
            guard let runId = layout.runId(fromRecordKey: o.key) else { continue }
            do {
                guard let (data, _) = try store.getDataIfExists(o.key) else { continue }
                records[runId] = try RunRecord.decode(data, key: o.key, layout: layout)
                recordInfo[runId] = o
            } catch let e as StoreError where !(e.kind == .notFound) {
                throw e
            } catch {
                unreadable[o.key] = "\(error)"
            }
        }
        loaded = true
    }

    /// The pointer's version and its existing ancestors, newest first.
    public func history(_ collection: String, from version: String? = nil) throws -> (pointer: String?, [SnapshotManifest]) {
        let locator = SnapshotLocator(store: store, layout: layout)
        let start: String?
        if let version { start = version } else { start = try locator.pointer(collection)?.version }
        var out: [SnapshotManifest] = []
        var next = start
        var seen = Set<String>()
        while let v = next, seen.insert(v).inserted {
            let key = layout.manifestKey(collection: collection, version: v)
            guard let (data, _) = try store.getDataIfExists(key) else { break }  // older versions collected
            let m = try SnapshotManifest.decode(data, key: key)
            out.append(m)
            next = m.parentVersion
        }
        return (start, out)
    }

    /// Runs processed along `history` (newest first): a rollback's requeued runs mask their
    /// application in older versions.
    public static func processed(_ history: [SnapshotManifest]) -> Set<String> {
        var processed = Set<String>()
        var requeued = Set<String>()
        for m in history {
            for r in m.appliedRuns.map(\.runId) + (m.rolledBackRuns ?? []) where !requeued.contains(r) {
                processed.insert(r)
            }
            requeued.formUnion(m.requeuedRuns ?? [])
        }
        return processed
    }

    public func quarantined(_ collection: String) throws -> [String: QuarantineRecord] {
        var out: [String: QuarantineRecord] = [:]
        let prefix = layout.quarantinePrefix(collection)
        for o in try store.list(prefix: prefix) where o.key.hasSuffix(".json") {
            let runId = String(o.key.dropFirst(prefix.count).dropLast(5))
            if let (data, _) = try store.getDataIfExists(o.key),
               let q = try? StrataJSON.decode(QuarantineRecord.self, from: data, object: o.key) {
                out[runId] = q
            } else {
                out[runId] = QuarantineRecord(runId: runId, collection: collection, deltaKey: nil, reason: "unreadable",
                                              detail: "the quarantine record \(o.key) could not be read",
                                              quarantinedAt: o.lastModified ?? Date(), compactorId: "?")
            }
        }
        return out
    }

    public func ledger(_ collection: String) throws -> CollectionLedger {
        try loadRecords()
        var pointerProblem: String? = nil
        var (pointer, history): (String?, [SnapshotManifest]) = (nil, [])
        do {
            (pointer, history) = try self.history(collection)
        } catch let e as StrataError where e.kind == .corrupt && e.object == layout.pointerKey(collection) {
            pointerProblem = e.message  // an unreadable pointer: nothing is known to be processed
        }
        let processed = RunLedger.processed(history)
        let quarantined = try quarantined(collection)
        let pending = records.values
            .filter { $0.delta(for: collection) != nil && !processed.contains($0.runId) && quarantined[$0.runId] == nil }
            .sorted { ($0.createdAt, $0.runId) < ($1.createdAt, $1.runId) }
        return CollectionLedger(collection: collection, pointerVersion: pointer, history: history, processed: processed,
                                quarantined: quarantined, pending: pending, unreadable: unreadable,
                                pointerProblem: pointerProblem)
    }
}
