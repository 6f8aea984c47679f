"""The azureml.train.hyperdrive API on amld: hyperparameter sweeps run by the daemon.

``from azureml.train.hyperdrive import ...`` becomes
``from amld.train.hyperdrive import ...``.
"""

from amld.train.hyperdrive.parameter_expressions import (
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from amld.train.hyperdrive.policy import (
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)
from amld.train.hyperdrive.run import HyperDriveRun
from amld.train.hyperdrive.runconfig import HyperDriveConfig, PrimaryMetricGoal
from amld.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
)

__all__ = [
    "BanditPolicy", "BayesianParameterSampling", "EarlyTerminationPolicy",
    "GridParameterSampling", "HyperDriveConfig", "HyperDriveRun", "HyperParameterSampling",
    "MedianStoppingPolicy", "NoTerminationPolicy", "PrimaryMetricGoal",
    "RandomParameterSampling", "TruncationSelectionPolicy", "choice", "lognormal",
    "loguniform", "normal", "qlognormal", "qloguniform", "qnormal", "quniform", "randint",
    "uniform",
]
