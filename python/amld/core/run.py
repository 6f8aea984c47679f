"""Run: one submitted run — follow it, read its files and metrics — and logging from inside it.

The same class serves both sides, as azureml.core.Run does:

* Outside a run, ``experiment.submit(config)`` or ``Run.get(ws, run_id)``
  return a handle to follow (``wait_for_completion``), cancel, and read
  (``get_file_names``, ``download_file``, ``get_metrics``).
* Inside a run amld started, ``Run.get_context()`` returns the current run:
  ``log``, ``log_list``, ``log_row``, ``log_table`` and ``log_image`` append
  to the run's AMLD_METRICS_FILE (the daemon stores the values while the run
  runs; no network access is needed), ``upload_file`` and ``log_image``
  write under the run's ``outputs/`` (or ``logs/``), which the daemon keeps.
* Outside amld, ``Run.get_context()`` returns an offline run that prints
  what it logs, so the same training script runs anywhere.
"""

import codecs
import datetime
import hashlib
import os
import re
import shutil
import sys
import threading
import uuid

from amld.core._metrics import MetricsFile, check_name, metric_value
from amld.exceptions import (
    ActivityFailedException,
    AmldException,
    ExperimentExecutionException,
    NotFoundException,
    RunEnvironmentException,
    UnsupportedOptionError,
    UserErrorException,
)
# gRPC and protobuf are imported where a call needs them, not here: a
# training script on a machine without them can still import amld.core and
# log to its run (which only appends to a file).

# azureml's status names, by amld.v1.RunStatus name.
_STATUS_NAMES = {
    "UNKNOWN": "NotStarted",
    "QUEUED": "Queued",
    "PREPARING": "Preparing",
    "STARTING": "Starting",
    "RUNNING": "Running",
    "FINALIZING": "Finalizing",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELED": "Canceled",
    "CANCEL_REQUESTED": "CancelRequested",
}
STD_LOG = "user_logs/std_log.txt"
# Lines of the log quoted when a waited-for run fails.
_TAIL_LINES = 30
_TAIL_BYTES = 16 << 10

_context_lock = threading.Lock()
_context_runs = {}


def _pb():
    """amld.v1.runs_pb2, imported on first use."""
    from amld.v1 import runs_pb2
    return runs_pb2


def _follow():
    """amld.core._follow (and with it grpc), imported on first use."""
    from amld.core import _follow as follow
    return follow


def status_name(status):
    """azureml's name of an amld.v1.RunStatus value, e.g. "Running"."""
    name = _pb().RunStatus.Value.Name(status)
    return _STATUS_NAMES.get(name, name)


def _utc(timestamp):
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return None
    return datetime.datetime.fromtimestamp(timestamp.seconds + timestamp.nanos / 1e9,
                                           tz=datetime.timezone.utc).isoformat()


def _transition_time(run, status, last=True):
    found = None
    for t in run.history:
        if t.status == status:
            found = t.time
            if not last:
                break
    return _utc(found) if found is not None else None


