"""Compute target classes (azureml.core.compute) against a real daemon.

Each test states the azureml behaviour it pins: lookup by name raises
ComputeTargetException when absent (the samples' try/except-create pattern),
the constructor returns the subclass of the target's kind, attached targets
are detached rather than deleted, and there is no cloud to provision from.
"""

import pytest

from amld.core import ComputeTarget, ScriptRunConfig
from amld.core.compute import AmlCompute, LocalCompute, RemoteCompute, SlurmCompute
from amld.core.compute_target import ComputeTargetException
from amld.exceptions import ComputeTargetException as FromExceptions


def test_the_samples_try_except_create_pattern_ends_in_a_message_naming_slurm(ws):
    # azureml: ComputeTarget(workspace, name) raises ComputeTargetException
    # when absent; the samples then create an AmlCompute cluster.
    assert ComputeTargetException is FromExceptions
    with pytest.raises(ComputeTargetException) as absent:
        ComputeTarget(workspace=ws, name="cpu-cluster")
    assert "cpu-cluster" in str(absent.value) and absent.value.code == "NOT_FOUND"
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    with pytest.raises(ComputeTargetException) as refused:
        ComputeTarget.create(ws, "cpu-cluster", config)
    message = str(refused.value)
    assert "STANDARD_D2_V2" in message and "up to 4 nodes" in message
    assert "aml compute create cpu-cluster --type slurm" in message
    assert "SlurmCompute.attach_configuration" in message
    assert "cpu-cluster" not in ws.compute_targets, "a refused create defines nothing"


def test_an_attached_slurm_cluster_plays_the_part_of_amlcompute(ws):
    config = SlurmCompute.attach_configuration(workdir="/srv/shared/amld", partition="gpu",
                                               sbatch_args=["--gres=gpu:1"])
    attached = ComputeTarget.attach(ws, "cpu-cluster", config)
    assert isinstance(attached, SlurmCompute) and attached.type == "Slurm"
    attached.wait_for_completion(show_output=True)
    assert attached.provisioning_state == "Succeeded" and attached.created_on is not None

    # Both lookups the samples write find it, as the matching subclass.
    for cls in (ComputeTarget, AmlCompute, SlurmCompute):
        found = cls(workspace=ws, name="cpu-cluster")
        assert isinstance(found, SlurmCompute) and found == attached
        assert found.partition == "gpu"
    with pytest.raises(ComputeTargetException, match="is a SlurmCompute, not a RemoteCompute"):
        RemoteCompute(ws, "cpu-cluster")
    assert found.serialize()["slurm"]["sbatch_args"] == ["--gres=gpu:1"]

    # A run can name the object itself, as azureml's ScriptRunConfig allows.
    assert ScriptRunConfig(source_directory=".", script="t.py",
                           compute_target=found).run_config.target is found

    # The samples' clean-up cell: delete() removes a cluster; here it forgets it.
    found.delete()
    with pytest.raises(ComputeTargetException):
        ComputeTarget(ws, "cpu-cluster")


def test_remote_compute_attach_configuration_list_and_detach(ws, tmp_path):
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    config = RemoteCompute.attach_configuration(address="gpu-box.example", ssh_port=2222,
                                                username="me", private_key_file=str(key))
    box = ComputeTarget.attach(ws, "gpu-box", config)
    assert isinstance(box, RemoteCompute) and box.type == "VirtualMachine"
    assert (box.address, box.ssh_port, box.username) == ("gpu-box.example", 2222, "me")

    with pytest.raises(ComputeTargetException) as again:
        ComputeTarget.attach(ws, "gpu-box", config)
    assert again.value.code == "ALREADY_EXISTS"

    targets = ws.compute_targets
    assert sorted(targets) == ["gpu-box", "local"]
    assert isinstance(targets["local"], LocalCompute) and targets["local"].type == "local"
    assert [t.name for t in ComputeTarget.list(ws)] == ["gpu-box", "local"]

    # azureml: an attached RemoteCompute is detached, not deleted.
    with pytest.raises(ComputeTargetException, match="use detach"):
        box.delete()
    box.detach()
    assert sorted(ws.compute_targets) == ["local"]
    with pytest.raises(ComputeTargetException, match="built in"):
        targets["local"].detach()


def test_what_amld_cannot_do_is_refused_not_ignored(ws):
    with pytest.raises(ComputeTargetException, match="password not supported"):
        RemoteCompute.attach_configuration(address="h", username="u", password="secret")
    with pytest.raises(ComputeTargetException, match="needs an address"):
        ComputeTarget.attach(ws, "x", RemoteCompute.attach_configuration(username="u"))
    with pytest.raises(ComputeTargetException, match="absolute path"):
        ComputeTarget.attach(ws, "x", SlurmCompute.attach_configuration(workdir="relative"))
    with pytest.raises(ComputeTargetException, match="use RemoteCompute.attach_configuration"):
        ComputeTarget.attach(ws, "x", {"address": "h"})
    with pytest.raises(ComputeTargetException) as bad_name:
        ComputeTarget.attach(ws, "bad name", SlurmCompute.attach_configuration(workdir="/s"))
    assert bad_name.value.code == "INVALID_ARGUMENT"
    assert sorted(ws.compute_targets) == ["local"]

