#!/usr/bin/env python3
"""A model of Strata's S3 requests, bytes, latency and cost, calibrated on the loopback bench.

    python3 Scripts/scaling_model.py                      # the projection, with the defaults below
    python3 Scripts/scaling_model.py --calibrate bench-out/scaling.json   # take the request mix,
                                      # CPU per version and object sizes from a `make bench` run
    python3 Scripts/scaling_model.py --check bench-out/scaling.json       # predict the loopback
                                      # runs/s from the same figures and compare with the measured

Stdlib only. Every assumption is a named parameter in ASSUME (printed as a table); prices are AWS
S3 Standard list prices for us-east-1 as assumed on 2026-12-01: PUT/COPY/POST/LIST $0.005 per
1,000, GET (and HEAD) $0.0004 per 1,000, storage $0.023 per GB-month, in-region transfer free.
DELETE is free. A conditional write (If-None-Match / If-Match) is billed as a PUT.

The model of one compaction round (one version published), per collection:
  requests = per_version(op) + runs_per_version * per_run(op)
  bytes up = snapshot bytes (full copy) or patch_fraction * snapshot bytes (page patches, O(delta))
  wall     = CPU + sum of the sequential request latencies + bytes / per-worker bandwidth
and per applied run, the producer's PUTs (delta + record) and bytes.
"""
import argparse, json, math, sys

PRICES = {"put": 0.005 / 1000, "get": 0.0004 / 1000, "gb_month": 0.023, "date": "2026-12-01 (AWS S3 Standard, us-east-1)"}
# Which price class each strata_store_requests_total operation falls in.
PRICE_CLASS = {"get": "get", "head": "get", "put": "put", "put_if_none_match": "put", "put_if_match": "put",
               "list": "put", "copy": "put", "multipart": "put", "delete": "free", "delete_batch": "free"}

ASSUME = {
    # scale of the projection (issue 11)
    "collections": 1000, "producers": 10000, "vectors": 1e9, "dim": 384,
    "rows_per_run": 100, "runs_per_producer_per_min": 1.0,
    # bytes (the defaults are the loopback bench's; --calibrate replaces them)
    "bytes_per_vector_in_snapshot": 1700.0,   # SQLite row: 384 float32 + id + document + metadata + b-tree
    "delta_bytes_per_run": 223787.0,          # one 100-row delta object
    "record_bytes_per_run": 413.0,            # runs/{run_id}.json
    "patch_fraction": 0.02,                   # page patches: a version uploads ~1-3% of the file
    "versions_kept": 3,                       # full copies kept by gc (plus pinned ones)
    # compaction rounds
    "publish_interval_s": 60.0,               # a collection publishes at most this often (poll/batching)
    "poll_s": 10.0,                           # worker pass interval; an idle collection costs a GET and a LIST a pass
    "multipart_part_bytes": 64 * 2**20,       # one PUT per part above the multipart threshold
    # S3 latency in one region (first byte, per request), and one worker's bandwidth to S3
    "lat_get_s": 0.025, "lat_put_s": 0.050, "lat_list_s": 0.060, "lat_head_s": 0.020,
    "worker_mib_s": 200.0,
    # CPU per version beyond the transfers, seconds per row merged (from the compactor bench)
    "cpu_per_version_s": 0.031, "cpu_per_row_s": 2e-6,
    # shard sizing for one huge collection
    "shard_max_vectors": 5e6,
}

# Requests per version published and per run applied, by operation, as the worker issues them.
# Defaults from the loopback bench (one run per version); --calibrate replaces them.
PER_VERSION = {"get": 2.0, "head": 1.0, "list": 2.06, "put_if_match": 1.02, "put_if_none_match": 3.0, "delete": 1.0}
PER_RUN_WORKER = {"get": 2.0}            # the run's record and its delta (assumed; the bench has one run per version)
PER_RUN_PRODUCER = {"put": 1.0, "put_if_none_match": 1.0}   # the delta, then the create-only record
PER_IDLE_ROUND = {"get": 1.0, "list": 1.0}   # the pointer, runs/ from the watermark (no lease: Compactor.stillIdle)


PER_VERSION_DEFAULT = dict(PER_VERSION)


def calibrate(path):
    """Per-version request mix, CPU and object sizes from bench-out/scaling.json (one run per version)."""
    data = json.load(open(path))
    r = max(data["results"], key=lambda x: x["runs_applied"])
    n = max(r["runs_applied"], 1)
    mix = {op: c / n for op, c in r["requests"].items()}
    per_version = dict(mix)
    for op, c in PER_RUN_WORKER.items():  # one run per version: split the run's part out
        per_version[op] = max(per_version.get(op, 0) - c, 0)
    # A pass lists each collection even when it has nothing to do; in the bench every pass found work.
    PER_VERSION.clear()
    PER_VERSION.update(per_version)
    one = data["results"][0]
    ASSUME["cpu_per_version_s"] = one["worker_cpu_s"] / max(one["runs_applied"], 1)
    objs = r.get("objects", {})
    if "delta" in objs:
        ASSUME["delta_bytes_per_run"] = objs["delta"][1] / max(objs["delta"][0], 1)
    if "runs" in objs:
        ASSUME["record_bytes_per_run"] = objs["runs"][1] / max(objs["runs"][0], 1)
    return data


