"""`aml sweep submit -f sweep.yml` (Azure ML's sweep job YAML) and `aml sweep show`, and
`aml run list --parent`, against a real daemon."""

import json
import re
import subprocess

from conftest import binary, write_script

SWEEP_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: cli-sweep
trial:
  code: ./src
  command: >-
    python3 train.py --lr ${{search_space.lr}} --opt ${{search_space.opt}}
search_space:
  lr:
    type: choice
    values: [0.1, 0.01, 0.001]
  opt:
    type: choice
    values: [adam, sgd]
sampling_algorithm: grid
objective:
  goal: minimize
  primary_metric: loss
limits:
  max_concurrent_trials: 3
  timeout: 600
"""

TRAIN = """
import argparse, math
from amld.core import Run
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--opt")
a = p.parse_args()
run = Run.get_context()
for step in range(1, 3):
    run.log("loss", abs(math.log10(a.lr) + 2) + (0.5 if a.opt == "sgd" else 0) + 1.0 / step)
"""


def aml(ws, *args):
    return subprocess.run([binary("aml"), "--socket", ws.socket_path] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sweep_submit_show_and_list_children(ws, project):
    (project / "src").mkdir()
    write_script(project / "src", "train.py", TRAIN)
    (project / "sweep.yml").write_text(SWEEP_YML)
    done = aml(ws, "--output", "json", "sweep", "submit", "-f", str(project / "sweep.yml"),
               "--wait")
    assert done.returncode == 0, done.stderr
    sweep_id = json.loads(done.stdout)["id"]

    shown = json.loads(aml(ws, "--output", "json", "sweep", "show", sweep_id).stdout)
    assert shown["sweep"]["status"] == "COMPLETED"
    children = shown["children"]
    assert len(children) == 6  # the whole grid
    assert children[0]["hyperparameters"] == '{"lr": 0.01, "opt": "adam"}'
    best = [c["best_primary_metric"] for c in children]
    assert best == sorted(best)

    table = aml(ws, "sweep", "show", sweep_id)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("RUN"))
    assert "BEST loss" in lines[header] and children[0]["run_id"] in lines[header + 1]

    # `aml run show` of the parent sums its children up: how many, and the best.
    parent = aml(ws, "run", "show", sweep_id)
    assert parent.returncode == 0, parent.stderr
    assert re.search(r"^children: +6\b", parent.stdout, re.M)
    assert "%s  loss %g (minimize)" % (children[0]["run_id"], best[0]) in parent.stdout
    assert "aml sweep show " + sweep_id in parent.stdout

    listed = json.loads(aml(ws, "--output", "json", "run", "list", "--parent", sweep_id).stdout)
    assert sorted(r["id"] for r in listed["runs"]) == sorted(c["run_id"] for c in children)
    # The command got the values in place of the references.
    assert any("--lr 0.01 --opt adam" in r["config"]["command"] for r in listed["runs"])

    not_sweep = aml(ws, "sweep", "show", children[0]["run_id"])
    assert not_sweep.returncode == 1 and "is not a sweep" in not_sweep.stderr


def test_sweep_yaml_errors_name_file_line_and_key(ws, project):
    path = project / "bad.yml"
    path.write_text(SWEEP_YML.replace("  timeout: 600\n", "  timeout: 600\n  max_trials: 3\n"))
    done = aml(ws, "sweep", "submit", "-f", str(path))
    assert done.returncode == 1
    assert "bad.yml:22:3: unknown key \"limits.max_trials\"" in done.stderr, done.stderr
    path.write_text(SWEEP_YML.replace("type: choice\n    values: [adam, sgd]",
                                      "type: gaussian"))
    done = aml(ws, "sweep", "submit", "-f", str(path))
    assert "unknown type \"gaussian\" of search_space.opt" in done.stderr, done.stderr
    path.write_text(SWEEP_YML.replace("${{search_space.opt}}", "${{search_space.momentum}}"))
    (project / "src").mkdir(exist_ok=True)
    write_script(project / "src", "train.py", TRAIN)
    done = aml(ws, "sweep", "submit", "-f", str(path))
    assert "${{search_space.momentum}} names no parameter" in done.stderr, done.stderr
