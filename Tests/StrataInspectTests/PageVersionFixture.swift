import Foundation
import StrataCore
import StrataCrypto
import StrataDelta
import StrataInspect
import StrataPages
import StrataTestSupport
import Synchronization
import XCTest

/// Publishes page versions (format 2) by hand until the compactor does: starts from the
/// collection's current whole-file version (made by the real compactor), runs SQL inside
/// StrataPages' PageCapture on a real SQLite file, uploads the real patch, writes the manifest
/// and moves the pointer. Keeps each version's file as SQLite wrote it, to compare against.
final class PageVersionBuilder {
    let store: any ObjectStore
    let layout: Layout
    let collection: String
    let dir = TempDir(prefix: "strata-pages-fixture")
    let dimension: Int
    private(set) var head: SnapshotManifest
    private(set) var base: ManifestBase
    private(set) var patches: [ManifestPatch] = []
    /// Local copy of each patch object, by key (for merges).
    private(set) var patchFiles: [String: String] = [:]
    /// The file SQLite wrote for each version.
    private(set) var expected: [String: String] = [:]
    private var working: String
    private var hashes: PageHashList
    private var counter = 0

    /// Starts from the version the pointer names: a whole-file version (its snapshot.sqlite3 is the
    /// base), or a page version the compactor made (its base and chain continue).
    init(store: any ObjectStore, layout: Layout, collection: String) throws {
        self.store = store
        self.layout = layout
        self.collection = collection
        let v = try Pointer.read(from: store, layout: layout, collection: collection)!.version
        head = try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: v)
        dimension = head.dimension
        working = dir.file("working.sqlite3")
        startedFromWholeFile = !head.isPageVersion
        if let b = head.base {
            var materializer = VersionMaterializer(store: store, layout: layout)
            try materializer.materialize(head, to: working, hashList: dir.file("working.pagehashes"), scratch: dir.path)
            hashes = try PageHashList.open(path: dir.file("working.pagehashes"))
            base = b
            patches = head.patches ?? []
            for (i, p) in patches.enumerated() {
                let path = dir.file("existing-\(i).strpatch")
                _ = try store.get(p.key, toFile: path)
                patchFiles[p.key] = path
            }
        } else {
            let key = layout.versionFileKey(collection: collection, version: v, file: SnapshotFormat.fileName)
            _ = try store.get(key, toFile: working)
            hashes = try PageHashList.build(database: working, to: dir.file("working.pagehashes"))
            let file = head.file(SnapshotFormat.fileName)!
            base = ManifestBase(
                key: key, size: file.size, sha256: file.sha256, pageSize: hashes.pageSize,
                pageCount: hashes.pageCount, pageRoot: Hex.encode(hashes.root))
        }
        expected[v] = dir.file("expected-\(v).sqlite3")
        try FileManager.default.copyItem(atPath: working, toPath: expected[v]!)
    }

    /// Whether the first version was a whole-file version (format 1) rather than a page version.
    let startedFromWholeFile: Bool

    var version: String { head.version }

    static func blobHex(_ v: [Float]) -> String {
        var bytes: [UInt8] = []
        for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return Hex.encode(bytes)
    }

    func vector(_ seed: Int) -> [Float] { (0..<dimension).map { Float((seed &* 31 &+ $0 &* 7) % 97) / 8 } }

    /// Upserts `rows` new rows (ids `p{n}-{i}`), overwrites `overwrite` given ids, deletes `deletes`,
    /// as one capture; publishes the version (patch appended to the chain).
    @discardableResult
    func publish(rows: Int = 50, overwrite: [String] = [], deletes: [String] = [], movePointer: Bool = true) throws
        -> String
    {
        counter += 1
        let n = counter
        let next = Identifiers.make(after: head.version)
        let patchPath = dir.file("patch-\(n).strpatch")
        let before = present
        let result = try PageCapture.capture(database: working, hashes: hashes, patch: patchPath) { db in
            try db.execute("BEGIN")
            // Snapshot format 2 (row writers and tombstones) names each row's writer; format 1 has no such columns.
            var columns = Set<String>()
            let info = try db.prepare("PRAGMA table_info(embeddings)")
            while try info.step() { if let name = info.columnText(1) { columns.insert(name) } }
            let writer = columns.contains("run_id")
            let runId = "fixture-\(next)"
            let runAt = StrataJSON.iso8601(Date())
            for i in 0..<rows {
                try db.execute(
                    "INSERT OR REPLACE INTO embeddings(id, embedding, document, metadata"
                        + (writer ? ", run_id, run_created_at" : "") + ") VALUES "
                        + "('p\(n)-\(i)', x'\(Self.blobHex(vector(n * 1000 + i)))', 'doc \(n)-\(i) "
                        + String(repeating: "x", count: 200) + "', '{\"n\":\(n)}'"
                        + (writer ? ", '\(runId)', '\(runAt)'" : "") + ")")
            }
            for id in overwrite {
                try db.execute(
                    "UPDATE embeddings SET embedding = x'\(Self.blobHex(vector(n * 7919)))', "
                        + "document = 'overwritten \(n)'"
                        + (writer ? ", run_id = '\(runId)', run_created_at = '\(runAt)'" : "") + " WHERE id = '\(id)'")
            }
            for id in deletes {
                try db.execute("DELETE FROM embeddings WHERE id = '\(id)'")
                if writer {
                    try db.execute(
                        "INSERT OR REPLACE INTO tombstones(id, run_id, run_created_at) VALUES "
                            + "('\(id)', '\(runId)', '\(runAt)')")
                }
            }
            let gone = Set(deletes).filter { before.contains($0) }.count
            try db.execute(
                "INSERT INTO applied_runs(run_id, version, applied_at, upserts, deletes, new_ids, "
                    + "deleted_existing) VALUES ('fixture-\(next)', '\(next)', '2026-12-01T00:00:00Z', "
                    + "\(rows + overwrite.count), \(deletes.count), \(rows), \(gone))")
            try db.execute("UPDATE meta SET value = '\(next)' WHERE key = 'version'")
            try db.execute("UPDATE meta SET value = (SELECT count(*) FROM embeddings) WHERE key = 'row_count'")
            try db.execute("COMMIT")
        }
        let s = result.patch
        // The manifest's SHA-256 is the whole object's (the summary's is the trailer's: the bytes before it).
        let sha = try SHA256.hexOfFile(atPath: patchPath).hex
        let key = layout.versionObjectKey(collection: collection, kind: .patch, sha256: sha)
        _ = try store.put(key, file: patchPath)
        patchFiles[key] = patchPath
        patches.append(
            ManifestPatch(
                key: key, size: s.bytes, sha256: sha, fromRoot: Hex.encode(s.header.fromRoot),
                toRoot: Hex.encode(s.header.toRoot), pageCount: s.header.toPageCount,
                frames: Int(s.header.frameCount)))
        let deleted = Set(deletes).filter { before.contains($0) }.count
        applied = [
            AppliedRun(
                runId: "fixture-\(next)", upserts: rows + overwrite.count, deletes: deletes.count,
                newIds: rows, deletedExisting: deleted)
        ]
        return try writeVersion(next, resultSHA: nil, movePointer: movePointer)
    }

    /// What the next manifest says it applied (the counts verify's history check adds up).
    private var applied: [AppliedRun] = []

    private var present: Set<String> {
        guard let db = try? Database(path: working, mode: .readOnlyImmutable),
            let s = try? db.prepare("SELECT id FROM embeddings")
        else { return [] }
        var ids = Set<String>()
        while (try? s.step()) == true { if let id = s.columnText(0) { ids.insert(id) } }
        return ids
    }

    /// Publishes the current file as a new base (uploaded whole, content-addressed): no patches.
    @discardableResult
    func newBase() throws -> String {
        let (sha, size) = try SHA256.hexOfFile(atPath: working)
        let key = layout.versionObjectKey(collection: collection, kind: .base, sha256: sha)
        _ = try store.put(key, file: working)
        base = ManifestBase(
            key: key, size: size, sha256: sha, pageSize: hashes.pageSize, pageCount: hashes.pageCount,
            pageRoot: Hex.encode(hashes.root))
        patches = []
        return try writeVersion(Identifiers.make(after: head.version), resultSHA: sha, movePointer: true)
    }

    /// Replaces the chain by one merged patch (PagePatchChain.merge) and publishes a version with it.
    @discardableResult
    func mergeChain() throws -> String {
        let out = dir.file("merged-\(counter).strpatch")
        let s = try PagePatchChain.merge(
            patches.map { PagePatchSource(path: patchFiles[$0.key]!, object: $0.key) }, to: out)
        let sha = try SHA256.hexOfFile(atPath: out).hex
        let key = layout.versionObjectKey(collection: collection, kind: .patch, sha256: sha)
        _ = try store.put(key, file: out)
        patchFiles[key] = out
        patches = [
            ManifestPatch(
                key: key, size: s.bytes, sha256: sha, fromRoot: Hex.encode(s.header.fromRoot),
                toRoot: Hex.encode(s.header.toRoot), pageCount: s.header.toPageCount,
                frames: Int(s.header.frameCount))
        ]
        return try writeVersion(Identifiers.make(after: head.version), resultSHA: nil, movePointer: true)
    }

    private func writeVersion(_ v: String, resultSHA: String?, movePointer: Bool) throws -> String {
        let db = try Database(path: working, mode: .readOnlyImmutable)
        let rows = Int(try db.scalarInt("SELECT count(*) FROM embeddings") ?? 0)
        try db.close()
        let size = Int64(hashes.pageSize) * Int64(hashes.pageCount)
        let m = SnapshotManifest(
            collection: collection, version: v, parentVersion: head.version, createdAt: Date(), dimension: dimension,
            rowCount: rows, files: [], appliedRuns: applied, createdBy: head.createdBy, base: base,
            patches: patches,
            result: ManifestResult(
                pageSize: hashes.pageSize, pageCount: hashes.pageCount,
                pageRoot: Hex.encode(hashes.root), size: size, sha256: resultSHA))
        _ = try store.put(
            layout.manifestKey(collection: collection, version: v), data: try StrataJSON.encoder().encode(m))
        if movePointer { _ = try store.put(layout.pointerKey(collection), data: Pointer.body(version: v)) }
        head = m
        applied = []
        expected[v] = dir.file("expected-\(v).sqlite3")
        try FileManager.default.copyItem(atPath: working, toPath: expected[v]!)
        return v
    }
}

/// Counts what a reader downloads: GETs by key.
final class CountingStore: ObjectStore, Sendable {
    let inner: any ObjectStore
    private let _gets = Mutex<[String]>([])
    var gets: [String] { _gets.withLock { $0 } }

    init(_ inner: any ObjectStore) { self.inner = inner }

    func reset() { _gets.withLock { $0 = [] } }
    var location: String { inner.location }
    func head(_ key: String) throws -> ObjectInfo? { try inner.head(key) }
    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        _gets.withLock { $0.append(key) }
        return try inner.get(key, toFile: path, range: range)
    }
    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        _gets.withLock { $0.append(key) }
        return try inner.getData(key)
    }
    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        try inner.put(key, body: body, condition: condition, options: options)
    }
    func delete(_ key: String) throws { try inner.delete(key) }
    func delete(keys: [String]) throws -> [DeleteFailure] { try inner.delete(keys: keys) }
    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try inner.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
    }
}

func filesEqual(_ a: String, _ b: String) -> Bool {
    FileManager.default.contentsEqual(atPath: a, andPath: b)
}
