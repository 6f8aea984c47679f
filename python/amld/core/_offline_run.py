"""The run of a script started outside amld (Run.get_context() there): it prints what it
logs and keeps it in memory, so the same training script runs anywhere.
"""

import threading
import uuid

from amld.core._metrics import check_name, check_table, metric_value, shape_metrics
from amld.core.run import Run
from amld.exceptions import UserErrorException


class OfflineRun(Run):
    """The run of a script started outside amld: prints what it logs and keeps it in memory."""

    def __init__(self):
        """An offline run with an id "OfflineRun_<uuid>", as azureml's."""
        from amld.core.experiment import Experiment
        from amld.core.workspace import Workspace
        super().__init__(Experiment(Workspace(), "offline"),
                         "OfflineRun_%s" % uuid.uuid4())
        self._values = []  # (name, table, row, value) in logging order
        self._rows = {}  # table → rows logged
        self._tags = {}
        self._properties = {}
        self._display_name = None
        self._lock = threading.Lock()

    def _record(self, name, value, step=None, table=None, row=None):
        check_name(name)
        value = metric_value(name, value)
        with self._lock:
            self._values.append((name, table, row, value))
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
        """Print each column's value as "<name>/<column>" and keep the row (see Run.log_row)."""
        self._record_rows(name, check_table(name, kwargs, row=True))

    def log_table(self, name, value, description=""):
        """Print each column's values as "<name>/<column>" and keep the rows (see Run.log_table)."""
        self._record_rows(name, check_table(name, value))

    def _record_rows(self, name, columns):
        count = len(next(iter(columns.values()))) if columns else 0
        with self._lock:
            first = self._rows.get(name, 0)
            self._rows[name] = first + count
        for i in range(count):
            for column, values in columns.items():
                self._record("%s/%s" % (name, column), values[i], table=name, row=first + i)

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

    def remove_tags(self, tags):
        """Forget tags (a list of keys, or one key)."""
        with self._lock:
            for key in [tags] if isinstance(tags, str) else tags:
                self._tags.pop(str(key), None)

    def add_properties(self, properties):
        """Print the properties and keep them (a property cannot change once set)."""
        with self._lock:
            for key, value in properties.items():
                key, value = str(key), str(value)
                if self._properties.get(key, value) != value:
                    raise UserErrorException("property %r is already %r; properties cannot "
                                             "change once set" % (key, self._properties[key]))
                self._properties[key] = value
        print("amld offline run: properties %s" % properties, flush=True)

    def get_properties(self):
        """The properties added so far."""
        with self._lock:
            return dict(self._properties)

    @property
    def display_name(self):
        """The display name set, else the id."""
        return self._display_name or self._run_id

    @display_name.setter
    def display_name(self, value):
        self._display_name = value

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None,
                     datastore_name=None):
        """Print each file that would be stored."""
        for name, path in zip(names, paths):
            self.upload_file(name, path)

    def upload_folder(self, name, path, datastore_name=None):
        """Print that a folder would be stored."""
        print("amld offline run: upload folder %s as %s" % (path, name), flush=True)

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """Print the failure (the process goes on, as azureml's offline run)."""
        print("amld offline run: failed: %s" % (error_details,), flush=True)

    def complete(self, _set_status=True):
        """Nothing to do offline."""

    def register_model(self, model_name, model_path=None, **kwargs):
        """An offline run has nowhere to register a model."""
        raise UserErrorException("register_model(%r): an offline run (the script was not "
                                 "started by amld) has no model registry; use "
                                 "Model.register(ws, path, name)" % (model_name,))

    def child_run(self, name=None, run_id=None, outputs=None):
        """An offline run has no children."""
        raise UserErrorException("child_run: an offline run (the script was not started by "
                                 "amld) cannot have child runs")

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The values logged so far (same shape as Run.get_metrics)."""
        with self._lock:
            values = list(self._values)
        metrics = shape_metrics(values)
        return metrics if name is None else {k: v for k, v in metrics.items() if k == name}

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
