import Foundation
import StrataCompactor
import StrataCore
import StrataDelta
import StrataInspect
import StrataProducer
import Synchronization
import XCTest

/// One row as a test expects to find it in a snapshot.
public struct ModelRow: Equatable, Sendable {
    public var embedding: [Float]
    public var document: String?
    /// Canonical JSON (sorted keys), so booleans and numbers compare as JSON, not as NSNumber.
    public var metadata: String?

    public init(embedding: [Float], document: String?, metadata: String?) {
        self.embedding = embedding
        self.document = document
        self.metadata = metadata
    }

    public static func canonical(_ object: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}

/// A store, a producer, and a reference model of what every collection must contain: the tests
/// apply the same operations to the model and through Strata, then compare.
public final class CompactionWorld: Sendable {
    public let store: any ObjectStore
    public let layout: Layout
    public let tmp = TempDir(prefix: "strata-world")
    public var model: [String: [String: ModelRow]] {
        get { state.withLock { $0.model } }
        set { state.withLock { $0.model = newValue } }
    }
    public let dimension: Int
    /// Producers may run on several threads (each on its own ids); the model is guarded.
    private struct State {
        var model: [String: [String: ModelRow]] = [:]
        var writers: [String: [String: String]] = [:]
        var counter = 0
    }
    private let state = Mutex(State())

    public init(store: any ObjectStore, layout: Layout = Layout(), dimension: Int = 8) {
        self.store = store
        self.layout = layout
        self.dimension = dimension
    }

    public func compactor(_ configure: (inout CompactorSettings) -> Void = { _ in }) -> Compactor {
        var s = CompactorSettings(compactorId: "test-\(UInt16.random(in: 0...UInt16.max))", host: "test")
        s.cacheMode = .s3
        s.workDirectory = tmp.path
        configure(&s)
        return Compactor(store: store, layout: layout, settings: s)
    }

    public enum Op: Sendable {
        case upsert(String, ModelRow)
        case delete(String)
    }

    public func vector(_ seed: Int) -> [Float] { (0..<dimension).map { Float((seed &* 31 &+ $0 &* 7) % 97) / 8 } }

    public func row(_ seed: Int, doc: String? = nil) -> ModelRow {
        ModelRow(
            embedding: vector(seed), document: doc ?? "document \(seed)",
            metadata: ModelRow.canonical(["seed": seed, "kind": seed % 2 == 0 ? "even" : "odd", "flag": seed % 3 == 0]))
    }

    /// Per collection and id, the run that last wrote it in the model: "created_at run_id"
    /// (created_at is fixed-width, so the strings sort as creation time, then run id).
    public var writers: [String: [String: String]] {
        get { state.withLock { $0.writers } }
        set { state.withLock { $0.writers = newValue } }
    }

    /// Writes NDJSON for `ops`, publishes it as one run (one delta per collection), and applies
    /// the same ops to the model where this run is later than the id's last writer (SPEC
    /// invariant 4: the model is the runs applied in creation order). `runId` (e.g. made earlier,
    /// to publish a late run) is passed to the producer. Returns the run id.
    @discardableResult
    public func produce(_ ops: [String: [Op]], labels: [String: String] = [:], runId: String? = nil) throws -> String {
        let n = state.withLock {
            $0.counter += 1
            return $0.counter
        }
        var inputs: [ProducerInput] = []
        var changes: [(String, String, ModelRow?)] = []
        for (collection, list) in ops.sorted(by: { $0.key < $1.key }) {
            let path = tmp.file("in-\(n)-\(collection).ndjson")
            let text = try Self.ndjson(list)
            for op in list {
                switch op {
                case .upsert(let id, let r): changes.append((collection, id, r))
                case .delete(let id): changes.append((collection, id, nil))
                }
            }
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            inputs.append(ProducerInput(collection: collection, path: path, dimension: dimension))
        }
        let producer = RunProducer(store: store, layout: layout)
        let runs = try producer.produce(inputs: inputs, labels: labels, runId: runId)
        let writer = runs[0].createdAt + " " + runs[0].runId
        state.withLock {
            for (c, id, r) in changes where writer > $0.writers[c]?[id] ?? "" {
                $0.model[c, default: [:]][id] = r
                $0.writers[c, default: [:]][id] = writer
            }
        }
        return runs[0].runId
    }

    /// The plain SQLite file of a version, whole-file or page version, as readers materialize it
    /// (every object checked against the manifest, the result against its page root).
    public func materialize(_ manifest: SnapshotManifest, to path: String) throws {
        var m = VersionMaterializer(store: store, layout: layout)
        let scratch = tmp.file("materialize-\(Identifiers.make())")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        unlink(path)
        try m.materialize(manifest, to: path, hashList: nil, scratch: scratch)
    }