def _safe_file_name(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "image"


def _tail(data, lines=_TAIL_LINES):
    text = bytes(data).decode("utf-8", "replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _safe_join(folder, rel_path):
    """``folder`` joined with a '/'-separated path from the daemon; refuses paths that leave it."""
    parts = rel_path.split("/")
    if not rel_path or rel_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UserErrorException("refusing the path %r: it is empty, absolute or leaves %s"
                                 % (rel_path, folder))
    return os.path.join(folder, *parts)


class Run:
    """A run of an experiment: follow it, cancel it, read its files and metrics, log to it.

    :param experiment: the Experiment the run belongs to.
    :param run_id: the run's id, "<experiment>_<unix-seconds>_<8 hex>".
    """

    def __init__(self, experiment, run_id, outputs=None, _run_proto=None, **kwargs):
        """Refer to the run ``run_id``; nothing is sent until a call needs it."""
        if kwargs:
            raise UnsupportedOptionError("Run(%s): amld does not support these options"
                                         % ", ".join(sorted(kwargs)))
        if outputs is not None:
            raise UnsupportedOptionError("Run(outputs=...): amld keeps a run's ./outputs and "
                                         "./logs folders; other folders are not tracked")
        self._experiment = experiment
        self._run_id = run_id
        self._proto = _run_proto
        self._metrics = None
        self._outputs_dir = None
        # The run's own process may log to it, whichever way it got the handle.
        if run_id and run_id == os.environ.get("AMLD_RUN_ID"):
            self._attach_to_environment()

    def _attach_to_environment(self):
        path = os.environ.get("AMLD_METRICS_FILE")
        self._metrics = MetricsFile(path) if path else None
        self._outputs_dir = os.environ.get("AMLD_OUTPUTS_DIR") or os.path.abspath("outputs")

    # --- finding runs -------------------------------------------------------

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """The run this process belongs to (azureml's Run.get_context).

        Inside a run started by amld (AMLD_RUN_ID is set) it is that run;
        logging appends to its AMLD_METRICS_FILE. Elsewhere it is an offline
        run that prints what it logs, or, with ``allow_offline=False``, a
        RunEnvironmentException. Every call returns the same object.
        """
        if kwargs:
            raise UnsupportedOptionError("Run.get_context(%s): amld does not support these "
                                         "options" % ", ".join(sorted(kwargs)))
        run_id = os.environ.get("AMLD_RUN_ID")
        with _context_lock:
            key = run_id or "offline"
            if key in _context_runs:
                return _context_runs[key]
            if run_id:
                from amld.core.experiment import Experiment
                from amld.core.workspace import Workspace
                experiment = Experiment(Workspace.from_config(),
                                        os.environ.get("AMLD_EXPERIMENT") or run_id.split("_")[0],
                                        _skip_name_validation=True)
                run = Run(experiment, run_id)
            elif allow_offline:
                run = _OfflineRun()
            else:
                raise RunEnvironmentException(
                    "Run.get_context(allow_offline=False) outside a run: AMLD_RUN_ID is not set "
                    "(the process was not started by amld)")
            _context_runs[key] = run
            return run

    @staticmethod
    def get(workspace, run_id):
        """The run ``run_id`` of ``workspace``; NotFoundException when there is none."""
        from amld.core.experiment import Experiment
        client = workspace._daemon()
        proto = client.call(client.runs.GetRun, _pb().GetRunRequest(run_id=run_id),
                            "look up run " + run_id)
        experiment = Experiment(workspace, proto.config.experiment_name,
                                _skip_name_validation=True)
        return Run(experiment, run_id, _run_proto=proto)

    # --- identity -----------------------------------------------------------

    @property
    def id(self):
        """The run's id."""
        return self._run_id

    @property
    def experiment(self):
        """The Experiment the run belongs to."""
        return self._experiment

    @property
    def name(self):
        """The run's display name, or its id when it has none."""
        return self.display_name

    @property
    def display_name(self):
        """The run's display name, or its id when it has none."""
        proto = self._fetch()
        return proto.config.display_name or self._run_id

    @property
    def status(self):
        """The run's current status, e.g. "Running" (see get_status)."""
        return self.get_status()

    @property
    def tags(self):
        """The run's tags, as a dict."""
        return self.get_tags()

    # --- the daemon's record -------------------------------------------------

    def _client(self):
        return self._experiment.workspace._daemon()

    def _fetch(self):
        client = self._client()
        self._proto = client.call(client.runs.GetRun, _pb().GetRunRequest(run_id=self._run_id),
                                  "look up run " + self._run_id)
        return self._proto

    def get_status(self):
        """The run's status: "Queued", "Preparing", "Starting", "Running", "Finalizing",
        "CancelRequested", "Completed", "Failed" or "Canceled"."""
        return status_name(self._fetch().status)

    def get_tags(self):
        """The run's tags (given at submit), as a dict."""
        return dict(self._fetch().config.tags)

    def get_details(self):
        """What the daemon records about the run, as a dict shaped like azureml's get_details.

        Keys: runId, experiment, status, target, placement, createdTimeUtc,
        startTimeUtc, endTimeUtc, properties (exit code and signal, submitter
        uid, snapshot id, git info under azureml's "azureml.git.*" names),
        tags, runDefinition (script, command, arguments, environment,
        maxRunDurationSeconds), logFiles (stored log paths), history, and
        error ({"error": {"code", "message"}}) when the run failed or was
        canceled with a reason.
        """
        return self._details(self._fetch())

    def get_details_with_logs(self):
        """get_details(), with "logFiles" mapping each stored log to its text."""
        import grpc
        from amld.core._daemon import error_from_rpc
        details = self.get_details()
        client = self._client()
        for name in details["logFiles"]:
            data = bytearray()
            request = _pb().DownloadFileRequest(run_id=self._run_id, path=name)
            try:
                for chunk in client.runs.DownloadFile(request):
                    data.extend(chunk.data)
            except grpc.RpcError as e:
                raise error_from_rpc(e, "read %s of run %s" % (name, self._run_id),
                                     client.socket_path) from None
            details["logFiles"][name] = data.decode("utf-8", "replace")
        return details

    def _details(self, run):
        config = run.config
        env = config.environment
        properties = {
            "exitCode": run.exit_code,
            "exitSignal": run.exit_signal,
            "submitterUid": run.submitter_uid,
            "snapshotId": "%s/%d" % (config.snapshot_root.hash, config.snapshot_root.size_bytes),
        }
        if config.HasField("git"):
            properties.update({
                "azureml.git.repository_uri": config.git.repository_uri,
                "azureml.git.branch": config.git.branch,
                "azureml.git.commit": config.git.commit,
                "azureml.git.dirty": str(config.git.dirty),
            })
        terminal = _follow().is_terminal(run.status)
        details = {
            "runId": run.id,
            "experiment": config.experiment_name,
            "status": status_name(run.status),
            "target": config.compute_target or "local",
            "placement": run.placement,
            "createdTimeUtc": _utc(run.created_time),
            "startTimeUtc": _transition_time(run, _pb().RunStatus.RUNNING, last=False),
            "endTimeUtc": _transition_time(run, run.status) if terminal else None,
            "properties": properties,
            "tags": dict(config.tags),
            "runDefinition": {
                "script": config.script or None,
                "command": config.command or None,
                "arguments": list(config.arguments),
                "target": config.compute_target or "local",
                "maxRunDurationSeconds": config.max_run_duration_seconds,
                "environment": {
                    "name": env.name,
                    "version": env.version or None,
                    "python": {"userManagedDependencies": env.user_managed_dependencies,
                               "interpreterPath": env.interpreter_path or None},
                    "environmentVariables": dict(env.environment_variables),
                },
            },
            "logFiles": {name: name for name in self._log_file_names()},
            "history": [{"status": status_name(t.status), "time": _utc(t.time),
                         "reason": t.reason} for t in run.history],
        }
        if run.error and run.status in (_pb().RunStatus.FAILED, _pb().RunStatus.CANCELED):
            ran = any(t.status == _pb().RunStatus.RUNNING for t in run.history)
            code = "Canceled" if run.status == _pb().RunStatus.CANCELED else (
                "UserError" if ran else "SystemError")
            details["error"] = {"error": {"code": code, "message": run.error}}
        return details

    def _log_file_names(self):
        try:
            names = self.get_file_names()
        except NotFoundException:
            return []
        return [n for n in names if n.startswith("user_logs/") or n.startswith("logs/")]

    # --- following ------------------------------------------------------------

    def wait_for_completion(self, show_output=False, wait_post_processing=False,
                            raise_on_error=True):
        """Wait until the run has ended; return get_details() (azureml's wait_for_completion).

        With ``show_output`` the run's output (user_logs/std_log.txt) streams
        to stdout as it is written, followed by a short summary. A run that
        ends FAILED or CANCELED raises ActivityFailedException with the
        daemon's reason and the last lines of the log, unless
        ``raise_on_error`` is False. The wait always lasts until the run's
        outputs and logs are stored (``wait_post_processing`` is implied).

        Interrupting the wait (Ctrl-C) leaves the run running and raises
        ExperimentExecutionException saying how to reattach; a new
        wait_for_completion reattaches (with show_output, from the start of
        the output). A daemon restart meanwhile is ridden out.
        """
        client = self._client()
        tail = bytearray()
        try:
            if show_output:
                self._stream_output(client, sys.stdout, tail)
            run = _follow().follow_run(client, self._run_id)
        except KeyboardInterrupt:
            raise ExperimentExecutionException(
                "waiting for run %s was interrupted; the run is still going on. Reattach with "
                "run.wait_for_completion() (or `aml run wait %s --show-output`), or stop it with "
                "run.cancel()" % (self._run_id, self._run_id)) from None
        self._proto = run
        details = self._details(run)
        if show_output:
            self._print_summary(sys.stdout, run, details)
        if raise_on_error and run.status in (_pb().RunStatus.FAILED, _pb().RunStatus.CANCELED):
            if not show_output:
                tail = self._read_log_tail(client)
            log_tail = _tail(tail)
            message = "run %s ended %s: %s" % (self._run_id, status_name(run.status),
                                                run.error or "no reason was recorded")
            if log_tail:
                message += "\nlast lines of %s:\n%s" % (STD_LOG, log_tail)
            raise ActivityFailedException(message, run_id=self._run_id,
                                          status=status_name(run.status), error=run.error,
                                          log_tail=log_tail)
        return details

    def _stream_output(self, client, out, tail):
        out.write("RunId: %s\n\nStreaming %s\n%s\n\n" % (self._run_id, STD_LOG,
                                                         "=" * (len(STD_LOG) + 10)))
        out.flush()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def sink(data):
            tail.extend(data)
            if len(tail) > _TAIL_BYTES:
                del tail[:len(tail) - _TAIL_BYTES]
            out.write(decoder.decode(data))
            out.flush()

        _follow().follow_log(client, self._run_id, sink, follow=True)
        out.write(decoder.decode(b"", final=True))

    def _print_summary(self, out, run, details):
        out.write("\nExecution Summary\n=================\nRunId: %s\nStatus: %s\n"
                  % (self._run_id, status_name(run.status)))
        if "error" in details:
            out.write("Error: %s\n" % run.error)
        out.write("\n")
        out.flush()

    def _read_log_tail(self, client):
        """The last bytes of the run's std log (empty when it has none)."""
        tail = bytearray()
        offset = 0
        try:
            for f in self._list_files(client, STD_LOG):
                if f.path == STD_LOG:
                    offset = max(0, f.digest.size_bytes - _TAIL_BYTES)
        except AmldException:
            offset = 0

        def sink(data):
            tail.extend(data)
            if len(tail) > _TAIL_BYTES:
                del tail[:len(tail) - _TAIL_BYTES]

        try:
            _follow().follow_log(client, self._run_id, sink, offset=offset, follow=False)
        except AmldException:
            pass  # the failure is reported without the tail rather than not at all
        return tail

    def cancel(self):
        """Ask the daemon to stop the run (SIGTERM, then SIGKILL after its grace period)."""
        client = self._client()
        request = _pb().CancelRunRequest(
            run_id=self._run_id, reason="canceled from the Python SDK (pid %d)" % os.getpid())
        self._proto = client.call(client.runs.CancelRun, request, "cancel run " + self._run_id)

    # --- files ---------------------------------------------------------------

    def _list_files(self, client, prefix=""):
        response = client.call(client.runs.ListFiles,
                               _pb().ListFilesRequest(run_id=self._run_id, prefix=prefix),
                               "list the files of run " + self._run_id)
        return list(response.files)

    def get_file_names(self):
        """The paths of the run's stored files (outputs/, logs/, user_logs/), sorted."""
        return [f.path for f in self._list_files(self._client())]

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        """Download the stored file ``name`` (e.g. "outputs/model.json") to ``output_file_path``.

        The default destination is the file's base name in the current
        folder; an existing folder receives the file under its base name.
        The download is written to "<destination>.part", checked against the
        file's SHA-256 and renamed into place. Returns the destination path.
        """
        client = self._client()
        matches = [f for f in self._list_files(client, name) if f.path == name]
        if not matches:
            raise NotFoundException("run %s has no stored file %s; see run.get_file_names()"
                                    % (self._run_id, name), code="NOT_FOUND")
        dest = output_file_path if output_file_path is not None else posix_basename(name)
        dest = os.fspath(dest)
        if os.path.isdir(dest):
            dest = os.path.join(dest, posix_basename(name))
        self._download(client, matches[0], dest)
        return dest

    def download_files(self, prefix=None, output_directory=None, output_paths=None,
                       batch_size=100, append_prefix=True, timeout_seconds=None):
        """Download every stored file whose path starts with ``prefix`` into ``output_directory``.

        Files keep their paths below the folder (without the prefix when
        ``append_prefix`` is False). ``output_paths``, when given, names one
        destination per file in get_file_names() order. Files are fetched one
        at a time; ``batch_size`` has no effect. Returns the destination paths.
        """
        if timeout_seconds is not None:
            raise UnsupportedOptionError("Run.download_files(timeout_seconds=...) is not "
                                         "supported by amld")
        client = self._client()
        files = self._list_files(client, prefix or "")
        if output_paths is not None and len(output_paths) != len(files):
            raise UserErrorException("output_paths has %d entries for %d files"
                                     % (len(output_paths), len(files)))
        folder = os.path.abspath(output_directory or os.getcwd())
        written = []
        for i, f in enumerate(files):
            if output_paths is not None:
                dest = os.fspath(output_paths[i])
            else:
                rel = f.path
                if not append_prefix and prefix:
                    rel = rel[len(prefix):].lstrip("/") or posix_basename(f.path)
                dest = _safe_join(folder, rel)
            self._download(client, f, dest)
            written.append(dest)
        return written

    def _download(self, client, run_file, dest):
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        partial = dest + ".part"
        digest = hashlib.sha256()
        offset = 0
        doing = "download %s of run %s" % (run_file.path, self._run_id)
        import grpc
        from amld.core._daemon import TRANSIENT_CODES, error_from_rpc
        reconnector = _follow()._Reconnector(120.0)
        with open(partial, "wb") as out:
            while True:
                request = _pb().DownloadFileRequest(run_id=self._run_id, path=run_file.path,
                                                       offset=offset)
                call = client.runs.DownloadFile(request)
                try:
                    for chunk in call:
                        reconnector.answered()
                        data = chunk.data
                        if chunk.offset < offset:
                            data = data[offset - chunk.offset:]
                        elif chunk.offset > offset:
                            raise AmldException("%s: the daemon skipped from byte %d to %d"
                                                % (doing, offset, chunk.offset))
                        out.write(data)
                        digest.update(data)
                        offset += len(data)
                    break
                except grpc.RpcError as e:
                    if e.code() not in TRANSIENT_CODES:
                        raise error_from_rpc(e, doing, client.socket_path) from None
                    if not reconnector.pause():
                        raise error_from_rpc(e, doing, client.socket_path,
                                             mid_stream=True) from None
                except BaseException:
                    call.cancel()
                    raise
        if offset != run_file.digest.size_bytes or digest.hexdigest() != run_file.digest.hash:
            os.unlink(partial)
            raise AmldException("%s: the bytes received do not match the stored file's digest "
                                "%s/%d (got %d bytes); try again" % (
                                    doing, run_file.digest.hash, run_file.digest.size_bytes,
                                    offset), code="DATA_LOSS")
        os.replace(partial, dest)

    # --- metrics ---------------------------------------------------------------

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The run's metrics as a dict: name → value, or name → list of values if logged repeatedly.

        Values are in step order. Available while the run runs, as far as the
        daemon has read them. ``log_row``/``log_table`` columns appear as
        "<name>/<column>". ``populate`` has no effect (amld metrics hold no
        links to fetch).
        """
        if recursive or run_type is not None:
            raise UnsupportedOptionError("Run.get_metrics(recursive=..., run_type=...): amld runs "
                                         "have no child runs yet")
        client = self._client()
        request = _pb().GetMetricsRequest(run_id=self._run_id,
                                             names=[name] if name is not None else [])
        response = client.call(client.runs.GetMetrics, request,
                               "read the metrics of run " + self._run_id)
        grouped = {}
        for m in response.metrics:
            value = m.text if m.WhichOneof("value") == "text" else m.number
            grouped.setdefault(m.name, []).append(value)
        return {k: (v[0] if len(v) == 1 else v) for k, v in grouped.items()}

    # --- logging from inside the run ------------------------------------------

    def _writer(self, method):
        if self._metrics is None:
            if self._run_id == os.environ.get("AMLD_RUN_ID"):
                raise RunEnvironmentException(
                    "Run.%s: AMLD_METRICS_FILE is not set in this run's environment" % method)
            raise UnsupportedOptionError(
                "Run.%s from outside the run: amld takes metrics from the run's own process; "
                "call it in the training script on Run.get_context()" % method)
        return self._metrics

    def log(self, name, value, description="", step=None):
        """Log a number or a string as metric ``name`` (at ``step``; by default the next one)."""
        self._writer("log").append(name, value, step=step, description=description)

    def log_list(self, name, value, description=""):
        """Log each element of the list ``value`` as a value of metric ``name``, in order."""
        writer = self._writer("log_list")
        for item in value:
            writer.append(name, item, description=description)

    def log_row(self, name, description=None, **kwargs):
        """Log a row of table ``name``: each keyword is a column, stored as "<name>/<column>"."""
        writer = self._writer("log_row")
        check_name(name)
        for column, value in kwargs.items():
            writer.append("%s/%s" % (name, column), value, description=description)

    def log_table(self, name, value, description=""):
        """Log table ``name`` given as {column: [values]}: columns become "<name>/<column>"."""
        writer = self._writer("log_table")
        check_name(name)
        if not isinstance(value, dict):
            raise UserErrorException("log_table(%r): value must be a dict of column → list"
                                     % name)
        for column, values in value.items():
            for item in values:
                writer.append("%s/%s" % (name, column), item, description=description)

    def log_image(self, name, path=None, plot=None, description=""):
        """Save an image under the run's outputs/images/ and log its path as metric ``name``.

        Give either ``path`` (an image file) or ``plot`` (a matplotlib figure
        or pyplot). Returns the path the image was saved to.
        """
        writer = self._writer("log_image")
        check_name(name)
        if (path is None) == (plot is None):
            raise UserErrorException("log_image(%r): give either path or plot" % name)
        folder = os.path.join(self._outputs_dir, "images")
        os.makedirs(folder, exist_ok=True)
        if path is not None:
            ext = os.path.splitext(os.fspath(path))[1] or ".png"
            dest = os.path.join(folder, _safe_file_name(name) + ext)
            shutil.copyfile(path, dest)
        else:
            if not hasattr(plot, "savefig"):
                raise UserErrorException("log_image(%r): plot must have savefig (a matplotlib "
                                         "figure or pyplot)" % name)
            dest = os.path.join(folder, _safe_file_name(name) + ".png")
            plot.savefig(dest, format="png")
        writer.append(name, "outputs/images/" + os.path.basename(dest), description=description)
        return dest

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Store a file with the run as ``name``, which must start with "outputs/" or "logs/".

        Inside the run the file is copied there in the run's folder, and the
        daemon stores it like everything the script writes to ./outputs and
        ./logs. ``path_or_stream`` is a path or a readable binary file object.
        Returns the local path written.
        """
        if datastore_name is not None:
            raise UnsupportedOptionError("Run.upload_file(datastore_name=...): amld has no "
                                         "datastores")
        self._writer("upload_file")
        rel = os.fspath(name).replace(os.sep, "/")
        while rel.startswith("./"):
            rel = rel[2:]
        if not (rel.startswith("outputs/") or rel.startswith("logs/")):
            raise UserErrorException(
                "upload_file(%r): amld stores a run's files from its outputs/ and logs/ folders; "
                "name it \"outputs/%s\"" % (name, rel))
        dest = _safe_join(os.path.dirname(self._outputs_dir), rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if hasattr(path_or_stream, "read"):
            with open(dest, "wb") as out:
                shutil.copyfileobj(path_or_stream, out)
        else:
            shutil.copyfile(path_or_stream, dest)
        return dest

    def tag(self, key, value=None):
        """Not available yet: amld cannot change a run's tags after submit (give tags to submit)."""
        raise UnsupportedOptionError(
            "Run.tag: amld cannot change a run's tags after it was submitted yet; pass them as "
            "experiment.submit(config, tags={...})")

    def set_tags(self, tags):
        """Not available yet: amld cannot change a run's tags after submit (give tags to submit)."""
        raise UnsupportedOptionError(
            "Run.set_tags: amld cannot change a run's tags after it was submitted yet; pass them "
            "as experiment.submit(config, tags={...})")

    def complete(self, _set_status=True):
        """Nothing to do: amld ends a run when its process exits, and values are written at once."""

    def flush(self, timeout_seconds=300):
        """Nothing to do: every logged value is already written to the metrics file."""

    def __repr__(self):
        """Experiment, id and the last known status."""
        status = status_name(self._proto.status) if self._proto is not None else "?"
        return "Run(Experiment: %s,\nId: %s,\nType: amld.scriptrun,\nStatus: %s)" % (
            self._experiment.name if self._experiment is not None else "-", self._run_id, status)


def posix_basename(path):
    """The last component of a '/'-separated path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class _OfflineRun(Run):
    """The run of a script started outside amld: prints what it logs and keeps it in memory."""

    def __init__(self):
        """An offline run with an id "OfflineRun_<uuid>", as azureml's."""
        from amld.core.experiment import Experiment
        from amld.core.workspace import Workspace
        super().__init__(Experiment(Workspace(), "offline"),
                         "OfflineRun_%s" % uuid.uuid4())
        self._values = {}
        self._tags = {}
        self._lock = threading.Lock()

    def _record(self, name, value, step=None):
        check_name(name)
        value = metric_value(name, value)
        with self._lock:
            self._values.setdefault(name, []).append(value)
        at = "" if step is None else " (step %s)" % step
        print("amld offline run: %s = %r%s" % (name, value, at), flush=True)

    def log(self, name, value, description="", step=None):
        """Print the value and keep it (see Run.log)."""
        self._record(name, value, step)

    def log_list(self, name, value, description=""):
        """Print each value and keep it (see Run.log_list)."""
        for item in value:
            self._record(name, item)

    def log_row(self, name, description=None, **kwargs):
        """Print each column's value and keep it as "<name>/<column>" (see Run.log_row)."""
        for column, value in kwargs.items():
            self._record("%s/%s" % (name, column), value)

    def log_table(self, name, value, description=""):
        """Print each column's values and keep them as "<name>/<column>" (see Run.log_table)."""
        for column, values in value.items():
            for item in values:
                self._record("%s/%s" % (name, column), item)

    def log_image(self, name, path=None, plot=None, description=""):
        """Print that an image was logged; nothing is saved offline."""
        print("amld offline run: image %s (%s)" % (name, path if path is not None else "plot"),
              flush=True)

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Print that a file would be stored; nothing is copied offline."""
        print("amld offline run: upload %s as %s" % (
            getattr(path_or_stream, "name", path_or_stream), name), flush=True)

    def tag(self, key, value=None):
        """Print the tag and keep it."""
        with self._lock:
            self._tags[key] = "" if value is None else str(value)
        print("amld offline run: tag %s=%s" % (key, self._tags[key]), flush=True)

    def set_tags(self, tags):
        """Print each tag and keep it."""
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self):
        """The tags set so far."""
        with self._lock:
            return dict(self._tags)

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The values logged so far (same shape as Run.get_metrics)."""
        with self._lock:
            items = {k: list(v) for k, v in self._values.items() if name is None or k == name}
        return {k: (v[0] if len(v) == 1 else v) for k, v in items.items()}

    def get_status(self):
        """Always "Running": an offline run lasts as long as its process."""
        return "Running"

    def wait_for_completion(self, show_output=False, wait_post_processing=False,
                            raise_on_error=True):
        """An offline run cannot be waited for (it is this process)."""
        raise UserErrorException("an offline run is this process itself; there is nothing to "
                                 "wait for")

    def __repr__(self):
        """The offline run's id."""
        return "Run(OfflineRun, Id: %s)" % self._run_id
