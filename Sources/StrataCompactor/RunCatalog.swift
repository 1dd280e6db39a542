import Foundation
import Logging
import StrataCore

/// A run record under `runs/` that cannot be used: it cannot be read as JSON, is empty, breaks
/// Docs/FORMATS.md, or names another run id than its key. It is quarantined `invalidRecord` under
/// the run id its key names (Docs/OPERATIONS.md, "Quarantine").
public struct InvalidRunRecord: Sendable, Equatable {
    public var runId: String
    public var key: String
    public var error: String
    /// The collections the record names, when that much of it can be read; nil when it names
    /// none readably (then it concerns every collection).
    public var collections: [String]?

    /// True when its quarantine belongs under `collection`: the record names it, or names none.
    public func concerns(_ collection: String) -> Bool { collections.map { $0.contains(collection) } ?? true }
}

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

    private enum Entry {
        case record(RunRecord)
        case invalid(InvalidRunRecord)
        /// Written in a newer format than this build reads: pending for a newer compactor, not
        /// quarantined (during a rolling upgrade an older compactor must not set it aside).
        case newer(InvalidRunRecord)
    }

    private var cache: [String: Entry] = [:]
    private let lock = NSLock()

    init(store: any ObjectStore, layout: Layout, logger: Logger) {
        self.store = store
        self.layout = layout
        self.logger = logger
    }

    /// Run ids with a quarantine record for `collection`.
    func quarantinedRunIds(collection: String) throws -> Set<String> {
        var ids = Set<String>()
        try store.forEachPage(prefix: layout.quarantinePrefix(collection), delimiter: nil) { page in
            for o in page.objects {
                if let id = layout.runId(fromQuarantineKey: o.key, collection: collection) { ids.insert(id) }
            }
        }
        return ids
    }

    struct Listing {
        /// Runs whose record names the collection, unordered.
        var pending: [PendingRun] = []
        /// Records that cannot be used and concern the collection.
        var invalid: [InvalidRunRecord] = []
        /// Records of a newer format that concern the collection: left pending (deferred).
        var newer: [InvalidRunRecord] = []
    }

    /// Runs whose record names `collection`, minus `excluding`, and the unusable records that
    /// concern it. Throws on any store error (retryable or not): nothing is skipped.
    func pendingRuns(collection: String, excluding: Set<String>) throws -> Listing {
        var out = Listing()
        try store.forEachPage(prefix: layout.runsPrefix, delimiter: nil) { page in
            for o in page.objects {
                guard let runId = layout.runId(fromRecordKey: o.key), !excluding.contains(runId) else { continue }
                switch try entry(runId: runId, key: o.key) {
                case nil:
                    continue
                case .invalid(let bad):
                    if bad.concerns(collection) { out.invalid.append(bad) }
                case .newer(let record):
                    if record.concerns(collection) { out.newer.append(record) }
                case .record(let r):
                    guard let d = r.delta(for: collection) else { continue }
                    out.pending.append(PendingRun(
                        runId: runId, createdAt: r.createdDate ?? Identifiers.date(of: runId) ?? .distantPast,
                        deltaKey: d.key, size: d.size, sha256: d.sha256, upserts: d.upserts, deletes: d.deletes))
                }
            }
        }
        return out
    }

    /// The record at `key`, or why it is invalid. Store errors propagate and are not remembered.
    /// A listed record that reads as not found fails the call too: garbage collection removes only
    /// records of runs applied everywhere (excluded before reading), so it is a stale read or a
    /// race with another compactor, and the next round sees the truth.
    private func entry(runId: String, key: String) throws -> Entry? {
        lock.lock()
        if let e = cache[runId] { lock.unlock(); return e }
        lock.unlock()
        guard let (data, info) = try store.getDataIfExists(key) else {
            throw StoreError(.transient, operation: "GetObject", key: key,
                             message: "was listed but reads as not found; the round is retried")
        }
        // A body shorter than the object is a failed read, not a bad record: retry, never quarantine.
        guard Int64(data.count) == info.size else {
            throw StoreError(.transient, operation: "GetObject", key: key,
                             message: "read \(data.count) of the record's \(info.size) bytes (a short read)")
        }
        let e: Entry
        do {
            e = .record(try RunRecord.decode(data, key: key, layout: layout))
        } catch let error as StrataError where error.kind == .unsupportedVersion {
            e = .newer(InvalidRunRecord(runId: runId, key: key, error: "\(error)",
                                        collections: Self.collections(in: data)))
            logger.warning("run record of a newer format left pending",
                           metadata: ["key": "\(key)", "error": "\(error)"])
        } catch {
            let text = data.isEmpty ? "\(key) is empty (0 bytes): a run record is a JSON object" : "\(error)"
            e = .invalid(InvalidRunRecord(runId: runId, key: key, error: text, collections: Self.collections(in: data)))
            logger.warning("invalid run record", metadata: ["key": "\(key)", "error": "\(text)"])
        }
        lock.lock()
        cache[runId] = e
        lock.unlock()
        return e
    }

    /// The collection names an invalid record lists, read leniently; nil when there are none.
    static func collections(in data: Data) -> [String]? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = object["collections"] as? [Any] else { return nil }
        let names = list.compactMap { ($0 as? [String: Any])?["collection"] as? String }
            .filter { (try? Layout.validate(collection: $0)) != nil }
        return names.isEmpty ? nil : names
    }
}
