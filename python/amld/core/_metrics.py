"""Appending metric values to a run's AMLD_METRICS_FILE.

One JSON object per line, the format the daemon tails into its metrics table
(daemon/ingest/metrics_tail.h)::

    {"name": "loss", "value": 0.25, "step": 3, "time": 1750000000.5}

"step" is left out when the script gives none: the daemon then numbers the
values of each name in logging order. NaN and infinities are written as
Python's json module spells them, which the daemon reads as numbers.

Each line is one ``write(2)`` on a descriptor opened with O_APPEND, so it
reaches the file at once (nothing is buffered in the process) and lines from
several processes or threads writing to the same file never interleave.
"""

import json
import numbers
import os
import threading
import time

from amld.exceptions import UserErrorException


def metric_value(name, value):
    """The JSON value for a logged value: a number or a string.

    bools become 1 and 0 and numpy scalars plain numbers; anything else is a
    UserErrorException naming the metric.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return metric_value(name, value.item())
    raise UserErrorException(
        "metric %r: a value must be a number or a string, not %s; log lists with "
        "log_list and rows with log_row" % (name, type(value).__name__))


def check_name(name):
    """Refuse an empty or non-string metric name (the daemon would skip the line)."""
    if not isinstance(name, str) or not name:
        raise UserErrorException("a metric name must be a non-empty string, got %r" % (name,))


class MetricsFile:
    """Appends metric lines to one file; thread safe, safe for concurrent writer processes."""

    def __init__(self, path):
        """Remember the file; it is opened (and created if needed) on the first value."""
        self.path = path
        self._fd = None
        self._lock = threading.Lock()

    def append(self, name, value, step=None, description=None):
        """Append one value of metric ``name`` (see the module docstring for the format)."""
        check_name(name)
        record = {"name": name, "value": metric_value(name, value)}
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, numbers.Integral):
                raise UserErrorException("metric %r: step must be an integer, got %r"
                                         % (name, step))
            record["step"] = int(step)
        record["time"] = time.time()
        if description:
            record["description"] = str(description)
        self._write((json.dumps(record) + "\n").encode("utf-8"))

    def append_record(self, kind, **fields):
        """Append a line that changes the run's record (daemon/ingest/metrics_tail.h: "kind")."""
        record = {"kind": kind}
        record.update(fields)
        self._write((json.dumps(record) + "\n").encode("utf-8"))

    def _write(self, data):
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                   0o644)
            written = os.write(self._fd, data)
            # A regular file takes the whole line in one write; should a
            # short write ever happen, finish the line rather than lose it.
            while written < len(data):
                written += os.write(self._fd, data[written:])

    def close(self):
        """Close the descriptor (a later append opens it again)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
