"""TensorBoard: event files' scalars become a run's metrics, and amld.tensorboard.Tensorboard /
`aml tensorboard` mirror runs' logs/ live and start TensorBoard on them.

The `tensorboard` package is not installable on the machines this suite runs on, so the launch
contract is checked with a stand-in named tensorboard put first on PATH: it records its argv and
answers HTTP on the port it is given, as TensorBoard does. The event files are written by the
runs with tests/python/tfevents.py (the documented framing, by hand); where torch's
SummaryWriter can be imported (it needs the tensorboard package), a run writes with it too.
"""

import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.request

import pytest

from conftest import binary, wait_until
from test_wait import submit
import tfevents

HERE = os.path.dirname(os.path.abspath(__file__))

# Writes scalars as training does, one step per signal file the test creates, so the test sees
# the mirror follow while the run runs.
FOLLOWED = """
import os, sys, time
from tfevents import EventsWriter
w = EventsWriter(os.path.join(os.environ.get("AMLD_LOGS_DIR", "logs"), "tb"))
w.scalar("loss", 1.0, step=0)
for step, signal in enumerate(sys.argv[1:], start=1):
    while not os.path.exists(signal):
        time.sleep(0.05)
    w.scalar("loss", 1.0 / (step + 1), step=step)
"""

# torch (simple_value) and TF2 (tensor) styles, two folders, and a torn last record left by a
# writer that died in the middle of it.
SCALARS = """
import os
from tfevents import EventsWriter, event, record, simple_value
logs = os.environ.get("AMLD_LOGS_DIR", "logs")
train = EventsWriter(os.path.join(logs, "train"))
evaluation = EventsWriter(os.path.join(logs, "eval", "tf2"))
for step in range(3):
    train.scalar("Loss/train", 1.0 / (step + 1), step=step)
    evaluation.scalar("accuracy", 0.5 + 0.1 * step, step=step, tensor=True)
train.write(record(event(3, [simple_value("Loss/train", 0.2)]))[:-7])
print("done")
"""

FAKE_TENSORBOARD = """#!/usr/bin/python3
# A stand-in for TensorBoard (the real package is not installable here): records its argv and
# answers HTTP on --port until SIGTERM.
import http.server, json, os, signal, sys
with open(os.environ["FAKE_TB_RECORD"], "w") as f:
    json.dump(sys.argv[1:], f)
port = int(sys.argv[sys.argv.index("--port") + 1])
host = sys.argv[sys.argv.index("--host") + 1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"fake tensorboard"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def stop(*_):
    with open(os.environ["FAKE_TB_RECORD"] + ".stopped", "w"):
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
http.server.HTTPServer((host, port), Handler).serve_forever()
"""


def copy_writer():
    shutil.copy(os.path.join(HERE, "tfevents.py"), os.getcwd())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mirrored_events(folder):
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.startswith("events.out.tfevents.")]
    return found


def test_event_file_scalars_are_the_runs_metrics(ws, daemon):
    copy_writer()
    run = submit(ws, SCALARS, "scalars.py", experiment="tensorboard")
    assert run.wait_for_completion()["status"] == "Completed"
    metrics = run.get_metrics()
    assert metrics["Loss/train"] == pytest.approx([1.0, 0.5, 1.0 / 3])  # not the torn fourth
    assert metrics["accuracy"] == pytest.approx([0.5, 0.6, 0.7])
    shown = subprocess.run([binary("aml"), "--socket", ws.socket_path, "--output", "json",
                            "run", "metrics", run.id, "--name", "accuracy"],
                           stdout=subprocess.PIPE, text=True)
    assert shown.returncode == 0
    values = json.loads(shown.stdout)["metrics"][0]["values"]
    assert [v["step"] for v in values] == [0, 1, 2]
    # The torn record is reported where malformed metric lines are.
    report = open(os.path.join(daemon.run_dir(run.id), "system_logs", "amld-metrics.log")).read()
    assert "the last record is incomplete" in report and "logs/train/events.out.tfevents." in report
    # The event files are the run's logs, stored as such.
    assert any(n.startswith("logs/eval/tf2/events.out.tfevents.") for n in run.get_file_names())


