"""Metrics logged from inside runs: the file format, concurrent writers, the logging API in a
real run, metrics visible while the run runs, `aml run metrics`, and offline runs."""

import json
import os
import subprocess

import pytest

from conftest import PYTHON, binary, python_env, wait_until
from test_wait import submit


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


WRITER = """
import sys
from amld.core._metrics import MetricsFile
f = MetricsFile(sys.argv[1])
for i in range(int(sys.argv[3])):
    f.append("w" + sys.argv[2], i, step=i, description="x" * (i % 300))
"""


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    writers = [subprocess.Popen([PYTHON, "-c", WRITER, path, str(w), "400"], env=python_env())
               for w in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    lines = read_lines(path)  # every line is whole JSON
    assert len(lines) == 1600
    for w in range(4):
        assert [line["value"] for line in lines if line["name"] == "w%d" % w] == list(range(400))


def test_values_are_written_as_the_daemon_reads_them(tmp_path):
    from amld.core._metrics import MetricsFile
    from amld.exceptions import UserErrorException
    path = str(tmp_path / "m.jsonl")
    f = MetricsFile(path)
    f.append("a", 1)
    f.append("a", True)
    f.append("b", float("nan"), step=7)
    f.append("c", "text", description="what c is")
    with pytest.raises(UserErrorException, match="must be a number, a string, a bool or None"):
        f.append("d", [1, 2])
    with pytest.raises(UserErrorException, match="non-empty string"):
        f.append("", 1)
    with pytest.raises(UserErrorException, match="step must be an integer"):
        f.append("e", 1, step=1.5)
    with open(path) as raw:
        text = raw.read().splitlines()
    assert len(text) == 4 and "NaN" in text[2]
    lines = [json.loads(t) for t in text]
    assert "step" not in lines[0] and lines[1]["value"] is True and lines[2]["step"] == 7
    assert lines[3]["description"] == "what c is"


LOGGING_API = r"""
import os, sys
from amld.core import Run
from amld.exceptions import UnsupportedOptionError
run = Run.get_context()
assert run is Run.get_context()
print("context", run.id)
for epoch in range(3):
    run.log("loss", 1.0 / (epoch + 1), description="training loss")
run.log("note", "warm start")
run.log("lr", 0.1, step=10)
run.log_list("sizes", [3, 1, 2])
run.log_row("citrus", fruit="orange", size=10)
run.log_row("citrus", fruit="lime", size=3)
run.log_table("curve", {"x": [1, 2], "y": [0.5, 0.25]})
with open("pic.png", "wb") as f:
    f.write(b"\x89PNG fake")
print("image", run.log_image("confusion matrix", path="pic.png"))
with open("extra.txt", "w") as f:
    f.write("extra")
run.upload_file("outputs/extra.txt", "extra.txt")
run.upload_file("extra.txt", "extra.txt")  # any name, as in azureml
try:
    run.upload_file("user_logs/x.txt", "extra.txt")
except Exception as e:
    print("refused:", e)
run.tag("team", "vision")
run.complete()
"""


def test_logging_api_inside_a_run(ws, daemon):
    run = submit(ws, LOGGING_API, "log_api.py", experiment="metrics")
    details = run.wait_for_completion()
    assert details["status"] == "Completed"
    log = open(os.path.join(daemon.run_dir(run.id), "user_logs", "std_log.txt")).read()
    assert "context " + run.id in log
    assert "refused: 'user_logs/x.txt': user_logs/ holds the run's own logs" in log
    assert run.get_tags()["team"] == "vision"

    lines = read_lines(os.path.join(daemon.run_dir(run.id), "metrics.jsonl"))
    names = [line["name"] for line in lines if "name" in line]  # not the "kind" lines
    assert names.count("loss") == 3
    assert {"note", "lr", "sizes", "citrus/fruit", "citrus/size", "curve/x", "curve/y",
            "confusion matrix"} <= set(names)
    assert [line["value"] for line in lines if line.get("name") == "sizes"] == [3, 1, 2]
    assert lines[0]["description"] == "training loss"

    files = run.get_file_names()
    assert "outputs/extra.txt" in files and "extra.txt" in files
    assert "outputs/images/confusion_matrix.png" in files

    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1.0 / 3]
    assert metrics["note"] == "warm start"
    assert metrics["lr"] == 0.1
    assert metrics["sizes"] == [3, 1, 2]
    assert metrics["citrus"] == {"fruit": ["orange", "lime"], "size": [10, 3]}
    assert metrics["curve"] == {"x": [1, 2], "y": [0.5, 0.25]}
    assert metrics["confusion matrix"] == "outputs/images/confusion_matrix.png"
    assert run.get_metrics(name="lr") == {"lr": 0.1}

    shown = subprocess.run([binary("aml"), "--socket", ws.socket_path, "run", "metrics", run.id],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split() == ["NAME", "COUNT", "LAST", "STEP", "LAST", "MIN", "MAX"]
    loss = [r for r in rows if r.startswith("loss ")][0].split()
    assert loss == ["loss", "3", "2", "0.333333", "0.333333", "1"]

    as_json = subprocess.run([binary("aml"), "--socket", ws.socket_path, "--output", "json",
                              "run", "metrics", run.id, "--name", "loss", "--name", "note"],
                             stdout=subprocess.PIPE, text=True)
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["run_id"] == run.id
    by_name = {m["name"]: m for m in report["metrics"]}
    assert set(by_name) == {"loss", "note"}
    assert by_name["loss"]["count"] == 3 and by_name["loss"]["max"] == 1
    assert by_name["loss"]["min"] == pytest.approx(1 / 3) and by_name["loss"]["last_step"] == 2
    assert [v["step"] for v in by_name["loss"]["values"]] == [0, 1, 2]
    assert by_name["note"]["last"] == "warm start" and by_name["note"]["min"] is None


SHAPES = r"""
from amld.core import Run
run = Run.get_context()
run.log("once", 3)
run.log("twice", 0.5)
run.log("twice", 0.25)
run.log("flag", True)
run.log("nothing", None)
run.log_list("one_item", [7])
run.log_list("items", [1, 2, 3])
run.log_row("Y over X", x=1, y=0.4)
run.log_row("citrus", fruit="orange", size=10)
run.log_row("citrus", fruit="lime", size=3, ripe=True)
run.log_table("curve", {"x": [1, 2], "y": [0.5, None]})
run.log_table("curve", {"x": [3], "y": [0.125]})
for bad in (lambda: run.log_row("r", a=[1, 2]), lambda: run.log_table("t", {"a": [1], "b": [1, 2]})):
    try:
        bad()
    except Exception as e:
        print("refused:", e)
"""

# azureml v1 (azureml.core._metrics InlineMetric, the metrics client's dto_to_metrics_dict):
# a name logged once is its value, more often a list (log_list's values the same way); a
# table (log_row, log_table) is {column: value} with one row and {column: [values]} with
# more, None filling a column a row lacks; bool and None values stay bool and None, ints
# stay ints; tables are nested dicts, never flattened "<table>/<column>" names.
EXPECTED_SHAPES = {
    "once": 3, "twice": [0.5, 0.25], "flag": True, "nothing": None,
    "one_item": 7, "items": [1, 2, 3],
    "Y over X": {"x": 1, "y": 0.4},
    "citrus": {"fruit": ["orange", "lime"], "size": [10, 3], "ripe": [None, True]},
    "curve": {"x": [1, 2, 3], "y": [0.5, None, 0.125]},
}


def test_get_metrics_has_azureml_shapes_and_types(ws, daemon):
    run = submit(ws, SHAPES, "shapes.py", experiment="metrics")
    assert run.wait_for_completion()["status"] == "Completed"
    metrics = run.get_metrics()
    assert metrics == EXPECTED_SHAPES
    assert type(metrics["once"]) is int and type(metrics["flag"]) is bool
    assert type(metrics["twice"][0]) is float
    assert run.get_metrics(name="citrus") == {"citrus": EXPECTED_SHAPES["citrus"]}
    assert run.get_metrics(name="once") == {"once": 3}
    log = open(os.path.join(daemon.run_dir(run.id), "user_logs", "std_log.txt")).read()
    assert "refused: log_row('r'): column 'a' is a list" in log
    assert "refused: log_table('t'): columns have different lengths (a: 1, b: 2)" in log
    # The columns stay series of their own for `aml run metrics` and the web view.
    shown = subprocess.run([binary("aml"), "--socket", ws.socket_path, "run", "metrics", run.id],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "citrus/size" in shown.stdout and "curve/y" in shown.stdout


def test_an_interactive_run_gets_the_same_shapes(ws):
    """Experiment.start_logging(): the values go through UpdateRun, and come back the same."""
    from amld.core import Experiment
    run = Experiment(ws, "metrics").start_logging()
    run.log("once", 3)
    run.log("flag", False)
    run.log("nothing", None)
    run.log_row("citrus", fruit="orange", size=10)
    run.log_row("citrus", fruit="lime", size=3, ripe=True)
    run.complete()
    assert run.get_metrics() == {
        "once": 3, "flag": False, "nothing": None,
        "citrus": {"fruit": ["orange", "lime"], "size": [10, 3], "ripe": [None, True]}}


LIVE = """
import os, sys, time
from amld.core import Run
run = Run.get_context()
for i in range(3):
    run.log("progress", i * 10)
print("logged", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


def test_metrics_are_visible_while_the_run_is_still_running(ws, tmp_path):
    gate = tmp_path / "release"
    run = submit(ws, LIVE, "live.py", arguments=[str(gate)], experiment="metrics")
    try:
        metrics = wait_until(lambda: run.get_metrics().get("progress") == [0, 10, 20]
                             and run.get_metrics(), "the three progress values")
        assert metrics == {"progress": [0, 10, 20]}
        assert run.get_status() == "Running"  # the gate is closed: still running
    finally:
        gate.write_text("")
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_metrics() == {"progress": [0, 10, 20]}


OFFLINE = """
from amld.core import Run
run = Run.get_context()
print("id", run.id)
run.log("acc", 0.5)
run.log_row("t", a=1)
run.tag("k", "v")
print("metrics", run.get_metrics(), run.get_tags())
"""


def test_outside_amld_get_context_is_an_offline_run_that_prints(tmp_path):
    done = subprocess.run([PYTHON, "-c", OFFLINE], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=python_env())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "id OfflineRun_" in out
    assert "amld offline run: acc = 0.5" in out and "amld offline run: t/a = 1" in out
    assert "amld offline run: tag k=v" in out
    assert "metrics {'acc': 0.5, 't': {'a': 1}} {'k': 'v'}" in out
    strict = subprocess.run([PYTHON, "-c", "from amld.core import Run; "
                             "Run.get_context(allow_offline=False)"],
                            stderr=subprocess.PIPE, text=True, env=python_env())
    assert strict.returncode != 0 and "RunEnvironmentException" in strict.stderr


NO_GRPC = """
import sys
sys.modules["grpc"] = None               # importing them now fails
sys.modules["google.protobuf"] = None
from amld.core import Run
Run.get_context().log("loss", 0.25, step=1)
assert "grpc" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""


def test_logging_inside_a_run_needs_neither_grpc_nor_protobuf(tmp_path):
    # A run on a machine without the SDK's dependencies can still log.
    path = tmp_path / "metrics.jsonl"
    done = subprocess.run([PYTHON, "-c", NO_GRPC], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env=python_env(AMLD_RUN_ID="e_1_abcd0123", AMLD_EXPERIMENT="e",
                                         AMLD_METRICS_FILE=str(path)))
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert [(m["name"], m["value"], m["step"]) for m in read_lines(path)] == [("loss", 0.25, 1)]
