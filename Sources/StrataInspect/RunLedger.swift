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
    /// Run id -> quarantine record (every one, also a leftover of a run applied since).
    public var quarantined: [String: QuarantineRecord]
    /// Records naming this collection that are neither processed nor quarantined.
    public var pending: [RunRecord]
    /// Unreadable records, by key, with the reason.
    public var unreadable: [String: String]
    /// Why the pointer cannot be read (then `history` is empty and `processed` unknown), or nil.
    public var pointerProblem: String? = nil
    /// Every run of the collection in one state, as the shared catalog (`RunIndex`) classifies
    /// it; the fields above are views of it.
    public var runs: CollectionRuns
}

/// Reads run records once and builds `CollectionLedger`s, through the shared run catalog
/// (`RunIndex`) that the compactor and verify use too.
public final class RunLedger {
    public let store: any ObjectStore
    public let layout: Layout
    public let index: RunIndex
    public private(set) var records: [String: RunRecord] = [:]
    public private(set) var recordInfo: [String: ObjectInfo] = [:]
    /// Records that cannot be used (invalid, or of a newer format), by key, with the reason.
    public private(set) var unreadable: [String: String] = [:]
    private var listing: RunIndex.Listing? = nil

    public init(store: any ObjectStore, layout: Layout, index: RunIndex? = nil) {
        self.store = store
        self.layout = layout
        self.index = index ?? RunIndex(store: store, layout: layout)
    }

    /// Lists and reads every run record (once). Store errors fail the call.
    public func loadRecords() throws {
        if listing != nil { return }
        var l = try index.list()
        for (runId, e) in try index.readAll(&l) {
            switch e {
            case .record(let r):
                records[runId] = r
                recordInfo[runId] = l.records[runId]
            case .invalid(let bad), .newer(let bad):
                unreadable[bad.key] = bad.error
            }
        }
        listing = l
    }

    /// The pointer's version and its existing ancestors, newest first.
    public func history(_ collection: String, from version: String? = nil) throws -> (
        pointer: String?, [SnapshotManifest]
    ) {
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

    /// Runs processed (applied or rolled back) along `history` (newest first): a rollback's
    /// requeued runs mask their application in older versions (`ProcessedRuns(history:)`).
    public static func processed(_ history: [SnapshotManifest]) -> Set<String> {
        ProcessedRuns(history: history).processed
    }

    public func quarantined(_ collection: String) throws -> [String: QuarantineRecord] {
        try index.quarantineRecords(collection: collection)
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
        let processed = ProcessedRuns(history: history)
        let runs = try index.classify(
            collection: collection, processed: processed,
            quarantine: RunIndex.Quarantine(records: try quarantined(collection)),
            listing: listing ?? RunIndex.Listing(), readAll: true)
        return CollectionLedger(
            collection: collection, pointerVersion: pointer, history: history,
            processed: processed.processed, quarantined: runs.runs.compactMapValues(\.quarantine),
            pending: runs.pending,
            unreadable: unreadable, pointerProblem: pointerProblem, runs: runs)
    }
}
