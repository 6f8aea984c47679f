"""Run.wait_for_completion against a real daemon: failures raise with the log tail; an
interrupted wait leaves the run running and a new wait reattaches."""

import os
import signal
import subprocess

import pytest

from conftest import PYTHON, LineReader, python_env, write_script

FAILING = """
import sys
for i in range(1, 41):
    print("line", i)
print("boom: the loss is NaN", file=sys.stderr)
sys.exit(3)
"""

# Runs until the file named by its argument exists, so the test decides when
# it ends (no timing).
GATED = """
import os, sys, time
print("started", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("released", flush=True)
"""


def submit(ws, script, name, arguments=None, experiment="waits"):
    from amld.core import Experiment, ScriptRunConfig
    write_script(os.getcwd(), name, script)
    src = ScriptRunConfig(source_directory=".", script=name, arguments=arguments or [],
                          max_run_duration_seconds=300)
    return Experiment(ws, experiment).submit(src)


def test_wait_raises_on_a_failed_run_with_the_log_tail(ws):
    from amld.exceptions import ActivityFailedException
    run = submit(ws, FAILING, "fail.py")
    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion()
    e = caught.value
    assert e.run_id == run.id and e.status == "Failed"
    assert "exit code 3" in e.error
    message = str(e)
    assert run.id in message and "exit code 3" in message
    assert "boom: the loss is NaN" in message and "line 40" in message
    # Only the tail: the first lines are not quoted.
    assert "line 1\n" not in message + "\n" and "line 10\n" not in message
    assert e.log_tail.splitlines()[-1] == "boom: the loss is NaN"


def test_wait_with_output_streams_then_raises(ws, capsys):
    from amld.exceptions import ActivityFailedException
    run = submit(ws, FAILING, "fail.py")
    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "line 1\n" in out and "line 40\n" in out and "boom" in out
    assert "Status: Failed" in out
    assert "boom" in caught.value.log_tail


def test_wait_without_raising_returns_the_details(ws):
    run = submit(ws, FAILING, "fail.py")
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert details["error"]["error"]["code"] == "UserError"
    assert "exit code 3" in details["error"]["error"]["message"]
    assert details["properties"]["exitCode"] == 3


WAITER = """
import sys
from amld.core import Run, Workspace
from amld.exceptions import ExperimentExecutionException
run = Run.get(Workspace(sys.argv[1]), sys.argv[2])
try:
    run.wait_for_completion(show_output=True)
except ExperimentExecutionException as e:
    print("INTERRUPTED:", e, flush=True)
    sys.exit(42)
print("WAIT ENDED", flush=True)
"""


def test_interrupted_wait_leaves_the_run_running_and_a_new_wait_reattaches(ws, tmp_path,
                                                                           capsys):
    gate = tmp_path / "release"
    run = submit(ws, GATED, "gated.py", arguments=[str(gate)])

    waiter = subprocess.Popen([PYTHON, "-c", WAITER, ws.socket_path, run.id],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=python_env())
    reader = LineReader(waiter.stdout)
    reader.wait_for("started")  # the waiter is streaming the live output
    waiter.send_signal(signal.SIGINT)
    assert waiter.wait(timeout=60) == 42, reader.rest()
    output = reader.rest()
    assert "INTERRUPTED:" in output and "still going on" in output and run.id in output
    assert "released" not in output

    assert run.get_status() == "Running"

    gate.write_text("")
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"
    out = capsys.readouterr().out
    # Reattached: the whole output, each line once.
    assert out.count("started\n") == 1 and out.count("released\n") == 1
