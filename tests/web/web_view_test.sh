#!/usr/bin/env bash
# ctest web_view_test: amld's web view in a real browser (Debian's Chromium,
# headless, driven by puppeteer-core: tests/web/web_view_test.js) against a
# real daemon with real runs.
#
#   tests/web/web_view_test.sh BUILD_DIR [SCREENSHOT_DIR]
#
# Installs the pinned npm packages of package-lock.json with `npm ci` into
# BUILD_DIR/tests/web (npm's cache makes later runs offline), starts a
# private amld on a temporary socket, submits a run that finishes and one
# that keeps printing and logging `loss` until told to stop, and runs the
# browser against `aml ui`'s link; a sweep of two children has ended before. With SCREENSHOT_DIR the runs table and a
# run page are saved there (docs/images/ keeps the README's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "$1")
shots=${2:+$(realpath "$2")}

for tool in node npm chromium; do
  command -v $tool >/dev/null || { echo "web_view_test: needs $tool: scripts/install-deps installs it" >&2; exit 1; }
done

modules=$build/tests/web/npm
source "$here/../testing/npm_ci.sh"
npm_ci "$here" "$modules" web_view_test

tmp=$(mktemp -d /tmp/amld-web.XXXXXX)
export AMLD_SOCKET=$tmp/amld.sock AMLD_DATA_DIR=$tmp/data
aml() { "$build/bin/aml" "$@"; }
cleanup() { touch "$tmp/stop"; aml daemon stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
aml daemon start >/dev/null

# A training script's shape: a line and a loss value per step; with a stop
# file it goes on until the file appears, else it does 8 steps.
mkdir -p "$tmp/src"
cat > "$tmp/src/train.py" <<'PY'
import json, os, sys, time
stop = sys.argv[1] if len(sys.argv) > 1 else None
metrics = os.environ["AMLD_METRICS_FILE"]
step = 0
while True:
    step += 1
    print(f"step {step}: training", flush=True)
    with open(metrics, "a") as f:
        f.write(json.dumps({"name": "loss", "value": 1.0 / step, "step": step, "time": time.time()}) + "\n")
    if (stop is None and step >= 8) or (stop is not None and (os.path.exists(stop) or step >= 2000)):
        break
    time.sleep(0.25)
os.makedirs("outputs", exist_ok=True)
with open("outputs/weights.bin", "wb") as f:
    f.write(bytes(range(256)) * 40 + b"\x00end")
print("done", flush=True)
PY
finished=$(aml run submit -q -e webtest -s "$tmp/src" --tag kind=finished train.py)
aml run wait "$finished" >/dev/null
running=$(aml run submit -q -e webtest -s "$tmp/src" --tag kind=running train.py -- "$tmp/stop")
# A sweep of two children (a grid over the learning rate), ended before the
# browser starts: its page's table, best child and overlaid curves.
mkdir -p "$tmp/sweep/src"
cat > "$tmp/sweep/src/train.py" <<'PY'
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a = p.parse_args()
with open(os.environ["AMLD_METRICS_FILE"], "a") as f:
    for step in range(1, 5):
        f.write(json.dumps({"name": "loss", "value": a.lr * 10 + 1.0 / step, "step": step, "time": time.time()}) + "\n")
PY
cat > "$tmp/sweep/sweep.yml" <<'YML'
type: sweep
experiment_name: websweep
trial:
  code: ./src
  command: python3 train.py --lr ${{search_space.lr}}
search_space:
  lr:
    type: choice
    values: [0.1, 0.01]
sampling_algorithm: grid
objective:
  goal: minimize
  primary_metric: loss
limits:
  max_concurrent_trials: 2
  timeout: 300
YML
sweep=$(aml --output json sweep submit -f "$tmp/sweep/sweep.yml" --wait | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
url=$(aml ui --no-open)

NODE_PATH=$modules/node_modules node "$here/web_view_test.js" \
  "$url" "$finished" "$running" "$tmp/stop" "$tmp/downloads" "$sweep" "$shots"
