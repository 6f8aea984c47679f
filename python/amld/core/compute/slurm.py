"""SlurmCompute: a Slurm cluster attached as a compute target (amld's own class).

azureml has no Slurm target; a Slurm partition plays the part of its
AmlCompute clusters, so SlurmCompute is an AmlCompute: code written as
``AmlCompute(ws, "cpu-cluster")`` finds the Slurm cluster attached under that
name, and ``delete()`` (which azureml's samples call to remove a cluster)
forgets the definition and leaves the cluster as it is.
"""

import os

from amld.core.compute.amlcompute import AmlCompute
from amld.core.compute.compute import _register
from amld.exceptions import ComputeTargetException


class SlurmAttachConfiguration:
    """What SlurmCompute.attach_configuration returns."""

    def __init__(self, workdir, partition, account, sbatch_args):
        """Keep the settings; they are checked by the daemon at attach."""
        self.workdir = workdir
        self.partition = partition
        self.account = account
        self.sbatch_args = list(sbatch_args or [])

    def validate_configuration(self):
        """The workdir is required and must be absolute (a shared filesystem)."""
        if not self.workdir or not os.path.isabs(self.workdir):
            raise ComputeTargetException(
                "SlurmCompute.attach_configuration needs workdir: an absolute path that is the "
                "same on this machine and on every node (a shared filesystem)")

    def _to_target(self, name):
        from amld.v1 import compute_pb2
        self.validate_configuration()
        return compute_pb2.ComputeTarget(name=name, slurm=compute_pb2.SlurmTarget(
            partition=self.partition or "", account=self.account or "", workdir=self.workdir,
            sbatch_args=self.sbatch_args))


@_register
class SlurmCompute(AmlCompute):
    """A Slurm cluster reached through sbatch/squeue/scancel on the daemon's machine."""

    _KIND = "slurm"
    _TYPE = "Slurm"

    @staticmethod
    def attach_configuration(workdir, partition=None, account=None, sbatch_args=None):
        """The settings to attach a Slurm cluster with ComputeTarget.attach.

        :param workdir: absolute folder shared by this machine and every node.
        :param partition: sbatch --partition (default: the cluster's).
        :param account: sbatch --account (default: the user's).
        :param sbatch_args: extra sbatch arguments, e.g. ["--gres=gpu:1"].
        """
        return SlurmAttachConfiguration(workdir, partition, account, sbatch_args)

    def delete(self):
        """Forget the target (as detach); the cluster and its jobs are left as they are."""
        self._remove()

    @property
    def partition(self):
        """The partition ("" means the cluster's default)."""
        return self._proto.slurm.partition
