#!/usr/bin/env bash
# The web view's runs page with many runs in the store:
#
#   tests/web/page_load_bench.sh BUILD_DIR [RUNS]   (default 10000)
#
# A private daemon with one CPU slot: one run sleeps in it, RUNS-1 more are
# submitted (through the gRPC API, from Python, in parallel) and wait in the
# queue, so the store holds RUNS runs without running them. Then
# page_load.js times the runs page in headless Chromium. Needs the npm
# packages web_view_test.sh installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "$1")
n=${2:-10000}
tmp=$(mktemp -d /tmp/amld-webbench.XXXXXX)
export AMLD_SOCKET=$tmp/amld.sock AMLD_DATA_DIR=$tmp/data
aml() { "$build/bin/aml" "$@"; }
blocker=
# Runs outlive their daemon (by design): cancel the sleeping one first.
cleanup() {
  [[ -n $blocker ]] && aml run cancel "$blocker" >/dev/null 2>&1 && aml run wait "$blocker" >/dev/null 2>&1
  aml daemon stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$AMLD_DATA_DIR" "$tmp/src" && chmod 700 "$AMLD_DATA_DIR"
printf 'max_concurrent_runs: 1\ncpus: 1\n' > "$AMLD_DATA_DIR/amld.yaml"
echo x > "$tmp/src/x.txt"
aml daemon start >/dev/null
blocker=$(aml run submit -q -e bench -s "$tmp/src" --command "sleep 3600")
SECONDS=0
PYTHONPATH=$build/python /usr/bin/python3 - "$AMLD_SOCKET" "$blocker" "$((n - 1))" <<'PY'
import sys
from concurrent.futures import ThreadPoolExecutor
import grpc
from amld.v1 import runs_pb2, runs_pb2_grpc
sock, blocker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
stub = runs_pb2_grpc.RunsStub(grpc.insecure_channel("unix:" + sock))
config = stub.GetRun(runs_pb2.GetRunRequest(run_id=blocker)).config
config.command = "true"
def submit(i):
    c = runs_pb2.RunConfig()
    c.CopyFrom(config)
    c.tags["i"] = str(i)
    stub.SubmitRun(runs_pb2.SubmitRunRequest(config=c))
with ThreadPoolExecutor(8) as pool:
    list(pool.map(submit, range(n)))
PY
echo "page_load_bench: $n runs in the store ($SECONDS s to submit)"
url=$(aml ui --no-open)
NODE_PATH=$build/tests/web/npm/node_modules node "$here/page_load.js" "$url" 200 5
