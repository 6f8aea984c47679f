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

This file holds finding runs, their record, following and cancelling them and
reading their metrics; the files are amld.core._run_files, logging from
inside a run amld.core._run_logging, the offline run amld.core._offline_run.
"""

import codecs
import datetime
import os
import sys
import threading

from amld.core._lazy import follow, pb
from amld.core._metrics import MetricsFile, shape_metrics
from amld.core._run_files import RunFiles
from amld.core._run_logging import RunLogging
from amld.exceptions import (
    ActivityFailedException,
    AmldException,
    ExperimentExecutionException,
    NotFoundException,
    RunEnvironmentException,
    UnsupportedOptionError,
    UserErrorException,
)
# gRPC and protobuf are imported where a call needs them (amld.core._lazy),
# not here: a training script on a machine without them can still import
# amld.core and log to its run (which only appends to a file).

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


def status_name(status):
    """azureml's name of an amld.v1.RunStatus value, e.g. "Running"."""
    name = pb().RunStatus.Value.Name(status)
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


def _conda_details(env):
    """A managed environment's packages in azureml's condaDependencies shape, or None."""
    if not (env.pip_requirements or env.conda_packages or env.python_version):
        return None
    deps = list(env.conda_packages)
    if env.python_version:
        deps.insert(0, "python=" + env.python_version)
    if env.pip_requirements:
        deps.append({"pip": list(env.pip_requirements)})
    return {"channels": list(env.conda_channels), "dependencies": deps}


def _metric_value(m):
    """An amld.v1.Metric's value with the Python type it was logged with."""
    if m.WhichOneof("value") == "text":
        return m.text
    kind = m.value_type
    if kind == pb().Metric.VALUE_BOOLEAN:
        return bool(m.number)
    if kind == pb().Metric.VALUE_NONE:
        return None
    if kind == pb().Metric.VALUE_INTEGER:
        return int(m.number)
    return m.number


