"""AmlCompute: azureml's managed cloud clusters, which amld cannot provision.

``AmlCompute.provisioning_configuration(...)`` is accepted so the samples'
code reads as before, and ``ComputeTarget.create(ws, name, config)`` then
raises ComputeTargetException saying what to do instead: attach the Slurm
cluster (or SSH host) that plays the cluster's part under that name, after
which ``ComputeTarget(workspace=ws, name=name)`` finds it and the samples'
try/except never reaches create.
"""

from amld.core.compute.compute import ComputeTarget


class AmlComputeProvisioningConfiguration:
    """What AmlCompute.provisioning_configuration returns: the cluster azureml would make."""

    def __init__(self, **settings):
        """Keep the settings (vm_size, min_nodes, max_nodes, ...) for the error message."""
        self.__dict__.update(settings)
        self._settings = settings

    def _refusal(self, name):
        size = self._settings.get("vm_size") or "a VM size"
        nodes = self._settings.get("max_nodes")
        return (
            "cannot create compute target %r: AmlCompute provisions cloud VMs (%s%s), and amld "
            "provisions nothing. Attach the cluster that takes its place under the same name, "
            "e.g. `aml compute create %s --type slurm --workdir /shared/amld --partition P` or "
            "ComputeTarget.attach(ws, %r, SlurmCompute.attach_configuration(workdir=..., "
            "partition=...)); then ComputeTarget(workspace=ws, name=%r) finds it"
            % (name, size, ", up to %s nodes" % nodes if nodes else "", name, name, name))

    def validate_configuration(self):
        """Nothing to check: creation is refused whatever the settings."""


class AmlCompute(ComputeTarget):
    """azureml's managed cluster. Only its provisioning configuration exists here (see module)."""

    _TYPE = "AmlCompute"

    @staticmethod
    def provisioning_configuration(vm_size="", vm_priority="dedicated", min_nodes=0,
                                   max_nodes=None, idle_seconds_before_scaledown=None,
                                   admin_username=None, admin_user_password=None,
                                   admin_user_ssh_key=None, vnet_resourcegroup_name=None,
                                   vnet_name=None, subnet_name=None, tags=None, description=None,
                                   remote_login_port_public_access="NotSpecified",
                                   identity_type=None, identity_id=None, location=None,
                                   enable_node_public_ip=True):
        """azureml's settings of a cluster to provision; ComputeTarget.create refuses them."""
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size, vm_priority=vm_priority, min_nodes=min_nodes, max_nodes=max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown, tags=tags,
            description=description, location=location)

    @staticmethod
    def supported_vmsizes(workspace, location=None):
        """No cloud VM sizes exist here: an empty list."""
        return []
