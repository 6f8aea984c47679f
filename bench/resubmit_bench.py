#!/usr/bin/env python3
"""Resubmit figures: how long `aml run submit` takes on a project amld has seen.

    python3 bench/resubmit_bench.py --bin build-release/bin --project DIR [--reps 5]

Starts a private amld (temp data dir, socket and stat cache), then times
`aml run submit -q -s DIR --command true` (until the run id is printed):
  first submit            cold CAS and stat cache: hash and upload everything
  unchanged (walk)        the client walks; the stat cache spares every read
  one file changed (walk) one small file appended to before each submit
  watch                   `aml snapshot watch DIR` (scan with a warm CAS)
  unchanged (watched)     the daemon serves the tree: no walk, no upload
  one file changed (watched)
and, as the anchor on a copy of DIR, `git add -A && git commit` after one
changed file. Each run is waited for (untimed) before the next submit, so
materializing it does not compete with the next measurement. Prints a table
of medians and writes the same as JSON to --json (default: stdout only).
DIR is modified (files appended to); generate it with bench/gen_project.py.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(argv, **kw):
    start = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return elapsed, r.stdout


def small_files(project, n):
    """n small text files to append to, one per repetition."""
    found = []
    for dirpath, _, names in sorted(os.walk(project)):
        for name in sorted(names):
            p = os.path.join(dirpath, name)
            if name.endswith(".py") and os.path.getsize(p) < 20000:
                found.append(p)
                if len(found) == n:
                    return found
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="folder with aml, amld, amld-shim")
    ap.add_argument("--project", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    aml = os.path.join(os.path.abspath(args.bin), "aml")
    project = os.path.abspath(args.project)
    tmp = tempfile.mkdtemp(prefix="amld-rb-", dir="/tmp")
    sock = os.path.join(tmp, "amld.sock")
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    for k in ("AMLD_SOCKET", "AMLD_DATA_DIR", "AMLD_MAX_SNAPSHOT_BYTES", "AMLD_MAX_SNAPSHOT_FILES"):
        env.pop(k, None)
    base = [aml, "--socket", sock]
    results = {}

    def submit():
        t, out = timed(base + ["run", "submit", "-q", "-s", project, "--command", "true"], env=env)
        subprocess.run(base + ["run", "wait", out.strip()], env=env, capture_output=True)
        return t

    def series(name, before=None):
        runs = []
        edits = small_files(project, args.reps)
        for i in range(args.reps):
            if before:
                before(edits[i % len(edits)], i)
            runs.append(submit())
        results[name] = runs

    def append(path, i):
        with open(path, "a") as f:
            f.write(f"# edit {time.time_ns()} {i}\n")

    try:
        timed(base + ["daemon", "start", "--data-dir", os.path.join(tmp, "data")], env=env)
        results["first submit (cold CAS, no stat cache)"] = [submit()]
        time.sleep(1.2)  # past the stat cache's racy window
        series("resubmit unchanged, client walk + stat cache")
        series("resubmit after one changed file, client walk + stat cache", append)
        t, _ = timed(base + ["snapshot", "watch", project], env=env)
        results["aml snapshot watch (warm CAS)"] = [t]
        series("resubmit unchanged, watched root")
        series("resubmit after one changed file, watched root", append)
        timed(base + ["snapshot", "unwatch", project], env=env)
        # The anchor, on a copy (a repository inside DIR would make every
        # submit read git status).
        repo = os.path.join(tmp, "git-copy")
        shutil.copytree(project, repo, symlinks=True)
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@e", "-C", repo]
        timed(git + ["init", "-q"])
        timed(git + ["add", "-A"])
        timed(git + ["commit", "-q", "-m", "base"])
        runs = []
        for i, path in enumerate(small_files(repo, args.reps)):
            append(path, i)
            start = time.perf_counter()
            subprocess.run(git + ["add", "-A"], check=True)
            subprocess.run(git + ["commit", "-q", "-m", f"edit {i}"], check=True)
            runs.append(time.perf_counter() - start)
        results["anchor: git add -A && git commit, one changed file"] = runs
    finally:
        subprocess.run(base + ["daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    table = []
    for name, runs in results.items():
        table.append({"name": name, "median_s": statistics.median(runs), "runs_s": runs})
    width = max(len(r["name"]) for r in table)
    for r in table:
        print(f"{r['name']:<{width}}  {r['median_s'] * 1000:9.1f} ms  (n={len(r['runs_s'])})",
              file=sys.stderr)
    out = json.dumps({"project": project, "reps": args.reps, "results": table}, indent=2)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
