import Foundation
import Logging
import StrataCore
import StrataDelta

/// Checks a store, its collections and their runs, and says in findings what is wrong and what
/// to do (`snapctl verify`). Read-only: it never writes to the store. The snapshot is downloaded
/// into a private temporary directory, opened read-only, and removed afterwards.
///
/// Checks never throw: a failure to look at something (the store refused, a file is damaged) is
/// itself a finding, and the remaining checks go on where they can.
public final class Verifier {
    public let store: any ObjectStore
    public let layout: Layout
    public let settings: VerifySettings
    let logger: Logger
    let now: Date
    let locator: SnapshotLocator
    /// The shared run catalog: verify classifies runs as the compactor does.
    let index: RunIndex

    var findings: [VerifyFinding] = []
    /// `runs/` as listed: run id to the record object, and keys there that are not records.
    var runListing = RunIndex.Listing()
    var runKeys: [String: ObjectInfo] = [:]
    var strayRunKeys: [String] = []
    var runsListed = false
    /// Records read so far (each at most once), and those that could not be read, by key.
    var records: [String: RunRecord] = [:]
    var unreadableRecords: [String: String] = [:]
    /// Records the store would not give (an error, by key): the compactor fails its rounds on these.
    var failedReads: [String: String] = [:]
    /// Records of a newer format than this build reads, by key (deferred, not invalid).
    var newerRecords: [String: String] = [:]
    var workDirectory = ""
    /// Collections asked for that have nothing in the store: only their pointer finding is shown.
    var absentCollections = Set<String>()
    /// Collections whose pointer is lost: the newest complete version, which tells what was applied.
    var restorable: [String: String] = [:]

    public init(
        store: any ObjectStore, layout: Layout, settings: VerifySettings = VerifySettings(),
        logger: Logger = Logger(label: "strata.verify", factory: { _ in SwiftLogNoOpLogHandler() }),
        now: Date = Date()
    ) {
        self.store = store
        self.layout = layout
        self.settings = settings
        self.logger = logger
        self.now = now
        locator = SnapshotLocator(store: store, layout: layout)
        index = RunIndex(store: store, layout: layout, logger: logger)
    }

    /// Runs every check and returns the findings. Call once per `Verifier`.
    public func run() -> VerifyReport {
        findings = []
        workDirectory = settings.workDirectory + "/strata-verify-\(Identifiers.make())"
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        do {
            try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        } catch {
            add(
                VerifyCheck.snapshotOpen, nil, .failed, "cannot create a work directory for downloads: \(error)",
                ["directory": .string(workDirectory)], hint: "free space, or set TMPDIR to a writable directory")
        }

        guard let found = checkStoreAccess() else {
            return VerifyReport(
                store: store.location, checkedAt: now, collections: settings.collections, findings: findings)
        }
        listRuns()
        let (strata, foreign) = splitForeignPrefixes(found)
        let collections = settings.collections.isEmpty ? strata : settings.collections
        checkCollectionsFound(strata, foreign: foreign)
        for c in collections {
            logger.debug("verifying collection", metadata: ["collection": "\(c)"])
            verifyCollection(c, known: strata)
        }
        checkRunRecords()
        return VerifyReport(store: store.location, checkedAt: now, collections: collections, findings: findings)
    }

    /// What one collection's checks learn and pass on to later checks.
    struct CollectionState {
        var pointer: String?
        var manifest: SnapshotManifest?
        /// The pointer's manifest, then its parents', newest first (as far as they exist).
        var chain: [SnapshotManifest] = []
        /// Why the chain stops before the first version, if it does.
        var chainEnd: String?
        /// Local, verified copy of the snapshot file.
        var snapshotPath: String?
        /// What the snapshot (or, failing that, the manifests) says was applied, rolled back and
        /// re-queued, and where that came from; nil when nothing can tell.
        var processed: ProcessedRuns?
    }