def _tail(data, lines=_TAIL_LINES):
    text = bytes(data).decode("utf-8", "replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class Run(RunFiles, RunLogging):
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
        self._interactive_writer = None
        # Inside the run, changes go through the metrics file and reach the
        # daemon a moment later; reads made meanwhile see them from here.
        self._local_lock = threading.Lock()
        self._local_tags = {}
        self._removed_tags = set()
        self._local_properties = {}
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
                # The run's own daemon, quietly (its socket need not answer
                # for logging, which only appends to a file).
                experiment = Experiment(Workspace._for_run(),
                                        os.environ.get("AMLD_EXPERIMENT") or run_id.split("_")[0],
                                        _skip_name_validation=True)
                run = Run(experiment, run_id)
            elif allow_offline:
                from amld.core._offline_run import OfflineRun
                run = OfflineRun()
            else:
                raise RunEnvironmentException(
                    "Run.get_context(allow_offline=False) outside a run: AMLD_RUN_ID is not set "
                    "(the process was not started by amld)")
            _context_runs[key] = run
            return run

    @staticmethod
    def get(workspace, run_id):
        """The run ``run_id`` of ``workspace``; NotFoundException when there is none.

        ``run_id`` may also be a unique prefix or suffix of the id, or ``"last"`` (your newest
        run), as on the command line: the daemon resolves it, and the Run has the full id."""
        from amld.core.experiment import Experiment
        client = workspace._daemon()
        proto = client.call(client.runs.GetRun, pb().GetRunRequest(run_id=run_id),
                            "look up run " + run_id)
        experiment = Experiment(workspace, proto.config.experiment_name,
                                _skip_name_validation=True)
        return Run._of(experiment, proto)

    @staticmethod
    def list(experiment, type=None, tags=None, properties=None, status=None,
             include_children=False, _rehydrate_runs=True):
        """The experiment's runs, newest first, as a generator of Run (azureml's Run.list).

        :param tags: only runs with these tags: a dict (key → value), a list of
            keys, or one key.
        :param properties: only runs with these properties (same forms).
        :param status: only runs in this status, e.g. "Completed" or "Running".
        :param include_children: also child runs (a sweep's, child_run's).
        """
        if type is not None:
            raise UnsupportedOptionError("Run.list(type=...): amld has one kind of run")
        statuses = []
        if status is not None:
            by_name = {v: k for k, v in _STATUS_NAMES.items()}
            if status not in by_name:
                raise UserErrorException("Run.list(status=%r): use one of %s" % (
                    status, ", ".join(sorted(v for v in by_name if v != "NotStarted"))))
            statuses = [pb().RunStatus.Value.Value(by_name[status])]
        from amld.core.experiment import _tags_match
        client = experiment.workspace._daemon()
        token = ""
        while True:
            request = pb().ListRunsRequest(experiment_name=experiment.name, statuses=statuses,
                                           page_size=1000, page_token=token)
            page = client.call(client.runs.ListRuns, request, "list the runs of " + experiment.name)
            for run in page.runs:
                if run.parent_run_id and not include_children:
                    continue
                if _tags_match(run.tags, tags) and _tags_match(run.properties, properties):
                    yield Run._of(experiment, run)
            token = page.next_page_token
            if not token:
                return

    @staticmethod
    def _of(experiment, proto):
        """The Run of an amld.v1.Run: a HyperDriveRun for a sweep's parent."""
        if proto.config.HasField("sweep"):
            from amld.train.hyperdrive import HyperDriveRun
            return HyperDriveRun(experiment, proto.id, _run_proto=proto)
        return Run(experiment, proto.id, _run_proto=proto)

    # --- parent and children ------------------------------------------------

    @property
    def parent(self):
        """The parent run (a sweep's HyperDriveRun), or None."""
        proto = self._proto if self._proto is not None else self._fetch()
        if not proto.parent_run_id:
            return None
        client = self._client()
        parent = client.call(client.runs.GetRun, pb().GetRunRequest(run_id=proto.parent_run_id),
                             "look up run " + proto.parent_run_id)
        return Run._of(self._experiment, parent)

    def _list_children(self, client):
        """Every child's amld.v1.Run, newest first."""
        children, token = [], ""
        while True:
            page = client.call(client.runs.ListRuns,
                               pb().ListRunsRequest(parent_run_id=self._run_id, page_size=1000,
                                                    page_token=token),
                               "list the children of run " + self._run_id)
            children.extend(page.runs)
            token = page.next_page_token
            if not token:
                return children

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True):
        """The run's children (a sweep's runs), newest first, as a generator of Run.

        :param recursive: also the children's children.
        :param tags: only children with these tags (a dict, a list of keys, or a key).
        :param status: only children in this status, e.g. "Completed".
        """
        from amld.core.experiment import _tags_match
        if properties is not None or type is not None:
            raise UnsupportedOptionError("Run.get_children: filtering by properties or type is "
                                         "not supported by amld")
        for child in self._list_children(self._client()):
            run = Run._of(self._experiment, child)
            if _tags_match(child.tags, tags) and (
                    status is None or status_name(child.status) == status):
                yield run
            if recursive:
                yield from run.get_children(recursive=True, tags=tags, status=status)

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
        """The run's display name, or its id when it has none; settable, as in azureml."""
        proto = self._fetch()
        return proto.display_name or self._run_id

    @display_name.setter
    def display_name(self, value):
        value = "" if value is None else str(value)
        if self._metrics is not None:
            self._metrics.append_record("display_name", value=value)
        else:
            self._update("set the display name", display_name=value)

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
        self._proto = client.call(
            client.runs.GetRun,
            pb().GetRunRequest(run_id=self._run_id, experiment_name=self._experiment.name),
            "look up run " + self._run_id)
        # A prefix, suffix or "last" names one run from now on.
        self._run_id = self._proto.id
        return self._proto

    def get_status(self):
        """The run's status: "Queued", "Preparing", "Starting", "Running", "Finalizing",
        "CancelRequested", "Completed", "Failed" or "Canceled"."""
        return status_name(self._fetch().status)

    def get_tags(self):
        """The run's tags: those given at submit, changed since by tag/set_tags/remove_tags."""
        tags = dict(self._fetch().tags)
        with self._local_lock:
            tags.update(self._local_tags)
            for key in self._removed_tags:
                tags.pop(key, None)
        return tags

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
            request = pb().DownloadFileRequest(run_id=self._run_id, path=name)
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
            # None when no exit code is known (the supervisor was lost).
            "exitCode": run.exit_code if run.HasField("exit_code") else None,
            "exitSignal": run.exit_signal,
            "submitterUid": run.submitter_uid,
            "snapshotId": "%s/%d" % (config.snapshot_root.hash, config.snapshot_root.size_bytes),
        }
        # What add_properties added (properties cannot change once set).
        properties.update(run.properties)
        if config.HasField("git"):
            properties.update({
                "azureml.git.repository_uri": config.git.repository_uri,
                "azureml.git.branch": config.git.branch,
                "azureml.git.commit": config.git.commit,
                "azureml.git.dirty": str(config.git.dirty),
            })
        terminal = follow().is_terminal(run.status)
        details = {
            "runId": run.id,
            "experiment": config.experiment_name,
            "status": status_name(run.status),
            "target": config.compute_target or "local",
            "placement": run.placement,
            "createdTimeUtc": _utc(run.created_time),
            "startTimeUtc": _transition_time(run, pb().RunStatus.RUNNING, last=False),
            "endTimeUtc": _transition_time(run, run.status) if terminal else None,
            "properties": properties,
            "tags": dict(run.tags),
            "displayName": run.display_name or None,
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
                               "interpreterPath": env.interpreter_path or None,
                               "condaDependencies": _conda_details(env)},
                    "digest": env.digest or None,
                    "environmentVariables": dict(env.environment_variables),
                },
            },
            "logFiles": {name: name for name in self._log_file_names()},
            "history": [{"status": status_name(t.status), "time": _utc(t.time),
                         "reason": t.reason} for t in run.history],
        }
        if run.error and run.status in (pb().RunStatus.FAILED, pb().RunStatus.CANCELED):
            ran = any(t.status == pb().RunStatus.RUNNING for t in run.history)
            code = "Canceled" if run.status == pb().RunStatus.CANCELED else (
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
            run = follow().follow_run(client, self._run_id)
        except KeyboardInterrupt:
            raise ExperimentExecutionException(
                "waiting for run %s was interrupted; the run is still going on. Reattach with "
                "run.wait_for_completion() (or `aml run wait %s --show-output`), or stop it with "
                "run.cancel()" % (self._run_id, self._run_id)) from None
        self._proto = run
        details = self._details(run)
        if show_output:
            self._print_summary(sys.stdout, run, details)
        if raise_on_error and run.status in (pb().RunStatus.FAILED, pb().RunStatus.CANCELED):
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

        follow().follow_log(client, self._run_id, sink, follow=True)
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
            follow().follow_log(client, self._run_id, sink, offset=offset, follow=False)
        except AmldException:
            pass  # the failure is reported without the tail rather than not at all
        return tail

    def cancel(self):
        """Ask the daemon to stop the run (SIGTERM, then SIGKILL after its grace period)."""
        client = self._client()
        request = pb().CancelRunRequest(
            run_id=self._run_id, reason="canceled from the Python SDK (pid %d)" % os.getpid())
        self._proto = client.call(client.runs.CancelRun, request, "cancel run " + self._run_id)

    # --- metrics ---------------------------------------------------------------

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The run's metrics as a dict, shaped as azureml's get_metrics.

        A name logged once (log) is its value; logged more often (log, or
        log_list) a list of values in step order. A table (log_row,
        log_table) is {column: value} after one row, {column: [values]}
        after more (None where a row lacks the column). Values come back with
        the type they were logged with: int, float, str, bool or None.
        Available while the run runs, as far as the daemon has read them.
        ``populate`` has no effect (amld metrics hold no links to fetch). With
        ``recursive``, a dict run id → metrics of this run and every
        descendant (a sweep's children).
        """
        if run_type is not None:
            raise UnsupportedOptionError("Run.get_metrics(run_type=...): not supported by amld")
        if recursive:
            # As azureml: run id → metrics, for this run and every descendant.
            runs = [self] + list(self.get_children(recursive=True))
            return {run.id: Run.get_metrics(run, name=name) for run in runs}
        metrics = self._read_metrics([name] if name is not None else [])
        if name is not None and not metrics:
            # A table's values are stored by column ("<table>/<column>").
            metrics = [m for m in self._read_metrics([]) if m.table == name]
        return shape_metrics((m.name, m.table, m.step, _metric_value(m)) for m in metrics)

    def _read_metrics(self, names):
        client = self._client()
        request = pb().GetMetricsRequest(run_id=self._run_id, names=names)
        return client.call(client.runs.GetMetrics, request,
                           "read the metrics of run " + self._run_id).metrics

    def __repr__(self):
        """Experiment, id and the last known status."""
        status = status_name(self._proto.status) if self._proto is not None else "?"
        return "Run(Experiment: %s,\nId: %s,\nType: amld.scriptrun,\nStatus: %s)" % (
            self._experiment.name if self._experiment is not None else "-", self._run_id, status)
