"""Compactor benchmark, exec'd by Scripts/bench.py.

Base snapshots of 100,000 and 1,000,000 rows (dimension 384) are written directly in the
snapshot format with Python's sqlite3 (producing them through deltas would take far longer than
the compaction being measured), published with snapctl, and a first compaction fills the
compactor's cache. Then deltas of 1,000 and 10,000 rows (90% new ids, 10% overwrites, 1% deletes)
are compacted and timed per step, with peak RSS, and the same snapshot bytes go through `cp` and
`sha256sum` as the floor.
"""
import hashlib, json, os, random, sqlite3, struct, time

DIM = 384


def page_size(dim):
    """SnapshotFormat.pageSize(dimension:): two rows in 4 KiB, else one row per page."""
    row = 4 * dim + 256
    if 2 * row <= 4096 - 100:
        return 4096
    for size in (8192, 16384, 32768):
        if row <= size - 100:
            return size
    return 65536


# The snapshot format 2 schema, as SnapshotFormat.schema creates it (Sources/StrataDelta).
SCHEMA = """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT,
        run_id TEXT NOT NULL, run_created_at TEXT NOT NULL);
    CREATE TABLE tombstones(id TEXT PRIMARY KEY, run_id TEXT NOT NULL, run_created_at TEXT NOT NULL);
    CREATE INDEX tombstones_by_age ON tombstones(run_created_at);
    CREATE TABLE applied_runs(run_id TEXT PRIMARY KEY, version TEXT NOT NULL, applied_at TEXT NOT NULL,
        upserts INTEGER NOT NULL, deletes INTEGER NOT NULL, new_ids INTEGER NOT NULL,
        deleted_existing INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'applied', run_created_at TEXT,
        superseded INTEGER NOT NULL DEFAULT 0);
"""


