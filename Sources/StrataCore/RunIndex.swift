import Foundation
import Logging
import Synchronization

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

    public init(runId: String, key: String, error: String, collections: [String]?) {
        self.runId = runId
        self.key = key
        self.error = error
        self.collections = collections
    }

    /// True when its quarantine belongs under `collection`: the record names it, or names none.
    public func concerns(_ collection: String) -> Bool { collections.map { $0.contains(collection) } ?? true }
}

/// What a collection has processed, the input of `RunIndex.classify`: from the snapshot's
/// `applied_runs` table (what the compactor merges on) or from the manifests along the pointer's
/// history (what `runs`, `gc` and `rollback` read without downloading a snapshot). Both say the
/// same for every run whose record still exists (garbage collection keeps the versions that
/// explain a remaining record).
public struct ProcessedRuns: Sendable, Equatable {
    /// Runs whose rows are in the version.
    public var applied: Set<String>
    /// Runs a rollback dropped and recorded so they are not applied again (SPEC invariant 11).
    public var rolledBack: Set<String>
    /// Runs a rollback re-queued: applied once in an older version, pending again now. Never in
    /// `applied` or `rolledBack` (a later application moves them to `applied`).
    public var requeued: Set<String>
    /// Where this came from, in words (shown by verify).
    public var source: String

    public init(applied: Set<String>, rolledBack: Set<String> = [], requeued: Set<String> = [], source: String) {
        self.applied = applied
        self.rolledBack = rolledBack.subtracting(applied)
        self.requeued = requeued.subtracting(applied).subtracting(rolledBack)
        self.source = source
    }

    /// Nothing processed: a collection with no published version.
    public static func nothing(_ source: String = "nothing (no published version)") -> ProcessedRuns {
        ProcessedRuns(applied: [], source: source)
    }

    /// From the rows of a snapshot's `applied_runs` table: run id -> status (`applied` or
    /// `rolled_back`; Docs/FORMATS.md). An unknown status counts as processed (applied): such a
    /// run must not be applied a second time.
    public init(appliedRunsTable statuses: [String: String], source: String = "the snapshot's applied_runs table") {
        let rolledBack = Set(statuses.filter { $0.value == "rolled_back" }.keys)
        self.init(applied: Set(statuses.keys).subtracting(rolledBack), rolledBack: rolledBack, source: source)
    }

    /// From the manifests of a version and its ancestors, newest first: a rollback's requeued runs
    /// mask what older versions applied or rolled back.
    public init(history: [SnapshotManifest], source: String? = nil) {
        var applied = Set<String>()
        var rolledBack = Set<String>()
        var requeued = Set<String>()
        for m in history {
            for r in m.appliedRuns.map(\.runId) where !requeued.contains(r) && !rolledBack.contains(r) {
                applied.insert(r)
            }
            for r in m.rolledBackRuns ?? [] where !requeued.contains(r) && !applied.contains(r) { rolledBack.insert(r) }
            for r in m.requeuedRuns ?? [] where !applied.contains(r) && !rolledBack.contains(r) { requeued.insert(r) }
        }
        self.init(
            applied: applied, rolledBack: rolledBack, requeued: requeued,
            source: source ?? "the manifests of \(history.count) version\(history.count == 1 ? "" : "s")")
    }

    /// Applied or rolled back: never applied again.
    public var processed: Set<String> { applied.union(rolledBack) }
}

/// Where a run stands for one collection (SPEC invariant 5: applied, pending or quarantined, and
/// the rest said why).
public enum RunState: String, Codable, Sendable, CaseIterable {
    /// Its record names the collection and it is neither processed nor quarantined: the next
    /// compaction takes it (and may still quarantine it: its delta, the late-run window).
    case pending
    case applied
    case rolledBack = "rolled_back"
    /// A quarantine record exists for it in the collection.
    case quarantined
    /// Its record cannot be used and concerns the collection: the next compaction quarantines it
    /// `invalidRecord`.
    case invalid
    /// Its record is of a newer format than this build reads: left for a newer compactor.
    case deferred
}

