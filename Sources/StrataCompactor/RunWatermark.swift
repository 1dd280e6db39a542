import Foundation
import StrataCore
import Synchronization

/// Where a pass starts listing `runs/` for one collection, so a long-lived worker does not list
/// every run record ever written on every pass. Run ids sort by creation time, and a producer
/// writes its record within minutes of making its id, so a pass lists only the keys after
/// (watermark − lookback), where the watermark is the oldest run still pending for the
/// collection after the previous listing, or the newest key listed when none is. A record that
/// shows up later than `lookback` after its id was made is still found by the full listing every
/// `fullListingEvery` passes. The first pass of a process (and `snapctl compact`) lists everything.
final class RunWatermark: Sendable {
    let lookback: Double
    let fullListingEvery: Int
    private struct State {
        var marks: [String: String] = [:]
        var passes: [String: Int] = [:]
        var newest: [String: String] = [:]
    }
    private let state = Mutex(State())

    init(lookback: Double, fullListingEvery: Int) {
        self.lookback = lookback
        self.fullListingEvery = max(1, fullListingEvery)
    }

    /// The key to list after for `collection` this pass, or nil for a full listing.
    func startAfter(collection: String, layout: Layout) -> String? {
        let mark: String? = state.withLock {
            let n = $0.passes[collection, default: 0]
            $0.passes[collection] = n + 1
            return n % fullListingEvery != 0 ? $0.marks[collection] : nil
        }
        guard let mark, let date = Identifiers.date(of: mark) else { return nil }
        let from = date.addingTimeInterval(-lookback)
        return layout.runsPrefix
            + Identifiers.timestamp(millis: Int64((from.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// Lists `runs/` for `collection` from its watermark, remembering the newest key listed.
    func forEachPage(
        store: any ObjectStore, layout: Layout, collection: String,
        _ body: (ListPage) throws -> Void
    ) throws {
        let after = startAfter(collection: collection, layout: layout)
        var last: String? = nil
        try store.forEachPage(prefix: layout.runsPrefix, startAfter: after) { page in
            if let k = page.objects.last?.key, let id = layout.runId(fromRecordKey: k) { last = id }
            try body(page)
        }
        if let last { state.withLock { $0.newest[collection] = max($0.newest[collection] ?? last, last) } }
    }

    /// After a listing: the watermark becomes the oldest pending run id, or the newest listed.
    func settle(collection: String, pending: [String]) {
        state.withLock {
            if let oldest = pending.min() {
                $0.marks[collection] = oldest
            } else if let n = $0.newest[collection] {
                $0.marks[collection] = n
            }
        }
    }
}
