#!/usr/bin/env python3
"""Deterministic source trees for amld's benchmarks (see docs/ARCHITECTURE.md).

    python3 bench/gen_project.py small DEST --seed N   # 300 files, ~5 MB of .py/.json/.yaml
    python3 bench/gen_project.py large DEST --seed N   # 10,000 files, ~300 MB: text files
                                                       # plus five 40 MB binary files

The same kind and seed always give byte-identical trees (names, content and
modes), so runs on different machines compare. DEST must not exist or be an
empty folder. Prints a JSON summary {"kind", "seed", "files", "bytes",
"folders"} on stdout. Needs Python 3.9+ and nothing else.
"""

import argparse
import json
import os
import random
import sys

WORDS = (
    "model layer loss batch epoch tensor optimizer gradient weight bias input output "
    "train eval config dataset loader sample feature label metric score accuracy step "
    "learning rate decay momentum dropout hidden size shape device cuda cpu seed run "
    "checkpoint save load path file name value index mean std norm scale split test"
).split()

KINDS = {
    # files, text bytes in all, binary files, bytes per binary file
    "small": dict(files=300, text_bytes=5 * 1000 * 1000, binaries=0, binary_bytes=0),
    "large": dict(files=10_000, text_bytes=100 * 1000 * 1000, binaries=5,
                  binary_bytes=40 * 1024 * 1024),
}


def line_pool(rng, ext, n=4000):
    """Lines in the style of the file type, drawn once per type."""
    lines = []
    for i in range(n):
        w = rng.choices(WORDS, k=rng.randint(5, 10))
        if ext == ".py":
            style = i % 4
            if style == 0:
                lines.append(f"def {w[0]}_{w[1]}({', '.join(w[2:5])}):")
            elif style == 1:
                lines.append(f"    {w[0]}_{w[1]} = {w[2]}({', '.join(w[3:])})")
            elif style == 2:
                lines.append(f"    # {' '.join(w)}")
            else:
                lines.append(f"    return {w[0]} * {rng.random():.6f}")
        elif ext == ".json":
            lines.append(f'  "{w[0]}_{w[1]}": {json.dumps(" ".join(w[2:]))},')
        else:
            lines.append(f"{w[0]}_{w[1]}: {' '.join(w[2:])}  # {rng.randint(0, 10**6)}")
    return [line + "\n" for line in lines]


def folder_paths(rng, count):
    """Nested folders, up to four levels, named like a Python project."""
    folders = [""]
    while len(folders) < count:
        parent = rng.choice(folders)
        if parent.count("/") >= 3:
            continue
        name = f"{rng.choice(WORDS)}_{len(folders):03d}"
        folders.append(f"{parent}/{name}" if parent else name)
    return folders


def text_file(rng, pools, ext, size):
    pool = pools[ext]
    out = []
    total = 0
    while total < size:
        chunk = rng.choices(pool, k=64)
        out.extend(chunk)
        total += sum(len(c) for c in chunk)
    data = "".join(out)[:size]
    return (data.rsplit("\n", 1)[0] + "\n").encode() if "\n" in data else data.encode()


def generate(kind, dest, seed):
    spec = KINDS[kind]
    rng = random.Random(f"amld-bench-{kind}-{seed}")
    exts = [".py", ".json", ".yaml"]
    pools = {ext: line_pool(rng, ext) for ext in exts}
    text_files = spec["files"] - spec["binaries"]
    folders = folder_paths(rng, max(4, text_files // 25))
    # Sizes: mostly small, a few larger (a long tail, as in real projects).
    weights = [min(rng.paretovariate(1.8), 60.0) for _ in range(text_files)]
    scale = spec["text_bytes"] / sum(weights)
    total_bytes = 0
    made = set()
    for i in range(text_files):
        ext = exts[i % 3]
        folder = folders[i % len(folders)]
        name = f"{rng.choice(WORDS)}_{i:05d}{ext}"
        rel = f"{folder}/{name}" if folder else name
        data = text_file(rng, pools, ext, max(16, int(weights[i] * scale)))
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if ext == ".py" and i % 10 == 0:
            os.chmod(path, 0o755)
        else:
            os.chmod(path, 0o644)
        made.add(os.path.dirname(rel))
        total_bytes += len(data)
    for b in range(spec["binaries"]):
        rel = f"data/blob_{b}.bin"
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = spec["binary_bytes"]
            while left > 0:
                n = min(left, 8 << 20)
                f.write(rng.randbytes(n))
                left -= n
        os.chmod(path, 0o644)
        made.add("data")
        total_bytes += spec["binary_bytes"]
    return {"kind": kind, "seed": seed, "files": spec["files"], "bytes": total_bytes,
            "folders": len(made)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("dest")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if os.path.exists(args.dest) and (not os.path.isdir(args.dest) or os.listdir(args.dest)):
        sys.exit(f"gen_project.py: {args.dest} exists and is not an empty folder")
    os.makedirs(args.dest, exist_ok=True)
    print(json.dumps(generate(args.kind, args.dest, args.seed)))


if __name__ == "__main__":
    main()
