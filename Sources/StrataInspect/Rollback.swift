import Foundation
import Logging
import StrataCore
import StrataCrypto
import StrataDelta

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
        guard let pointer = try locator.pointer(c) else {
            throw StrataError(.notFound, object: layout.pointerKey(c), message: "collection \(c) has no pointer to roll back")
        }
        guard target != pointer.version else {
            throw StrataError(.invalidInput, object: "version \(target)", message: "is already the pointer's version",
                              fix: "name an older version from `snapctl versions \(c)`")
        }
        let ledger = RunLedger(store: store, layout: layout)
        let (_, history) = try ledger.history(c)
        guard let index = history.firstIndex(where: { $0.version == target }) else {
            throw StrataError(.invalidInput, object: "version \(target)",
                              message: "is not in the history of \(c)'s pointer (\(pointer.version))",
                              fix: "choose a version listed by `snapctl versions \(c)`")
        }
        // Runs that the versions after the target processed; they lose their effect now.
        let undone = RunLedger.processed(Array(history[..<index])).subtracting(RunLedger.processed(Array(history[index...])))
            .sorted()

        let dir = workDirectory + "/strata-rollback-\(Identifiers.make())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let located = try locator.fetch(c, version: target, into: dir)  // verified against its manifest
        let newVersion = Identifiers.make(after: pointer.version)
        let db = try SnapshotDatabase.open(path: located.path, collection: c)
        let rows = try db.rowCount()
        guard rows == located.manifest.rowCount else {
            throw StrataError(.corrupt, object: "version \(target)", field: "row count",
                              message: "the file has \(rows) rows, its manifest says \(located.manifest.rowCount)")
        }
        try db.transaction {
            if !requeue { try db.recordRolledBack(runIds: undone, version: newVersion, at: Date()) }
            try db.setMeta(version: newVersion, parent: pointer.version, rowCount: rows)
        }
        guard try db.quickCheck() == "ok" else {
            throw StrataError(.corrupt, object: "version \(target)", message: "SQLite quick_check failed")
        }
        try db.close()

        let (sha, size) = try SHA256.hexOfFile(atPath: located.path)
        try store.put(layout.versionFileKey(collection: c, version: newVersion, file: SnapshotFormat.fileName),
                      file: located.path, condition: .ifNoneMatch, options: PutOptions(contentType: "application/vnd.sqlite3", sha256: sha))
        let manifest = SnapshotManifest(
            collection: c, version: newVersion, parentVersion: pointer.version, createdAt: Date(),
            dimension: located.manifest.dimension, rowCount: rows,
            files: [FileEntry(name: SnapshotFormat.fileName, size: size, sha256: sha)], appliedRuns: [],
            rolledBackRuns: requeue ? [] : undone, requeuedRuns: requeue ? undone : [],
            note: "rollback to \(target): \(reason)", createdBy: creator)
        try store.put(layout.manifestKey(collection: c, version: newVersion), data: try StrataJSON.encoder().encode(manifest),
                      condition: .ifNoneMatch, options: PutOptions(contentType: "application/json"))
        do {
            try store.put(layout.pointerKey(c), data: Pointer.body(version: newVersion), condition: .ifMatch(pointer.etag),
                          options: PutOptions(contentType: "text/plain"))
        } catch let e as StoreError where e.kind == .preconditionFailed {
            throw StrataError(.conflict, object: layout.pointerKey(c),
                              message: "a compactor published while the rollback was prepared; nothing was changed",
                              fix: "check `snapctl versions \(c)` and run the rollback again")
        }
        return Result(collection: c, from: pointer.version, to: target, newVersion: newVersion, rows: rows,
                      rolledBack: requeue ? [] : undone, requeued: requeue ? undone : [])
    }
}
