"""Producer benchmark: `snapctl produce` throughput (write + bundle + upload), wall time and peak RSS.

Exec'd by Scripts/bench.py (`python3 Scripts/bench.py --only producer`), which calls
bench(weed, work, lines, measure, best, snapctl). Inputs are generated here (fixed seed, ids like
the receipts' `IMAGE#uuid#RECEIPT#00001#LINE#00001`, six-decimal floats as embedding dumps
usually look); references are measured in the same run on the same bytes: `cp` and `sha256sum`
of the NDJSON file, and `snapctl --version` (process start-up).

Stores: a file:// store in the work directory always; SeaweedFS as well when
`snapctl store mb --store s3://bench-producer` works with its credentials (it does not until S3
is wired into snapctl; the output then says so).
"""
import json, os, random, shutil, subprocess, uuid

CASES = [(1_000, 384), (1_000, 1_536), (100_000, 384), (100_000, 1_536)]
SEED = 20261121
BUCKET = "bench-producer"
# Targets: a typical OCR job is about 1,000 line embeddings at dimension 384 (about 4 MB of NDJSON).
TARGET_SMALL = (1_000, 384, 0.15, 40.0)  # rows, dimension, wall s, peak RSS MiB
TARGET_LARGE_RSS = 64.0                  # peak RSS MiB for 100,000 rows


# MARK: input

