"""TensorBoard over runs' logs, as azureml.tensorboard.

``Tensorboard([run, ...], local_root=None, port=6006).start()`` keeps a local
folder per run mirrored live from the run's ``logs/`` (as the daemon stores
them: from any compute target while the run runs, from the store once it has
ended) and starts the ``tensorboard`` found on PATH (or named by
``$AMLD_TENSORBOARD``) on it; ``start`` returns its URL and ``stop`` ends both.

The work is ``aml tensorboard`` (client/commands/tensorboard.cc), run as a
child process, so the CLI and the SDK share one mirror. Without TensorBoard,
``start`` warns how to install it (``pip install tensorboard``) and returns
None; the mirror goes on until ``stop``, and ``local_root`` holds the logs.

Differences from azureml: an empty ``runs`` list is refused (azureml then
serves whatever ``local_root`` holds: start ``tensorboard --logdir`` on it
yourself); ``use_display_name=True`` is refused (folders are named by run id).
"""

import atexit
import json
import os
import queue
import signal
import subprocess
import sys
import threading

from amld.core import _snapshot
from amld.exceptions import UserErrorException

__all__ = ["Tensorboard"]

# How long start() waits for the first pass and for TensorBoard to answer.
_START_SECONDS = 120


class Tensorboard:
    """A TensorBoard over the logs of one or more runs (azureml's signature)."""

    def __init__(self, runs, local_root=None, port=6006, use_display_name=False):
        """Attach ``runs`` (a list of Run objects); nothing starts before :meth:`start`.

        :param runs: the runs whose ``logs/`` TensorBoard shows; each gets a folder
            named by its id under ``local_root``.
        :param local_root: the local folder for the logs (default
            ``~/.cache/amld/tensorboard``).
        :param port: TensorBoard's port.
        :param use_display_name: not supported (folders are named by run id).
        """
        runs = list(runs or [])
        if not runs:
            raise UserErrorException(
                "Tensorboard needs at least one run: amld mirrors the logs of the runs it is "
                "given (to look at a folder of logs, run `tensorboard --logdir` on it yourself)")
        if use_display_name:
            raise UserErrorException(
                "use_display_name=True is not supported by amld: each run's folder is named by "
                "its id")
        self._runs = runs
        self._local_root = os.fspath(local_root) if local_root is not None else None
        self._port = int(port)
        self._process = None
        self._ready = None
        self.url = None
        self.message = None

    @property
    def local_root(self):
        """The folder the runs' logs are mirrored to (known once started)."""
        if self._ready is not None:
            return self._ready.get("logdir")
        return self._local_root

    def start(self, start_browser=False):
        """Start mirroring and TensorBoard; return its URL (None without TensorBoard).

        :param start_browser: open the URL in a browser where a desktop session exists.
        """
        if self._process is not None:
            raise UserErrorException("this Tensorboard is already started: call stop() first")
        workspace = self._runs[0].experiment.workspace
        client = workspace._daemon()
        aml = _snapshot.find_aml(client.get_info().pid)
        command = [aml, "--socket", client.socket_path, "--output", "json", "tensorboard"]
        command += [run.id for run in self._runs]
        command += ["--port", str(self._port)]
        if self._local_root is not None:
            command += ["--logdir", self._local_root]
        if not start_browser:
            command.append("--no-open")
        try:
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        except OSError as e:
            raise UserErrorException("cannot run %s: %s" % (aml, e)) from None
        # The first line says it is ready (or aml's error, as JSON too).
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self._process.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=_START_SECONDS)
        except queue.Empty:
            self.stop()
            raise UserErrorException("aml tensorboard did not get ready in %ds" % _START_SECONDS)
        try:
            ready = json.loads(line.decode("utf-8", "replace")) if line.strip() else {}
        except ValueError:
            ready = {}
        if "logdir" not in ready:
            self.stop()
            error = ready.get("error", {}).get("message") if isinstance(ready, dict) else None
            raise UserErrorException(error or "aml tensorboard failed (its messages are above)")
        self._ready = ready
        atexit.register(self.stop)  # no mirror or TensorBoard outlives the program
        self.url = ready.get("url")
        self.message = ready.get("message") or None
        if self.url is None and self.message:
            print("amld: " + self.message, file=sys.stderr)
        return self.url

    def stop(self):
        """Stop TensorBoard and the mirror; the mirrored logs stay in local_root."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # aml stops TensorBoard, then itself
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.url = None