def request_cost(mix):
    return sum(c * PRICES.get(PRICE_CLASS.get(op, "put"), 0) for op, c in mix.items()
               if PRICE_CLASS.get(op, "put") != "free")


def latency(op):
    cls = {"get": "lat_get_s", "head": "lat_head_s", "list": "lat_list_s"}.get(op, "lat_put_s")
    return ASSUME[cls]


def project(mode):
    """The scenario at ASSUME's scale; mode is 'full' (a version uploads the whole file) or 'patch'."""
    a = ASSUME
    runs_s = a["producers"] * a["runs_per_producer_per_min"] / 60.0
    vectors_s = runs_s * a["rows_per_run"]
    per_coll_vectors = a["vectors"] / a["collections"]
    snap = per_coll_vectors * a["bytes_per_vector_in_snapshot"]
    runs_per_coll_s = runs_s / a["collections"]
    versions_s = min(a["collections"] / a["publish_interval_s"], runs_s)
    runs_per_version = runs_s / versions_s
    up_per_version = snap if mode == "full" else snap * a["patch_fraction"]
    parts = max(1, math.ceil(up_per_version / a["multipart_part_bytes"]))
    worker_mix = {op: c * versions_s for op, c in PER_VERSION.items()}
    # Multipart above one part: an UploadPart (PUT) a part plus Create and Complete (POST), all PUT-priced.
    worker_mix["multipart"] = (parts + 2) * versions_s if parts > 1 else 0
    for op, c in PER_RUN_WORKER.items():
        worker_mix[op] = worker_mix.get(op, 0) + c * runs_s
    # Passes over collections with nothing new: an idle round reads the pointer and lists runs/
    # from the watermark (IdleRoundTests); the first idle round after a version is a full one.
    idle_rounds = max(a["collections"] / a["poll_s"] - versions_s, 0)
    for op, c in PER_IDLE_ROUND.items():
        worker_mix[op] = worker_mix.get(op, 0) + c * idle_rounds
    producer_mix = {op: c * runs_s for op, c in PER_RUN_PRODUCER.items()}
    req_s = sum(worker_mix.values()) + sum(producer_mix.values())
    bytes_up_s = up_per_version * versions_s + runs_s * (a["delta_bytes_per_run"] + a["record_bytes_per_run"])
    bytes_down_s = runs_s * (a["delta_bytes_per_run"] + a["record_bytes_per_run"])  # the worker's cache holds the base
    dollars_s = request_cost(worker_mix) + request_cost(producer_mix)
    # Full copies: versions_kept whole files. Page patches: one base plus versions_kept patches.
    kept = a["versions_kept"] if mode == "full" else 1 + a["versions_kept"] * a["patch_fraction"]
    stored = a["collections"] * snap * kept
    storage_month = stored / 1e9 * PRICES["gb_month"]
    month_s = 30 * 86400
    vectors_month = vectors_s * month_s
    seq = sum(latency(op) * c for op, c in PER_VERSION.items()) + sum(latency(op) * c for op, c in PER_RUN_WORKER.items()) * runs_per_version
    wall_version = (a["cpu_per_version_s"] + a["cpu_per_row_s"] * runs_per_version * a["rows_per_run"] + seq
                    + up_per_version / (a["worker_mib_s"] * 2**20))
    workers = versions_s * wall_version
    return {
        "mode": mode, "runs_s": runs_s, "vectors_s": vectors_s, "versions_s": versions_s, "runs_per_version": runs_per_version,
        "runs_per_collection_s": runs_per_coll_s, "snapshot_gb": snap / 1e9, "upload_per_version_mb": up_per_version / 1e6,
        "requests_s": req_s, "worker_requests_s": sum(worker_mix.values()), "producer_requests_s": sum(producer_mix.values()),
        "bytes_up_s": bytes_up_s, "bytes_down_s": bytes_down_s, "request_dollars_month": dollars_s * month_s,
        "stored_tb": stored / 1e12, "storage_dollars_month": storage_month,
        "request_dollars_per_million_vectors": dollars_s / vectors_s * 1e6,
        "storage_dollars_per_million_vectors_month": storage_month / (a["vectors"] / 1e6),
        "wall_per_version_s": wall_version, "busy_workers": workers, "vectors_month": vectors_month,
    }


def shards(total_vectors):
    n = max(1, math.ceil(total_vectors / ASSUME["shard_max_vectors"]))
    size = total_vectors / n * ASSUME["bytes_per_vector_in_snapshot"]
    return n, size


