#!/usr/bin/python3
"""Writes the seed inputs of tests/fuzz/corpus/ (checked in; run again after a
proto change). Each seed is a well-formed input the fuzzer mutates from."""
import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from amld.v1 import (common_pb2, compute_pb2, daemon_pb2, runs_pb2,  # noqa: E402
                     snapshots_pb2, cas_pb2, experiments_pb2, environments_pb2)
from google.protobuf import descriptor_pool  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def seed(target, name, data):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def digest(data):
    return common_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


seed("ignore_fuzz", "gitignore", "# build output\n/build/\n*.o\n!keep.o\n**/__pycache__/\n"
     "data/**/*.csv\n\\#not-a-comment\n[abc]?.txt\n")
seed("ignore_fuzz", "bom", "\xef\xbb\xbfnode_modules\n*.ckpt\n")

d = common_pb2.Directory()
d.files.add(name="train.py", digest=digest(b"print(1)\n"), is_executable=False)
d.files.add(name="run.sh", digest=digest(b"#!/bin/sh\n"), is_executable=True)
d.directories.add(name="pkg", digest=digest(b""))
d.symlinks.add(name="zlink", target="../data/x")
seed("directory_fuzz", "canonical", b"\x01" + d.SerializeToString(deterministic=True))
seed("directory_fuzz", "empty", b"\x00")

body = b"AMLDSTC2" + struct.pack("<Q", 1)
path = b"src/train.py"
body += struct.pack("<I", len(path)) + path + struct.pack("<qqqQI", 12, 1, 2, 3, 0o100644)
body += hashlib.sha256(b"x").digest()
body += struct.pack("<I", 0) + struct.pack("<Q", 0)
seed("stat_cache_fuzz", "one-entry", b"\x01" + body[1:] + hashlib.sha256(body).digest())

seed("amld_yaml_fuzz", "full", "max_concurrent_runs: 4\ncpus: 8\ngpus: [0, 1]\nkill_grace_seconds: 5\n"
     "keep_finished_run_folders: 10\ngc_interval_seconds: 3600\ngc_grace_seconds: 600\n"
     "limits:\n  default_run_duration_seconds: 60\n  max_run_duration_seconds: 600\n")
seed("amld_yaml_fuzz", "bad", "cpus: \"4\"\nunknown: 1\n")

seed("metrics_line_fuzz", "number", '{"name": "loss", "value": 0.25, "step": 3, "time": 1700000000.5}')
seed("metrics_line_fuzz", "text", '{"name": "note", "value": "ok"}')

seed("exit_json_fuzz", "exit", '{"version":1,"exit_code":3,"signal":0,"timed_out":false,'
     '"canceled":false,"start_time_ns":1,"end_time_ns":2,"launch_error":"",'
     '"user_cpu_ns":5,"system_cpu_ns":6,"max_rss_kb":7}')

# Service requests: first byte = the method's index, in the order the fuzzer
# lists them (services in this order, methods in declaration order).
pool = descriptor_pool.Default()
methods = []
for service in ["amld.v1.Runs", "amld.v1.Cas", "amld.v1.Experiments", "amld.v1.Daemon",
                "amld.v1.ComputeTargets", "amld.v1.Environments", "amld.v1.Snapshots"]:
    try:
        s = pool.FindServiceByName(service)
    except KeyError:
        continue
    methods += [m.full_name for m in s.methods]
examples = {
    "amld.v1.Runs.ListFiles": runs_pb2.ListFilesRequest(run_id="last", prefix="outputs/"),
    "amld.v1.Runs.DownloadFile": runs_pb2.DownloadFileRequest(run_id="x", path_bytes=b"a\xff", offset=3),
    "amld.v1.Runs.GetRun": runs_pb2.GetRunRequest(run_id="last"),
    "amld.v1.Daemon.CollectGarbage": daemon_pb2.CollectGarbageRequest(grace_seconds=3600),
    "amld.v1.Cas.FindMissingBlobs": cas_pb2.FindMissingBlobsRequest(blob_digests=[digest(b"x")]),
}
for i, name in enumerate(methods):
    req = examples.get(name)
    data = req.SerializeToString() if req is not None else b""
    seed("service_requests_fuzz", name.rsplit(".", 1)[-1], bytes([i]) + data)
print("make_seeds: %d methods" % len(methods))
