"""Run-record listing benchmark, exec'd by Scripts/bench.py (`--only records`).

A pass of `snapctl compactor` over a `runs/` holding many run records (default 100,000), on the
bench's loopback SeaweedFS and on the file store. The records are day-old records of another
collection ("words", as in RunWatermarkTests): valid run records (Docs/FORMATS.md, "Run record"),
never pending for the collection the worker compacts ("lines"), which has one fresh run.

Written directly, not through `snapctl produce` (one process per record would take hours): on
SeaweedFS with 32 parallel boto3 PUTs, on the file store as files in `<root>/runs/` (what
FileStore.put leaves there, without its per-file fsync). Each record's bytes are what RunRecord
encodes.

Measured from one long-lived worker (`--poll 3600`, passes started with POST /wake) and its
/metrics: the first pass (a full listing of `runs/`, every record read once), then a steady-state
pass after the watermark with one new run to apply (it lists from watermark - 15 min lookback:
only recent keys), then two idle passes with nothing new (the first is a full round; the next
knows nothing changed from the pointer and the listing). Seconds are from the wake (the process
start for the first pass) until strata_passes_total moves; requests are strata_store_requests_total
by operation.

Environment: BENCH_RECORDS (default 100000), BENCH_RECORDS_STORES (default s3,file).
"""
import concurrent.futures, json, os, random, shutil, signal, socket, subprocess, time, urllib.request

COLLECTION = "lines"
OTHER = "words"
DIM = 8


def _ns():
    # Helpers shared with the scaling section (scrape, totals), loaded from its file.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_scaling.py")
    ns = {"__name__": "bench_scaling"}
    exec(compile(open(path).read(), path, "exec"), ns)
    return ns