def test_summary_writer_scalars_are_the_runs_metrics(ws):
    pytest.importorskip("torch.utils.tensorboard",
                        reason="SummaryWriter needs the tensorboard package, not installed here")
    script = """
import os
from torch.utils.tensorboard import SummaryWriter
w = SummaryWriter(os.environ.get("AMLD_LOGS_DIR", "logs"))
for step in range(4):
    w.add_scalar("loss", 1.0 / (step + 1), step)
w.close()
"""
    run = submit(ws, script, "summary_writer.py", experiment="tensorboard")
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_metrics()["loss"] == pytest.approx([1.0, 0.5, 1.0 / 3, 0.25])


def test_tensorboard_follows_a_running_run_and_starts_tensorboard(ws, tmp_path, monkeypatch):
    from amld.tensorboard import Tensorboard
    copy_writer()
    tools = tmp_path / "tools"
    tools.mkdir()
    fake = tools / "tensorboard"
    fake.write_text(FAKE_TENSORBOARD)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "tensorboard-argv.json"
    monkeypatch.setenv("PATH", "%s:%s" % (tools, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_TB_RECORD", str(record))
    monkeypatch.delenv("AMLD_TENSORBOARD", raising=False)
    signals = [str(tmp_path / ("go%d" % i)) for i in (1, 2)]
    run = submit(ws, FOLLOWED, "followed.py", arguments=signals, experiment="tensorboard")
    local_root = tmp_path / "tb-logs"
    port = free_port()
    board = Tensorboard([run], local_root=str(local_root), port=port)
    url = board.start()
    try:
        assert url == "http://127.0.0.1:%d/" % port
        assert urllib.request.urlopen(url, timeout=10).read() == b"fake tensorboard"
        folder = str(local_root / run.id)
        assert json.loads(record.read_text()) == [
            "--logdir_spec", "%s:%s" % (run.id, folder), "--port", str(port), "--host", "127.0.0.1"]

        def scalars():
            files = mirrored_events(folder)
            return tfevents.read_scalars(files[0]) if files else []

        wait_until(lambda: len(scalars()) == 1, "the first step in the mirror")
        open(signals[0], "w").close()
        wait_until(lambda: len(scalars()) == 2, "the second step in the mirror")
        assert run.get_status() == "Running"  # followed live, not restored at the end
        assert [s[:2] for s in scalars()] == [("loss", 0), ("loss", 1)]
        open(signals[1], "w").close()
        assert run.wait_for_completion()["status"] == "Completed"
        wait_until(lambda: len(scalars()) == 3, "the last step in the mirror")
        assert run.get_metrics()["loss"] == pytest.approx([1.0, 0.5, 1.0 / 3])
    finally:
        board.stop()
    assert os.path.exists(str(record) + ".stopped")  # TensorBoard was stopped with it
    assert mirrored_events(str(local_root / run.id))  # the logs stay


def test_without_tensorboard_it_says_how_to_install_and_still_mirrors(ws, tmp_path, monkeypatch):
    from amld.tensorboard import Tensorboard
    copy_writer()
    run = submit(ws, FOLLOWED, "finished.py", experiment="tensorboard")
    assert run.wait_for_completion()["status"] == "Completed"
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no tensorboard anywhere
    monkeypatch.delenv("AMLD_TENSORBOARD", raising=False)
    board = Tensorboard([run], local_root=str(tmp_path / "logs"))
    try:
        assert board.start() is None
        assert "pip install tensorboard" in board.message
        assert board.local_root == str(tmp_path / "logs")
        # A finished run's logs, restored from the store.
        files = mirrored_events(str(tmp_path / "logs" / run.id))
        assert len(files) == 1 and [s[:2] for s in tfevents.read_scalars(files[0])] == [("loss", 0)]
        time.sleep(1.5)
        assert board._process.poll() is None  # still following until stop()
    finally:
        board.stop()

    # The CLI says the same, on stderr, and keeps the folder.
    cli = subprocess.Popen([binary("aml"), "--socket", ws.socket_path, "tensorboard", run.id,
                            "--logdir", str(tmp_path / "cli")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = cli.stderr.readline()
        assert "pip install tensorboard" in line and str(tmp_path / "cli") in line
        assert mirrored_events(str(tmp_path / "cli" / run.id))
    finally:
        cli.send_signal(2)
        assert cli.wait(timeout=30) == 0


def test_tensorboard_refuses_what_amld_cannot_do(ws):
    from amld.exceptions import UserErrorException
    from amld.tensorboard import Tensorboard
    with pytest.raises(UserErrorException, match="at least one run"):
        Tensorboard([])
