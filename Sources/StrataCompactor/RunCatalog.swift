import Foundation
import Logging
import StrataCore

/// Finds the runs waiting for a collection. Run records never change once written, so each is
/// read once per process and remembered; runs a snapshot has already applied are not even read.
///
/// A store error while listing or reading fails the call (the round fails and is retried): a run
/// is never silently left out of a plan, where it would be neither applied, pending in anyone's
/// view, nor quarantined (SPEC invariant 5).
final class RunCatalog {
    let store: any ObjectStore
    let layout: Layout
    let logger: Logger
    /// The shared catalog (StrataCore's `RunIndex`): verify, `runs`, gc and rollback classify
    /// through the same type, so they agree with this compactor.
    let index: RunIndex
    /// Where each pass starts listing `runs/` (a long-lived worker does not list every record
    /// ever written on every pass).
    let watermark: RunWatermark

    init(
        store: any ObjectStore, layout: Layout, logger: Logger,
        watermark: RunWatermark = RunWatermark(lookback: 900, fullListingEvery: 100)
    ) {
        self.watermark = watermark
        self.store = store
        self.layout = layout
        self.logger = logger
        index = RunIndex(store: store, layout: layout, logger: logger)
    }

    /// Run ids with a quarantine record for `collection`.
    func quarantinedRunIds(collection: String) throws -> Set<String> {
        try index.quarantinedRunIds(collection: collection)
    }

    struct Listing {
        /// Runs whose record names the collection, unordered.
        var pending: [PendingRun] = []
        /// Records that cannot be used and concern the collection.
        var invalid: [InvalidRunRecord] = []
        /// Records of a newer format that concern the collection: left pending (deferred).
        var newer: [InvalidRunRecord] = []
    }

    /// Runs whose record names `collection`, minus `excluding` (the snapshot's processed runs and
    /// the quarantined ones), and the unusable records that concern it. Throws on any store error
    /// (retryable or not): nothing is skipped.
    func pendingRuns(collection: String, excluding: Set<String>) throws -> Listing {
        var listing = RunIndex.Listing()
        try watermark.forEachPage(store: store, layout: layout, collection: collection) { page in
            for o in page.objects {
                if let id = layout.runId(fromRecordKey: o.key) {
                    listing.records[id] = o
                } else {
                    listing.stray.append(o.key)
                }
            }
        }
        let runs = try index.classify(
            collection: collection,
            processed: ProcessedRuns(applied: excluding, source: "the round's exclusions"),
            quarantine: RunIndex.Quarantine(ids: []), listing: listing)
        var out = Listing()
        for run in runs.runs.values {
            switch run.state {
            case .pending:
                guard let r = run.record, let d = r.delta(for: collection) else { continue }
                out.pending.append(
                    PendingRun(
                        runId: run.runId, createdAt: r.createdDate ?? Identifiers.date(of: run.runId) ?? .distantPast,
                        deltaKey: d.key, size: d.size, sha256: d.sha256, upserts: d.upserts, deletes: d.deletes))
            case .invalid: if let bad = run.problem { out.invalid.append(bad) }
            case .deferred: if let bad = run.problem { out.newer.append(bad) }
            case .applied, .rolledBack, .quarantined: continue
            }
        }
        // Records that wait (pending, or of a newer format) keep the next listing's start before them.
        watermark.settle(collection: collection, pending: out.pending.map(\.runId) + out.newer.map(\.runId))
        return out
    }
}