/// One run of a collection, as the catalog sees it.
public struct CatalogRun: Sendable {
    public var runId: String
    public var state: RunState
    /// The record, when it was read and parses (not read for processed or quarantined runs unless
    /// asked to; nil when the record is gone or unusable).
    public var record: RunRecord?
    /// The record's key and size as listed, nil when there is no record (a quarantine outlived it).
    public var listed: ObjectInfo?
    public var quarantine: QuarantineRecord?
    /// Why the record cannot be used, for `invalid` and `deferred`.
    public var problem: InvalidRunRecord?
    /// A rollback re-queued it: it was applied once, and is pending again (not applied since).
    public var requeued: Bool

    /// The creation time: the record's, else the one its run id encodes.
    public var createdDate: Date? { record?.createdDate ?? Identifiers.date(of: runId) }
}

/// The runs of one collection, each in one state.
public struct CollectionRuns: Sendable {
    public var collection: String
    public var processed: ProcessedRuns
    /// Run id -> the run. Holds every run with a record naming the collection (or an unusable record
    /// concerning it), every quarantined run, and every processed run with a listed record.
    public var runs: [String: CatalogRun]

    /// Run ids in `state`, in creation order (creation time, then run id).
    public func ids(_ state: RunState) -> [String] { inOrder(state).map(\.runId) }

    /// Runs in `state`, in creation order (creation time, then run id), as the compactor applies them.
    public func inOrder(_ state: RunState) -> [CatalogRun] {
        runs.values.filter { $0.state == state }.sorted {
            let (a, b) = ($0.record?.createdAt ?? "", $1.record?.createdAt ?? "")
            return a != b ? a < b : $0.runId < $1.runId
        }
    }

    /// The records of the pending runs, in creation order.
    public var pending: [RunRecord] { inOrder(.pending).compactMap(\.record) }
    /// Run id -> quarantine record.
    public var quarantined: [String: QuarantineRecord] {
        runs.compactMapValues { $0.state == .quarantined ? $0.quarantine : nil }
    }
}

/// The one run catalog (issue 8, section 5): lists `runs/`, reads each record once per process
/// (records never change once written), reads quarantine records, and classifies a collection's
/// runs given what it processed. The compactor, `verify`, `runs`, `ls`, `gc` and `rollback` all
/// classify through it, so they cannot disagree.
///
/// Errors are strict, as the compactor needs them: a store error while listing or reading fails
/// the call (retryable or not), and so does a listed record that reads as not found or short. A run
/// is never silently left out, where it would be neither applied, pending, nor quarantined (SPEC
/// invariant 5). A record that reads fine but cannot be used is reported as invalid, with its key
/// and the error, never skipped.
public final class RunIndex: Sendable {
    public let store: any ObjectStore
    public let layout: Layout
    let logger: Logger

    /// A record as read.
    public enum Entry: Sendable {
        case record(RunRecord)
        case invalid(InvalidRunRecord)
        /// Written in a newer format than this build reads: pending for a newer compactor, not
        /// quarantined (during a rolling upgrade an older compactor must not set it aside).
        case newer(InvalidRunRecord)
    }

    /// `runs/` as listed once.
    public struct Listing: Sendable {
        /// Run id -> the record object.
        public var records: [String: ObjectInfo] = [:]
        /// Keys under `runs/` that are not `{run_id}.json`.
        public var stray: [String] = []
        public init() {}
    }

    private let cache = Mutex<[String: Entry]>([:])

