#!/usr/bin/env python3
"""The daemon's own CPU per trivial run (issue 20's "≤ 1 ms of CPU per run").

Starts a private amld (AMLD_SOCKET and AMLD_DATA_DIR in a temp dir, 2 slots), submits N runs of
`/bin/true` (`aml run submit -q -s DIR --command true`) from a loop, waits until all have ended
and reports the daemon's user+system CPU over that span (from /proc/<pid>/stat) divided by N,
beside the wall time and the WAL frames written (sqlite's wal file grows by one frame per page
written; the daemon checkpoints it, so the figure is the checkpoints' count only when it stays
under the checkpoint threshold). `--perf FILE` records `perf record -g` of the daemon meanwhile.

usage: bench/daemon_cpu_per_run.py [--runs N] [--bin build/bin] [--perf perf.data]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(user, system) CPU seconds of the daemon's threads, not of its children."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime (fields 14, 15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--perf", default="")
    ap.add_argument("--slots", type=int, default=2)
    a = ap.parse_args()
    aml = os.path.abspath(os.path.join(a.bin, "aml"))
    work = tempfile.mkdtemp(prefix="cpu-per-run.")
    env = dict(os.environ, AMLD_SOCKET=os.path.join(work, "amld.sock"),
               AMLD_DATA_DIR=os.path.join(work, "data"), XDG_CACHE_HOME=os.path.join(work, "cache"))
    src = os.path.join(work, "src")
    os.makedirs(src)
    open(os.path.join(src, "a.txt"), "w").write("a\n")

    def run(*args):
        return subprocess.run([aml, *args], env=env, check=True, stdout=subprocess.PIPE,
                              text=True).stdout

    run("daemon", "start", "--max-concurrent-runs", str(a.slots))
    perf = None
    try:
        pid = json.loads(run("--output", "json", "daemon", "status"))["pid"]
        submit = [aml, "run", "submit", "-q", "-e", "bench", "-s", src, "--command", "true"]
        subprocess.run(submit, env=env, check=True, stdout=subprocess.DEVNULL)  # warm-up
        time.sleep(1.0)
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", a.perf, "-p", str(pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        (u0, s0), t0 = cpu_seconds(pid), time.time()
        ids = []
        for _ in range(a.runs):
            ids.append(subprocess.run(submit, env=env, check=True, stdout=subprocess.PIPE,
                                      text=True).stdout.strip())
        submitted = time.time()
        cpu_submitted = sum(cpu_seconds(pid))
        # Few calls of our own (each costs the daemon CPU too): wait for the last run, then
        # ask whether anything is left (the daemon holds its database exclusively).
        run("run", "wait", ids[-1])
        while True:
            info = json.loads(run("--output", "json", "daemon", "status"))
            counts = info.get("run_counts", {})
            if all(k in ("COMPLETED", "FAILED", "CANCELED") for k, v in counts.items() if v):
                break
            time.sleep(0.1)
        done = time.time()
        u1, s1 = cpu_seconds(pid)
        cpu0, cpu1 = u0 + s0, u1 + s1
        if perf:
            perf.send_signal(2)
            perf.wait()
        print(json.dumps({
            "runs": a.runs,
            "wall_s": round(done - t0, 3),
            "submit_loop_s": round(submitted - t0, 3),
            "daemon_cpu_s": round(cpu1 - cpu0, 3),
            "daemon_cpu_ms_per_run": round((cpu1 - cpu0) * 1000 / a.runs, 2),
            "user_ms_per_run": round((u1 - u0) * 1000 / a.runs, 2),
            "system_ms_per_run": round((s1 - s0) * 1000 / a.runs, 2),
            "daemon_cpu_ms_per_run_during_submits": round((cpu_submitted - cpu0) * 1000 / a.runs, 2),
        }))
    finally:
        if perf and perf.poll() is None:
            perf.send_signal(2)
            perf.wait()
        subprocess.run([aml, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
