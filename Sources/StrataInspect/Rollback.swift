import Foundation
import Logging
import StrataCompactor
import StrataCore
import StrataCrypto
import StrataDelta
import StrataPages

/// Publishes a new version whose rows are those of an older version (SPEC invariant 11: the
/// pointer only moves forward). Runs applied after the chosen version are recorded as rolled
/// back, so the compactor does not apply them again, unless the operator requeues them.
public struct Rollback {
    public let store: any ObjectStore
    public let layout: Layout
    public let creator: VersionCreator
    public let workDirectory: String

    public init(store: any ObjectStore, layout: Layout, creator: VersionCreator, workDirectory: String) {
        self.store = store
        self.layout = layout
        self.creator = creator
        self.workDirectory = workDirectory
    }

    public struct Result: Codable, Sendable {
        public var collection: String
        public var from: String
        public var to: String
        public var newVersion: String
        public var rows: Int
        public var rolledBack: [String]
        public var requeued: [String]
    }

    public func run(collection c: String, to target: String, reason: String, requeue: Bool) throws -> Result {
        let locator = SnapshotLocator(store: store, layout: layout)
        // The pointer as it is: a version, missing (lost), or unreadable (damaged). A rollback
        // republishes it in every case (SPEC invariant 12), conditionally on what was read.
        let pointerKey = layout.pointerKey(c)
        var current: String? = nil
        let condition: WriteCondition
        var was = "(none: the pointer was missing)"
        if let (data, info) = try store.getDataIfExists(pointerKey) {
            condition = .ifMatch(info.etag)
            current = try? Pointer.parse(data, key: pointerKey)
            was = current ?? "(none: the pointer was unreadable)"
        } else {
            condition = .ifNoneMatch
        }
        guard target != current else {
            throw StrataError(
                .invalidInput, object: "version \(target)", message: "is already the pointer's version",
                fix: "name an older version from `snapctl versions \(c)`")
        }
        let ledger = RunLedger(store: store, layout: layout)
        let currentHistory = try current.map { try ledger.history(c, from: $0).1 } ?? []
        if !currentHistory.contains(where: { $0.version == target }) {
            // Not an ancestor of the pointer: allowed when there is no usable pointer (missing,
            // unreadable, or naming a version without a manifest) or when the target is newer
            // than the pointer (the pointer lags); the target must be complete.
            guard currentHistory.isEmpty || target > current! else {
                throw StrataError(
                    .invalidInput, object: "version \(target)",
                    message: "is not in the history of \(c)'s pointer (\(current!))",
                    fix: "choose a version listed by `snapctl versions \(c)`")
            }
            let checked = try VersionHistory(store: store, layout: layout).check(c, version: target)
            guard checked.isComplete else {
                throw StrataError(
                    .invalidInput, object: "version \(target)",
                    message: "is not a complete version of \(c): " + checked.problems.joined(separator: "; "),
                    fix: "choose a complete version: `snapctl verify --collection \(c)` names the newest")
            }
        }
        // Runs that the pointer's history processed and the target's did not lose their effect now.
        let targetHistory = try ledger.history(c, from: target).1
        let undone = RunLedger.processed(currentHistory).subtracting(RunLedger.processed(targetHistory)).sorted()
        // The new version sorts after every version in the store, so the pointer moves forward.
        let newest = try locator.versions(c).last
        let after = [current, newest, target].compactMap { $0 }.max()

        let dir = workDirectory + "/strata-rollback-\(Identifiers.make())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let located = try locator.fetch(c, version: target, into: dir)  // verified against its manifest
        let targetManifest = located.manifest
        let newVersion = Identifiers.make(after: after)
        // The new version is the target's file plus one page patch (its meta and, unless requeued,
        // the rolled-back runs), captured from the write like a compaction's: O(delta) uploaded.
        // The page-hash list costs a pass over the file, which the rollback downloaded anyway.
        let hashes = try PageHashList.build(database: located.path, to: dir + "/snapshot.phl")
        let targetRoot = Hex.encode(hashes.root)
        let mKey = layout.manifestKey(collection: c, version: target)
        if let r = targetManifest.result, r.pageRoot != targetRoot || r.pageCount != hashes.pageCount {
            throw StrataError(
                .corrupt, object: mKey, field: "result.pageRoot",
                message: "the materialized file has root \(targetRoot.prefix(12))...; the manifest says "
                    + "\(r.pageRoot.prefix(12))...",
                fix: "run `snapctl verify --collection \(c) --deep` and choose another version")
        }
        let base: ManifestBase
        if let b = targetManifest.base {
            base = b
        } else {
            // A whole-file version is a base with no patches.
            guard let file = targetManifest.file(SnapshotFormat.fileName) else {
                throw StrataError(
                    .corrupt, object: mKey, field: "files", message: "lists no \(SnapshotFormat.fileName)")
            }
            base = ManifestBase(
                key: layout.versionFileKey(collection: c, version: target, file: file.name), size: file.size,
                sha256: file.sha256, pageSize: hashes.pageSize, pageCount: hashes.pageCount,
                pageRoot: targetRoot)
        }
        var rows = 0
        let patchPath = dir + "/rollback.strpatch"
        let captured = try PageCapture.capture(database: located.path, hashes: hashes, patch: patchPath) { conn in
            let db = try SnapshotDatabase.open(connection: conn, collection: c)
            rows = try db.rowCount()
            guard rows == targetManifest.rowCount else {
                throw StrataError(
                    .corrupt, object: "version \(target)", field: "row count",
                    message: "the file has \(rows) rows, its manifest says \(targetManifest.rowCount)")
            }
            try db.transaction {
                if !requeue { try db.recordRolledBack(runIds: undone, version: newVersion, at: Date()) }
                try db.setMeta(version: newVersion, parent: current ?? target, rowCount: rows)
            }
            guard try db.quickCheck() == "ok" else {
                throw StrataError(.corrupt, object: "version \(target)", message: "SQLite quick_check failed")
            }
        }
        let patchSHA = try SHA256.hexOfFile(atPath: patchPath).hex
        let p = captured.patch
        let patch = ManifestPatch(
            key: layout.versionObjectKey(collection: c, kind: .patch, sha256: patchSHA), size: p.bytes,
            sha256: patchSHA, fromRoot: Hex.encode(p.header.fromRoot),
            toRoot: Hex.encode(p.header.toRoot), pageCount: p.header.toPageCount,
            frames: Int(p.header.frameCount))
        let manifest = SnapshotManifest(
            collection: c, version: newVersion, parentVersion: current ?? target, createdAt: Date(),
            dimension: targetManifest.dimension, rowCount: rows, files: [], appliedRuns: [],
            rolledBackRuns: requeue ? [] : undone, requeuedRuns: requeue ? undone : [],
            note: "rollback to \(target): \(reason)", createdBy: creator,
            base: base, patches: (targetManifest.patches ?? []) + [patch],
            result: ManifestResult(
                pageSize: hashes.pageSize, pageCount: hashes.pageCount, pageRoot: Hex.encode(hashes.root),
                size: Int64(hashes.pageSize) * Int64(hashes.pageCount)))
        do {
            _ = try VersionPublisher(store: store, layout: layout).publish(
                objects: [
                    VersionPublisher.Object(
                        key: patch.key, path: patchPath, contentType: "application/octet-stream",
                        sha256: patchSHA)
                ],
                manifest: manifest, pointerCondition: condition)
        } catch is VersionPublisher.PointerConflict {
            throw StrataError(
                .conflict, object: pointerKey,
                message: "the pointer changed while the rollback was prepared (\(condition)); "
                    + "the pointer was not moved",
                fix: "check `snapctl versions \(c)` and run the rollback again")
        }
        return Result(
            collection: c, from: was, to: target, newVersion: newVersion, rows: rows,
            rolledBack: requeue ? [] : undone, requeued: requeue ? undone : [])
    }
}
