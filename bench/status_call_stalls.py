#!/usr/bin/env python3
"""Status calls on one open channel to an idle private daemon: their p50/p99 and which ones stalled.

Starts amld on a temporary socket and data dir, calls Daemon.GetInfo N times GAP seconds apart on
one channel (as load_fault_test's prober does) and prints the percentiles and the index and
duration of every call over 20 ms. On gRPC 1.51 one call in about each second of calls waits
~100 ms (docs/performance.md, "Status call p99"): the calls come ~1 s apart, not at random.

usage: bench/status_call_stalls.py [--bin build-release/bin] [--calls 250] [--gap 0.02]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build-release", "bin"))
ap.add_argument("--calls", type=int, default=250)
ap.add_argument("--gap", type=float, default=0.02)
args = ap.parse_args()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(args.bin)), "python"))
import grpc  # noqa: E402
from amld.v1 import daemon_pb2, daemon_pb2_grpc  # noqa: E402

work = tempfile.mkdtemp(prefix="amld-stalls-")
sock = os.path.join(work, "amld.sock")
daemon = subprocess.Popen([os.path.join(args.bin, "amld"), "--socket", sock, "--data-dir",
                           os.path.join(work, "data")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    with grpc.insecure_channel("unix:" + sock) as channel:
        stub = daemon_pb2_grpc.DaemonStub(channel)
        stub.GetInfo(daemon_pb2.GetInfoRequest(), timeout=30, wait_for_ready=True)
        took = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            stub.GetInfo(daemon_pb2.GetInfoRequest(), timeout=5)
            took.append((time.perf_counter() - t0) * 1000)
            time.sleep(args.gap)
    s = sorted(took)
    print("GetInfo on one channel, %d calls %.0f ms apart: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
          % (len(s), args.gap * 1000, s[len(s) // 2], s[int(len(s) * 0.99)], s[-1]))
    print("calls over 20 ms (index, ms):", [(i, round(v)) for i, v in enumerate(took) if v > 20])
finally:
    daemon.terminate()
    daemon.wait()
    subprocess.run(["rm", "-rf", work])
