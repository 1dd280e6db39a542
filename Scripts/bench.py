#!/usr/bin/env python3
"""Strata benchmarks: `make bench`. Prints markdown sections, ready for Docs/benchmarks.md.

Every figure is measured in this run against references measured in the same run on the same
bytes (cp, sha256sum, the AWS CLI against the same SeaweedFS), since these machines are noisy.
Peak RSS comes from wait4(2) for each process.

usage: bench.py [--only s3,producer,compactor,embed,scaling,records] [--size-mib 1024] [--out FILE]
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPCTL = os.environ.get("SNAPCTL", os.path.join(ROOT, ".build/release/snapctl"))


def measure(argv, env=None, check=True):
    """Runs argv and returns (wall seconds, peak RSS in MiB, stdout) using wait4 for the rusage."""
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.perf_counter()
    out_r, out_w = os.pipe()
    err_f = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(out_w, 1)
        os.dup2(err_f.fileno(), 2)
        os.close(out_r)
        try:
            os.execvpe(argv[0], argv, e)
        finally:
            os._exit(127)
    os.close(out_w)
    chunks = []
    while True:
        b = os.read(out_r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(out_r)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        err_f.seek(0)
        sys.exit("benchmark step failed (%d): %s\n%s" % (code, " ".join(argv), err_f.read().decode(errors="replace")[-3000:]))
    return wall, ru.ru_maxrss / 1024.0, b"".join(chunks).decode(errors="replace")


def best(n, argv, env=None, before=None):
    """Best wall of n runs (and the RSS of that run)."""
    results = []
    for _ in range(n):
        if before:
            before()
        results.append(measure(argv, env))
    return min(results, key=lambda r: r[0])


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s, %d cores, %.0f GiB RAM, %s %s" % (cpu, os.cpu_count(), mem, platform.system(), platform.release())


class Seaweed:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "weed")
        out = subprocess.check_output([os.path.join(ROOT, "Scripts/seaweedfs.sh"), "start", self.dir, "--watch", str(os.getpid())])
        vals = dict(l.split("=", 1) for l in out.decode().split() if "=" in l)
        self.endpoint = vals["STRATA_TEST_ENDPOINT"]
        self.env = {"AWS_ACCESS_KEY_ID": vals["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": vals["AWS_SECRET_ACCESS_KEY"],
                    "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self):
        subprocess.call([os.path.join(ROOT, "Scripts/seaweedfs.sh"), "stop", self.dir])


def mibps(size, secs):
    return size / 2**20 / secs


def bench_s3(weed, work, size_mib, lines):
    size = size_mib << 20
    src = os.path.join(work, "blob.bin")
    with open(src, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(size_mib):
            f.write(chunk[i % 997:] + chunk[:i % 997])
    env = dict(weed.env)
    bucket = "bench-s3"
    measure([SNAPCTL, "store", "mb", "--store", "s3://" + bucket], env)
    dst = os.path.join(work, "blob.out")
    aws = ["aws", "--endpoint-url", weed.endpoint]
    rm = lambda: os.path.exists(dst) and os.remove(dst)

    cp = best(2, ["cp", src, dst], before=rm)
    sha = best(2, ["sha256sum", src])
    s_up = best(2, [SNAPCTL, "store", "put", src, "blob-strata", "--store", "s3://" + bucket], env)
    a_up = best(2, aws + ["s3", "cp", "--only-show-errors", src, "s3://%s/blob-aws" % bucket], env)
    s_dn = best(2, [SNAPCTL, "store", "get", "blob-strata", dst, "--store", "s3://" + bucket], env, before=rm)
    a_dn = best(2, aws + ["s3", "cp", "--only-show-errors", "s3://%s/blob-aws" % bucket, dst], env, before=rm)
    lines.append("### S3 transfers: one %d MiB object against SeaweedFS on loopback\n" % size_mib)
    lines.append("| what | wall s | MiB/s | vs AWS CLI | peak RSS MiB |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for name, r, ref in [("`cp` (local floor)", cp, None), ("`sha256sum` (hash floor)", sha, None),
                         ("upload: `snapctl store put`", s_up, a_up), ("upload: `aws s3 cp`", a_up, None),
                         ("download: `snapctl store get`", s_dn, a_dn), ("download: `aws s3 cp`", a_dn, None)]:
        ratio = "%.2fx faster" % (ref[0] / r[0]) if ref else ""
        lines.append("| %s | %.2f | %.0f | %s | %.0f |" % (name, r[0], mibps(size, r[0]), ratio, r[1]))
    lines.append("")
    for p in (src, dst):
        if os.path.exists(p):
            os.remove(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="s3,producer,compactor,embed,scaling")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-out", "results.md"))
    a = ap.parse_args()
    only = set(a.only.split(","))
    work = tempfile.mkdtemp(prefix="strata-bench-", dir=os.environ.get("BENCH_DIR", "/tmp"))
    lines = ["## Run of %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "",
             "Machine: %s. Command: `make bench` (`Scripts/bench.py --only %s`)." % (machine(), a.only), ""]
    weed = Seaweed(work)
    try:
        if "s3" in only:
            bench_s3(weed, work, a.size_mib, lines)
        for section in ("producer", "compactor", "embed", "scaling", "records"):
            if section in only:
                mod = os.path.join(ROOT, "Scripts", "bench_%s.py" % section)
                if os.path.exists(mod):
                    ns = {"__file__": mod}
                    exec(compile(open(mod).read(), mod, "exec"), ns)
                    ns["bench"](weed, work, lines, measure, best, SNAPCTL)
    finally:
        weed.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print("written to %s" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
