"""HyperDriveConfig and PrimaryMetricGoal (azureml.train.hyperdrive.runconfig)."""

import enum

from amld.core.script_run_config import ScriptRunConfig
from amld.exceptions import UnsupportedOptionError, UserErrorException
from amld.train.hyperdrive.policy import EarlyTerminationPolicy, NoTerminationPolicy
from amld.train.hyperdrive.sampling import BayesianParameterSampling, HyperParameterSampling


class PrimaryMetricGoal(enum.Enum):
    """Whether the primary metric is to be maximized or minimized."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class HyperDriveConfig:
    """A hyperparameter sweep: children of one ScriptRunConfig with sampled parameters.

    Submit it with ``experiment.submit(config)``; the sweep runs in the daemon
    (closing the notebook does not stop it) and returns a HyperDriveRun.

    :param run_config: the ScriptRunConfig every child runs, with
        ``--name value`` appended to its arguments per sampled parameter.
    :param hyperparameter_sampling: RandomParameterSampling,
        GridParameterSampling or BayesianParameterSampling.
    :param primary_metric_name: the metric the script logs (run.log) that
        children are judged by.
    :param primary_metric_goal: PrimaryMetricGoal.MAXIMIZE or MINIMIZE.
    :param max_total_runs: children in all (a grid: at most its combinations).
    :param max_concurrent_runs: children unfinished at one time (None: all).
    :param max_duration_minutes: the sweep's time limit (10080, a week, by default).
    :param policy: an early termination policy (None: no termination).
    """

    def __init__(self, hyperparameter_sampling, primary_metric_name, primary_metric_goal,
                 max_total_runs=None, max_concurrent_runs=None, max_duration_minutes=10080,
                 policy=None, estimator=None, run_config=None, resume_from=None,
                 resume_child_runs=None, pipeline=None, debug_flag=None,
                 custom_run_id=None):
        """Check the sweep's shape; the daemon checks the rest at submit."""
        for name, value in (("estimator", estimator), ("resume_from", resume_from),
                            ("resume_child_runs", resume_child_runs), ("pipeline", pipeline),
                            ("debug_flag", debug_flag), ("custom_run_id", custom_run_id)):
            if value is not None:
                raise UnsupportedOptionError("HyperDriveConfig(%s=...): amld sweeps take a "
                                             "ScriptRunConfig as run_config only" % name)
        if not isinstance(run_config, ScriptRunConfig):
            raise UserErrorException("HyperDriveConfig needs run_config=ScriptRunConfig(...)")
        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise UserErrorException("hyperparameter_sampling must be RandomParameterSampling, "
                                     "GridParameterSampling or BayesianParameterSampling")
        if not isinstance(primary_metric_goal, PrimaryMetricGoal):
            raise UserErrorException("primary_metric_goal must be PrimaryMetricGoal.MAXIMIZE or "
                                     "PrimaryMetricGoal.MINIMIZE")
        if not isinstance(primary_metric_name, str) or not primary_metric_name:
            raise UserErrorException("primary_metric_name must name the metric the script logs")
        policy = policy if policy is not None else NoTerminationPolicy()
        if not isinstance(policy, EarlyTerminationPolicy):
            raise UserErrorException("policy must be BanditPolicy, MedianStoppingPolicy, "
                                     "TruncationSelectionPolicy or NoTerminationPolicy")
        if (isinstance(hyperparameter_sampling, BayesianParameterSampling)
                and not isinstance(policy, NoTerminationPolicy)):
            raise UserErrorException("Bayesian sampling does not support early termination "
                                     "policies: leave policy out")
        for name, value in (("max_total_runs", max_total_runs),
                            ("max_concurrent_runs", max_concurrent_runs),
                            ("max_duration_minutes", max_duration_minutes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise UserErrorException("%s must be an integer >= 1, got %r" % (name, value))
        if max_total_runs is None and hyperparameter_sampling.to_json()["name"] != "GRID":
            raise UserErrorException("max_total_runs is required (a grid defaults to all its "
                                     "combinations)")
        self._run_config = run_config
        self._sampling = hyperparameter_sampling
        self._primary_metric_name = primary_metric_name
        self._primary_metric_goal = primary_metric_goal
        self._max_total_runs = max_total_runs
        self._max_concurrent_runs = max_concurrent_runs
        self._max_duration_minutes = max_duration_minutes
        self._policy = policy

    @property
    def source_directory(self):
        """The children's source folder (the ScriptRunConfig's)."""
        return self._run_config.source_directory

    @property
    def run_config(self):
        """The ScriptRunConfig every child runs."""
        return self._run_config

    @property
    def primary_metric_name(self):
        """The metric children are judged by."""
        return self._primary_metric_name

    @property
    def primary_metric_goal(self):
        """PrimaryMetricGoal.MAXIMIZE or MINIMIZE."""
        return self._primary_metric_goal

    def _spec(self, spec):
        from amld.v1 import sweep_pb2
        self._sampling._to_proto(spec)
        self._policy._to_proto(spec)
        spec.primary_metric_name = self._primary_metric_name
        spec.primary_metric_goal = getattr(sweep_pb2.PrimaryMetricGoal,
                                           self._primary_metric_goal.value)
        spec.max_total_runs = self._max_total_runs or 0
        spec.max_concurrent_runs = self._max_concurrent_runs or 0
        spec.max_duration_minutes = self._max_duration_minutes or 0
