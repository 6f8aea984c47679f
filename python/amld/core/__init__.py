"""The azureml.core API on amld: Workspace, Experiment, Environment, ScriptRunConfig, Run,
ComputeTarget, Model.

``from azureml.core import ...`` becomes ``from amld.core import ...``; the
rest of the code stays as it is. Distributed job configurations are in
amld.core.runconfig, compute target classes in amld.core.compute, errors in
amld.exceptions.
"""

from amld.core.compute import ComputeTarget
from amld.core.conda_dependencies import CondaDependencies
from amld.core.environment import Environment
from amld.core.experiment import Experiment
from amld.core.model import Model
from amld.core.run import Run
from amld.core.script_run_config import ScriptRunConfig
from amld.core.workspace import Workspace

__all__ = [
    "CondaDependencies", "ComputeTarget", "Environment", "Experiment", "Model", "Run", "ScriptRunConfig",
    "Workspace",
]
