"""amld's Python SDK: the azureml.core (Azure ML SDK v1) API for a self-hosted amld daemon.

Code written against ``azureml.core`` runs against amld with only its imports
changed::

    from amld.core import Workspace, Experiment, Environment, ScriptRunConfig, Run
    from amld.core.runconfig import PyTorchConfiguration

The SDK talks gRPC to the daemon over its Unix socket (the generated stubs are
``amld.v1``); source snapshots are made by the ``aml`` command, so the ignore
rules and the upload have one implementation.
"""

__version__ = "0.1.0"
