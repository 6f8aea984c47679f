#!/usr/bin/python3
"""Load and fault test (issue 19): 300 submits from 4 clients and 30 log
followers against one daemon, which is killed with SIGKILL twice while they
run and started again. Then every run the daemon holds must have ended; each
completed run's process ran exactly once (a ledger outside the run folders
counts executions) and its output's SHA-256 is right; a run failed by
recovery (caught starting during a kill, as docs/ARCHITECTURE.md says) ran
at most once; every follower printed exactly the run's log; and SQLite's
integrity_check is "ok". Prints the figures, among them the p50/p99 of a
status call (Daemon.GetInfo) under the load.

    tests/e2e/load_fault_test.py BUILD_DIR    (ctest: load_fault_test)

LOAD_SUBMITS / LOAD_FOLLOWERS / LOAD_KILLS scale it down for a quick try.
"""
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
BIN = os.path.join(BUILD, "bin")
sys.path.insert(0, os.path.join(BUILD, "python"))
SUBMITS = int(os.environ.get("LOAD_SUBMITS", "300"))
CLIENTS = 4
FOLLOWERS = int(os.environ.get("LOAD_FOLLOWERS", "30"))
KILLS = int(os.environ.get("LOAD_KILLS", "2"))
DEADLINE = time.monotonic() + float(os.environ.get("LOAD_TIMEOUT", "900"))

work = tempfile.mkdtemp(prefix="amld-load-")
data = os.path.join(work, "data")
sock = os.path.join(work, "amld.sock")
project = os.path.join(work, "proj")
ledger = os.path.join(work, "ledger")
os.makedirs(project)
os.makedirs(ledger)
ENV = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
for k in ("AMLD_SOCKET", "AMLD_DATA_DIR"):
    ENV.pop(k, None)

with open(os.path.join(project, "train.py"), "w") as f:
    f.write("""import hashlib, os
rid = os.environ["AMLD_RUN_ID"]
with open(os.path.join(%r, rid), "a") as f:
    f.write("ran\\n")
os.makedirs("outputs", exist_ok=True)
with open("outputs/out.txt", "w") as f:
    f.write(hashlib.sha256(rid.encode()).hexdigest() * 64)
for k in range(50):
    print("run", rid, "line", k, flush=True)
""" % ledger)


def expected_output(rid):
    return hashlib.sha256((hashlib.sha256(rid.encode()).hexdigest() * 64).encode()).hexdigest()


def aml(*args, timeout=120):
    return subprocess.run([os.path.join(BIN, "aml"), "--socket", sock] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=ENV, cwd=work, timeout=timeout)


def fail(why):
    print("load_fault_test: FAILED: " + why)
    log = os.path.join(data, "amld.log")
    if os.path.exists(log):
        print("--- last lines of amld.log ---")
        print("".join(open(log, errors="replace").readlines()[-60:]))
    sys.exit(1)


def start_daemon():
    r = aml("daemon", "start", "--data-dir", data, "--max-concurrent-runs", "4")
    if r.returncode != 0:
        fail("daemon start: " + r.stderr)


def daemon_pid():
    r = aml("--output", "json", "daemon", "status")
    return int(json.loads(r.stdout)["pid"]) if r.returncode == 0 else None


lock = threading.Lock()
acknowledged = []      # run ids the clients were told
submit_errors = []


def client(n):
    for i in range(n):
        for attempt in range(200):
            r = aml("run", "submit", "-q", "-s", project, "-e", "load",
                    "--interpreter", "/usr/bin/python3", "train.py")
            if r.returncode == 0:
                with lock:
                    acknowledged.append(r.stdout.strip())
                break
            if time.monotonic() > DEADLINE:
                return
            time.sleep(0.2)  # the daemon is down: try again once it is back
        else:
            with lock:
                submit_errors.append(r.stderr)


follower_results = []  # (run id, returncode, stdout)


def follower():
    while True:
        with lock:
            candidates = list(acknowledged)
        if candidates:
            break
        time.sleep(0.05)
    rid = random.choice(candidates)
    # A follower started while the daemon is down (between a kill and the
    # restart) is told "amld is not running" before it reads a byte, as a
    # person would be; like a person it tries again. One that was connected
    # when the kill came must reconnect by itself and still print every byte.
    for _ in range(100):
        r = aml("run", "logs", "--follow", rid, timeout=600)
        if r.returncode == 0 or r.stdout or "is not running" not in r.stderr:
            break
        time.sleep(0.1)
    with lock:
        follower_results.append((rid, r.returncode, r.stdout, r.stderr))


status_latencies = []
status_calls = []  # (seconds, at seconds since start, first call on its channel)
stop_probe = threading.Event()