def stamp(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y%m%dT%H%M%S", t) + "%03dZ" % (ms % 1000)


def created(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def records(n):
    """(key, bytes) of n day-old run records of OTHER, 100 ms apart (about 2.8 h of runs)."""
    start = int((time.time() - 86400) * 1000)
    rnd = random.Random(7)
    for i in range(n):
        ms = start + i * 100
        run_id = "%s-%012x" % (stamp(ms), rnd.getrandbits(48))
        body = {
            "format": "strata-compaction-run", "format_version": 1, "run_id": run_id, "created_at": created(ms),
            "collections": [{"collection": OTHER, "delta_key": "%s/delta/%s/delta.sqlite3" % (OTHER, run_id),
                             "size": 10, "sha256": "ab" * 32, "upserts": 1, "deletes": 0, "dimension": DIM}],
            "labels": {},
        }
        yield "runs/%s.json" % run_id, json.dumps(body, separators=(",", ":")).encode()


def write_records(kind, target, n, weed):
    t0 = time.perf_counter()
    if kind == "file":
        os.makedirs(os.path.join(target, "runs"), exist_ok=True)
        for key, data in records(n):
            with open(os.path.join(target, key), "wb") as f:
                f.write(data)
    else:
        import boto3, botocore.config
        s3 = boto3.client("s3", endpoint_url=weed.endpoint, aws_access_key_id=weed.env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=weed.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
                          config=botocore.config.Config(max_pool_connections=32, retries={"max_attempts": 5}))
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            for f in [pool.submit(s3.put_object, Bucket=target, Key=k, Body=d, IfNoneMatch="*")
                      for k, d in records(n)]:
                f.result()
    return time.perf_counter() - t0


def produce(snapctl, store, env, work, tag):
    path = os.path.join(work, "records-%s.ndjson" % tag)
    rnd = random.Random(tag)
    with open(path, "w") as f:
        for i in range(10):
            f.write('{"id":"%s-%d","embedding":[%s]}\n' % (tag, i, ",".join("%.4f" % rnd.uniform(-1, 1)
                                                                           for _ in range(DIM))))
    subprocess.run([snapctl, "produce", "--collection", COLLECTION, "--input", path] + store, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    os.remove(path)


def run_store(kind, n, weed, work, snapctl, measure, ns):
    env = dict(os.environ)
    env.update(weed.env)
    env["STRATA_LOG_LEVEL"] = "warning"
    if kind == "file":
        root = os.path.join(work, "records-file-store")
        store, target = ["--store", "file://" + root], root
    else:
        target = "bench-records"
        store = ["--store", "s3://" + target]
        measure([snapctl, "store", "mb"] + store, env)
    write_s = write_records(kind, target, n, weed)
    produce(snapctl, store, env, work, "first")

    port = ns["free_port"]()
    log_path = os.path.join(work, "records-%s.log" % kind)
    log = open(log_path, "w")
    argv = [snapctl, "compactor", "--collections", COLLECTION, "--poll", "3600",
            "--metrics-addr", "127.0.0.1:%d" % port] + store
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    scrape, total, by_label = ns["scrape"], ns["total"], ns["by_label"]

    def wait_passes(k, since, limit=3600):
        while True:
            try:
                s = scrape(port)
                if total(s, "strata_passes_total") >= k:
                    return s, time.perf_counter() - since
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit("bench records: the worker exited (%d); see %s" % (proc.returncode, log_path))
            if time.perf_counter() - since > limit:
                raise SystemExit("bench records: pass %d did not end in %d s" % (k, limit))
            time.sleep(0.02)

    def wake():
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/wake" % port, method="POST"),
                               timeout=10).read()

    passes = []
    try:
        prev, secs = wait_passes(1, t0)
        passes.append(("first pass (full listing)", secs, by_label(prev, "strata_store_requests_total", "operation"),
                       total(prev, "strata_runs_applied_total")))
        for label, new_run in [("steady pass, one new run", True), ("first idle pass (a full round)", False),
                               ("idle pass, nothing new since the last", False)]:
            if new_run:
                produce(snapctl, store, env, work, "later")
            k = total(prev, "strata_passes_total") + 1
            t = time.perf_counter()
            wake()
            cur, secs = wait_passes(k, t)
            a, b = by_label(prev, "strata_store_requests_total", "operation"), \
                by_label(cur, "strata_store_requests_total", "operation")
            passes.append((label, secs, {op: b[op] - a.get(op, 0) for op in b if b[op] - a.get(op, 0)},
                           total(cur, "strata_runs_applied_total") - total(prev, "strata_runs_applied_total")))
            prev = cur
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    if kind == "file":
        shutil.rmtree(root, ignore_errors=True)
    return {"store": kind, "records": n, "write_s": write_s, "passes": passes}


def bench(weed, work, lines, measure, best, snapctl):
    n = int(os.environ.get("BENCH_RECORDS", "100000"))
    kinds = os.environ.get("BENCH_RECORDS_STORES", "s3,file").split(",")
    ns = _ns()
    with open("/proc/loadavg") as f:
        load_before = " ".join(f.read().split()[:3])
    results = [run_store(k, n, weed, work, snapctl, measure, ns) for k in kinds]
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    lines.append("### Run records: a compactor pass with %d day-old records in `runs/`\n" % n)
    lines.append("One worker (`snapctl compactor --collections %s --poll 3600`), passes started by POST /wake; "
                 "requests from its /metrics. Load average before/after: %s / %s.\n" % (COLLECTION, load_before,
                                                                                         load_after))
    lines.append("| store | pass | seconds | runs applied | requests | by operation |")
    lines.append("| --- | --- | ---: | ---: | ---: | --- |")
    for r in results:
        name = "SeaweedFS (loopback)" if r["store"] == "s3" else "file store"
        for label, secs, ops, applied in r["passes"]:
            lines.append("| %s | %s | %.2f | %d | %d | %s |" % (
                name, label, secs, applied, sum(ops.values()),
                ", ".join("%s %d" % (k, v) for k, v in sorted(ops.items()))))
    lines.append("")
    lines.append("Records written (not measured as Strata work): %s.\n" % ", ".join(
        "%s %.0f s" % (r["store"], r["write_s"]) for r in results))
    out = os.environ.get("BENCH_RECORDS_JSON", os.path.join(os.getcwd(), "bench-out", "records.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": [load_before, load_after],
                   "results": results}, f, indent=1)