def _row_head(k, images):
    image = images[k // 200]
    receipt = (k // 50) % 4 + 1
    line = k % 50 + 1
    return ('{"id":"IMAGE#%s#RECEIPT#%05d#LINE#%05d","embedding":[' % (image, receipt, line)).encode()


def _row_tail(k, images):
    image = images[k // 200]
    receipt = (k // 50) % 4 + 1
    line = k % 50 + 1
    return ('],"document":"LINE %d TOTAL %d.%02d","metadata":{"image_id":"%s","receipt_id":%d,"line_id":%d,'
            '"confidence":0.%02d}}\n' % (line, k % 997, k % 100, image, receipt, line, 50 + k % 50)).encode()


def write_ndjson(path, rows, dim, seed=SEED):
    """Writes `rows` upserts of dimension `dim`: values in (-1, 1) with six decimals. Returns
    (bytes, generator name). numpy when present (fast); otherwise plain Python (slow for the
    largest case, same format)."""
    r = random.Random(seed)
    images = [str(uuid.UUID(int=r.getrandbits(128), version=4)) for _ in range(rows // 200 + 1)]
    try:
        import numpy as np
    except ImportError:
        np = None
    with open(path, "wb", buffering=1 << 20) as f:
        if np is None:
            for k in range(rows):
                vals = ",".join("%.6f" % (r.random() * 2 - 1) for _ in range(dim))
                f.write(_row_head(k, images) + vals.encode() + _row_tail(k, images))
            return os.path.getsize(path), "python"
        rng = np.random.default_rng(seed)
        digits = np.frombuffer(b"0123456789", dtype=np.uint8)
        block = 256
        for start in range(0, rows, block):
            n = min(block, rows - start)
            v = rng.integers(-999_999, 1_000_000, size=(n, dim))
            a = np.abs(v)
            # Fixed 10-byte fields "-0.dddddd," with byte 0 where a positive value has no sign;
            # the zeros are dropped per row.
            field = np.empty((n, dim, 10), dtype=np.uint8)
            field[:, :, 0] = np.where(v < 0, ord("-"), 0)
            field[:, :, 1] = ord("0")
            field[:, :, 2] = ord(".")
            for pos in range(8, 2, -1):
                field[:, :, pos] = digits[a % 10]
                a //= 10
            field[:, :, 9] = ord(",")
            flat = field.reshape(n, dim * 10)
            for i in range(n):
                row = flat[i]
                f.write(_row_head(start + i, images) + row[row != 0].tobytes()[:-1] + _row_tail(start + i, images))
    return os.path.getsize(path), "numpy"


# MARK: stores

def _stores(weed, work, snapctl):
    """(name, url, env, note) for each store to measure against."""
    stores = [("file", "file://" + os.path.join(work, "producer-store"), {}, None)]
    env = dict(os.environ)
    env.update(weed.env)
    mb = subprocess.run([snapctl, "store", "mb", "--store", "s3://" + BUCKET], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ls = mb.returncode == 0 and subprocess.run(
        [snapctl, "store", "ls", "--store", "s3://" + BUCKET], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode == 0
    if ls:
        stores.append(("SeaweedFS", "s3://" + BUCKET, dict(weed.env), None))
        note = None
    else:
        why = (mb.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        note = ("SeaweedFS not measured: `snapctl store mb --store s3://%s` failed (%s); "
                "the file:// store stands in until S3 is wired into snapctl." % (BUCKET, why))
    return stores, note


def _clear(url):
    if url.startswith("file://"):
        shutil.rmtree(url[len("file://"):], ignore_errors=True)


# MARK: the benchmark

def bench(weed, work, lines, measure, best, snapctl):
    stores, note = _stores(weed, work, snapctl)
    workdir = os.path.join(work, "producer-work")
    os.makedirs(workdir, exist_ok=True)

    startup = best(5, [snapctl, "--version"])
    rows_out = []   # (case, store, runs, producer result, ndjson bytes, bundle bytes, cp, sha)
    gen_name = "?"
    for rows, dim in CASES:
        src = os.path.join(work, "lines-%d-%d.ndjson" % (rows, dim))
        size, gen_name = write_ndjson(src, rows, dim)
        dst = os.path.join(work, "copy.ndjson")
        rm = lambda: os.path.exists(dst) and os.remove(dst)
        small = rows <= 1_000
        n_ref = 5 if small else 2
        cp = best(n_ref, ["cp", src, dst], before=rm)
        rm()
        sha = best(n_ref, ["sha256sum", src])
        for name, url, env, _ in stores:
            argv = [snapctl, "produce", "--store", url, "--collection", "lines", "--input", src,
                    "--work-dir", workdir, "--log-level", "warning", "--json"]
            n = 5 if small else (2 if dim <= 384 else 1)
            r = best(n, argv, env, before=lambda u=url: _clear(u))
            runs = json.loads(r[2])
            bundle = sum(d["size"] for run in runs for d in run["deltas"])
            rows_out.append(((rows, dim), name, len(runs), r, size, bundle, cp, sha))
            _clear(url)
        os.remove(src)

    lines.append("### Producer: `snapctl produce`, one collection, NDJSON to a published run\n")
    lines.append("Write + bundle + upload: parse and validate the NDJSON, write the SQLite delta, gzip it "
                 "into the bundle, upload it, HEAD-check it, write the run record. Inputs: six-decimal floats "
                 "in (-1, 1), OCR-style ids, document and metadata per row (fixed seed, %s generator); "
                 "default settings (50,000 rows per run, stored gzip). Best of 5 runs for 1,000 rows, "
                 "2 for 100,000 x 384, 1 for 100,000 x 1536; references on the same file.\n" % gen_name)
    if note:
        lines.append("Note: " + note + "\n")
    lines.append("| rows x dim | NDJSON MiB | store | runs | wall s | rows/s | NDJSON MiB/s | peak RSS MiB "
                 "| bundle MiB | `cp` s | `sha256sum` s | vs `cp` | vs `sha256sum` |")
    lines.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (rows, dim), store, runs, r, size, bundle, cp, sha in rows_out:
        lines.append("| %s x %d | %.1f | %s | %d | %.3f | %s | %.0f | %.1f | %.1f | %.3f | %.3f | %.1fx | %.1fx |" % (
            "{:,}".format(rows), dim, size / 2**20, store, runs, r[0], "{:,.0f}".format(rows / r[0]),
            size / 2**20 / r[0], r[1], bundle / 2**20, cp[0], sha[0], r[0] / cp[0], r[0] / sha[0]))
    lines.append("")
    lines.append("Process start-up floor: `snapctl --version` %.3f s wall, %.1f MiB peak RSS.\n"
                 % (startup[0], startup[1]))

    lines.append("Targets:\n")
    rows_t, dim_t, wall_t, rss_t = TARGET_SMALL
    for (rows, dim), store, runs, r, size, *_ in rows_out:
        if (rows, dim) == (rows_t, dim_t):
            ok = r[0] <= wall_t and r[1] <= rss_t
            lines.append("- %s rows x %d (%.1f MB NDJSON), %s store: %.3f s wall (target <= %.2f s), %.1f MiB "
                         "peak RSS (target <= %.0f MiB): **%s**" % (
                             "{:,}".format(rows), dim, size / 1e6, store, r[0], wall_t, r[1], rss_t,
                             "met" if ok else "MISSED"))
    for (rows, dim), store, runs, r, *_ in rows_out:
        if rows >= 100_000:
            lines.append("- %s rows x %d, %s store: %.1f MiB peak RSS (target < %.0f MiB): **%s**" % (
                "{:,}".format(rows), dim, store, r[1], TARGET_LARGE_RSS,
                "met" if r[1] < TARGET_LARGE_RSS else "MISSED"))
    lines.append("")
    shutil.rmtree(workdir, ignore_errors=True)
