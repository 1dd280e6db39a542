"""Scaling benchmark, exec'd by Scripts/bench.py (`--only scaling`).

Runs applied per second by 1, 2 and 4 cooperating `snapctl compactor --cooperate` workers on 16
collections in one bucket of the bench's private loopback SeaweedFS. Producers go first: each
collection gets a backlog of small runs (100 rows x 384 dims each, `snapctl produce --max-rows 100`
splits one input into runs), larger than the workers can apply in the window, so the workers never
wait for input and the producers take no CPU from them while they are measured (this machine has 2
cores). Each worker applies at most one run per version (`--max-runs 1`): every run applied is a
version published, the per-run floor of the protocol.

Counting: the workers' /metrics (strata_runs_applied_total, strata_store_requests_total by
operation, bytes) are scraped at the start and end of a fixed window after a warm-up; after the
workers stop, the applied runs are counted again from the store (`snapctl runs --json`), and that
count must match what the workers' counters say they applied in their lifetime (up to the rounds
finished between the last scrape and the stop). CPU seconds come from /proc for the workers, the
SeaweedFS process and the whole machine.

Environment: BENCH_SCALING_WINDOW (seconds, default 40), BENCH_SCALING_WORKERS (default 1,2,4),
BENCH_SCALING_BACKLOG (runs per collection, default 60); BENCH_SCALING_LOGS=DIR keeps the workers'
logs (and each window's start and end, Unix seconds) in DIR, BENCH_SCALING_LOG_LEVEL (default
warning) sets their level (info logs every round). Results also go to
bench-out/scaling.json for Scripts/scaling_model.py --calibrate.
"""
import json, os, random, re, shutil, signal, socket, subprocess, time, urllib.request

DIM = 384
ROWS_PER_RUN = 100
COLLECTIONS = ["scale%02d" % i for i in range(16)]
TICK = os.sysconf("SC_CLK_TCK")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)\s*$')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    """The worker's /metrics as {(name, frozenset(labels)): value}; the Prometheus text format."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise ValueError("worker on port %d: unparsable /metrics line %r" % (port, line))
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(samples, name, **want):
    return sum(v for (n, l), v in samples.items()
               if n == name and all((k, w) in l for k, w in want.items()))


def by_label(samples, name, label):
    res = {}
    for (n, l), v in samples.items():
        if n == name:
            key = dict(l).get(label, "")
            res[key] = res.get(key, 0) + v
    return res


