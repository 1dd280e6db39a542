import Foundation
import Logging
import StrataCore

/// Retention settings of `snapctl gc`.
public struct GCPolicy: Sendable {
    /// Versions kept along the pointer's history, the pointer's own included (at least 1).
    public var keepVersions: Int = 10
    /// Nothing younger than this is deleted: versions, deltas, records, uploads in progress.
    public var grace: TimeInterval = 24 * 3600
    /// Quarantined runs (record, delta and quarantine record) are kept this long for inspection.
    public var quarantineRetention: TimeInterval = 30 * 24 * 3600

    public init(
        keepVersions: Int = 10, grace: TimeInterval = 24 * 3600, quarantineRetention: TimeInterval = 30 * 24 * 3600
    ) {
        self.keepVersions = keepVersions
        self.grace = grace
        self.quarantineRetention = quarantineRetention
    }
}

/// One thing garbage collection removes, and why.
public struct GCItem: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case version, unpublishedVersion, runRecord, delta, orphanDelta, quarantineRecord, incompleteUpload
        /// A base or page patch under `{c}/snapshot/objects/` that no retained version or pin references.
        case object
        /// A reader pin that expired longer than the grace period ago.
        case expiredPin
    }
    public var kind: Kind
    public var key: String
    public var reason: String
    /// For incomplete uploads.
    public var uploadId: String?
}

public struct GCPlan: Codable, Sendable {
    public var items: [GCItem]
    /// What was kept and why, per collection (for the operator).
    public var kept: [String]
}

/// Decides and performs deletions under SPEC invariant 7: never the pointer's version, the newest
/// N versions of its history, anything younger than the grace period, or the delta or record of a
/// run that some collection has not yet processed.
///
/// Run records are deleted before their deltas (a crash leaves orphans, collected later, never a
/// record without its delta for a pending run); a version's manifest before its files. Versions
/// are kept as a contiguous run of the pointer's history, so the history that explains which runs
/// were processed never has a gap while records of those runs remain.
public final class GarbageCollector {
    let store: any ObjectStore
    let layout: Layout
    let policy: GCPolicy
    let uploads: IncompleteUploadCleaning?
    let logger: Logger
    /// The clock; read once per plan.
    let clock: () -> Date
    private var now = Date()

    public init(
        store: any ObjectStore, layout: Layout, policy: GCPolicy, uploads: IncompleteUploadCleaning? = nil,
        logger: Logger = Logger(label: "strata.gc", factory: { _ in SwiftLogNoOpLogHandler() }),
        clock: @escaping () -> Date = { Date() }
    ) {
        self.store = store
        self.layout = layout
        self.policy = policy
        self.uploads = uploads
        self.logger = logger
        self.clock = clock
    }

    private func old(_ date: Date?, _ age: TimeInterval) -> Bool {
        guard let date else { return false }
        return now.timeIntervalSince(date) > age
    }