def check(path):
    """Predicts the loopback runs/s from the model's round (loopback latencies from the bench's request
    mix and CPU) and compares it with what was measured."""
    data = json.load(open(path))
    cores = data["cores"]
    one = data["results"][0]
    cpu_v = (one["worker_cpu_s"] + one["weed_cpu_s"]) / max(one["runs_applied"], 1)  # both share the cores
    wall_v = one["window_s"] / max(one["runs_applied"], 1)  # one worker works one collection at a time
    wait_v = max(wall_v - cpu_v, 0)
    print("| workers | measured runs/s | model: 2 free cores | model: the cores we got | got / measured | "
          "requests/run measured | model | MiB down/run measured | model |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    req_model = sum(PER_VERSION_DEFAULT.values()) + sum(PER_RUN_WORKER.values())
    down_model = (ASSUME["delta_bytes_per_run"] + ASSUME["record_bytes_per_run"]) / 2**20
    for r in data["results"]:
        k = r["workers"]
        by_latency = k / (cpu_v + wait_v)           # each worker serial: its CPU, SeaweedFS's, then waits
        free = min(by_latency, cores / cpu_v)       # all CPU (workers + SeaweedFS) on dedicated cores
        got_cores = (r["worker_cpu_s"] + r["weed_cpu_s"]) / r["window_s"]   # the share the noisy machine gave us
        got = min(by_latency, got_cores / cpu_v)
        n = max(r["runs_applied"], 1)
        print("| %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.3f | %.3f |" % (
            k, r["runs_per_s"], free, got, got / max(r["runs_per_s"], 1e-9), r["requests_total"] / n, req_model,
            r["bytes_down"] / n / 2**20, down_model))
    print("\nCalibration: %.3f CPU s per run applied (worker + SeaweedFS) and %.3f s of waiting per run, from the "
          "1-worker run; the other rows are predictions. `the cores we got` is the CPU the workers and SeaweedFS "
          "actually had in the window (other jobs shared the machine)." % (cpu_v, wait_v))


def table(rows, head):
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join("---" for _ in head) + " |")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calibrate", metavar="SCALING_JSON")
    ap.add_argument("--check", metavar="SCALING_JSON")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an assumption")
    a = ap.parse_args()
    if a.calibrate:
        calibrate(a.calibrate)
    for kv in a.set:
        k, _, v = kv.partition("=")
        if k not in ASSUME:
            sys.exit("--set %s: unknown assumption; known: %s" % (k, ", ".join(sorted(ASSUME))))
        ASSUME[k] = float(v)
    if a.check:
        check(a.check)
        return
    print("### Assumptions (prices as of %s)\n" % PRICES["date"])
    table([(k, "%g" % v) for k, v in ASSUME.items()], ["assumption", "value"])
    print("\nRequests per version published (worker): " + ", ".join("%s %.2f" % kv for kv in sorted(PER_VERSION.items())))
    print("Requests per run applied: worker " + ", ".join("%s %.2f" % kv for kv in PER_RUN_WORKER.items())
          + "; producer " + ", ".join("%s %.2f" % kv for kv in PER_RUN_PRODUCER.items()) + "\n")
    res = [project("full"), project("patch")]
    print("### Projection: %d collections, %d producers, %g vectors\n" % (ASSUME["collections"], ASSUME["producers"], ASSUME["vectors"]))
    keys = [("runs applied/s", "runs_s", "%.0f"), ("vectors ingested/s", "vectors_s", "%.0f"),
            ("versions published/s", "versions_s", "%.1f"), ("runs per version", "runs_per_version", "%.1f"),
            ("snapshot per collection GB", "snapshot_gb", "%.2f"), ("upload per version MB", "upload_per_version_mb", "%.0f"),
            ("S3 requests/s (all)", "requests_s", "%.0f"), ("  of which workers", "worker_requests_s", "%.0f"),
            ("  of which producers", "producer_requests_s", "%.0f"), ("bytes up/s (MB)", "bytes_up_s", "%.0f"),
            ("bytes down/s (MB)", "bytes_down_s", "%.1f"), ("request $/month", "request_dollars_month", "%.0f"),
            ("stored TB", "stored_tb", "%.1f"), ("storage $/month", "storage_dollars_month", "%.0f"),
            ("request $ per million vectors ingested", "request_dollars_per_million_vectors", "%.3f"),
            ("storage $ per million vectors per month", "storage_dollars_per_million_vectors_month", "%.3f"),
            ("worker wall per version s", "wall_per_version_s", "%.2f"), ("busy workers needed", "busy_workers", "%.1f")]
    rows = []
    for label, k, f in keys:
        vals = [r[k] / (1e6 if k.startswith("bytes") else 1) for r in res]
        rows.append([label] + [f % v for v in vals])
    table(rows, ["figure", "full copy per version", "page patches (%.0f%% of the file)" % (ASSUME["patch_fraction"] * 100)])
    print("\n### One huge collection, sharded by id hash\n")
    srows = []
    for total in (1e7, 1e8, 1e9):
        n, size = shards(total)
        srows.append(["%g" % total, n, "%.1f" % (size / 1e9), "%.0f" % (size * ASSUME["patch_fraction"] / 1e6),
                      "%.2f" % (size / (ASSUME["worker_mib_s"] * 2**20)), n])
    table(srows, ["vectors", "shards", "GB per shard", "patch MB per shard version", "full-copy upload s per shard",
                  "collections a query fans out to"])


if __name__ == "__main__":
    main()
