import Foundation
import StrataCompactor
import StrataCore
import StrataCrypto
import StrataDelta
import StrataFileStore
import StrataInspect
import StrataProducer
import StrataS3
import StrataTestSupport
import XCTest

/// A bucket on the test SeaweedFS where tests produce and compact with the library (as
/// CompactionWorld does in the compactor's tests), break things with direct store writes, and run
/// the real `snapctl verify` on it.
final class VerifyWorld {
    let store: any ObjectStore
    /// `--store` for snapctl: `s3://bucket` on the test SeaweedFS, or `file://dir`.
    let storeURL: String
    let layout = Layout()
    let tmp = TempDir(prefix: "strata-verify-world")
    let dimension: Int
    private var counter = 0
    private let fileRoot: TempDir?

    /// On a fresh bucket of the test SeaweedFS, or with `fileStore` on a fresh file store.
    init(_ hint: String, dimension: Int = 8, fileStore: Bool = false) throws {
        if fileStore {
            let root = TempDir(prefix: "strata-verify-\(hint)")
            store = try FileStore(root: URL(fileURLWithPath: root.path))
            storeURL = "file://" + root.path
            fileRoot = root
        } else {
            let s3 = try S3TestStore.make(hint)
            store = s3
            storeURL = "s3://\(s3.configuration.bucket)"
            fileRoot = nil
        }
        self.dimension = dimension
    }

    /// The environment snapctl needs for this store (credentials and endpoint for SeaweedFS).
    func environment() throws -> [String: String] {
        fileRoot == nil ? try SeaweedFS.shared().awsEnvironment : [:]
    }

    /// Runs snapctl with `args` on this store (`STRATA_STORE`, so printed commands run as printed).
    func snapctl(_ args: [String], env: [String: String] = [:]) throws -> TestPaths.ProcessResult {
        try TestPaths.run(
            [TestPaths.snapctl] + args,
            environment: try environment().merging(["STRATA_STORE": storeURL, "STRATA_LOG_FORMAT": "json"]) { $1 }
                .merging(env) { $1 })
    }

    func vector(_ seed: Int) -> [Double] { (0..<dimension).map { Double((seed &* 31 &+ $0 &* 7) % 97) / 8 } }