def make_snapshot(path, rows, collection, version):
    """A format-2 snapshot as the compactor writes one: its page size, its schema, each row with its
    writer (one bulk run), rows in id order as deltas of OCR jobs append them."""
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.executescript("PRAGMA page_size = %d; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" % page_size(DIM))
    db.executescript(SCHEMA)
    rnd = random.Random(7)
    # 1,000 random vectors, varied per row in their first value: realistic sizes, cheap to make.
    pool = [[rnd.uniform(-1, 1) for _ in range(DIM)] for _ in range(1000)]
    run_id, created = "20200101T000000000Z-bulk00000001", "2020-01-01T00:00:00.000Z"
    def rowgen():
        for i in range(rows):
            v = pool[i % 1000]
            blob = struct.pack("<f", (i % 9973) / 9973.0) + struct.pack("<%df" % (DIM - 1), *v[1:])
            rid = "IMAGE#%08d#RECEIPT#00001#LINE#%05d" % (i // 20, i % 20)
            yield (rid, blob, "line %d of a receipt" % i, '{"line":%d,"receipt":%d}' % (i % 20, i // 20),
                   run_id, created)
    db.execute("BEGIN")
    db.executemany("INSERT INTO embeddings VALUES (?,?,?,?,?,?)", rowgen())
    db.execute("INSERT INTO applied_runs VALUES (?,?,?,?,0,?,0,'applied',?,0)",
               (run_id, version, created, rows, rows, created))
    db.executemany("INSERT INTO meta VALUES (?,?)", [("format", "strata-snapshot"), ("format_version", "2"),
                   ("collection", collection), ("dimension", str(DIM)), ("row_count", str(rows)),
                   ("version", version), ("parent_version", "")])
    db.execute("COMMIT")
    db.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def delta_ndjson(path, rows, base_rows, seed):
    """Half new ids, half overwrites of random existing rows (issue 9's delta shape)."""
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for j in range(rows):
            if j % 2:
                i = rnd.randrange(base_rows)
                rid = "IMAGE#%08d#RECEIPT#00001#LINE#%05d" % (i // 20, i % 20)
            else:
                rid = "NEW#%d#%d" % (seed, j)
            vec = ",".join("%.6f" % rnd.uniform(-1, 1) for _ in range(DIM))
            f.write('{"id":"%s","embedding":[%s],"document":"new line %d","metadata":{"seed":%d}}\n' % (rid, vec, j, seed))


def objects_bytes(snapctl, store, env, measure):
    """Bytes of every object of the collection's snapshots (the whole-file base version, bases and
    patches under objects/, manifests; nothing collected)."""
    out = measure([snapctl, "store", "ls", "bench/snapshot/", "--recursive", "--json"] + store, env)[2]
    return sum(int(json.loads(line).get("size", 0)) for line in out.splitlines() if line.strip())


WARM_ROUNDS = 16


def bench(weed, work, lines, measure, best, snapctl):
    env = dict(weed.env)
    env["STRATA_LOG_LEVEL"] = "warning"
    lines.append("### Compactor: page-patch versions (dimension %d), SeaweedFS on loopback\n" % DIM)
    lines.append("Each base is a format-2 snapshot as the compactor writes one (page size %d, rows in id order), "
                 "published as a whole-file version (the previous release's layout; `aws s3 cp` of that file is "
                 "the reference: what the previous release uploaded for every version). The first compaction "
                 "downloads it and builds its page-hash list. Then %d deltas of 1,000 rows (half new ids, half "
                 "overwrites of random rows) on a warm worker (`--cache-mode cache`), each a page patch on the "
                 "chain (Docs/design/0002; default policy: K = 8, patch share 0.5), one 10,000-row delta, and one "
                 "1,000-row delta on a one-shot compactor with an empty cache (`--cache-mode s3`: it materializes "
                 "base + chain). `uploaded` is every byte the round sent (patch or base, and the manifest).\n"
                 % (page_size(DIM), WARM_ROUNDS))
    lines.append("| base rows | round | delta rows | file MiB | wall s | base s | merge s | check s | upload s | publish s | published as | chain | uploaded MiB | % of file | downloaded MiB | peak RSS MiB |")
    lines.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    summary = []
    refs = []
    readers = []
    for base_rows in (100_000, 1_000_000):
        bucket = "bench-compact-%d" % base_rows
        store = ["--store", "s3://" + bucket]
        measure([snapctl, "store", "mb"] + store, env)
        snap = os.path.join(work, "base-%d.sqlite3" % base_rows)
        version = "20200101T000000000Z-%012d" % base_rows
        make_snapshot(snap, base_rows, "bench", version)
        size = os.path.getsize(snap)
        sha = sha256_file(snap)
        manifest = {"format": "strata-snapshot", "formatVersion": 1, "collection": "bench", "version": version,
                    "createdAt": "2020-01-01T00:00:00.000Z", "dimension": DIM, "rowCount": base_rows,
                    "files": [{"name": "snapshot.sqlite3", "size": size, "sha256": sha}], "appliedRuns": [],
                    "createdBy": {"compactorId": "bench", "host": "bench", "strataVersion": "bench"}}
        mpath = os.path.join(work, "manifest.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f)
        prefix = "bench/snapshot/timestamped/%s/" % version
        measure([snapctl, "store", "put", snap, prefix + "snapshot.sqlite3"] + store, env)
        measure([snapctl, "store", "put", mpath, prefix + "manifest.json"] + store, env)
        measure(["sh", "-c", "echo %s | %s store put - bench/snapshot/latest-pointer.txt --store s3://%s" % (version, snapctl, bucket)], env)
        # References in the same run: the previous release's per-version upload (the whole file), cp.
        aws = ["aws", "--endpoint-url", weed.endpoint, "s3", "cp", "--only-show-errors"]
        ref_up = best(2, aws + [snap, "s3://%s/reference/whole-file" % bucket], env)[0]
        copy = os.path.join(work, "copy.sqlite3")
        ref_cp = best(2, ["cp", snap, copy])[0]
        os.remove(copy)
        refs.append((base_rows, size, ref_up, ref_cp))
        os.remove(snap)
        cache = os.path.join(work, "cache-%d" % base_rows)
        warm_args = [snapctl, "compact", "--collection", "bench", "--cache-mode", "cache", "--cache-dir", cache, "--json"] + store
        cold_args = [snapctl, "compact", "--collection", "bench", "--cache-mode", "s3", "--json"] + store
        seed = [0]

        def round_(label, delta_rows, args):
            seed[0] += 1
            nd = os.path.join(work, "delta.ndjson")
            delta_ndjson(nd, delta_rows, base_rows, seed[0] + base_rows)
            measure([snapctl, "produce", "--collection", "bench", "--input", nd] + store, env)
            os.remove(nd)
            wall, rss, out = measure(args, env)
            s = json.loads(out)[0]
            assert s["outcome"] == "published", s
            sec = s["seconds"]
            fsize = os.path.getsize(os.path.join(cache, "bench", "snapshot.sqlite3")) if os.path.exists(
                os.path.join(cache, "bench", "snapshot.sqlite3")) else 0
            fsize = fsize or size
            lines.append("| %d | %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %d | %.2f | %.2f%% | %.0f | %.0f |" % (
                base_rows, label, delta_rows, fsize / 2**20, wall, sec.get("base", 0), sec.get("merge", 0),
                sec.get("check", 0), sec.get("upload", 0), sec.get("publish", 0), s.get("publishedAs", "-"),
                s.get("chainLength", 0), s["bytesUploaded"] / 2**20, 100.0 * s["bytesUploaded"] / fsize,
                s["bytesDownloaded"] / 2**20, rss))
            return wall, rss, s, fsize

        round_("first (whole-file base: hash list)", 1_000, warm_args)
        warm = [round_("warm %d" % k, 1_000, warm_args) for k in range(1, WARM_ROUNDS + 1)]
        big = round_("warm, 10k delta", 10_000, warm_args)
        cold = round_("cold (empty cache)", 1_000, cold_args)
        if base_rows == 100_000:
            readers.append(bench_readers(snapctl, store, env, measure, work, lambda: round_("one more version, for the readers", 1_000, warm_args)))
        fsize = cold[3]
        stored = objects_bytes(snapctl, store, env, measure)
        walls = sorted(w[0] for w in warm)
        per = sorted(100.0 * w[2]["bytesUploaded"] / w[3] for w in warm)
        mean = 100.0 * sum(w[2]["bytesUploaded"] for w in warm) / sum(w[3] for w in warm)
        summary.append((base_rows, walls[len(walls) // 2], walls[-1], big[0], cold[0], per[len(per) // 2], mean,
                        per[-1], max([w[1] for w in warm] + [big[1], cold[1]]), stored / fsize))
    lines.append("")
    lines.append("References, same run: the whole file uploaded with `aws s3 cp` (what every version cost before "
                 "page patches) and copied with `cp`.\n")
    lines.append("| base rows | file MiB | `aws s3 cp` upload s | `cp` s |")
    lines.append("| ---: | ---: | ---: | ---: |")
    for r in refs:
        lines.append("| %d | %.0f | %.2f | %.2f |" % (r[0], r[1] / 2**20, r[2], r[3]))
    lines.append("")
    lines.append("| base rows | warm 1k median s | warm 1k max s | 10k delta s | cold 1k s | bytes/version median %% | mean %% | max %% | peak RSS MiB | objects stored / file (base + %d versions, no gc) |" % (WARM_ROUNDS + 4))
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in summary:
        lines.append("| %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2fx |" % row)
    lines.append("")
    for r in readers:
        lines.append(r)
    lines.append("Targets (issue 9): 100k: warm <= 0.5 s, cold <= 3 s, bytes per version <= 5%; 1M: warm <= 1.0 s, "
                 "10k delta <= 2 s, bytes per version <= 1%, peak RSS <= 64 MiB flat; 10 retained versions at 1M "
                 "<= 1.3x one file; readers: a repeated query at 100k <= 0.35 s, `pull` after one new version "
                 "downloads about the patch.\n")


def bench_readers(snapctl, store, env, measure, work, new_version):
    """Readers through the cache: pull (cold, repeated, after one new version) and a repeated query."""
    renv = dict(env)
    renv["STRATA_CACHE_DIR"] = os.path.join(work, "reader-cache")
    out = os.path.join(work, "pulled.sqlite3")
    def pull(label):
        wall, rss, o = measure([snapctl, "pull", "bench", "--to", out, "--json"] + store, renv)
        j = json.loads(o)
        return "| %s | %.2f | %.2f | %d | %.0f |" % (label, wall, j.get("downloadedBytes", 0) / 2**20,
                                                     j.get("downloadedObjects", 0), rss)
    rows = [pull("`pull`, empty cache"), pull("`pull` again, same version")]
    _, _, s, _ = new_version()
    rows.append(pull("`pull` after one new version (its patch: %.2f MiB)" % (s["bytesUploaded"] / 2**20)))
    q = [snapctl, "query", "bench", "--id", "IMAGE#00000042#RECEIPT#00001#LINE#00003", "-k", "5", "--json"] + store
    measure(q, renv)
    wall, rss, _ = measure(q, renv)
    rows.append("| `query --id ... -k 5`, repeated (exact scan of every row) | %.2f | - | - | %.0f |" % (wall, rss))
    os.remove(out)
    return "\n".join(["Readers at 100,000 rows (`STRATA_CACHE_DIR` shared by the commands):\n",
                      "| what | wall s | downloaded MiB | objects | peak RSS MiB |",
                      "| --- | ---: | ---: | ---: | ---: |"] + rows + [""])
