"""Logging to a run and changing its record: tags, properties, display name, files, its end.

Inside a run amld started, everything goes through the run's append-only
AMLD_METRICS_FILE (values as metric lines, changes as "kind" lines:
daemon/ingest/metrics_tail.h), so a run needs no gRPC; files named under
outputs/ or logs/ are copied there in the run's folder, other names into the
run folder's uploads/, and the daemon stores both. Outside a run the same
methods call Runs.UpdateRun; an interactive run (Experiment.start_logging)
also logs its values and files that way.
"""

import os
import re
import shutil
import threading
import time

from amld.core._lazy import pb
from amld.core._metrics import check_name, check_table, metric_value
from amld.core._run_files import _safe_join
from amld.exceptions import RunEnvironmentException, UnsupportedOptionError, UserErrorException


def _safe_file_name(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "image"


class RunLogging:
    """Run's logging methods (a mixin of amld.core.Run; needs _run_id, _metrics, _outputs_dir)."""

    def _writer(self, method):
        if self._metrics is None and self._is_interactive():
            if self._interactive_writer is None:
                self._interactive_writer = _InteractiveWriter(self)
            return self._interactive_writer
        if self._metrics is None:
            if self._run_id == os.environ.get("AMLD_RUN_ID"):
                raise RunEnvironmentException(
                    "Run.%s: AMLD_METRICS_FILE is not set in this run's environment" % method)
            raise UnsupportedOptionError(
                "Run.%s from outside the run: amld takes metrics from the run's own process; "
                "call it in the training script on Run.get_context() (or log to a run of "
                "Experiment.start_logging())" % method)
        return self._metrics

    def _inside(self):
        """True in the run's own process (changes go through its metrics file)."""
        return self._metrics is not None

    def _is_interactive(self):
        proto = self._proto if self._proto is not None else self._fetch()
        return proto.config.interactive

    def _update(self, doing, **fields):
        client = self._client()
        self._proto = client.call(client.runs.UpdateRun,
                                  pb().UpdateRunRequest(run_id=self._run_id, **fields),
                                  "%s of run %s" % (doing, self._run_id))
        return self._proto

    def log(self, name, value, description="", step=None):
        """Log a number or a string as metric ``name`` (at ``step``; by default the next one)."""
        self._writer("log").append(name, value, step=step, description=description)

    def log_list(self, name, value, description=""):
        """Log each element of the list ``value`` as a value of metric ``name``, in order."""
        writer = self._writer("log_list")
        for item in value:
            writer.append(name, item, description=description)

    def log_row(self, name, description=None, **kwargs):
        """Log a row of table ``name``: each keyword is a column (one value each).

        As in azureml, get_metrics()[name] is then {column: value} after one
        row and {column: [values]} after more; each column is also a series
        "<name>/<column>" in `aml run metrics` and the web view.
        """
        self._log_rows("log_row", name, check_table(name, kwargs, row=True), description)

    def log_table(self, name, value, description=""):
        """Log the rows of table ``name`` given as {column: [values]} (equal lengths).

        Appends to rows logged before under ``name``; get_metrics() shapes as log_row.
        """
        self._log_rows("log_table", name, check_table(name, value), description)

    def _log_rows(self, method, name, columns, description):
        writer = self._writer(method)
        count = len(next(iter(columns.values()))) if columns else 0
        for column, values in columns.items():
            for item in values:
                metric_value("%s/%s" % (name, column), item)  # refuse before writing any
        first = writer.next_row(name, count)
        for i in range(count):
            for column, values in columns.items():
                writer.append("%s/%s" % (name, column), values[i], step=first + i,
                              description=description, table=name)

    def log_image(self, name, path=None, plot=None, description=""):
        """Save an image under the run's outputs/images/ and log its path as metric ``name``.

        Give either ``path`` (an image file) or ``plot`` (a matplotlib figure
        or pyplot). Returns the path the image was saved to.
        """
        writer = self._writer("log_image")
        check_name(name)
        if self._outputs_dir is None:
            raise UnsupportedOptionError(
                "log_image(%r) on an interactive run: save the image and store it with "
                "run.upload_file(\"outputs/images/...\", path)" % name)
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
        """Store a file with the run as artifact ``name`` (any relative path, as in azureml).

        Inside the run, a name under "outputs/" or "logs/" is copied there in
        the run's folder (the daemon stores it like everything the script
        writes there); any other name is copied to the run folder's uploads/
        and stored under that name. For an interactive run
        (Experiment.start_logging) the file is uploaded to the daemon.
        ``path_or_stream`` is a path or a readable binary file object.
        Returns the local path written (inside a run) or the name.
        """
        if datastore_name is not None:
            raise UnsupportedOptionError("Run.upload_file(datastore_name=...): amld has no "
                                         "datastores")
        rel = _artifact_name(name)
        if not self._inside():
            if not self._is_interactive():
                raise UnsupportedOptionError(
                    "Run.upload_file from outside run %s: a run with a process stores the files "
                    "its script writes or uploads; call it in the training script on "
                    "Run.get_context()" % self._run_id)
            self._upload_interactive([(rel, path_or_stream)])
            return rel
        if rel.startswith("outputs/") or rel.startswith("logs/"):
            dest = _safe_join(os.path.dirname(self._outputs_dir), rel)
        else:
            dest = _safe_join(self._uploads_dir(), rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if hasattr(path_or_stream, "read"):
            with open(dest, "wb") as out:
                shutil.copyfileobj(path_or_stream, out)
        else:
            shutil.copyfile(path_or_stream, dest)
        if not (rel.startswith("outputs/") or rel.startswith("logs/")):
            self._metrics.append_record("upload", name=rel)
        return dest

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None,
                     datastore_name=None):
        """upload_file for each (name, path) pair; ``names`` and ``paths`` have equal lengths."""
        names, paths = list(names), list(paths)
        if len(names) != len(paths):
            raise UserErrorException("upload_files: %d names for %d paths; give one name per "
                                     "path" % (len(names), len(paths)))
        if not self._inside() and self._is_interactive():
            self._upload_interactive([(_artifact_name(n), p) for n, p in zip(names, paths)])
            return names
        return [self.upload_file(n, p, datastore_name=datastore_name)
                for n, p in zip(names, paths)]

    def upload_folder(self, name, path, datastore_name=None):
        """Store every file under the folder ``path`` as "<name>/<path relative to it>"."""
        if not os.path.isdir(path):
            raise UserErrorException("upload_folder(%r, %r): %s is not a folder"
                                     % (name, path, path))
        names, paths = [], []
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                full = os.path.join(folder, f)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                names.append("%s/%s" % (os.fspath(name).rstrip("/"), rel))
                paths.append(full)
        return self.upload_files(names, paths, datastore_name=datastore_name)

    def _uploads_dir(self):
        metrics_file = self._metrics.path
        return os.path.join(os.path.dirname(os.path.abspath(metrics_file)), "uploads")

    def _upload_interactive(self, pairs):
        import tempfile
        from amld.core._cas import upload_files
        client = self._client()
        with tempfile.TemporaryDirectory(prefix="amld-upload-") as tmp:
            paths = []
            for i, (_, source) in enumerate(pairs):
                if hasattr(source, "read"):
                    path = os.path.join(tmp, str(i))
                    with open(path, "wb") as out:
                        shutil.copyfileobj(source, out)
                    paths.append(path)
                else:
                    paths.append(os.fspath(source))
            digests = upload_files(client, paths)
        files = [pb().RunFile(path=rel, digest=d) for (rel, _), d in zip(pairs, digests)]
        self._update("upload files", files=files)

    # --- tags, properties, display name -------------------------------------

    def tag(self, key, value=None):
        """Set tag ``key`` to ``value`` (a string; None is "", as in azureml)."""
        self.set_tags({key: value})

    def set_tags(self, tags):
        """Add or replace tags: a dict of key → value (values become strings)."""
        if not isinstance(tags, dict):
            raise UserErrorException("set_tags: give a dict of tag → value, got %s"
                                     % type(tags).__name__)
        tags = {str(k): ("" if v is None else str(v)) for k, v in tags.items()}
        if self._inside():
            self._metrics.append_record("tags", set=tags)
            with self._local_lock:
                self._local_tags.update(tags)
                self._removed_tags.difference_update(tags)
        else:
            self._update("set tags", set_tags=tags)

    def remove_tags(self, tags):
        """Remove tags by key (a list of keys, or one key)."""
        keys = [tags] if isinstance(tags, str) else [str(k) for k in tags]
        if self._inside():
            self._metrics.append_record("tags", remove=keys)
            with self._local_lock:
                for k in keys:
                    self._local_tags.pop(k, None)
                    self._removed_tags.add(k)
        else:
            self._update("remove tags", remove_tags=keys)

    def add_properties(self, properties):
        """Add properties (a dict; values become strings). A property cannot change once set."""
        if not isinstance(properties, dict):
            raise UserErrorException("add_properties: give a dict of property → value, got %s"
                                     % type(properties).__name__)
        properties = {str(k): str(v) for k, v in properties.items()}
        if not self._inside():
            self._update("add properties", add_properties=properties)
            return
        with self._local_lock:
            for k, v in properties.items():
                if k in self._local_properties and self._local_properties[k] != v:
                    raise UserErrorException(
                        "property %r is already %r; properties cannot change once set (use a "
                        "tag for a value that changes)" % (k, self._local_properties[k]))
            self._local_properties.update(properties)
        self._metrics.append_record("properties", add=properties)

    def get_properties(self):
        """The run's properties (those added with add_properties), as a dict."""
        props = dict(self._fetch().properties)
        with self._local_lock:
            props.update(self._local_properties)
        return props

    # --- ending --------------------------------------------------------------

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Mark the run failed with ``error_details`` (a string or an exception).

        Inside a run amld started, the run ends FAILED when its process
        exits, whatever its exit code, with "the script called run.fail():
        <details>". An interactive run (start_logging) ends at once.
        """
        details = "" if error_details is None else str(error_details)
        if error_code is not None:
            details = "%s: %s" % (error_code, details) if details else str(error_code)
        if self._inside():
            self._metrics.append_record("fail", error=details)
        elif self._is_interactive():
            self._update("fail", end_status=pb().RunStatus.FAILED,
                         error=details or "run.fail() was called")
        else:
            raise UnsupportedOptionError(
                "Run.fail from outside run %s: amld ends a run with a process when the process "
                "exits; call run.fail() in its script, or stop it with run.cancel()"
                % self._run_id)

    def complete(self, _set_status=True):
        """Mark the run completed.

        An interactive run (start_logging) ends COMPLETED at once. Inside a
        run amld started this does nothing: the run ends when its process
        exits (COMPLETED with exit code 0), and every value is written at once.
        """
        if self._inside():
            return
        if self._is_interactive():
            self._update("complete", end_status=pb().RunStatus.COMPLETED)
            return
        raise UnsupportedOptionError(
            "Run.complete from outside run %s: amld ends a run with a process when the process "
            "exits" % self._run_id)

    def flush(self, timeout_seconds=300):
        """Nothing to do: every logged value is already written to the metrics file."""

    # --- children ------------------------------------------------------------

    def child_run(self, name=None, run_id=None, outputs=None):
        """A new interactive child run of this run (RUNNING until its complete()).

        Needs the daemon's socket (a run on the local target has it).
        """
        if run_id is not None or outputs is not None:
            raise UnsupportedOptionError("Run.child_run(run_id=..., outputs=...): amld names "
                                         "runs itself and keeps ./outputs of runs with a "
                                         "process only")
        from amld.core.run import Run
        config = pb().RunConfig(experiment_name=self._experiment.name, interactive=True,
                                display_name="" if name is None else str(name))
        client = self._client()
        response = client.call(client.runs.SubmitRun,
                               pb().SubmitRunRequest(config=config, parent_run_id=self._run_id),
                               "start a child run of " + self._run_id)
        return Run(self._experiment, response.run.id, _run_proto=response.run)

    # --- models --------------------------------------------------------------

    def register_model(self, model_name, model_path=None, tags=None, properties=None,
                       model_framework=None, model_framework_version=None, description=None,
                       datasets=None, sample_input_dataset=None, sample_output_dataset=None,
                       resource_configuration=None, **kwargs):
        """Register the run's file or folder ``model_path`` (e.g. "outputs/model.pkl") as the
        next version of model ``model_name``; returns the Model.

        Inside a run amld started the model is registered when the run ends,
        from the files it stored (the returned Model's version is then None
        until then; Model(ws, name) finds it afterwards).
        """
        from amld.core.model import Model, _model_metadata
        meta = _model_metadata("Run.register_model", tags, properties, model_framework,
                               model_framework_version, description, datasets,
                               sample_input_dataset, sample_output_dataset,
                               resource_configuration, kwargs)
        path = _artifact_name(model_path if model_path is not None else "outputs")
        if self._inside():
            if path.startswith("outputs/") or path.startswith("logs/") or path in (
                    "outputs", "logs"):
                local = _safe_join(os.path.dirname(self._outputs_dir), path)
            else:
                local = _safe_join(self._uploads_dir(), path)
            if not os.path.exists(local):
                raise UserErrorException(
                    "register_model(%r, %r): the run has no file or folder %s (looked for %s); "
                    "write it under ./outputs or upload it with run.upload_file first"
                    % (model_name, model_path, path, local))
            from amld.core._metrics import check_name as _check
            _check(model_name)
            self._metrics.append_record("register_model", name=str(model_name), path=path,
                                        tags=meta["tags"], properties=meta["properties"],
                                        description=meta["description"])
            return Model._pending(self._experiment.workspace, str(model_name), self._run_id, meta)
        from amld.v1 import models_pb2
        client = self._client()
        proto = client.call(
            client.models.RegisterModel,
            models_pb2.RegisterModelRequest(name=str(model_name), run_id=self._run_id,
                                            run_path=path, tags=meta["tags"],
                                            properties=meta["properties"],
                                            description=meta["description"]),
            "register model %s from run %s" % (model_name, self._run_id))
        return Model._of(self._experiment.workspace, proto)


def _artifact_name(name):
    rel = os.fspath(name).replace(os.sep, "/")
    while rel.startswith("./"):
        rel = rel[2:]
    rel = rel.rstrip("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/")):
        raise UserErrorException("%r is not a valid artifact name: give a relative path like "
                                 "\"outputs/model.pkl\"" % (name,))
    for reserved in ("user_logs/", "system_logs/"):
        if rel.startswith(reserved):
            raise UserErrorException("%r: %s holds the run's own logs; choose another name"
                                     % (name, reserved))
    return rel


class _InteractiveWriter:
    """Logs the values of an interactive run (start_logging) through Runs.UpdateRun."""

    def __init__(self, run):
        self._run = run
        self._lock = threading.Lock()
        self._steps = None
        self._rows = None

    def _load(self):
        """Count the values of each name and the rows of each table already stored."""
        if self._steps is not None:
            return
        self._steps, self._rows = {}, {}
        client = self._run._client()
        for m in client.call(client.runs.GetMetrics, pb().GetMetricsRequest(run_id=self._run.id),
                             "read the metrics of run " + self._run.id).metrics:
            self._steps[m.name] = self._steps.get(m.name, 0) + 1
            if m.table:
                self._rows[m.table] = max(self._rows.get(m.table, 0), m.step + 1)

    def next_row(self, table, count=1):
        with self._lock:
            self._load()
            row = self._rows.get(table, 0)
            self._rows[table] = row + count
            return row

    def append(self, name, value, step=None, description=None, table=None):
        check_name(name)
        value = metric_value(name, value)
        with self._lock:
            self._load()
            if step is None:
                step = self._steps.get(name, 0)
            self._steps[name] = self._steps.get(name, 0) + 1
            now = time.time()
            metric = pb().Metric(name=name, step=int(step), table=table or "")
            metric.time.seconds = int(now)
            metric.time.nanos = int((now - int(now)) * 1e9)
            _set_value(metric, value)
            self._run._update("log %s" % name, metrics=[metric])


def _set_value(metric, value):
    """Fill an amld.v1.Metric's value and value_type from a metric_value()."""
    if isinstance(value, str):
        metric.text = value
    elif value is None:
        metric.number = float("nan")
        metric.value_type = pb().Metric.VALUE_NONE
    elif isinstance(value, bool):
        metric.number = float(value)
        metric.value_type = pb().Metric.VALUE_BOOLEAN
    else:
        metric.number = float(value)
        if isinstance(value, int):
            metric.value_type = pb().Metric.VALUE_INTEGER
