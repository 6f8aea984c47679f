"""RemoteCompute: an SSH host attached as a compute target (azureml.core.compute.RemoteCompute)."""

import os

from amld.core.compute.compute import ComputeTarget, _register
from amld.exceptions import ComputeTargetException


class RemoteAttachConfiguration:
    """What RemoteCompute.attach_configuration returns: the SSH login to use."""

    def __init__(self, address, ssh_port, username, private_key_file, workdir):
        """Keep the settings; they are checked by the daemon at attach."""
        self.address = address
        self.ssh_port = ssh_port
        self.username = username
        self.private_key_file = private_key_file
        self.workdir = workdir

    def validate_configuration(self):
        """Check what can be checked here; the daemon checks the rest at attach."""
        if not self.address:
            raise ComputeTargetException("RemoteCompute.attach_configuration needs an address")

    def _to_target(self, name):
        from amld.v1 import compute_pb2
        self.validate_configuration()
        key = self.private_key_file
        return compute_pb2.ComputeTarget(name=name, ssh=compute_pb2.SshTarget(
            host=self.address, port=int(self.ssh_port or 0), user=self.username or "",
            identity_file=os.path.abspath(os.path.expanduser(key)) if key else "",
            workdir=self.workdir or ""))


@_register
class RemoteCompute(ComputeTarget):
    """A machine reached over SSH (type "VirtualMachine", as azureml's)."""

    _KIND = "ssh"
    _TYPE = "VirtualMachine"

    @staticmethod
    def attach_configuration(address=None, ssh_port=22, username=None, password=None,
                             private_key_file=None, private_key_passphrase=None,
                             resource_id=None, workdir=None):
        """The settings to attach an SSH host with ComputeTarget.attach.

        amld logs in with keys only (OpenSSH BatchMode), so ``password`` and
        ``private_key_passphrase`` are refused rather than ignored: use a key
        without a passphrase, or one loaded in ssh-agent. ``resource_id``
        names an Azure VM and has no meaning here. ``workdir`` (amld's) is
        the folder on the host that holds the runs (default ~/amld).
        """
        refused = [n for n, v in (("password", password),
                                  ("private_key_passphrase", private_key_passphrase),
                                  ("resource_id", resource_id)) if v]
        if refused:
            raise ComputeTargetException(
                "RemoteCompute.attach_configuration: %s not supported: amld logs in over SSH "
                "with keys only (BatchMode); give private_key_file, or load the key into "
                "ssh-agent, and an address" % ", ".join(refused))
        return RemoteAttachConfiguration(address, ssh_port, username, private_key_file, workdir)

    @property
    def address(self):
        """The host name or address."""
        return self._proto.ssh.host

    @property
    def ssh_port(self):
        """The SSH port (22 when unset)."""
        return self._proto.ssh.port or 22

    @property
    def username(self):
        """The login name ("" means ssh's default)."""
        return self._proto.ssh.user
