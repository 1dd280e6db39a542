import Foundation
import StrataCompactor
import StrataCore
import StrataFileStore
import StrataInspect
import StrataProducer
import StrataTestSupport

/// A row as a test writes it.
struct FixtureRow {
    var id: String
    var embedding: [Float]
    var document: String? = nil
    /// A flat JSON object, as text.
    var metadata: String? = nil
}

/// A file store with collections published the way production does it: NDJSON through the real
/// `RunProducer`, merged and published by the real `Compactor` (the pattern of the compactor
/// tests' CompactionWorld, copied so this target does not depend on that one).
final class QueryFixture {
    let dir = TempDir(prefix: "strata-query")
    let store: FileStore
    let layout = Layout()
    private var counter = 0

    init() throws {
        try FileManager.default.createDirectory(atPath: dir.path + "/store", withIntermediateDirectories: true)
        store = try FileStore(root: URL(fileURLWithPath: dir.path + "/store"))
    }

    var storeURL: String { "file://" + dir.path + "/store" }

    /// Produces one run with `rows` (and `deletes`) for `collection` and publishes it.
    /// Returns the new version.
    @discardableResult
    func publish(_ collection: String, rows: [FixtureRow], deletes: [String] = []) throws -> String {
        counter += 1
        let path = dir.file("in-\(counter).ndjson")
        var text = ""
        for r in rows {
            var obj: [String: Any] = ["id": r.id, "embedding": r.embedding.map { Double($0) }]
            if let d = r.document { obj["document"] = d }
            if let m = r.metadata { obj["metadata"] = try JSONSerialization.jsonObject(with: Data(m.utf8)) }
            text +=
                String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
                + "\n"
        }
        for id in deletes {
            text +=
                String(decoding: try JSONSerialization.data(withJSONObject: ["id": id, "delete": true]), as: UTF8.self)
                + "\n"
        }
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        var ps = ProducerSettings()
        ps.workDirectory = dir.path
        _ = try RunProducer(store: store, layout: layout, settings: ps)
            .produce(inputs: [ProducerInput(collection: collection, path: path, dimension: rows.first?.embedding.count)]
            )
        var s = CompactorSettings(compactorId: "query-test", host: "test")
        s.cacheMode = .s3
        s.workDirectory = dir.path
        let summary = try Compactor(store: store, layout: layout, settings: s).compact(collection: collection)
        guard let v = summary.newVersion else {
            throw StrataError(.refused, object: collection, message: "was not published: \(summary.outcome)")
        }
        return v
    }

    /// A downloaded copy of the pointer's snapshot file, read without Strata's reader.
    func snapshotFile(_ collection: String) throws -> String {
        let (p, _) = try store.getData(layout.pointerKey(collection))
        let version = try Pointer.parse(p, key: layout.pointerKey(collection))
        let into = dir.file("fetched")
        try FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: true)
        let path = into + "/\(collection)-\(version).sqlite3"
        var m = VersionMaterializer(store: store, layout: layout)
        try m.materialize(
            try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: version),
            to: path, hashList: nil, scratch: into)
        return path
    }
}
