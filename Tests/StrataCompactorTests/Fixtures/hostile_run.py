#!/usr/bin/env python3
"""Writes a hostile or broken run for the compactor's quarantine tests.

usage: hostile_run.py OUT_DIR RUN_ID COLLECTION KIND DIM
  KIND: nan | dimension | traversal | symlink | both | notgzip | wrongrun
Writes OUT_DIR/delta.tar.gz and OUT_DIR/record.json. The record's size and SHA-256 match the
bundle, so the compactor gets past the checksum and meets the problem itself.
"""
import hashlib, io, json, os, sqlite3, struct, sys, tarfile, time

out, run_id, collection, kind, dim = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
os.makedirs(out, exist_ok=True)
delta = os.path.join(out, "delta.sqlite3")
bundle = os.path.join(out, "delta.tar.gz")

def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()

db = sqlite3.connect(delta)
db.executescript("""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE upserts(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT);
CREATE TABLE deletes(id TEXT PRIMARY KEY);
""")
vec = [0.5] * dim
if kind == "nan":
    vec[1] = float("nan")
db.execute("INSERT INTO upserts VALUES (?, ?, ?, ?)", ("hostile-1", struct.pack("<%df" % dim, *vec), "doc", None))
db.execute("INSERT INTO upserts VALUES (?, ?, ?, ?)", ("hostile-2", struct.pack("<%df" % dim, *[0.25] * dim), "doc", None))
if kind == "both":
    db.execute("INSERT INTO deletes VALUES ('hostile-2')")
meta_run = "19990101T000000000Z-000000000000" if kind == "wrongrun" else run_id
db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "strata-delta"), ("format_version", "1"),
               ("collection", collection), ("run_id", meta_run), ("dimension", str(dim))])
db.commit()
upserts = db.execute("SELECT count(*) FROM upserts").fetchone()[0]
deletes = db.execute("SELECT count(*) FROM deletes").fetchone()[0]
db.close()

manifest = json.dumps({"format": "strata-delta-bundle", "format_version": 1, "run_id": meta_run,
                       "collection": collection, "dimension": dim, "upserts": upserts, "deletes": deletes,
                       "files": [{"name": "delta.sqlite3", "size": os.path.getsize(delta), "sha256": sha(delta)}]},
                      sort_keys=True).encode()
if kind == "notgzip":
    with open(bundle, "wb") as f:
        f.write(b"this is not a gzip stream at all, just text pretending to be a delta\n" * 10)
else:
    with tarfile.open(bundle, "w:gz") as tar:
        if kind == "traversal":
            tar.add(delta, arcname="../../delta.sqlite3")
        else:
            tar.add(delta, arcname="delta.sqlite3")
        if kind == "symlink":
            info = tarfile.TarInfo("manifest.json")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(manifest), 0, 0o644
            tar.addfile(info, io.BytesIO(manifest))

created = time.strftime("%Y-%m-%dT%H:%M:%S", time.strptime(run_id[:15], "%Y%m%dT%H%M%S")) + ".%sZ" % run_id[15:18]
record = {"format": "strata-compaction-run", "format_version": 1, "run_id": run_id, "created_at": created,
          "labels": {"kind": kind},
          "collections": [{"collection": collection, "delta_key": "%s/delta/%s/delta.tar.gz" % (collection, run_id),
                           "size": os.path.getsize(bundle), "sha256": sha(bundle), "upserts": upserts,
                           "deletes": deletes, "dimension": dim}]}
with open(os.path.join(out, "record.json"), "w") as f:
    json.dump(record, f, sort_keys=True)