def cpu_seconds(pid):
    """utime + stime of a process and its reaped children, from /proc/PID/stat."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / TICK, sum(v) / TICK


def write_input(path, runs):
    rnd = random.Random(11)
    pool = [",".join("%.5f" % rnd.uniform(-1, 1) for _ in range(DIM)) for _ in range(64)]
    with open(path, "w") as f:
        for i in range(runs * ROWS_PER_RUN):
            f.write('{"id":"ROW#%07d","embedding":[%.5f,%s],"document":"row %d","metadata":{"run":%d}}\n'
                    % (i, (i % 9973) / 9973.0, pool[i % 64].split(",", 1)[1], i, i // ROWS_PER_RUN))


def run_config(workers, weed, work, snapctl, measure, source, backlog, window):
    env = dict(os.environ)
    env.update(weed.env)
    env["STRATA_LOG_LEVEL"] = os.environ.get("BENCH_SCALING_LOG_LEVEL", "warning")
    bucket = "bench-scale-%d" % workers
    store = ["--store", "s3://" + bucket]
    measure([snapctl, "store", "mb"] + store, env)
    # The backlog: two producer processes at a time (2 cores), one input per collection.
    t0 = time.perf_counter()
    queue = list(COLLECTIONS)
    running = []
    while queue or running:
        while queue and len(running) < 2:
            c = queue.pop(0)
            running.append(subprocess.Popen([snapctl, "produce", "--collection", c, "--input", source,
                                             "--max-rows", str(ROWS_PER_RUN)] + store, env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        p = running.pop(0)
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit("bench scaling: snapctl produce failed (%d): %s" % (p.returncode, err.decode()[-2000:]))
    produce_s = time.perf_counter() - t0
    produced = backlog * len(COLLECTIONS)

    procs, ports, logs = [], [], []
    for i in range(workers):
        port = free_port()
        log = open(os.path.join(work, "worker-%d-%d.log" % (workers, i)), "w")
        argv = [snapctl, "compactor", "--collections", ",".join(COLLECTIONS), "--cooperate", "--poll", "0.2",
                "--max-runs", "1", "--lease-seconds", "15", "--cache-mode", "cache",
                "--cache-dir", os.path.join(work, "cache-%d-%d" % (workers, i)),
                "--metrics-addr", "127.0.0.1:%d" % port] + store
        procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))
        ports.append(port)
        logs.append(log)
    weed_pid = int(open(os.path.join(weed.dir, "weed.pid")).read())
    try:
        deadline = time.time() + 30
        while True:  # every metrics server up
            try:
                [scrape(p) for p in ports]
                break
            except OSError:
                if time.time() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("bench scaling: a worker did not serve /metrics; see %s" % work)
                time.sleep(0.2)
        time.sleep(8)  # warm-up: heartbeats seen by every worker, first versions and caches made
        a = [scrape(p) for p in ports]
        cpu_a = [cpu_seconds(p.pid) for p in procs]
        weed_a = cpu_seconds(weed_pid)
        busy_a, all_a = machine_busy()
        t_a, t_a_wall = time.perf_counter(), time.time()
        time.sleep(window)
        b = [scrape(p) for p in ports]
        t_b, t_b_wall = time.perf_counter(), time.time()
        cpu_b = [cpu_seconds(p.pid) for p in procs]
        weed_b = cpu_seconds(weed_pid)
        busy_b, all_b = machine_busy()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
        keep = os.environ.get("BENCH_SCALING_LOGS")
        if keep:  # the workers' logs outlive the bench's temporary folder
            os.makedirs(keep, exist_ok=True)
            for log in logs:
                shutil.copy(log.name, keep)
            with open(os.path.join(keep, "window-%d.json" % workers), "w") as f:
                json.dump({"start": t_a_wall, "end": t_b_wall}, f)
    secs = t_b - t_a

    def delta(name, **want):
        return sum(total(y, name, **want) - total(x, name, **want) for x, y in zip(a, b))

    applied = delta("strata_runs_applied_total")
    per_worker = [total(y, "strata_runs_applied_total") - total(x, "strata_runs_applied_total") for x, y in zip(a, b)]
    ops = {}
    for x, y in zip(a, b):
        bx, byy = by_label(x, "strata_store_requests_total", "operation"), by_label(y, "strata_store_requests_total", "operation")
        for k in byy:
            ops[k] = ops.get(k, 0) + byy[k] - bx.get(k, 0)
    failed_requests = delta("strata_store_requests_total", outcome="error")
    lifetime = sum(total(y, "strata_runs_applied_total") for y in b)
    # The store's own count, after the stop.
    _, _, out = measure([snapctl, "runs", "--json"] + store, env)
    rows = json.loads(out)
    in_store = sum(1 for r in rows if r["status"] == "applied")
    pending = sum(1 for r in rows if r["status"] == "pending")
    other = sorted(set(r["status"] for r in rows) - {"applied", "pending"})
    if in_store < lifetime or in_store > lifetime + workers * 2:
        raise SystemExit("bench scaling: %d workers: the store has %d applied runs but the workers counted %d"
                         % (workers, in_store, lifetime))
    if pending == 0:
        raise SystemExit("bench scaling: %d workers drained the backlog of %d runs; raise BENCH_SCALING_BACKLOG"
                         % (workers, produced))
    # Per collection too: rendezvous hashing splits 16 collections unevenly (10/6 is common with 2
    # workers), and the worker with fewer drains its backlog first; after that it polls idle
    # collections every 0.2 s, each round taking the lease and reading the pointer and publishing
    # nothing (about 9 requests), which inflated requests per run once (Docs/SCALING.md).
    drained = sorted(c for c in COLLECTIONS
                     if not any(r["collection"] == c and r["status"] == "pending" for r in rows))
    if drained:
        raise SystemExit("bench scaling: %d workers: %s ran out of pending runs in the window (their idle rounds "
                         "would count as per-run cost); raise BENCH_SCALING_BACKLOG" % (workers, ", ".join(drained)))
    # Object sizes by kind: the model's bytes per run (delta + record) and per version (snapshot).
    snap_bytes, kinds = 0, {}
    _, _, listing = measure([snapctl, "store", "ls", "--recursive", "--json"] + store, env)
    for l in listing.splitlines():
        o = json.loads(l)
        if "key" not in o:
            continue
        key, size = o["key"], o.get("size", 0)
        parts = key.split("/")
        kind = parts[0] if parts[0] in ("runs", ".strata-workers") or len(parts) < 2 else parts[1]
        if key.endswith(".sqlite3") and "/snapshot/" in key:
            kind = "snapshot file"
            if key.startswith("scale00/"):
                snap_bytes = max(snap_bytes, size)
        count, size_sum = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, size_sum + size)
    return {
        "workers": workers, "collections": len(COLLECTIONS), "window_s": secs, "runs_applied": applied,
        "runs_per_s": applied / secs, "per_worker": per_worker, "requests": ops,
        "requests_total": sum(ops.values()), "failed_requests": failed_requests,
        "bytes_up": delta("strata_bytes_uploaded_total"), "bytes_down": delta("strata_bytes_downloaded_total"),
        "lease_skips": delta("strata_lease_skips_total"), "conflicts": delta("strata_pointer_conflicts_total"),
        "passes": delta("strata_passes_total"), "worker_cpu_s": sum(cpu_b) - sum(cpu_a),
        "weed_cpu_s": weed_b - weed_a, "machine_busy_s": busy_b - busy_a, "machine_all_s": all_b - all_a,
        "produced": produced, "produce_s": produce_s, "applied_in_store": in_store, "pending_after": pending,
        "other_states": other, "largest_snapshot_bytes": snap_bytes, "objects": kinds,
    }


def bench(weed, work, lines, measure, best, snapctl):
    window = float(os.environ.get("BENCH_SCALING_WINDOW", "40"))
    counts = [int(x) for x in os.environ.get("BENCH_SCALING_WORKERS", "1,2,4").split(",")]
    backlog = int(os.environ.get("BENCH_SCALING_BACKLOG", "60"))
    source = os.path.join(work, "scaling-input.ndjson")
    write_input(source, backlog)
    results = [run_config(k, weed, work, snapctl, measure, source, backlog, window) for k in counts]
    os.remove(source)
    cores = os.cpu_count()
    base = results[0]["runs_per_s"] / results[0]["workers"]
    lines.append("### Scaling: cooperating workers on 16 collections, SeaweedFS on loopback\n")
    lines.append("Each collection starts with a backlog of %d runs of %d rows x %d dims; each worker applies one "
                 "run per version (`--max-runs 1`). Window %.0f s after an 8 s warm-up; counts from the workers' "
                 "/metrics, checked against `snapctl runs` after the stop. CPU: %d cores shared with other jobs; "
                 "`ours` is the workers' and SeaweedFS's CPU, `machine busy` all cores' busy share.\n" % (backlog, ROWS_PER_RUN, DIM, window, cores))
    lines.append("| workers | runs applied | runs/s | vs 1 worker | runs per CPU s (ours) | cores ours | worker CPU s | "
                 "SeaweedFS CPU s | machine busy | requests/run | MiB up/run | lease skips | conflicts | "
                 "per worker |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        busy = r["machine_busy_s"] / max(r["machine_all_s"], 1e-9)
        ours = r["worker_cpu_s"] + r["weed_cpu_s"]
        lines.append("| %d | %d | %.2f | %.2fx | %.1f | %.2f | %.1f | %.1f | %.0f%% | %.1f | %.2f | %d | %d | %s |" % (
            r["workers"], r["runs_applied"], r["runs_per_s"], r["runs_per_s"] / max(results[0]["runs_per_s"], 1e-9),
            r["runs_applied"] / max(ours, 1e-9), ours / r["window_s"], r["worker_cpu_s"], r["weed_cpu_s"], busy * 100,
            r["requests_total"] / max(r["runs_applied"], 1), r["bytes_up"] / 2**20 / max(r["runs_applied"], 1),
            r["lease_skips"], r["conflicts"], " ".join("%d" % x for x in r["per_worker"])))
    lines.append("")
    ops = sorted(set(k for r in results for k in r["requests"]))
    lines.append("Store requests per applied run, by operation (strata_store_requests_total):\n")
    lines.append("| workers | " + " | ".join(ops) + " |")
    lines.append("| ---: | " + " | ".join("---:" for _ in ops) + " |")
    for r in results:
        n = max(r["runs_applied"], 1)
        lines.append("| %d | " % r["workers"] + " | ".join("%.2f" % (r["requests"].get(k, 0) / n) for k in ops) + " |")
    lines.append("")
    lines.append("Backlog: %s runs produced per configuration in %s s; pending after the stop: %s; largest "
                 "snapshot %s MiB; failed store requests in the windows: %s.\n" % (
                     "/".join(str(r["produced"]) for r in results), "/".join("%.0f" % r["produce_s"] for r in results),
                     "/".join(str(r["pending_after"]) for r in results),
                     "/".join("%.1f" % (r["largest_snapshot_bytes"] / 2**20) for r in results),
                     "/".join("%d" % r["failed_requests"] for r in results)))
    out = os.environ.get("BENCH_SCALING_JSON", os.path.join(os.getcwd(), "bench-out", "scaling.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": cores,
                   "rows_per_run": ROWS_PER_RUN, "dim": DIM, "results": results}, f, indent=1)
