"""HyperDriveRun: a sweep's parent run and its children (azureml.train.hyperdrive.run)."""

import sys
import time

from amld.core.run import Run, status_name
from amld.exceptions import ActivityFailedException, ExperimentExecutionException

_POLL_SECONDS = 0.5


class HyperDriveRun(Run):
    """The parent run of a sweep; its children are ordinary runs.

    :param experiment: the Experiment.
    :param run_id: the parent run's id; children are "<run_id>_<index>".
    """

    def __init__(self, experiment, run_id, hyperdrive_config=None, _run_proto=None, **kwargs):
        """Refer to the sweep ``run_id``."""
        super().__init__(experiment, run_id, _run_proto=_run_proto, **kwargs)
        self._hyperdrive_config = hyperdrive_config

    @property
    def hyperdrive_config(self):
        """The HyperDriveConfig it was submitted with (None when found by id)."""
        return self._hyperdrive_config

    def _spec(self):
        proto = self._proto if self._proto is not None else self._fetch()
        return proto.config.sweep

    def _children_with_best(self):
        """(child proto, best primary metric or None) for every child, oldest first."""
        from amld.v1 import runs_pb2, sweep_pb2
        spec = self._spec()
        maximize = spec.primary_metric_goal == sweep_pb2.PrimaryMetricGoal.MAXIMIZE
        client = self._client()
        out = []
        for child in reversed(self._list_children(client)):
            response = client.call(client.runs.GetMetrics,
                                   runs_pb2.GetMetricsRequest(run_id=child.id,
                                                              names=[spec.primary_metric_name]),
                                   "read the metrics of run " + child.id)
            values = [m.number for m in response.metrics if m.WhichOneof("value") == "number"]
            best = (max(values) if maximize else min(values)) if values else None
            out.append((child, best))
        return out, maximize

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False,
                                              discard_no_metric=False):
        """Children sorted by their best primary metric, best first, as a list of dicts.

        Each dict: run_id, hyperparameters (the JSON text of the sampled
        values), best_primary_metric (None when never logged) and status.
        Children without the metric come last (or not at all with
        ``discard_no_metric``); ``reverse`` puts the worst first; ``top``
        keeps the first ``top`` (0: all).
        """
        children, maximize = self._children_with_best()
        rows = [{"run_id": c.id, "hyperparameters": c.config.tags.get("hyperparameters"),
                 "best_primary_metric": best, "status": status_name(c.status)}
                for c, best in children]
        with_metric = [r for r in rows if r["best_primary_metric"] is not None]
        without = [] if discard_no_metric else [r for r in rows
                                                if r["best_primary_metric"] is None]
        with_metric.sort(key=lambda r: r["best_primary_metric"], reverse=maximize != reverse)
        rows = with_metric + without
        return rows[:top] if top else rows

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True,
                                       include_resume_from_runs=True):
        """The child with the best primary metric (a Run), or None when none logged it."""
        children, maximize = self._children_with_best()
        from amld.v1 import runs_pb2
        best = None
        for child, value in children:
            if value is None:
                continue
            if not include_failed and child.status == runs_pb2.RunStatus.FAILED:
                continue
            if not include_canceled and child.status == runs_pb2.RunStatus.CANCELED:
                continue
            if best is None or (value > best[1] if maximize else value < best[1]):
                best = (child, value)
        return Run(self._experiment, best[0].id, _run_proto=best[0]) if best else None

    def get_hyperparameters(self):
        """Each child's sampled values: a dict run id → JSON text."""
        return {c.id: c.config.tags.get("hyperparameters")
                for c in reversed(self._list_children(self._client()))}

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The metrics of every child: a dict run id → that child's get_metrics()."""
        return {child.id: child.get_metrics(name=name) for child in self.get_children()}

    def cancel(self):
        """Cancel the sweep: no more children start, and the unfinished ones are canceled."""
        super().cancel()

    def wait_for_completion(self, show_output=False, wait_post_processing=False,
                            raise_on_error=True):
        """Wait until the sweep has ended; return get_details().

        With ``show_output`` each child is printed as it starts and ends (its
        sampled values, status and best primary metric). A sweep that ends
        FAILED or CANCELED raises ActivityFailedException unless
        ``raise_on_error`` is False.
        """
        from amld.core._lazy import pb
        from amld.core._follow import is_terminal
        seen = {}
        out = sys.stdout
        if show_output:
            out.write("RunId: %s\n\n" % self._run_id)
            out.flush()
        try:
            while True:
                parent = self._fetch()
                if show_output:
                    for child in reversed(self._list_children(self._client())):
                        status = status_name(child.status)
                        if seen.get(child.id) != status:
                            seen[child.id] = status
                            reason = (" (%s)" % child.error) if child.error and is_terminal(
                                child.status) else ""
                            out.write("%s  %-15s %s%s\n" % (
                                child.id, status, child.config.tags.get("hyperparameters", ""),
                                reason))
                            out.flush()
                if is_terminal(parent.status):
                    break
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            raise ExperimentExecutionException(
                "waiting for sweep %s was interrupted; the sweep is still going on in the daemon. "
                "Reattach with wait_for_completion(), or stop it with cancel()"
                % self._run_id) from None
        details = self._details(parent)
        if show_output:
            best = self.get_children_sorted_by_primary_metric(top=1, discard_no_metric=True)
            out.write("\nSweep %s: %s\n" % (self._run_id, status_name(parent.status)))
            if best:
                out.write("Best run: %s, %s = %s\n" % (best[0]["run_id"],
                                                      parent.config.sweep.primary_metric_name,
                                                      best[0]["best_primary_metric"]))
            out.flush()
        if raise_on_error and parent.status in (pb().RunStatus.FAILED, pb().RunStatus.CANCELED):
            raise ActivityFailedException(
                "sweep %s ended %s: %s" % (self._run_id, status_name(parent.status),
                                           parent.error or "no reason was recorded"),
                run_id=self._run_id, status=status_name(parent.status), error=parent.error,
                log_tail="")
        return details

    def __repr__(self):
        """Experiment, id and the last known status."""
        return super().__repr__().replace("amld.scriptrun", "hyperdrive")

