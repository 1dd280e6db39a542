import Foundation
import Logging
import StrataBundle
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Turns a collection's pending COMPACTION_RUNs into a new snapshot version and moves the pointer
/// (Docs/design/0001-compaction-protocol.md). Works through the `ObjectStore` protocol only.
public final class Compactor {
    public let store: any ObjectStore
    public let layout: Layout
    public let settings: CompactorSettings
    let logger: Logger
    let catalog: RunCatalog
    let statusMemory = StatusMemory()
    /// Per collection, what the last round with nothing to apply saw (see `IdleState`).
    let idleMemory = Mutex<[String: IdleState]>([:])

    /// A round that found nothing to apply: the pointer's version, the run ids it excluded (applied
    /// in that version, or quarantined) and the newer-format records it deferred. While the pointer
    /// names the same version and `runs/` lists nothing else, the next round has nothing to do
    /// either, and it learns that from a GET and a LIST, without the lease (a PUT and a DELETE),
    /// the manifest and the quarantine listing: an idle round cost 9 requests (Docs/SCALING.md).
    struct IdleState: Sendable {
        var version: String?
        var excluded: Set<String>
        var deferred: Set<String>
    }

    public static let snapshotFileName = "snapshot.sqlite3"

    public init(
        store: any ObjectStore, layout: Layout, settings: CompactorSettings,
        logger: Logger = Logger(label: "strata.compactor", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.store = store
        self.layout = layout
        self.settings = settings
        self.logger = logger
        catalog = RunCatalog(
            store: store, layout: layout, logger: logger,
            watermark: RunWatermark(
                lookback: settings.runLookback,
                fullListingEvery: settings.fullListingEvery))
    }

    /// Refuses a store that does not enforce conditional writes, unless in single-writer mode.
    public func checkStore() throws {
        if settings.singleWriter { return }
        let report = try ConditionalWriteProbe.cached(store: store, layout: layout)
        guard report.conditionalWritesEnforced else {
            throw StrataError(
                .refused, object: store.location, field: "conditional writes",
                message: "the store does not enforce If-None-Match / If-Match (" + report.notes.joined(separator: "; ")
                    + ")",
                fix: "use a store that does, or run exactly one compactor with --single-writer")
        }
    }

    /// One round: apply pending runs (within the limits) and publish once.
    public func compact(collection: String, stop: StopFlag = StopFlag()) throws -> CompactionSummary {
        try Layout.validate(collection: collection)
        do {
            let summary = try compactRound(collection: collection, stop: stop)
            if summary.outcome != .leaseHeld { clearStatus(collection) }
            return summary
        } catch {
            recordStatus(collection, error)  // best effort: `snapctl verify` shows why, without logs
            throw error
        }
    }

    private func compactRound(collection: String, stop: StopFlag) throws -> CompactionSummary {
        try checkStore()
        if let idle = try stillIdle(collection) { return idle }
        let leases = LeaseManager(store: store, layout: layout, settings: settings, logger: logger)
        var leaseETag: String
        switch try leases.acquire(collection: collection) {
        case .heldByOther(let lease):
            var s = CompactionSummary(collection: collection, outcome: .leaseHeld)
            s.leaseHolder = "\(lease.owner) on \(lease.host) until \(StrataJSON.iso8601(lease.expiresAt))"
            logger.info(
                "lease held by another compactor",
                metadata: [
                    "collection": "\(collection)",
                    "holder": "\(s.leaseHolder!)",
                ])
            return s
        case .acquired(let etag):
            leaseETag = etag
        }
        var leaseTime = Date()
        defer { leases.release(collection: collection, etag: leaseETag) }
        let renewLease = { leaseETag = leases.renew(collection: collection, etag: leaseETag, acquiredAt: &leaseTime) }

        var conflicts = 0
        while true {
            do {
                var summary = try round(collection: collection, stop: stop, renewLease: renewLease)
                summary.conflicts = conflicts
                return summary
            } catch is PointerConflict {
                conflicts += 1
                logger.notice(
                    "another compactor published first; rebuilding on its version",
                    metadata: ["collection": "\(collection)", "conflicts": "\(conflicts)"])
                if conflicts > settings.maxConflictRetries {
                    throw StrataError(
                        .conflict, object: layout.pointerKey(collection),
                        message: "lost the pointer race \(conflicts) times in a row",
                        fix: "too many compactors on one collection; the next round will retry")
                }
            }
        }
    }

    struct PointerConflict: Error {}

    /// An up-to-date summary when nothing changed since the last idle round (the same version, no
    /// other record in the listing), else nil: a full round follows. Skipping a round never
    /// publishes anything, so it cannot be wrong, only late, and anything new shows up here: a
    /// new run, a record someone else quarantined, a new pointer. Runs allowed late
    /// (`allowLateRuns`) always get a full round.
    private func stillIdle(_ c: String) throws -> CompactionSummary? {
        guard settings.allowLateRuns.isEmpty, let idle = idleMemory.withLock({ $0[c] }) else { return nil }
        let pointer = try readPointerOrStop(c)
        guard pointer?.version == idle.version else { return nil }
        let listing = try catalog.pendingRuns(collection: c, excluding: idle.excluded)
        guard listing.pending.isEmpty, listing.invalid.isEmpty,
            Set(listing.newer.map(\.runId)).isSubset(of: idle.deferred)
        else { return nil }
        var s = CompactionSummary(collection: c, outcome: .upToDate)
        s.baseVersion = idle.version
        s.runsDeferred = listing.newer.count
        logger.debug(
            "up to date (nothing new since the last round)",
            metadata: ["collection": "\(c)", "version": "\(idle.version ?? "-")"])
        return s
    }

    // MARK: one attempt

    private func round(collection c: String, stop: StopFlag, renewLease: () -> Void) throws -> CompactionSummary {
        var clock = StepClock()
        var summary = CompactionSummary(collection: c, outcome: .upToDate)
        let log = logger.with(["collection": "\(c)"])

        // 1. The pointer and its ETag.
        let pointer = try readPointerOrStop(c)  // SPEC 12: a lost pointer never restarts a collection
        let baseVersion = pointer?.version
        summary.baseVersion = baseVersion
        clock.lap("pointer")

        // 2. The base version in a file we may modify, with its page-hash list: the cache's when it
        // holds that version, otherwise materialized (base + chain), every object checked.
        let cache = try SnapshotCache(collection: c, settings: settings)
        var baseManifest: SnapshotManifest? = nil
        var hashes: PageHashList? = nil
        if let baseVersion {
            let manifest = try SnapshotManifest.fetch(from: store, layout: layout, collection: c, version: baseVersion)
            let identity = try Compactor.identity(
                of: manifest, key: layout.manifestKey(collection: c, version: baseVersion))
            if let root = cache.holds(version: baseVersion, size: manifest.materializedSize, sha256: identity),
                let list = try? PageHashList.open(path: cache.hashListPath), Hex.encode(list.root) == root
            {
                summary.baseFromCache = true
                hashes = list
            } else {
                hashes = try materialize(manifest, into: cache, summary: &summary)
                cache.record(
                    version: baseVersion, size: manifest.materializedSize, sha256: identity,
                    pageRoot: Hex.encode(hashes!.root))
            }
            baseManifest = manifest
        } else {
            cache.discardSnapshot()
        }
        clock.lap("base")
        renewLease()
        // 3. Pending runs.
        var base = baseManifest == nil ? nil : try SnapshotDatabase.open(path: cache.snapshotPath, collection: c)
        if let base, let m = baseManifest, base.dimension != m.dimension {
            throw StrataError(
                .corrupt, object: layout.manifestKey(collection: c, version: m.version), field: "dimension",
                message: "is \(m.dimension) but the snapshot file says \(base.dimension)")
        }
        let done = try base?.processedRunIds() ?? []
        let quarantined = try catalog.quarantinedRunIds(collection: c)
        let lifted = try liftTooLate(collection: c, quarantined: quarantined, done: done)
        let excluded = done.union(quarantined.subtracting(lifted))
        let listing = try catalog.pendingRuns(collection: c, excluding: excluded)
        idleMemory.withLock { memory in
            if listing.pending.isEmpty, listing.invalid.isEmpty {
                memory[c] = IdleState(
                    version: baseVersion, excluded: excluded, deferred: Set(listing.newer.map(\.runId)))
            } else {
                memory[c] = nil
            }
        }
        for bad in listing.invalid {
            try quarantine(
                runId: bad.runId, deltaKey: nil, collection: c, reason: "invalidRecord",
                detail: "\(bad.key): \(bad.error)", summary: &summary, log: log)
        }
        let triage = RunPlanner.triage(listing.pending, collection: c, now: Date(), settings: settings)
        for r in triage.refused {
            try quarantine(
                runId: r.run.runId, deltaKey: r.run.deltaKey, collection: c, reason: r.reason,
                detail: r.detail, summary: &summary, log: log)
        }
        let plan = RunPlanner.plan(triage.accepted, settings: settings)
        // Records of a newer format wait for a newer compactor: deferred, not quarantined.
        summary.runsDeferred = triage.accepted.count - plan.count + listing.newer.count
        let planned = Set(plan.map(\.runId))
        summary.oldestPendingAt = triage.accepted.lazy.filter { !planned.contains($0.runId) }.map(\.createdAt).min()
        summary.rowsBefore = baseManifest?.rowCount ?? 0
        summary.rowsAfter = summary.rowsBefore
        clock.lap("plan")
        func finish() -> CompactionSummary {
            summary.seconds = clock.seconds.merging(["total": clock.total]) { $1 }
            return summary
        }
        if plan.isEmpty {
            try base?.close()
            log.info("up to date", metadata: ["version": "\(baseVersion ?? "-")", "pending": "0"])
            return finish()
        }
        if stop.isSet { throw CancellationError() }

        // 4. Deltas: download, verify, extract, validate every row; quarantine what cannot be applied.
        var dimension = baseManifest?.dimension
        var ready: [(run: PendingRun, deltaPath: String)] = []
        for run in plan {
            do {
                let (path, dim) = try fetchDelta(
                    run, collection: c, dimension: dimension, into: cache.deltasDirectory,
                    summary: &summary)
                if dim > 0 { dimension = dim }
                ready.append((run, path))
            } catch let q as QuarantineReason {
                try quarantine(
                    runId: run.runId, deltaKey: run.deltaKey, collection: c, reason: q.reason,
                    detail: q.detail, summary: &summary, log: log)
            }
        }
        clock.lap("deltas")
        renewLease()
        crashPoint("after-download")
        guard let dimension, !ready.isEmpty else {
            // Nothing applicable (all quarantined, or only deletes for a collection with no rows yet,
            // which wait until its first upsert fixes the dimension).
            try base?.close()
            summary.runsDeferred += ready.count
            summary.oldestPendingAt = ready.map(\.run.createdAt).reduce(summary.oldestPendingAt) { min($0 ?? $1, $1) }
            return finish()
        }
        if stop.isSet { throw CancellationError() }

        // 5. Merge in run order, then check. A version on a format-2 snapshot we hold with its
        // page-hash list is a page patch captured from the merge itself (Docs/design/0002); the
        // first version, and the format-1 -> 2 upgrade (a schema change), are a new base.
        let newVersion = Identifiers.make(after: baseVersion)
        cache.invalidate()
        var applied: [AppliedRun] = []
        var rowsAfter = 0
        let now = Date()
        /// The merge proper, the same on either connection: apply, purge, count, record.
        func merge(into db: SnapshotDatabase) throws {
            for (run, path) in ready {
                applied.append(
                    try db.apply(
                        deltaPath: path, writer: RowWriter(runId: run.runId, created: run.createdAt),
                        version: newVersion, appliedAt: now))
            }
            let cutoff = now.addingTimeInterval(-settings.lateRunWindow)
            summary.tombstonesPurged = try db.purgeTombstones(createdBefore: cutoff)
            summary.tombstones = try db.tombstoneCount()
            rowsAfter = try db.rowCount()
            let expected = summary.rowsBefore + applied.reduce(0) { $0 + $1.newIds - $1.deletedExisting }
            guard rowsAfter == expected else {
                throw StrataError(
                    .refused, object: "\(c) version \(newVersion)", field: "row count",
                    message: "has \(rowsAfter) rows; base \(summary.rowsBefore) + new ids − deleted ids = \(expected)",
                    fix: "nothing was published; report this as a bug with the run ids")
            }
            let explicitDeletes = applied.reduce(0) { $0 + $1.deletedExisting }
            if rowsAfter == 0, summary.rowsBefore > 0, explicitDeletes < summary.rowsBefore {
                throw StrataError(
                    .refused, object: "\(c) version \(newVersion)", field: "row count",
                    message: "would empty a collection of \(summary.rowsBefore) rows without explicit deletes")
            }
            try db.transaction { try db.setMeta(version: newVersion, parent: baseVersion, rowCount: rowsAfter) }
        }
        let parentRoot = hashes.map { Hex.encode($0.root) }
        let parentPageCount = hashes?.pageCount ?? 0
        var captured: PageCaptureResult? = nil
        var newBaseReason: PageChainPolicy.NewBaseReason? = nil
        do {
            if let db = base, db.formatVersion >= SnapshotFormat.majorVersion, let list = hashes {
                try db.close()
                base = nil
                let patchPath = cache.directory + "/new.strpatch"
                unlink(patchPath)
                captured = try PageCapture.capture(
                    database: cache.snapshotPath, hashes: list, patch: patchPath,
                    settings: PageCaptureSettings(compression: settings.pageCompression)
                ) { conn in try merge(into: try SnapshotDatabase.open(connection: conn, collection: c)) }
            } else {
                if base == nil {
                    base = try SnapshotDatabase.create(path: cache.snapshotPath, collection: c, dimension: dimension)
                }
                let db = base!
                try db.upgradeIfNeeded()
                if let upgraded = db.upgradedFromFormat1 {
                    summary.upgradedFromFormat = 1
                    newBaseReason = .schema
                    log.notice("snapshot upgraded from format 1", metadata: ["old_rows_writer": "\(upgraded)"])
                }
                try merge(into: db)
                try db.close()
                base = nil
                hashes = try PageHashList.build(database: cache.snapshotPath, to: cache.hashListPath)
            }
        } catch {
            try? base?.close()
            cache.discardSnapshot()
            throw error
        }
        clock.lap("merge")
        let list = hashes!
        let explicitDeletes = applied.reduce(0) { $0 + $1.deletedExisting }

        // What to publish: the chain policy decides for a captured patch.
        let chain = baseManifest?.patches ?? []
        let parentBase = try baseManifest.map {
            try parentBaseEntry(
                $0, root: parentRoot!, pageCount: parentPageCount,
                pageSize: list.pageSize)
        }
        var decision = PageChainPolicy.Decision.newBase(newBaseReason ?? .schema)
        if let captured, let parentBase {
            decision = settings.chainPolicy.decide(
                baseBytes: parentBase.size,
                chain: chain.map { PageChainPolicy.Patch(bytes: $0.size, merged: $0.merged ?? false) },
                newPatchBytes: captured.patch.bytes, newPatchFrames: Int(captured.patch.header.frameCount),
                pageCount: Int(list.pageCount))
        }
        var objects: [VersionPublisher.Object] = []
        var manifestBase: ManifestBase
        var manifestPatches: [ManifestPatch]
        var resultSHA: String? = nil
        var newLocalPatches: [(path: String, sha256: String)] = []
        do {
            func entry(_ p: PagePatchSummary, merged: Bool) throws -> ManifestPatch {
                // The object's SHA-256 (the patch's trailer hashes every byte but itself): O(patch).
                let sha = try SHA256.hexOfFile(atPath: p.path).hex
                return ManifestPatch(
                    key: layout.versionObjectKey(collection: c, kind: .patch, sha256: sha), size: p.bytes,
                    sha256: sha, fromRoot: Hex.encode(p.header.fromRoot), toRoot: Hex.encode(p.header.toRoot),
                    pageCount: p.header.toPageCount, frames: Int(p.header.frameCount),
                    merged: merged ? true : nil)
            }
            func mergeWithNew(_ older: ArraySlice<ManifestPatch>, _ new: PagePatchSummary) throws -> PagePatchSummary {
                var sources: [PagePatchSource] = []
                for p in older {
                    sources.append(
                        PagePatchSource(
                            path: try localPatch(p, of: baseManifest!, cache: cache, summary: &summary),
                            object: p.key))
                }
                sources.append(PagePatchSource(path: new.path, object: "the new patch"))
                let path = cache.directory + "/merged.strpatch"
                unlink(path)
                return try PagePatchChain.merge(sources, to: path, compression: settings.pageCompression)
            }
            switch decision {
            case .append, .mergeTail, .mergeAll:
                let new = captured!.patch
                var patch = new
                var keep = chain[...]
                var merged = false
                if case .mergeTail(let count) = decision {
                    keep = chain.dropLast(count - 1)
                    patch = try mergeWithNew(chain.suffix(count - 1), new)
                    merged = true
                } else if case .mergeAll = decision {
                    keep = []
                    patch = try mergeWithNew(chain[...], new)
                    merged = true
                }
                let e = try entry(patch, merged: merged)
                objects = [
                    VersionPublisher.Object(
                        key: e.key, path: patch.path, contentType: "application/octet-stream",
                        sha256: e.sha256)
                ]
                manifestBase = parentBase!
                manifestPatches = Array(keep) + [e]
                newLocalPatches = [(patch.path, e.sha256)]
            case .newBase:
                // The full checks of a new base: quick_check and the whole file's SHA-256.
                if settings.integrityCheck {
                    let db = try SnapshotDatabase.open(path: cache.snapshotPath, collection: c)
                    let result = try db.quickCheck()
                    try db.close()
                    guard result == "ok" else {
                        throw StrataError(
                            .corrupt, object: "\(c) version \(newVersion)", message: "SQLite quick_check: \(result)")
                    }
                }
                let (sha, size) = try SHA256.hexOfFile(atPath: cache.snapshotPath)
                let key = layout.versionObjectKey(collection: c, kind: .base, sha256: sha)
                objects = [
                    VersionPublisher.Object(
                        key: key, path: cache.snapshotPath, contentType: "application/vnd.sqlite3",
                        sha256: sha)
                ]
                manifestBase = ManifestBase(
                    key: key, size: size, sha256: sha, pageSize: list.pageSize,
                    pageCount: list.pageCount, pageRoot: Hex.encode(list.root))
                manifestPatches = []
                resultSHA = sha
            }
        } catch {
            cache.discardSnapshot()
            throw error
        }
        summary.publishedAs = {
            switch decision {
            case .append: return "patch"
            case .mergeTail: return "merged tail"
            case .mergeAll: return "merged chain"
            case .newBase(let r): return baseManifest == nil ? "new base (first version)" : "new base (\(r.rawValue))"
            }
        }()
        summary.chainLength = manifestPatches.count
        clock.lap("check")
        renewLease()
        crashPoint("after-merge")
        if stop.isSet {
            cache.discardSnapshot()
            throw CancellationError()
        }

        // 6-7. Objects first, the manifest last, then the pointer, conditionally.
        let result = ManifestResult(
            pageSize: list.pageSize, pageCount: list.pageCount, pageRoot: Hex.encode(list.root),
            size: Int64(list.pageSize) * Int64(list.pageCount), sha256: resultSHA)
        let manifest = SnapshotManifest(
            collection: c, version: newVersion, parentVersion: baseVersion, createdAt: Date(), dimension: dimension,
            rowCount: rowsAfter, files: [], appliedRuns: applied,
            createdBy: VersionCreator(
                compactorId: settings.compactorId, host: settings.host,
                strataVersion: settings.strataVersion),
            base: manifestBase, patches: manifestPatches, result: result)
        let published: VersionPublisher.Published
        do {
            published = try VersionPublisher(store: store, layout: layout).publish(
                objects: objects, manifest: manifest,
                pointerCondition: pointer.map { .ifMatch($0.etag) } ?? .ifNoneMatch,
                step: {
                    if $0 == "after-upload" { clock.lap("upload") }
                    crashPoint($0)
                })
        } catch is VersionPublisher.PointerConflict {
            cache.discardSnapshot()
            throw PointerConflict()
        } catch {
            cache.discardSnapshot()
            throw error
        }
        summary.bytesUploaded = published.bytesUploaded
        for p in newLocalPatches { rename(p.path, cache.patchPath(sha256: p.sha256)) }
        cache.keepPatches(Set(manifestPatches.map(\.sha256)))
        cache.record(version: newVersion, size: result.size, sha256: result.pageRoot, pageRoot: result.pageRoot)
        // A late run applied on the operator's word is no longer quarantined (best effort: a
        // leftover record names a run that applied_runs lists, which verify reports as applied).
        for id in lifted where applied.contains(where: { $0.runId == id }) {
            do { try store.delete(layout.quarantineKey(collection: c, runId: id)) } catch {
                log.warning(
                    "could not remove the tooLate quarantine of an applied run",
                    metadata: ["run_id": "\(id)", "error": "\(error)"])
            }
        }
        clock.lap("publish")
        crashPoint("after-pointer")
        summary.outcome = .published
        summary.newVersion = newVersion
        summary.runsApplied = applied.map(\.runId)
        summary.rowsUpserted = applied.reduce(0) { $0 + $1.upserts }
        summary.rowsDeleted = applied.reduce(0) { $0 + $1.deletes }
        summary.newIds = applied.reduce(0) { $0 + $1.newIds }
        summary.deletedExisting = explicitDeletes
        summary.writesSuperseded = applied.reduce(0) { $0 + ($1.superseded ?? 0) }
        summary.rowsAfter = rowsAfter
        log.info(
            "published",
            metadata: [
                "version": "\(newVersion)", "parent": "\(baseVersion ?? "-")", "runs": "\(applied.count)",
                "quarantined": "\(summary.runsQuarantined.count)", "rows_before": "\(summary.rowsBefore)",
                "rows_after": "\(rowsAfter)", "superseded": "\(summary.writesSuperseded)",
                "tombstones": "\(summary.tombstones)", "bytes_up": "\(summary.bytesUploaded)",
                "bytes_down": "\(summary.bytesDownloaded)", "published_as": "\(summary.publishedAs ?? "-")",
                "chain": "\(summary.chainLength)", "seconds": "\(String(format: "%.3f", clock.total))",
            ])
        return finish()
    }

    // MARK: steps

    struct QuarantineReason: Error {
        let reason: String
        let detail: String
        init(_ reason: String, _ detail: String) {
            self.reason = reason
            self.detail = detail
        }
    }

    /// Downloads, verifies, extracts and validates one run's delta. Returns the delta file and its
    /// dimension (0 for a delta of deletes only). Anything wrong with the delta itself is a
    /// `QuarantineReason`; store failures propagate (the round fails and is retried).
    private func fetchDelta(
        _ run: PendingRun, collection c: String, dimension: Int?, into dir: String,
        summary: inout CompactionSummary
    ) throws -> (String, Int) {
        let bundle = dir + "/\(run.runId).tar.gz"
        guard run.size <= settings.maxDeltaBytes else {
            throw QuarantineReason(
                "tooLarge", "the run record says the delta is \(run.size) bytes; the limit is \(settings.maxDeltaBytes)"
            )
        }
        let got: ObjectInfo
        do {
            got = try store.get(run.deltaKey, toFile: bundle)
        } catch let e as StoreError where e.kind == .notFound {
            // Asked again before a run is set aside for good: a stale "not found" is retried.
            if try store.head(run.deltaKey) != nil {
                throw StoreError(
                    .transient, operation: "GetObject", key: run.deltaKey,
                    message: "answered not found, but the object exists (a stale read); retried")
            }
            throw QuarantineReason("missingDelta", "the run record names \(run.deltaKey), which does not exist")
        } catch let e as StoreError where e.kind == .integrity {
            throw QuarantineReason("checksumMismatch", e.description)
        }
        // Fewer bytes on disk than the object has is a failed read (retried), not a bad delta.
        let onDisk = (try? FileManager.default.attributesOfItem(atPath: bundle)[.size] as? NSNumber)?.int64Value ?? -1
        guard onDisk == got.size else {
            throw StoreError(
                .transient, operation: "GetObject", key: run.deltaKey,
                message: "read \(onDisk) of the object's \(got.size) bytes (a short read); retried")
        }
        // A store that verified the download against its recorded SHA-256 (S3 does) has checked
        // these bytes already when that hash is the record's; otherwise hash them here.
        let (sha, size): (String, Int64)
        if let verified = got.sha256, verified == run.sha256, got.size == run.size {
            (sha, size) = (verified, got.size)
        } else {
            (sha, size) = try SHA256.hexOfFile(atPath: bundle)
        }
        summary.bytesDownloaded += size
        guard size == run.size, sha == run.sha256 else {
            throw QuarantineReason(
                "checksumMismatch",
                "\(run.deltaKey) is \(size) bytes with SHA-256 \(sha); the run record says \(run.size) bytes, \(run.sha256)"
            )
        }
        do {
            let extracted = try BundleExtractor.extract(
                bundle: bundle, into: dir + "/\(run.runId)", expectedRunId: run.runId,
                expectedCollection: c, name: run.deltaKey)
            let reader = try DeltaReader(
                path: extracted.deltaPath,
                expecting: DeltaExpectation(
                    collection: c, runId: run.runId, dimension: dimension, upserts: extracted.manifest.upserts,
                    deletes: extracted.manifest.deletes))
            // Every row is checked before any touches the snapshot.
            try reader.forEachUpsert { _ in }
            try reader.forEachDelete { _ in }
            let dim = reader.info.upserts > 0 ? reader.info.dimension : 0
            try reader.close()
            return (extracted.deltaPath, dim)
        } catch let e as BundleError {
            throw QuarantineReason(e.reason.rawValue, storeNames(e.description, run: run, dir: dir))
        } catch let e as StrataError {
            let reason: String
            switch e.kind {
            case .unsupportedVersion: reason = "unsupportedVersion"
            case .refused: reason = e.field == "meta.dimension" ? "dimensionMismatch" : "wrongRun"
            default: reason = "invalidDelta"
            }
            throw QuarantineReason(reason, storeNames(e.description, run: run, dir: dir))
        }
    }

    /// `text` with this compactor's local paths of `run`'s bundle and extracted files replaced by
    /// the delta's store key, so a quarantine record names what the operator can find.
    private func storeNames(_ text: String, run: PendingRun, dir: String) -> String {
        text.replacingOccurrences(of: dir + "/\(run.runId)/", with: run.deltaKey + ":")
            .replacingOccurrences(of: dir + "/\(run.runId).tar.gz", with: run.deltaKey)
    }

    private func quarantine(
        runId: String, deltaKey: String?, collection c: String, reason: String, detail: String,
        summary: inout CompactionSummary, log: Logger
    ) throws {
        let record = QuarantineRecord(
            runId: runId, collection: c, deltaKey: deltaKey, reason: reason,
            detail: detail, quarantinedAt: Date(), compactorId: settings.compactorId)
        let key = layout.quarantineKey(collection: c, runId: runId)
        do {
            try store.put(
                key, data: try StrataJSON.encoder().encode(record),
                condition: .ifNoneMatch, options: PutOptions(contentType: "application/json"))
        } catch let e as StoreError where e.kind == .preconditionFailed {
            // Already quarantined by an earlier (crashed or concurrent) round: keep the first record.
        }
        summary.runsQuarantined.append(
            .init(runId: runId, reason: reason, detail: detail, key: key, deltaKey: deltaKey))
        log.warning(
            "run quarantined",
            metadata: [
                "run_id": "\(runId)", "reason": "\(reason)", "key": "\(key)",
                "detail": "\(detail)",
            ])
    }

    /// The runs named by `settings.allowLateRuns` whose quarantine is `tooLate`: their quarantine is
    /// lifted for this round. A named run quarantined for another reason is refused: the window
    /// is the only thing `--allow-late` overrides.
    private func liftTooLate(collection c: String, quarantined: Set<String>, done: Set<String>) throws -> Set<String> {
        var lifted = Set<String>()
        for id in settings.allowLateRuns.sorted() where quarantined.contains(id) && !done.contains(id) {
            let key = layout.quarantineKey(collection: c, runId: id)
            guard let (data, _) = try store.getDataIfExists(key) else { continue }
            let q = try StrataJSON.decode(QuarantineRecord.self, from: data, object: key)
            guard q.reason == "tooLate" else {
                throw StrataError(
                    .refused, object: key, field: "reason",
                    message: "run \(id) is quarantined as \(q.reason), not tooLate: \(q.detail)",
                    fix: "--allow-late only applies runs older than the late-run window; "
                        + "produce the rows again as a new run")
            }
            lifted.insert(id)
        }
        return lifted
    }

    private func crashPoint(_ name: String) {
        if settings.crashAt == name {
            logger.critical("fault injection: SIGKILL at \(name)")
            kill(getpid(), SIGKILL)
        }
        if settings.pauseAt == name {
            logger.notice("fault injection: pausing at \(name)")
            Thread.sleep(forTimeInterval: 5)
        }
    }
}

extension Logger {
    func with(_ metadata: Logger.Metadata) -> Logger {
        var l = self
        for (k, v) in metadata { l[metadataKey: k] = v }
        return l
    }
}
