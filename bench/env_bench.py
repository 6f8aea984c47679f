#!/usr/bin/python3
"""Environment build figures: a managed environment's first and second run through amld, beside
`python3 -m venv` + `pip install` of the same wheels by hand.

    python3 bench/env_bench.py [--bin build/bin] [--reps 3] [--json FILE]

Offline: builds a wheelhouse of two tiny packages (amldtest-alpha depends on amldtest-beta) and
starts a private amld whose amld.yaml points pip at it alone (environments: no_index,
find_links). Each repeat uses a new spec (`amldtest-alpha>=0.<rep>`, a new digest) and times:
  first run    PREPARING → STARTING of a run whose environment is not built (the build)
  second run   the same for a second run of the same spec (found in the cache)
  first e2e    `aml run submit -f job.yml --wait` wall time, first run
  second e2e   the same, second run
and, as the anchor, `python3 -m venv DIR && DIR/bin/python -m pip install --no-index
--find-links WHEELS amldtest-alpha`. Prints a table of medians (seconds) and writes the same as
JSON to --json. Nothing here is a test: it asserts nothing.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from wheelhouse import build_wheel  # noqa: E402  (the tests' packages, one definition)

def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def wheelhouse(root):
    wheels = os.path.join(root, "wheels")
    for name in ("amldtest-beta", "amldtest-alpha"):
        build_wheel(name, wheels, root)
    return wheels


def preparing_seconds(aml, run_id):
    shown = json.loads(run(aml + ["--output", "json", "run", "show", run_id]))
    times = {}
    for h in shown["history"]:
        times.setdefault(h["status"], h["time"])
    parse = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(times["STARTING"]) - parse(times["PREPARING"])).total_seconds()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="amld-envbench.", dir="/tmp")
    daemon = None
    try:
        wheels = wheelhouse(root)
        data = os.path.join(root, "data")
        os.makedirs(data)
        with open(os.path.join(data, "amld.yaml"), "w") as f:
            f.write("environments:\n  no_index: true\n  find_links: [%s]\n" % wheels)
        sock = os.path.join(root, "amld.sock")
        daemon = subprocess.Popen([os.path.join(args.bin, "amld"), "--socket", sock,
                                   "--data-dir", data], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        aml = [os.path.join(args.bin, "aml"), "--socket", sock]
        for _ in range(100):
            if subprocess.run(aml + ["daemon", "status"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        proj = os.path.join(root, "proj")
        os.makedirs(os.path.join(proj, "src"))
        with open(os.path.join(proj, "src", "train.py"), "w") as f:
            f.write("import amldtest_alpha\nprint(amldtest_alpha.hello())\n")
        rows = {"first run": [], "second run": [], "first e2e": [], "second e2e": [],
                "by hand": []}
        for rep in range(args.reps):
            with open(os.path.join(proj, "conda.yml"), "w") as f:
                f.write("dependencies:\n  - python\n  - pip\n  - pip:\n"
                        "    - amldtest-alpha>=0.%d\n" % rep)
            with open(os.path.join(proj, "job.yml"), "w") as f:
                f.write("experiment_name: envbench\ncode: ./src\ncommand: python train.py\n"
                        "environment:\n  conda_file: conda.yml\n")
            for which in ("first", "second"):
                start = time.perf_counter()
                out = run(aml + ["--output", "json", "run", "submit", "-f",
                                 os.path.join(proj, "job.yml"), "--wait"])
                rows[which + " e2e"].append(time.perf_counter() - start)
                rows[which + " run"].append(preparing_seconds(aml, json.loads(out)["id"]))
            hand = os.path.join(root, "hand-%d" % rep)
            start = time.perf_counter()
            run(["python3", "-m", "venv", hand])
            run([hand + "/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "--no-index", "--find-links", wheels, "amldtest-alpha>=0.%d" % rep])
            rows["by hand"].append(time.perf_counter() - start)
        result = {k: round(statistics.median(v), 3) for k, v in rows.items()}
        result["reps"] = args.reps
        print("%-12s %s" % ("figure", "median s (all)"))
        for k, v in rows.items():
            print("%-12s %7.3f  %s" % (k, statistics.median(v), " ".join("%.3f" % x for x in v)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
