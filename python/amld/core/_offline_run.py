"""The run of a script started outside amld (Run.get_context() there): it prints what it
logs and keeps it in memory, so the same training script runs anywhere.
"""

import threading
import uuid

from amld.core._metrics import check_name, metric_value
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
