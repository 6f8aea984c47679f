#!/usr/bin/python3
"""Cold `aml snapshot create` of the large project: the daemon's own read (local ingest) beside
the client's hash-and-upload (AMLD_NO_LOCAL_INGEST=1) and one single-process SHA-256 pass, each
into a fresh daemon whose data dir is on tmpfs (/dev/shm) and then on /tmp. No SubmitRun, so no
sync: this separates reading and hashing from the disk's write speed (bench/run snapshot-full
has the whole submit). Medians of 3.

    BUILD_DIR=build bench/ingest_quick.py     (generate the project with bench/run first)
"""
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
SRC = os.path.join(os.environ.get("BENCH_WORK", "/tmp/amld-bench-projects"), "large-seed1")


def aml(env, *args):
    subprocess.run([os.path.join(BIN, "aml"), *args], env=env, check=True, capture_output=True)


def cold_create(mode, base):
    d = tempfile.mkdtemp(dir=base)
    env = dict(os.environ, AMLD_SOCKET=d + "/s.sock", AMLD_DATA_DIR=d + "/data",
               XDG_CACHE_HOME=d + "/cache")
    if mode == "upload":
        env["AMLD_NO_LOCAL_INGEST"] = "1"
    aml(env, "daemon", "start")
    try:
        t = time.perf_counter()
        aml(env, "snapshot", "create", SRC)
        return time.perf_counter() - t
    finally:
        aml(env, "daemon", "stop")
        shutil.rmtree(d)


def sha256_pass():
    t = time.perf_counter()
    for dp, _, names in os.walk(SRC):
        for name in names:
            with open(os.path.join(dp, name), "rb") as fh:
                hashlib.sha256(fh.read())
    return time.perf_counter() - t


for base in ("/dev/shm", "/tmp"):
    r = {"ingest": [], "upload": [], "sha256 1 proc": []}
    for _ in range(3):
        r["ingest"].append(cold_create("ingest", base))
        r["upload"].append(cold_create("upload", base))
        r["sha256 1 proc"].append(sha256_pass())
    print(base, {k: round(statistics.median(v), 3) for k, v in r.items()},
          {k: [round(x, 2) for x in v] for k, v in r.items()}, flush=True)
