#!/usr/bin/python3
"""tests/layering_check.py can fail: on a scratch tree with this repo's table,
a clean storage file passes, and a storage file including a daemon header,
a folder without a row and a cycle in the table each fail with their line.

    tests/layering_check_test.py SOURCE_ROOT
"""
import os
import subprocess
import sys
import tempfile

ROOT = sys.argv[1]
CHECK = os.path.join(ROOT, "tests", "layering_check.py")
TABLE = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md"), encoding="utf-8").read()


def run(files, table=TABLE):
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "docs"))
        with open(os.path.join(tmp, "docs", "ARCHITECTURE.md"), "w", encoding="utf-8") as f:
            f.write(table)
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            with open(os.path.join(tmp, rel), "w", encoding="utf-8") as f:
                f.write(text)
        r = subprocess.run([sys.executable, CHECK, tmp], stdout=subprocess.PIPE, text=True)
        return r.returncode, r.stdout


def expect(rc_and_out, rc, needle):
    got_rc, out = rc_and_out
    assert got_rc == rc and needle in out, f"expected rc {rc} and {needle!r}, got rc {got_rc}: {out!r}"


expect(run({"storage/a.cc": '#include "base/file_util.h"\n#include "amld/v1/runs.pb.h"\n'}), 0, "")
expect(run({"storage/a.cc": '#include "daemon/runs/run_manager.h"\n'}), 1,
       "storage/a.cc:1: storage may not include daemon/runs/run_manager.h")
expect(run({"storage/a.cc": '#include <amld/v1/runs.grpc.pb.h>\n'}), 1,
       "storage may not include amld/v1/runs.grpc.pb.h (grpc)")
expect(run({"daemon/newpart/x.cc": '#include "base/clock.h"\n'}), 1,
       "the folder daemon/newpart has no row of its own")
expect(run({}, TABLE.replace("| `base` | — |", "| `base` | `storage` |")), 1, "the table has a cycle")
print("ok")