def prober():
    import grpc
    from amld.v1 import daemon_pb2, daemon_pb2_grpc
    while not stop_probe.is_set():
        channel = grpc.insecure_channel("unix:" + sock)
        stub = daemon_pb2_grpc.DaemonStub(channel)
        first = True
        while not stop_probe.is_set():
            t0 = time.perf_counter()
            try:
                stub.GetInfo(daemon_pb2.GetInfoRequest(), timeout=5)
            except grpc.RpcError:
                time.sleep(0.1)  # down: not a status call under load
                break
            took = time.perf_counter() - t0
            status_latencies.append(took)
            status_calls.append((took, time.monotonic() - t_start, first))
            first = False
            time.sleep(0.02)
        channel.close()


start_daemon()
t_start = time.monotonic()
threads = [threading.Thread(target=client, args=(SUBMITS // CLIENTS,)) for _ in range(CLIENTS)]
threads += [threading.Thread(target=follower) for _ in range(FOLLOWERS)]
probe = threading.Thread(target=prober)
for t in threads + [probe]:
    t.start()

kills = 0
while kills < KILLS:
    with lock:
        done = len(acknowledged)
    if done >= (kills + 1) * SUBMITS // (KILLS + 1):
        pid = daemon_pid()
        if pid is None:
            fail("the daemon did not answer before kill %d" % (kills + 1))
        os.kill(pid, signal.SIGKILL)
        kills += 1
        print("load_fault_test: SIGKILL %d to amld %d after %d submits" % (kills, pid, done))
        time.sleep(0.5)
        start_daemon()
    elif time.monotonic() > DEADLINE:
        fail("only %d submits before the deadline" % done)
    else:
        time.sleep(0.1)

for t in threads:
    t.join(max(1, DEADLINE - time.monotonic()))
    if t.is_alive():
        fail("a client or follower did not finish in time")

# Every run the daemon holds ends.
while True:
    r = aml("--output", "json", "run", "list", "-e", "load", "--limit", "100000")
    if r.returncode != 0:
        fail("run list: " + r.stderr)
    runs = json.loads(r.stdout)["runs"]
    if all(x["status"] in ("COMPLETED", "FAILED", "CANCELED") for x in runs):
        break
    if time.monotonic() > DEADLINE:
        fail("runs still going: %s" % [x["id"] for x in runs if x["status"] not in
                                        ("COMPLETED", "FAILED", "CANCELED")])
    time.sleep(0.5)
stop_probe.set()
probe.join()
elapsed = time.monotonic() - t_start

problems = []
if submit_errors:
    problems.append("%d submits never succeeded: %s" % (len(submit_errors), submit_errors[0]))
by_id = {x["id"]: x for x in runs}
missing = [a for a in acknowledged if a not in by_id]
if missing:
    problems.append("acknowledged runs the daemon does not hold: %s" % missing[:5])
completed = failed = 0
for rid, run in by_id.items():
    path = os.path.join(ledger, rid)
    executions = len(open(path).read().splitlines()) if os.path.exists(path) else 0
    if run["status"] == "COMPLETED":
        completed += 1
        if executions != 1:
            problems.append("%s COMPLETED after %d executions" % (rid, executions))
            continue
        out = aml("run", "download", rid, "outputs/out.txt", "-o", "-")
        if out.returncode != 0 or hashlib.sha256(out.stdout.encode()).hexdigest() != expected_output(rid):
            problems.append("%s: outputs/out.txt is wrong (%s)" % (rid, out.stderr.strip()))
    else:
        failed += 1
        if executions > 1:
            problems.append("%s %s after %d executions" % (rid, run["status"], executions))
for rid, code, out, err in follower_results:
    want = aml("run", "download", rid, "user_logs/std_log.txt", "-o", "-").stdout
    # `logs -f` exits 1 for a run that did not complete (one failed by recovery).
    if out != want or (code != 0) != (by_id.get(rid, {}).get("status") != "COMPLETED"):
        problems.append("follower of %s: exit %d, %d bytes of %d: %s" % (
            rid, code, len(out), len(want), err.strip()[-200:]))

r = aml("daemon", "stop")
check = sqlite3.connect(os.path.join(data, "amld.db")).execute("pragma integrity_check").fetchall()
if check != [("ok",)]:
    problems.append("integrity_check: %s" % check)

lat = sorted(status_latencies)
p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: -1)
print("load_fault_test: %d runs (%d acknowledged submits, %d completed, %d failed by recovery), "
      "%d followers, %d kills, %.0f s; status call under load: p50 %.1f ms, p99 %.1f ms (%d calls)"
      % (len(by_id), len(acknowledged), completed, failed, len(follower_results), kills, elapsed,
         p(0.5), p(0.99), len(lat)))
# Where the tail is: a new channel's first call also connects (after a kill).
print("load_fault_test: slowest status calls (ms at s, * = first on its channel): " + ", ".join(
    "%.1f at %.1f%s" % (took * 1000, at, "*" if first else "")
    for took, at, first in sorted(status_calls, reverse=True)[:6]))
if failed > len(by_id) // 10:
    problems.append("%d of %d runs failed" % (failed, len(by_id)))
if problems:
    fail("\n  ".join([""] + problems[:40]))
subprocess.run(["rm", "-rf", work])
print("load_fault_test: ok")
