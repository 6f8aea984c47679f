"""Compute targets (azureml.core.compute): the named places runs execute.

A target is kept by the daemon (its ComputeTargets service, also behind
``aml compute``); a run names it in ``ScriptRunConfig(compute_target=...)``.
The kinds amld has, and the azureml class each appears as:

- ``local``: this machine, always present (:class:`LocalCompute`, type ``"local"``);
- an SSH host: :class:`RemoteCompute` (type ``"VirtualMachine"``, as azureml's),
  made with ``RemoteCompute.attach_configuration`` + ``ComputeTarget.attach``;
- a Slurm cluster: :class:`SlurmCompute` (type ``"Slurm"``, amld's own), made with
  ``SlurmCompute.attach_configuration`` + ``ComputeTarget.attach``.

``AmlCompute.provisioning_configuration`` describes a cloud cluster to
provision; there is no cloud here, so ``ComputeTarget.create`` with it raises
ComputeTargetException naming the Slurm equivalent. Looking up a target by
name (``ComputeTarget(workspace=ws, name=n)``) raises ComputeTargetException
when it does not exist, as in azureml.
"""

from amld.core.compute.compute import ComputeTarget, LocalCompute
from amld.core.compute.amlcompute import AmlCompute
from amld.core.compute.remote import RemoteCompute
from amld.core.compute.slurm import SlurmCompute

__all__ = ["AmlCompute", "ComputeTarget", "LocalCompute", "RemoteCompute", "SlurmCompute"]