    /// `materialize` of `collection`'s `version`.
    public func materialize(_ collection: String, version: String, to path: String) throws {
        try materialize(
            try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: version),
            to: path)
    }

    /// What the pointer's version holds, read with SQLite from a downloaded copy.
    public func published(_ collection: String) throws -> (
        manifest: SnapshotManifest, rows: [String: ModelRow], applied: [String]
    ) {
        let (p, _) = try store.getData(layout.pointerKey(collection))
        let version = try Pointer.parse(p, key: layout.pointerKey(collection))
        let mKey = layout.manifestKey(collection: collection, version: version)
        let manifest = try SnapshotManifest.decode(try store.getData(mKey).data, key: mKey)
        let path = tmp.file("published-\(collection)-\(version).sqlite3")
        try materialize(manifest, to: path)
        let db = try Database(path: path, mode: .readOnlyImmutable)
        var rows: [String: ModelRow] = [:]
        let s = try db.prepare("SELECT id, embedding, document, metadata FROM embeddings")
        while try s.step() {
            let blob = s.columnBytes(1)
            var e = [Float](repeating: 0, count: blob.count / 4)
            e.withUnsafeMutableBytes { $0.copyMemory(from: blob) }
            let meta = s.columnText(3).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }.map(
                ModelRow.canonical)
            rows[s.columnText(0)!] = ModelRow(embedding: e, document: s.columnText(2), metadata: meta)
        }
        var applied: [String] = []
        let a = try db.prepare("SELECT run_id FROM applied_runs ORDER BY run_id")
        while try a.step() { applied.append(a.columnText(0)!) }
        return (manifest, rows, applied)
    }

    /// Every version from the pointer back to the first, newest first.
    public func history(_ collection: String) throws -> [SnapshotManifest] {
        var out: [SnapshotManifest] = []
        let (p, _) = try store.getData(layout.pointerKey(collection))
        var next: String? = try Pointer.parse(p, key: layout.pointerKey(collection))
        while let v = next {
            let key = layout.manifestKey(collection: collection, version: v)
            let m = try SnapshotManifest.decode(try store.getData(key).data, key: key)
            out.append(m)
            next = m.parentVersion
        }
        return out
    }

    /// Run ids with a record naming `collection`.
    public func recordedRuns(_ collection: String) throws -> Set<String> {
        var ids = Set<String>()
        for o in try store.list(prefix: layout.runsPrefix) {
            let r = try RunRecord.decode(try store.getData(o.key).data, key: o.key)
            if r.delta(for: collection) != nil { ids.insert(r.runId) }
        }
        return ids
    }

    /// Along the pointer's history every recorded run was applied exactly once.
    public func assertEveryRunAppliedOnce(_ collection: String, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let applied = try history(collection).flatMap { $0.appliedRuns.map(\.runId) }
        XCTAssertEqual(applied.count, Set(applied).count, "a run was applied twice: \(applied)", file: file, line: line)
        XCTAssertEqual(
            Set(applied), try recordedRuns(collection), "applied runs vs recorded runs", file: file, line: line)
        XCTAssertEqual(
            Set(try published(collection).applied), Set(applied), "applied_runs table", file: file, line: line)
    }

    /// The published snapshot equals the model, and its manifest agrees.
    public func assertMatchesModel(_ collection: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (manifest, rows, _) = try published(collection)
        let expected = model[collection] ?? [:]
        XCTAssertEqual(manifest.rowCount, expected.count, "manifest row count", file: file, line: line)
        XCTAssertEqual(rows.count, expected.count, "rows in \(collection)", file: file, line: line)
        for (id, r) in expected {
            guard let got = rows[id] else {
                XCTFail("\(collection): missing \(id)", file: file, line: line)
                continue
            }
            XCTAssertEqual(got, r, "\(collection) row \(id)", file: file, line: line)
        }
        for id in rows.keys where expected[id] == nil {
            XCTFail("\(collection): unexpected row \(id)", file: file, line: line)
        }
    }
}

/// JSON string literal for an id (ids in tests are plain ASCII).
extension CompactionWorld {
    /// The producer's NDJSON input for `ops`: one line per upsert or delete, in order.
    public static func ndjson(_ ops: [Op]) throws -> String {
        var text = ""
        for op in ops {
            switch op {
            case .upsert(let id, let r):
                var obj: [String: Any] = ["id": id, "embedding": r.embedding.map { Double($0) }]
                if let d = r.document { obj["document"] = d }
                if let m = r.metadata { obj["metadata"] = try JSONSerialization.jsonObject(with: Data(m.utf8)) }
                text +=
                    String(
                        decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]),
                        as: UTF8.self) + "\n"
            case .delete(let id):
                text += "{\"id\":\(jsonQuote(id)),\"delete\":true}\n"
            }
        }
        return text
    }
}

public func jsonQuote(_ s: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
}
