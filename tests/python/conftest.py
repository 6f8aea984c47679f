"""Fixtures of the Python SDK tests: the build's binaries, a real amld, a project folder.

Run by ctest (tests/python/CMakeLists.txt) as
``/usr/bin/python3 -m pytest tests/python`` with PYTHONPATH=<build>/python and
AMLD_SOURCE_DIR, AMLD_BUILD_DIR and AMLD_AML set; run by hand, the build
folder defaults to <repo>/build.

The daemon is the real ``bin/amld`` on a fresh data folder and socket under
/tmp (short: socket paths must fit in 108 bytes). Its environment, which runs
inherit, has PYTHONPATH=<build>/python (training scripts can import amld)
and /usr/bin first on PATH (runs' ``python3`` is Debian's).
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

SOURCE_DIR = os.environ.get("AMLD_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("AMLD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
BIN_DIR = os.path.join(BUILD_DIR, "bin")
PYTHON_DIR = os.path.join(BUILD_DIR, "python")
# Generous: the machines running the suite are small and busy.
WAIT_SECONDS = 120


def binary(name):
    """Path of a built binary; fails the test (not skips) when it was not built."""
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: build it first (cmake --build %s)" % (path, BUILD_DIR))
    return path


os.environ.setdefault("AMLD_AML", os.path.join(BIN_DIR, "aml"))
for leftover in ("AMLD_RUN_ID", "AMLD_METRICS_FILE", "AMLD_OUTPUTS_DIR", "AMLD_LOGS_DIR",
                 "AMLD_EXPERIMENT", "AMLD_SOCKET"):
    os.environ.pop(leftover, None)
# Runs start from their submitter's environment (RunConfig.submitter_environment), this
# process's or an `aml` child's: /usr/bin first, so their `python3` is Debian's (with grpcio and
# protobuf), as the daemon's is.
os.environ["PATH"] = "/usr/bin:/bin:" + os.environ.get("PATH", "")


def wait_until(predicate, what, timeout=WAIT_SECONDS, interval=0.1):
    """Poll ``predicate`` until it returns a true value, which is returned; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(interval)


class Daemon:
    """A running bin/amld on its own socket and data folder."""

    def __init__(self, root, extra_args=()):
        self.root = root
        self.extra_args = list(extra_args)
        self.socket = os.path.join(root, "amld.sock")
        self.data_dir = os.path.join(root, "data")
        self.log_path = os.path.join(root, "amld.out")
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = PYTHON_DIR
        self.env["PATH"] = "/usr/bin:/bin:" + os.environ.get("PATH", "")
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [binary("amld"), "--socket", self.socket, "--data-dir", self.data_dir,
                 "--max-concurrent-runs", "4",
                 # Slots, not cores: room for a 3-process distributed run on a 2-core machine.
                 "--cpus", "4"] + self.extra_args,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        from amld.core import Workspace
        from amld.exceptions import DaemonUnavailableException
        ws = Workspace(self.socket)

        def answers():
            if self.process.poll() is not None:
                pytest.fail("amld exited with %s:\n%s" % (self.process.returncode, self.log()))
            try:
                return ws.get_details()
            except DaemonUnavailableException:
                return None

        return wait_until(answers, "amld to answer at " + self.socket)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def run_dir(self, run_id):
        return os.path.join(self.data_dir, "runs", run_id)


@pytest.fixture(scope="session")
def daemon():
    """One amld for the session (runs of different tests do not interfere)."""
    root = tempfile.mkdtemp(prefix="amldpy.", dir="/tmp")
    d = Daemon(root)
    d.info = d.start()
    yield d
    d.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def project(tmp_path, daemon, monkeypatch):
    """A project folder with .amld/config.json pointing at the daemon; the test runs in it."""
    folder = tmp_path / "project"
    (folder / ".amld").mkdir(parents=True)
    (folder / ".amld" / "config.json").write_text(json.dumps({"socket": daemon.socket}))
    # The workspace config is the client's business, not the run's.
    (folder / ".amlignore").write_text(".amld/\n")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def ws(project):
    """The Workspace of the project (found by Workspace.from_config())."""
    from amld.core import Workspace
    return Workspace.from_config()


def write_script(folder, name, text):
    """Write a training script into ``folder``; returns its path."""
    path = os.path.join(os.fspath(folder), name)
    with open(path, "w") as f:
        f.write(text)
    return path


class LineReader:
    """Reads a subprocess's stdout lines on a thread, so a test can wait for one with a timeout."""

    def __init__(self, stream):
        self.lines = []
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        for line in iter(stream.readline, ""):
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text, timeout=WAIT_SECONDS):
        """Return once a line containing ``text`` was read; fail on timeout or end of output."""
        deadline = time.monotonic() + timeout
        while True:
            if any(text in line for line in self.lines):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no line with %r after %ds; got:\n%s" % (text, timeout,
                                                                    "".join(self.lines)))
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail("output ended without a line with %r; got:\n%s"
                            % (text, "".join(self.lines)))
            self.lines.append(line)

    def rest(self, timeout=WAIT_SECONDS):
        """All remaining output (waits for the end)."""
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def listening_socket(path):
    """A Unix socket accepting connections at ``path``, as a daemon's (the caller closes it)."""
    import socket
    os.makedirs(os.path.dirname(path), exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    return server


def python_env(**extra):
    """The environment for a child /usr/bin/python3 that imports the SDK from the build."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3"