    /// Publishes one run: upserts `ids` (with vectors from their index) and deletes `deletes`.
    @discardableResult
    func produce(_ collection: String, ids: [String], deletes: [String] = []) throws -> String {
        counter += 1
        let path = tmp.file("in-\(counter)-\(collection).ndjson")
        var text = ""
        for (i, id) in ids.enumerated() {
            let obj: [String: Any] = [
                "id": id, "embedding": vector(i + counter * 100), "document": "document \(i)",
                "metadata": ["seed": i, "kind": i % 2 == 0 ? "even" : "odd"],
            ]
            text +=
                String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
                + "\n"
        }
        for id in deletes {
            text +=
                String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: ["id": id, "delete": true], options: [.sortedKeys]),
                    as: UTF8.self) + "\n"
        }
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let runs = try RunProducer(store: store, layout: layout)
            .produce(inputs: [ProducerInput(collection: collection, path: path, dimension: dimension)])
        return runs[0].runId
    }

    func ids(_ prefix: String, _ n: Int) -> [String] { (0..<n).map { "\(prefix)\($0)" } }

    @discardableResult
    func compact(_ collection: String) throws -> CompactionSummary {
        var s = CompactorSettings(compactorId: "verify-test", host: "test")
        s.cacheMode = .s3
        s.workDirectory = tmp.path
        return try Compactor(store: store, layout: layout, settings: s).compact(collection: collection)
    }

    func pointer(_ c: String) throws -> String {
        try Pointer.parse(try store.getData(layout.pointerKey(c)).data, key: layout.pointerKey(c))
    }

    func manifest(_ c: String, _ version: String) throws -> SnapshotManifest {
        let key = layout.manifestKey(collection: c, version: version)
        return try SnapshotManifest.decode(try store.getData(key).data, key: key)
    }

    /// The object that holds what `version` added: a whole-file version's file, a page version's
    /// last patch, or its base when it has none.
    func snapshotKey(_ c: String, _ version: String) -> String {
        guard let m = try? manifest(c, version), m.isPageVersion else {
            return layout.versionFileKey(collection: c, version: version, file: SnapshotFormat.fileName)
        }
        return m.objectKeys(layout: layout).last!
    }

    /// Rewrites the pointer's manifest in place (what a careless script or a bad restore does).
    func editManifest(_ c: String, _ edit: (inout SnapshotManifest) -> Void) throws {
        let v = try pointer(c)
        var m = try manifest(c, v)
        edit(&m)
        try store.put(layout.manifestKey(collection: c, version: v), data: try StrataJSON.encoder().encode(m))
    }

    /// Publishes a hand-made version on top of the pointer's: its snapshot with `sql` applied, a
    /// manifest that matches the file (then `edit`), and the pointer moved to it. No runs applied.
    @discardableResult
    func publishHandMade(_ c: String, sql: [String], edit: (inout SnapshotManifest) -> Void = { _ in }) throws -> String
    {
        let base = try pointer(c)
        let bm = try manifest(c, base)
        let path = tmp.file("handmade-\(UUID().uuidString).sqlite3")
        try store.get(snapshotKey(c, base), toFile: path)
        let version = Identifiers.make(after: base)
        let db = try Database(path: path, mode: .readWriteCreate)
        for s in sql { try db.execute(s) }
        let rows = Int(try db.scalarInt("SELECT count(*) FROM embeddings") ?? 0)
        try db.execute("UPDATE meta SET value = '\(version)' WHERE key = 'version'")
        try db.execute("UPDATE meta SET value = '\(rows)' WHERE key = 'row_count'")
        try db.close()
        let (sha, size) = try SHA256.hexOfFile(atPath: path)
        try store.put(snapshotKey(c, version), file: path)
        var m = SnapshotManifest(
            collection: c, version: version, parentVersion: base, createdAt: Date(), dimension: bm.dimension,
            rowCount: rows, files: [FileEntry(name: SnapshotFormat.fileName, size: size, sha256: sha)],
            appliedRuns: [], createdBy: VersionCreator(compactorId: "hand", host: "laptop", strataVersion: "0"))
        edit(&m)
        try store.put(layout.manifestKey(collection: c, version: version), data: try StrataJSON.encoder().encode(m))
        try store.put(layout.pointerKey(c), data: Pointer.body(version: version))
        return version
    }

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var report: VerifyReport?

        func findings(_ check: String, _ collection: String? = nil) -> [VerifyFinding] {
            report?.findings(check, collection: collection) ?? []
        }

        func status(of check: String, _ collection: String? = nil) -> VerifyStatus? {
            findings(check, collection).map(\.status).max()
        }

        /// The finding's message, evidence and hint as one text, to look for words in.
        func text(_ check: String, _ collection: String? = nil) -> String {
            findings(check, collection).map { f in
                ([f.message, f.hint ?? ""] + f.evidence.entries.map { "\($0.key)=\($0.value)" }).joined(separator: "\n")
            }.joined(separator: "\n")
        }
    }

    /// Runs `snapctl verify` on this bucket; with `json` the report is parsed.
    func verify(_ args: [String] = [], json: Bool = true, env: [String: String] = [:], name: String? = nil) throws
        -> Outcome
    {
        let base = try environment()
        let argv = [TestPaths.snapctl, "verify", "--store", storeURL] + args + (json ? ["--json"] : [])
        let r = try TestPaths.run(
            argv,
            environment: base.merging(["STRATA_LOG_FORMAT": "json"]) { $1 }
                .merging(env) { $1 })
        var report: VerifyReport? = nil
        if json {
            report = try? StrataJSON.decoder().decode(VerifyReport.self, from: Data(r.stdout.utf8))
            XCTAssertNotNil(
                report, "verify --json printed no report: \(r.stdout.prefix(2000)) \(r.stderr.prefix(2000))")
        }
        if let name, let dir = ProcessInfo.processInfo.environment["STRATA_VERIFY_TRANSCRIPTS"] {
            // The runbook's examples are pasted from these: the same run, as a person sees it.
            let t =
                json
                ? try TestPaths.run(Array(argv.dropLast()), environment: base.merging(env) { $1 }) : r
            let shown = (["snapctl", "verify", "--store", storeURL] + args)
                .map { $0.contains(where: { " {}#".contains($0) }) ? "'\($0)'" : $0 }.joined(separator: " ")
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? "$ \(shown)\n\(t.stdout)(exit \(t.status))\n".write(
                toFile: dir + "/\(name).txt", atomically: true, encoding: .utf8)
        }
        return Outcome(status: r.status, stdout: r.stdout, stderr: r.stderr, report: report)
    }
}