    public init(
        store: any ObjectStore, layout: Layout,
        logger: Logger = Logger(label: "strata.runs", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.store = store
        self.layout = layout
        self.logger = logger
    }

    // MARK: records

    /// Lists `runs/` (afresh: new runs appear at any time). Throws on any store error.
    public func list() throws -> Listing {
        var out = Listing()
        try store.forEachPage(prefix: layout.runsPrefix, delimiter: nil) { page in
            for o in page.objects {
                if let id = layout.runId(fromRecordKey: o.key) { out.records[id] = o } else { out.stray.append(o.key) }
            }
        }
        return out
    }

    /// The record of `runId` at `key`, read once and remembered, or why it cannot be used. Store
    /// errors propagate and are not remembered. A listed record that reads as not found fails the
    /// call too: garbage collection removes only records of runs processed everywhere, so it is a
    /// stale read or a race, and the next call sees the truth.
    public func entry(runId: String, key: String) throws -> Entry {
        guard let e = try entryIfExists(runId: runId, key: key) else {
            throw StoreError(
                .transient, operation: "GetObject", key: key,
                message: "was listed but reads as not found; the round is retried")
        }
        return e
    }

    /// As `entry(runId:key:)`, but nil when the record reads as not found (for a caller that
    /// checks whether it is still listed, as `readAll` does).
    public func entryIfExists(runId: String, key: String) throws -> Entry? {
        if let e = cache.withLock({ $0[runId] }) { return e }
        guard let (data, info) = try store.getDataIfExists(key) else { return nil }
        // A body shorter than the object is a failed read, not a bad record: retry, never quarantine.
        guard Int64(data.count) == info.size else {
            throw StoreError(
                .transient, operation: "GetObject", key: key,
                message: "read \(data.count) of the record's \(info.size) bytes (a short read)")
        }
        let e: Entry
        do {
            e = .record(try RunRecord.decode(data, key: key, layout: layout))
        } catch let error as StrataError where error.kind == .unsupportedVersion {
            e = .newer(
                InvalidRunRecord(
                    runId: runId, key: key, error: "\(error)",
                    collections: Self.collections(in: data)))
            logger.warning(
                "run record of a newer format left pending",
                metadata: ["key": "\(key)", "error": "\(error)"])
        } catch {
            let text = data.isEmpty ? "\(key) is empty (0 bytes): a run record is a JSON object" : "\(error)"
            e = .invalid(InvalidRunRecord(runId: runId, key: key, error: text, collections: Self.collections(in: data)))
            logger.warning("invalid run record", metadata: ["key": "\(key)", "error": "\(text)"])
        }
        cache.withLock { $0[runId] = e }
        return e
    }

    /// Reads every record of `listing`. A record that reads as not found is looked for in a fresh
    /// listing: gone from it, it was deleted since (garbage collection of a run processed
    /// everywhere) and leaves `listing`; still listed, it fails the call (a stale read: retry).
    public func readAll(_ listing: inout Listing) throws -> [String: Entry] {
        var out: [String: Entry] = [:]
        var fresh: Listing? = nil
        for (runId, o) in listing.records.sorted(by: { $0.key < $1.key }) {
            if let e = try entryIfExists(runId: runId, key: o.key) {
                out[runId] = e
                continue
            }
            if fresh == nil { fresh = try list() }
            guard fresh?.records[runId] == nil else {
                throw StoreError(
                    .transient, operation: "GetObject", key: o.key,
                    message: "is listed but reads as not found (a stale read); try again")
            }
            listing.records[runId] = nil
        }
        return out
    }

    /// The collection names an unusable record lists, read leniently; nil when there are none.
    public static func collections(in data: Data) -> [String]? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = object["collections"] as? [Any]
        else { return nil }
        let names = list.compactMap { ($0 as? [String: Any])?["collection"] as? String }
            .filter { (try? Layout.validate(collection: $0)) != nil }
        return names.isEmpty ? nil : names
    }

    // MARK: quarantine

    /// Run ids with a quarantine record for `collection` (listed, not read).
    public func quarantinedRunIds(collection: String) throws -> Set<String> {
        var ids = Set<String>()
        try store.forEachPage(prefix: layout.quarantinePrefix(collection), delimiter: nil) { page in
            for o in page.objects {
                if let id = layout.runId(fromQuarantineKey: o.key, collection: collection) { ids.insert(id) }
            }
        }
        return ids
    }

