"""azureml.train.hyperdrive on amld."""
import importlib as _importlib
import sys as _sys

from amld.train.hyperdrive import *  # noqa: F401,F403
from amld.train.hyperdrive import __all__  # noqa: F401

# Its submodules (azureml.train.hyperdrive.parameter_expressions, ...) are amld's own.
for _name in ("parameter_expressions", "policy", "run", "runconfig", "sampling"):
    _sys.modules[__name__ + "." + _name] = _importlib.import_module(
        "amld.train.hyperdrive." + _name)