    public func plan() throws -> GCPlan {
        precondition(policy.keepVersions >= 1)
        now = clock()
        let ledger = RunLedger(store: store, layout: layout)
        try ledger.loadRecords()
        let locator = SnapshotLocator(store: store, layout: layout)
        var items: [GCItem] = []
        var kept: [String] = []
        var ledgers: [String: CollectionLedger] = [:]
        let collections = try locator.collections()

        // SPEC 12: a collection whose pointer is missing, unreadable or names no manifest while
        // versions exist keeps every version (and, having no ledger, every run naming it); and
        // no collection loses its newest complete version.
        let versionHistory = VersionHistory(store: store, layout: layout)
        var newestComplete: [String: String] = [:]
        for c in collections {
            let survey = try versionHistory.survey(c)
            if let v = survey.newestComplete?.version { newestComplete[c] = v }
            let l = try ledger.ledger(c)
            if l.pointerProblem != nil {
                kept.append(
                    "\(c): every version (\(survey.versions.count)) and every run naming it kept: "
                        + "the pointer is unreadable")
                continue
            }
            if l.history.isEmpty, !survey.versions.isEmpty {
                let why = l.pointerVersion.map { "names \($0), which has no manifest" } ?? "is missing"
                kept.append("\(c): every version (\(survey.versions.count)) kept: the pointer \(why)")
                continue
            }
            ledgers[c] = l
        }
        var deletedRuns = Set<String>()

        // Runs: deleted once every collection they name has processed them (and the grace has
        // passed), or once quarantine retention has passed where they were quarantined.
        for (runId, record) in ledger.records.sorted(by: { $0.key < $1.key }) {
            var done = true
            var quarantinedExpired = true
            var quarantinedSomewhere = false
            for d in record.collections {
                guard let l = ledgers[d.collection] else {
                    done = false
                    continue
                }
                if l.processed.contains(runId) { continue }
                if let q = l.quarantined[runId] {
                    quarantinedSomewhere = true
                    if !old(q.quarantinedAt, policy.quarantineRetention) { quarantinedExpired = false }
                    continue
                }
                done = false  // pending somewhere: keep everything (invariant 7)
            }
            guard done, old(record.createdDate, policy.grace), !quarantinedSomewhere || quarantinedExpired else {
                continue
            }
            deletedRuns.insert(runId)
            let why =
                quarantinedSomewhere
                ? "quarantined longer than the retention, processed elsewhere"
                : "applied to every collection it names"
            items.append(GCItem(kind: .runRecord, key: layout.runRecordKey(runId), reason: why))
            for d in record.collections {
                items.append(GCItem(kind: .delta, key: d.key, reason: "run \(runId): \(why)"))
                if quarantinedSomewhere, ledgers[d.collection]?.quarantined[runId] != nil {
                    items.append(
                        GCItem(
                            kind: .quarantineRecord, key: layout.quarantineKey(collection: d.collection, runId: runId),
                            reason: "run \(runId): \(why)"))
                }
            }
        }

        for c in collections {
            guard let l = ledgers[c] else { continue }
            // Versions (after the runs, so an interrupted gc never leaves a record whose processing
            // history is gone): keep a contiguous run of the pointer's history.
            let history = l.history
            var keepCount = min(policy.keepVersions, history.count)
            for (i, m) in history.enumerated() {
                let young = !old(m.createdAt, policy.grace)
                let explainsRecord = (m.appliedRuns.map(\.runId) + (m.rolledBackRuns ?? []))
                    .contains { ledger.records[$0] != nil && !deletedRuns.contains($0) }
                if young || explainsRecord { keepCount = max(keepCount, i + 1) }
            }
            var keepSet = Set(history.prefix(keepCount).map(\.version))
            if let v = newestComplete[c] { keepSet.insert(v) }
            let ancestry = Set(history.map(\.version))
            kept.append("\(c): \(keepSet.count) version(s) kept along the pointer's history")
            // SPEC 14: an unexpired pin keeps its version (and so every object it references).
            let pins = try pinned(c, items: &items, kept: &kept)
            let allVersions = try locator.versions(c)
            if pins.everything {
                kept.append("\(c): every version and object kept: a pin cannot be read")
                continue
            }
            for v in pins.versions.subtracting(keepSet) where allVersions.contains(v) {
                keepSet.insert(v)
                kept.append("\(c): version \(v) kept: pinned")
            }
            // Mark: every object a version that stays references (manifest base + patches, or a
            // whole-file version's files). A whole-file version whose file is the base of a version
            // that stays is kept whole.
            var deleting = allVersions.filter { v in
                !keepSet.contains(v)
                    && old(history.first { $0.version == v }?.createdAt ?? Identifiers.date(of: v), policy.grace)
            }
            let marks = try mark(c, versions: allVersions.filter { !deleting.contains($0) }, history: history)
            var marked = marks.keys
            for v in deleting {
                let prefix = layout.versionPrefix(collection: c, version: v)
                if let used = try store.list(prefix: prefix).map(\.key).first(where: { marked.contains($0) }) {
                    deleting.removeAll { $0 == v }
                    marked.formUnion(try mark(c, versions: [v], history: history).keys)
                    kept.append("\(c): version \(v) kept: \(used) is the base of a retained version")
                }
            }
            for v in allVersions where deleting.contains(v) {
                let created = history.first { $0.version == v }?.createdAt ?? Identifiers.date(of: v)
                guard old(created, policy.grace) else { continue }
                let kind: GCItem.Kind = ancestry.contains(v) ? .version : .unpublishedVersion
                let reason =
                    kind == .version
                    ? "older than the newest \(keepCount) versions of the pointer's history"
                    : "never published (a crashed or lost compaction), older than the grace period"
                let prefix = layout.versionPrefix(collection: c, version: v)
                let files = try store.list(prefix: prefix).map(\.key)
                let manifest = layout.manifestKey(collection: c, version: v)
                // Manifest first: an interrupted gc leaves an incomplete version, never a manifest
                // whose files are gone.
                for k in files.filter({ $0 == manifest }) + files.filter({ $0 != manifest }) {
                    items.append(GCItem(kind: kind, key: k, reason: "version \(v): \(reason)"))
                }
            }
            // Sweep the shared objects no mark names, older than the grace period (a publish in
            // flight uploads its objects before its manifest). Nothing when a version's manifest
            // could not be read: what it references is unknown.
            if let why = marks.unknown {
                kept.append("\(c): every object under \(layout.objectsPrefix(c)) kept: \(why)")
                continue
            }
            for o in try store.list(prefix: layout.objectsPrefix(c)) where !marked.contains(o.key) {
                guard old(o.lastModified, policy.grace) else { continue }
                items.append(
                    GCItem(
                        kind: .object, key: o.key,
                        reason: "no retained version or pin references it, older than the grace period"))
            }
        }

        // Orphaned deltas (no record) older than the grace period: a producer that died before
        // writing its record. Younger ones may be uploads in progress.
        for c in collections {
            let prefix = layout.deltasPrefix(c)
            for o in try store.list(prefix: prefix) {
                guard let runId = layout.deltaObject(o.key, collection: c)?.runId else { continue }
                if ledger.records[runId] == nil, ledger.unreadable[layout.runRecordKey(runId)] == nil,
                    old(o.lastModified, policy.grace), !items.contains(where: { $0.key == o.key })
                {
                    items.append(GCItem(kind: .orphanDelta, key: o.key, reason: "no run record names it (orphan)"))
                }
            }
            // Quarantine records whose run record is gone, past retention.
            for (runId, q) in ledgers[c]?.quarantined ?? [:]
            where ledger.records[runId] == nil
                && old(q.quarantinedAt, policy.quarantineRetention)
            {
                let key = layout.quarantineKey(collection: c, runId: runId)
                if !items.contains(where: { $0.key == key }) {
                    items.append(GCItem(kind: .quarantineRecord, key: key, reason: "past the quarantine retention"))
                }
            }
        }

        if let uploads {
            for u in try uploads.incompleteUploads(prefix: layout.prefix) where old(u.initiated, policy.grace) {
                items.append(
                    GCItem(
                        kind: .incompleteUpload, key: u.key,
                        reason: "incomplete multipart upload older than the grace period",
                        uploadId: u.uploadId))
            }
        }
        return GCPlan(items: items, kept: kept)
    }

