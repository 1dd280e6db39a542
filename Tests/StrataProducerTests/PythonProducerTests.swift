import Foundation
import StrataBundle
import StrataCore
import StrataCrypto
import StrataDelta
import StrataFileStore
import StrataTestSupport
import XCTest

/// A producer written in Python from Docs/FORMATS.md alone (sqlite3, tarfile, json): its delta,
/// bundle and run record must be accepted by the Strata readers the compactor uses.
final class PythonProducerTests: XCTestCase {
    /// The example of Docs/FORMATS.md ("A producer in Python"), with the upload replaced by
    /// writing into a file store's directory (object key = path under the root).
    static let example = #"""
        import hashlib, io, json, math, os, secrets, sqlite3, struct, sys, tarfile, time

        def new_run_id():
            t = time.time()
            return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + "%03dZ-" % (int(t * 1000) % 1000) + secrets.token_hex(6)

        def write_delta(path, collection, run_id, rows, deletes):
            """rows: (id, [float], document or None, metadata dict or None); later rows win."""
            db = sqlite3.connect(path)
            db.executescript("""
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE upserts(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT);
                CREATE TABLE deletes(id TEXT PRIMARY KEY);
            """)
            dim = len(rows[0][1]) if rows else 0
            for id, vec, doc, meta in rows:
                assert id and len(vec) == dim and all(math.isfinite(x) for x in vec)
                db.execute("DELETE FROM deletes WHERE id = ?", (id,))
                db.execute("INSERT OR REPLACE INTO upserts VALUES (?, ?, ?, ?)",
                           (id, struct.pack("<%df" % dim, *vec), doc, None if meta is None else json.dumps(meta)))
            for id in deletes:
                db.execute("DELETE FROM upserts WHERE id = ?", (id,))
                db.execute("INSERT OR REPLACE INTO deletes VALUES (?)", (id,))
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("format", "strata-delta"), ("format_version", "1"), ("collection", collection),
                ("run_id", run_id), ("dimension", str(dim))])
            db.commit()
            upserts = db.execute("SELECT count(*) FROM upserts").fetchone()[0]
            deletes = db.execute("SELECT count(*) FROM deletes").fetchone()[0]
            db.close()
            return dim, upserts, deletes

        def sha256_file(path):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return h.hexdigest()

        def write_bundle(delta_path, bundle_path, collection, run_id, dim, upserts, deletes):
            manifest = json.dumps({
                "format": "strata-delta-bundle", "format_version": 1, "run_id": run_id,
                "collection": collection, "dimension": dim, "upserts": upserts, "deletes": deletes,
                "files": [{"name": "delta.sqlite3", "size": os.path.getsize(delta_path),
                           "sha256": sha256_file(delta_path)}]}, sort_keys=True).encode()
            with tarfile.open(bundle_path, "w:gz") as tar:
                tar.add(delta_path, arcname="delta.sqlite3")
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(manifest))

        def run_record(run_id, prefix, deltas, labels):
            # deltas: (collection, bundle_path, dim, upserts, deletes)
            ms = int(run_id[15:18])
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.strptime(run_id[:15], "%Y%m%dT%H%M%S")) + ".%03dZ" % ms
            return json.dumps({
                "format": "strata-compaction-run", "format_version": 1, "run_id": run_id, "created_at": created,
                "labels": labels,
                "collections": [{"collection": c, "delta_key": f"{prefix}{c}/delta/{run_id}/delta.tar.gz",
                                 "size": os.path.getsize(b), "sha256": sha256_file(b),
                                 "upserts": u, "deletes": d, "dimension": dim}
                                for c, b, dim, u, d in sorted(deltas)]}, sort_keys=True).encode()

        # --- the test's job: two collections, published into a file store's root ---
        root, work = sys.argv[1], sys.argv[2]
        run_id, prefix = new_run_id(), ""
        deltas = []
        for collection, rows, dels in [
            ("lines", [("l1", [0.5, -1.0, 2.0], "Total 12.00", {"page": 1, "conf": 0.98, "bold": False}),
                       ("l0", [1.0, 1.0, 1.0], None, None),
                       ("l1", [0.25, 0.5, 0.75], "TOTAL 12.00", {"page": 1})], ["gone"]),
            ("words", [("w1", [1.0, 2.0], "TOTAL", {"line_id": "l1"})], []),
        ]:
            os.makedirs(f"{work}/{collection}")
            delta = f"{work}/{collection}/delta.sqlite3"
            dim, u, d = write_delta(delta, collection, run_id, rows, dels)
            bundle = f"{work}/{collection}/delta.tar.gz"
            write_bundle(delta, bundle, collection, run_id, dim, u, d)
            deltas.append((collection, bundle, dim, u, d))
        # Upload every bundle first (e.g. boto3 put_object), then the record with IfNoneMatch="*".
        for c, b, *_ in deltas:
            key = f"{prefix}{c}/delta/{run_id}/delta.tar.gz"
            os.makedirs(os.path.dirname(f"{root}/{key}"), exist_ok=True)
            with open(b, "rb") as src, open(f"{root}/{key}", "wb") as dst:
                dst.write(src.read())
        os.makedirs(f"{root}/{prefix}runs", exist_ok=True)
        with open(f"{root}/{prefix}runs/{run_id}.json", "xb") as f:
            f.write(run_record(run_id, prefix, deltas, {"image_id": "img-7"}))
        print(run_id)
        """#

    func testPythonProducerIsAccepted() throws {
        let dir = TempDir(prefix: "strata-python")
        let root = dir.file("store")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let out = try TestPaths.run(["python3", "-c", Self.example, root, dir.file("work")])
        XCTAssertEqual(out.status, 0, out.stderr)
        let runId = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(Identifiers.isValid(runId), runId)

        let store = try FileStore(root: URL(fileURLWithPath: root))
        let layout = Layout()
        let key = layout.runRecordKey(runId)
        let record = try RunRecord.decode(try store.getData(key).data, key: key, layout: layout)
        XCTAssertEqual(record.labels, ["image_id": "img-7"])
        XCTAssertEqual(record.collections.map(\.collection), ["lines", "words"])
        XCTAssertNotNil(record.createdDate)
        XCTAssertEqual(Identifiers.date(of: runId), record.createdDate)

        var got: [String: [DeltaRow]] = [:]
        for d in record.collections {
            let local = TempDir(prefix: "strata-python-read")
            try store.get(d.key, toFile: local.file("b.tar.gz"))
            let (hex, size) = try SHA256.hexOfFile(atPath: local.file("b.tar.gz"))
            XCTAssertEqual(hex, d.sha256)
            XCTAssertEqual(size, d.size)
            let x = try BundleExtractor.extract(
                bundle: local.file("b.tar.gz"), into: local.file("x"),
                expectedRunId: runId, expectedCollection: d.collection, name: d.key)
            XCTAssertEqual(x.manifest.upserts, d.upserts)
            let reader = try DeltaReader(
                path: x.deltaPath,
                expecting: .init(
                    collection: d.collection, runId: runId,
                    dimension: d.dimension,
                    upserts: d.upserts, deletes: d.deletes))
            var rows: [DeltaRow] = []
            try reader.forEachUpsert { rows.append($0) }
            got[d.collection] = rows
            var deletes: [String] = []
            try reader.forEachDelete { deletes.append($0) }
            XCTAssertEqual(deletes, d.collection == "lines" ? ["gone"] : [])
        }
        XCTAssertEqual(
            got["lines"],
            [
                DeltaRow(id: "l0", embedding: [1, 1, 1]),
                DeltaRow(
                    id: "l1", embedding: [0.25, 0.5, 0.75], document: "TOTAL 12.00",
                    metadata: #"{"page":1}"#),
            ])
        XCTAssertEqual(
            got["words"],
            [
                DeltaRow(
                    id: "w1", embedding: [1, 2], document: "TOTAL",
                    metadata: #"{"line_id":"l1"}"#)
            ])
    }
}
