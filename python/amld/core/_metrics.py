"""Appending metric values to a run's AMLD_METRICS_FILE.

One JSON object per line, the format the daemon tails into its metrics table
(daemon/ingest/metrics_tail.h)::

    {"name": "loss", "value": 0.25, "step": 3, "time": 1750000000.5}

"step" is left out when the script gives none: the daemon then numbers the
values of each name in logging order. NaN and infinities are written as
Python's json module spells them, which the daemon reads as numbers. ints,
bools and None are written as JSON integers, true/false and null, and the
daemon keeps their type, so get_metrics() gives them back as logged (as
azureml does). A column value of a table (log_row, log_table) is written as
``{"name": "<table>/<column>", "table": "<table>", "step": <row>, ...}``.

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
    """The JSON value for a logged value: a number, a string, a bool or None (azureml's types).

    numpy scalars become plain Python values; anything else is a
    UserErrorException naming the metric.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return metric_value(name, value.item())
    raise UserErrorException(
        "metric %r: a value must be a number, a string, a bool or None, not %s; log lists with "
        "log_list and rows with log_row" % (name, type(value).__name__))


def check_name(name):
    """Refuse an empty or non-string metric name (the daemon would skip the line)."""
    if not isinstance(name, str) or not name:
        raise UserErrorException("a metric name must be a non-empty string, got %r" % (name,))


def check_table(name, value, row=False):
    """Refuse what azureml refuses in log_row/log_table: {column: value} for a row (no lists),
    {column: [values]} of equal lengths for a table; return {column: [values]}."""
    check_name(name)
    if not isinstance(value, dict):
        raise UserErrorException("log_table(%r): value must be a dict of column → list" % name)
    columns = {}
    for column, values in value.items():
        if not isinstance(column, str) or not column:
            raise UserErrorException("table %r: a column name must be a non-empty string, got %r"
                                     % (name, column))
        if row and isinstance(values, (list, tuple)):
            raise UserErrorException("log_row(%r): column %r is a list; a row holds one value "
                                     "per column (use log_table for columns of values)"
                                     % (name, column))
        columns[column] = list(values) if isinstance(values, (list, tuple)) else [values]
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise UserErrorException("log_table(%r): columns have different lengths (%s); every "
                                 "column needs one value per row" % (
                                     name, ", ".join("%s: %d" % (c, len(v))
                                                     for c, v in columns.items())))
    return columns


def shape_metrics(values):
    """get_metrics()'s dict from (name, table, row, value) tuples in logging order, as azureml:

    a name logged once is its value, more often a list (log_list's values
    too); a table (log_row, log_table) is {column: value} with one row and
    {column: [values]} with more, a column missing from a row being None.
    """
    out, tables = {}, {}
    for name, table, row, value in values:
        if table:
            rows = tables.setdefault(table, {})
            rows.setdefault(row, {})[name[len(table) + 1:]] = value
        else:
            out.setdefault(name, []).append(value)
    result = {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}
    for table, rows in tables.items():
        columns = []
        for cells in rows.values():
            columns.extend(c for c in cells if c not in columns)
        ordered = [rows[r] for r in sorted(rows)]
        if len(ordered) == 1:
            result[table] = {c: ordered[0].get(c) for c in columns}
        else:
            result[table] = {c: [cells.get(c) for cells in ordered] for c in columns}
    return result


_rows_lock = threading.Lock()
_rows = {}  # (metrics file path, table) → rows written by this process


class MetricsFile:
    """Appends metric lines to one file; thread safe, safe for concurrent writer processes."""

    def __init__(self, path):
        """Remember the file; it is opened (and created if needed) on the first value."""
        self.path = path
        self._fd = None
        self._lock = threading.Lock()

    def next_row(self, table, count=1):
        """The index of the next ``count`` rows of ``table`` in this process (from 0)."""
        with _rows_lock:
            key = (os.path.abspath(self.path), table)
            row = _rows.get(key, 0)
            _rows[key] = row + count
            return row

    def append(self, name, value, step=None, description=None, table=None):
        """Append one value of metric ``name`` (see the module docstring for the format)."""
        check_name(name)
        record = {"name": name, "value": metric_value(name, value)}
        if table is not None:
            record["table"] = table
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