    /// `collection`'s quarantine records, by run id. Store errors propagate; a record that cannot be
    /// parsed stands as reason `unreadable` (the run stays quarantined: it is not applied).
    public func quarantineRecords(collection: String) throws -> [String: QuarantineRecord] {
        var keys: [(String, ObjectInfo)] = []
        try store.forEachPage(prefix: layout.quarantinePrefix(collection), delimiter: nil) { page in
            for o in page.objects {
                if let id = layout.runId(fromQuarantineKey: o.key, collection: collection) { keys.append((id, o)) }
            }
        }
        var out: [String: QuarantineRecord] = [:]
        for (runId, o) in keys {
            // Gone since the listing: the operator lifted it (re-queued the run) or gc collected it.
            guard let (data, _) = try store.getDataIfExists(o.key) else { continue }
            do {
                out[runId] = try StrataJSON.decode(QuarantineRecord.self, from: data, object: o.key)
            } catch {
                out[runId] = QuarantineRecord(
                    runId: runId, collection: collection, deltaKey: nil, reason: "unreadable",
                    detail: "the quarantine record \(o.key) cannot be parsed: \(error)",
                    quarantinedAt: o.lastModified ?? Date(timeIntervalSince1970: 0), compactorId: "?")
            }
        }
        return out
    }

    // MARK: classification

    /// What is quarantined in a collection, the other input of `classify`: the run ids (all the
    /// compactor lists), with their records when read.
    public struct Quarantine: Sendable {
        public var ids: Set<String>
        public var records: [String: QuarantineRecord]
        public init(ids: Set<String>) {
            self.ids = ids
            records = [:]
        }
        public init(records: [String: QuarantineRecord]) {
            self.records = records
            ids = Set(records.keys)
        }
    }

    /// Classifies `collection`'s runs: a processed run is applied or rolled back (processed wins
    /// over a leftover quarantine record, as a run applied with `--allow-late` may leave one); else
    /// a quarantined run is quarantined; else a listed record naming the collection is pending, an
    /// unusable one concerning it invalid, one of a newer format deferred. Records of processed and
    /// quarantined runs are read only when `readAll` (the compactor never needs them). Throws on
    /// any store error.
    public func classify(
        collection: String, processed: ProcessedRuns, quarantine: Quarantine,
        listing: Listing, readAll: Bool = false
    ) throws -> CollectionRuns {
        var runs: [String: CatalogRun] = [:]
        for (runId, o) in listing.records {
            let done: RunState? =
                processed.applied.contains(runId)
                ? .applied : processed.rolledBack.contains(runId) ? .rolledBack : nil
            let settled = done ?? (quarantine.ids.contains(runId) ? .quarantined : nil)
            var run = CatalogRun(
                runId: runId, state: settled ?? .pending, record: nil, listed: o,
                quarantine: quarantine.records[runId], problem: nil,
                requeued: processed.requeued.contains(runId))
            if settled != nil, !readAll {
                runs[runId] = run
                continue
            }
            switch try entry(runId: runId, key: o.key) {
            case .record(let r):
                // Processed runs were applied here, so they belong even if the record says otherwise.
                guard r.delta(for: collection) != nil || settled != nil else { continue }
                run.record = r
            case .invalid(let bad):
                guard bad.concerns(collection) || settled != nil else { continue }
                run.problem = bad
                if settled == nil { run.state = .invalid }
            case .newer(let bad):
                guard bad.concerns(collection) || settled != nil else { continue }
                run.problem = bad
                if settled == nil { run.state = .deferred }
            }
            runs[runId] = run
        }
        // Quarantined runs whose record is gone (gc after the retention, or never listed).
        for runId in quarantine.ids where runs[runId] == nil && listing.records[runId] == nil {
            let done: RunState? =
                processed.applied.contains(runId)
                ? .applied : processed.rolledBack.contains(runId) ? .rolledBack : nil
            runs[runId] = CatalogRun(
                runId: runId, state: done ?? .quarantined, record: nil, listed: nil,
                quarantine: quarantine.records[runId], problem: nil,
                requeued: processed.requeued.contains(runId))
        }
        return CollectionRuns(collection: collection, processed: processed, runs: runs)
    }

    /// Lists and classifies in one call, reading the quarantine records: for readers of the
    /// catalog (`verify`, `runs`); the compactor lists quarantine ids only.
    public func classify(collection: String, processed: ProcessedRuns, readAll: Bool = false) throws
        -> CollectionRuns
    {
        try classify(
            collection: collection, processed: processed,
            quarantine: Quarantine(records: try quarantineRecords(collection: collection)),
            listing: try list(), readAll: readAll)
    }
}