    /// The versions unexpired pins name; expired pins past the grace period go in `items`.
    private func pinned(_ c: String, items: inout [GCItem], kept: inout [String]) throws
        -> (versions: Set<String>, everything: Bool)
    {
        let (pins, unreadable) = try ReaderPins(store: store, layout: layout).list(c)
        var versions = Set<String>()
        for p in pins {
            if !p.isExpired(at: now) {
                versions.insert(p.version)
            } else if old(p.expiresAt, policy.grace) {
                items.append(
                    GCItem(
                        kind: .expiredPin, key: layout.pinKey(collection: c, pinId: p.pinId),
                        reason: "pin of \(p.version) expired at \(StrataJSON.iso8601(p.expiresAt))"))
            }
        }
        for u in unreadable { kept.append("\(c): unreadable pin \(u.key): \(u.problem)") }
        return (versions, !unreadable.isEmpty)
    }

    /// Every object key `versions` reference; `unknown` says why some could not be known.
    private func mark(_ c: String, versions: [String], history: [SnapshotManifest]) throws
        -> (keys: Set<String>, unknown: String?)
    {
        var keys = Set<String>()
        var unknown: String? = nil
        for v in versions {
            let m: SnapshotManifest
            if let h = history.first(where: { $0.version == v }) {
                m = h
            } else {
                let key = layout.manifestKey(collection: c, version: v)
                // An incomplete version references nothing yet.
                guard let (data, _) = try store.getDataIfExists(key) else { continue }
                do { m = try SnapshotManifest.decode(data, key: key) } catch {
                    unknown = "the manifest of \(v) cannot be read (\(error))"
                    continue
                }
            }
            keys.formUnion(m.objectKeys(layout: layout))
        }
        return (keys, unknown)
    }

    /// Deletes what `plan` lists, in its order. A run record and a manifest are deleted on their
    /// own before what follows them (the plan lists them first), the rest in batches.
    public func execute(_ plan: GCPlan) throws -> [DeleteFailure] {
        var failures: [DeleteFailure] = []
        var batch: [String] = []
        func flush() throws {
            if !batch.isEmpty { failures += try store.delete(keys: batch) }
            batch.removeAll()
        }
        for item in plan.items {
            if item.kind == .incompleteUpload {
                do { try uploads?.abortUpload(key: item.key, uploadId: item.uploadId ?? "") } catch {
                    failures.append(DeleteFailure(key: item.key, code: "AbortFailed", message: "\(error)"))
                }
            } else if item.kind == .runRecord || item.key.hasSuffix("/" + Layout.manifestFileName) {
                try flush()
                failures += try store.delete(keys: [item.key])
            } else {
                batch.append(item.key)
                if batch.count >= 1000 { try flush() }
            }
        }
        try flush()
        return failures
    }
}
