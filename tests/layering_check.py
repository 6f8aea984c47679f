#!/usr/bin/python3
"""Checks every #include of the C++ sources against the dependency table of
docs/ARCHITECTURE.md §1, the one place the layering is written down.

    tests/layering_check.py SOURCE_ROOT

The table sits between `<!-- layering:begin -->` and `<!-- layering:end -->`;
each row is `| module | may include |`. A module is a folder; a file belongs
to the longest module that is a prefix of its folder. `amld/v1/*.pb.h` is
the module `proto`, `amld/v1/*.grpc.pb.h` is `grpc`; other includes
(Abseil, the standard library, ...) are not checked. A file may include its
own module and the modules of its row, nothing else. The table must be a
DAG and must name, as a row of its own, every folder outside tests/ that
holds C++ sources. Prints every
offending line as file:line and exits 1; prints nothing and exits 0 when
all hold.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
SOURCE_TOPS = ("base", "storage", "daemon", "client", "tests", "bench")
INCLUDE = re.compile(r'^\s*#\s*include\s+["<]([^">]+)[">]')


def read_table():
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"<!-- layering:begin -->(.*?)<!-- layering:end -->", text, re.S)
    if not m:
        sys.exit(f"{DOC}: no <!-- layering:begin --> ... <!-- layering:end --> table")
    table = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue  # header, separator, prose
        module = cells[0].strip("`")
        allowed = re.findall(r"`([^`]+)`", cells[1])
        table[module] = set(allowed)
    return table


def check_dag(table):
    errors = []
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        if state.get(m) == "active":
            errors.append("the table has a cycle: " + " -> ".join(path + [m]))
            return
        state[m] = "active"
        for d in sorted(table.get(m, ())):
            if d not in table and d != "*":
                errors.append(f"module {m} may include {d}, which the table does not list")
                continue
            if d != "*":
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(table):
        visit(m, [])
    return errors


def module_of(table, rel_path):
    """The module a source-relative path (a file or an include) belongs to."""
    if rel_path.startswith("amld/v1/"):
        return "grpc" if rel_path.endswith(".grpc.pb.h") else "proto"
    folder = os.path.dirname(rel_path)
    best = None
    for m in table:
        if folder == m or folder.startswith(m + "/"):
            if best is None or len(m) > len(best):
                best = m
    return best


def main():
    table = read_table()
    errors = check_dag(table)
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d in SOURCE_TOPS]
            continue
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith((".cc", ".h")):
                continue
            rel = os.path.join(rel_dir, name)
            mod = module_of(table, rel)
            if mod is not None and mod != "tests" and mod != rel_dir:
                # A new folder is a new responsibility: it gets its own row,
                # never the rights of the folder above it.
                errors.append(f"{rel}: the folder {rel_dir} has no row of its own in the table "
                              f"in docs/ARCHITECTURE.md §1; add one")
                continue
            if mod is None:
                errors.append(f"{rel}: its folder is in no module of the table in docs/ARCHITECTURE.md §1; add a row for it")
                continue
            allowed = table[mod]
            with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if not (inc.startswith("amld/v1/") or inc.split("/")[0] in SOURCE_TOPS):
                        continue  # a third-party or standard header
                    target = module_of(table, inc)
                    if target is None:
                        errors.append(f"{rel}:{lineno}: includes {inc}, which is in no module of the table")
                    elif target != mod and target not in allowed and "*" not in allowed:
                        errors.append(f"{rel}:{lineno}: {mod} may not include {inc} ({target}); "
                                      f"docs/ARCHITECTURE.md §1 lets {mod} include only: "
                                      f"{', '.join(sorted(allowed)) or 'nothing'}")
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
