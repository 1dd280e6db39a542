import Foundation
import Logging
import StrataCore

/// Finds the runs waiting for a collection. Run records never change once written, so each is
/// read once per process and remembered; runs a snapshot has already applied are not even read.
final class RunCatalog {
    let store: any ObjectStore
    let layout: Layout
    let logger: Logger
    let watermark: RunWatermark

    private enum Entry {
        case record(RunRecord)
        case unreadable(String)
    }

    private var cache: [String: Entry] = [:]
    private let lock = NSLock()

    init(store: any ObjectStore, layout: Layout, logger: Logger, watermark: RunWatermark = RunWatermark(lookback: 900, fullListingEvery: 100)) {
        self.watermark = watermark
        self.store = store
        self.layout = layout
        self.logger = logger
    }

    /// Run ids with a quarantine record for `collection`.
    func quarantinedRunIds(collection: String) throws -> Set<String> {
        let prefix = layout.quarantinePrefix(collection)
        var ids = Set<String>()
        try store.forEachPage(prefix: prefix, delimiter: nil) { page in
            for o in page.objects where o.key.hasSuffix(".json") {
                ids.insert(String(o.key.dropFirst(prefix.count).dropLast(5)))
            }
        }
        return ids
    }

    /// Runs whose record names `collection`, minus `excluding`, unordered. Unreadable records are
    /// logged and skipped (`snapctl verify` reports them).
    func pendingRuns(collection: String, excluding: Set<String>) throws -> [PendingRun] {
        var out: [PendingRun] = []
        try watermark.forEachPage(store: store, layout: layout, collection: collection) { page in
            for o in page.objects {
                guard let runId = layout.runId(fromRecordKey: o.key), !excluding.contains(runId) else { continue }
                switch entry(runId: runId, key: o.key) {
                case .unreadable(let why):
                    logger.warning("unreadable run record skipped", metadata: ["key": "\(o.key)", "error": "\(why)"])
                case .record(let r):
                    guard let d = r.delta(for: collection) else { continue }
                    out.append(PendingRun(runId: runId, createdAt: r.createdDate ?? Identifiers.date(of: runId) ?? .distantPast,
                                          deltaKey: d.key, size: d.size, sha256: d.sha256, upserts: d.upserts,
                                          deletes: d.deletes))
                }
            }
        }
        watermark.settle(collection: collection, pending: out.map(\.runId))
        return out
    }

    private func entry(runId: String, key: String) -> Entry {
        lock.lock()
        if let e = cache[runId] { lock.unlock(); return e }
        lock.unlock()
        let e: Entry
        do {
            guard let (data, _) = try store.getDataIfExists(key) else { return .unreadable("vanished while listing") }
            let record = try RunRecord.decode(data, key: key, layout: layout)
            e = record.runId == runId ? .record(record)
                : .unreadable("its run_id \(record.runId) does not match its key")
        } catch let error as StoreError where error.isRetryable {
            return .unreadable("\(error)")  // not cached: may work next time
        } catch {
            e = .unreadable("\(error)")
        }
        lock.lock()
        cache[runId] = e
        lock.unlock()
        return e
    }
}