    func verifyCollection(_ c: String, known: [String]) {
        var st = CollectionState()
        guard let pointer = checkPointer(c, known: known) else {
            if absentCollections.contains(c) { return }
            st.processed = .nothing()
            if let v = restorable[c],
                let (_, history) = try? RunLedger(store: store, layout: layout).history(c, from: v)
            {
                // Runs the version that restores the pointer (and its ancestors) applied are not pending.
                st.processed = ProcessedRuns(
                    history: history,
                    source: "the newest complete version \(v) and its ancestors (the pointer is lost)")
            }
            checkRuns(c, &st)
            checkFreshness(c, st)
            checkLease(c)
            checkPins(c)
            checkCompactorStatus(c, publishedAt: nil)
            return
        }
        st.pointer = pointer
        if let m = checkManifest(c, version: pointer) {
            st.manifest = m
            loadChain(c, &st)
            st.snapshotPath = checkFiles(c, manifest: m)
            if let path = st.snapshotPath {
                checkSnapshot(c, path: path, &st)
                try? FileManager.default.removeItem(atPath: path)
            }
            checkHistoryRows(c, st)
        }
        if st.processed == nil, !st.chain.isEmpty {
            // The snapshot could not be read: the manifests along the history know what was applied.
            st.processed = ProcessedRuns(
                history: st.chain,
                source: "the manifests of \(st.chain.count) versions (the snapshot could not be read; "
                    + "runs applied before them may show as pending)")
        } else if var p = st.processed, !st.chain.isEmpty {
            // The table does not say which runs a rollback re-queued; the manifests do.
            p.requeued = ProcessedRuns(history: st.chain).requeued.subtracting(p.processed)
            st.processed = p
        }
        checkUnpublished(c, pointer: pointer, processed: st.processed?.processed)
        checkRuns(c, &st)
        checkFreshness(c, st)
        checkLease(c)
        checkPins(c)
        checkCompactorStatus(c, publishedAt: st.manifest?.createdAt)
    }

    // MARK: findings

    func add(
        _ check: String, _ collection: String?, _ status: VerifyStatus, _ message: String,
        _ evidence: VerifyEvidence = VerifyEvidence(), hint: String? = nil
    ) {
        findings.append(
            VerifyFinding(
                check: check, collection: collection, status: status, message: message,
                evidence: evidence, hint: hint))
    }

    /// A failed check from an error, with what the error says about where and why.
    func addFailure(
        _ check: String, _ collection: String?, _ doing: String, _ error: Error,
        status: VerifyStatus = .failed, hint: String? = nil
    ) {
        let (text, evidence, fix) = Verifier.explain(error)
        add(check, collection, status, "\(doing): \(text)", evidence, hint: hint ?? fix)
    }

    /// An error in words, its details as evidence, and its own hint.
    static func explain(_ error: Error) -> (String, VerifyEvidence, String?) {
        var ev = VerifyEvidence()
        switch error {
        case let e as StoreError:
            ev["error_kind"] = .string(e.kind.rawValue)
            ev["operation"] = .string(e.operation)
            if let k = e.key { ev["key"] = .string(k) }
            if let s = e.status { ev["http_status"] = .int(s) }
            if let c = e.code { ev["code"] = .string(c) }
            if let r = e.requestId { ev["request_id"] = .string(r) }
            return (
                "\(e.operation)\(e.key.map { " \($0)" } ?? "") failed (\(e.kind.rawValue)): \(e.message)", ev, e.hint
            )
        case let e as StrataError:
            ev["error_kind"] = .string(e.kind.rawValue)
            ev["object"] = .string(e.object)
            if let f = e.field { ev["field"] = .string(f) }
            return ("\(e.object)\(e.field.map { ", field \"\($0)\"" } ?? ""): \(e.message)", ev, e.fix)
        case let e as SQLiteError:
            ev["sqlite_code"] = .int(Int(e.code))
            if let s = e.statement { ev["statement"] = .string(s) }
            return ("SQLite \(e.operation) failed: \(e.message)", ev, e.strataError.fix)
        default:
            return ("\(error)", ev, nil)
        }
    }

    // MARK: small helpers

    func age(_ date: Date) -> String { VerifySettings.describe(duration: now.timeIntervalSince(date)) }

    /// The first `settings.maxListed` items, with "... and N more" when cut.
    func listed(_ items: [String]) -> VerifyValue {
        let n = settings.maxListed
        return .list(items.count <= n ? items : Array(items.prefix(n)) + ["... and \(items.count - n) more"])
    }

    static func mib(_ bytes: Int64) -> String {
        bytes < 1 << 20 ? "\(bytes) bytes" : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
