"""Logging to a run from inside it: metrics appended to AMLD_METRICS_FILE, files written
under the run's outputs/ and logs/, which the daemon stores while the run runs.
"""

import os
import re
import shutil

from amld.core._metrics import check_name
from amld.core._run_files import _safe_join
from amld.exceptions import RunEnvironmentException, UnsupportedOptionError, UserErrorException


def _safe_file_name(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "image"


class RunLogging:
    """Run's logging methods (a mixin of amld.core.Run; needs _run_id, _metrics, _outputs_dir)."""

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
