"""Distributed runs on a Slurm target of two nodes, with real torch.distributed and real Open MPI.

Run by ctest as ``python_distributed_slurm_test`` with the ``slurm`` fixture
(scripts/test-env/slurm: node amldnode on this machine's end of a veth pair,
amldnode2 in a network namespace at the other end), which sets
AMLD_TEST_SLURM_STATE and SLURM_CONF; skipped without them. Both nodes share
a hostname and /dev/shm, so the runs get the test network from this file
(GLOO_SOCKET_IFNAME, OMPI_MCA_*), as a person would on such a cluster; amld
sets neither (../shared/design/FACTS.md, "Two Slurm nodes in one VM").

The seed's ``ScriptRunConfig(..., distributed_job_config=PyTorchConfiguration(
process_count=4, node_count=2))`` submitted from amld.core runs a gloo
all_reduce as 2 processes on each node; MPI's allreduce runs across the two
nodes under mpirun inside the allocation; a failing rank fails the run naming
it and its node; cancel leaves no process on either node.
"""

import json
import os
import re
import subprocess
import tempfile
import time

import pytest

from amld.core import Environment, Experiment, ScriptRunConfig
from amld.core.compute import ComputeTarget, SlurmCompute
from amld.core.runconfig import MpiConfiguration, PyTorchConfiguration
from amld.exceptions import ActivityFailedException, UserErrorException
from conftest import SOURCE_DIR, binary, wait_until, write_script

STATE = os.environ.get("AMLD_TEST_SLURM_STATE")
pytestmark = pytest.mark.skipif(
    not STATE, reason="needs the two-node Slurm of the ctest fixture `slurm`")

ALL_REDUCE = """\
import os, socket, time
print("start %f" % time.time(), flush=True)
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print("rank %d of %d local %s node %s on %s sum %g" % (
    rank, world, os.environ["LOCAL_RANK"], os.environ["NODE_RANK"],
    os.environ["SLURMD_NODENAME"], t.item()), flush=True)
dist.destroy_process_group()
"""


def _test_network():
    out = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "test-env", "slurm"), "env", STATE],
                         capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return values["AMLD_TEST_SLURM_IFNAME"], values["AMLD_TEST_SLURM_SUBNET"]


@pytest.fixture
def cluster(ws):
    """A Slurm target on a fresh folder of the fixture's shared work dir."""
    workdir = tempfile.mkdtemp(prefix="dist-", dir=os.path.join(STATE, "shared"))
    os.chmod(workdir, 0o755)
    return ComputeTarget.attach(ws, os.path.basename(workdir),
                                SlurmCompute.attach_configuration(workdir=workdir))


def _environment():
    ifname, subnet = _test_network()
    env = Environment("slurm-test-network")
    env.python.user_managed_dependencies = True
    env.environment_variables = {
        "GLOO_SOCKET_IFNAME": ifname,
        "OMPI_MCA_btl": "tcp,self",
        "OMPI_MCA_btl_tcp_if_include": subnet,
        "OMPI_MCA_oob_tcp_if_include": subnet,
    }
    return env


def _wait_until_gone(processes):
    """Waits until each (pid, node) of `processes` has ended."""
    def all_gone():
        for pid, _ in processes:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                pass
        return True
    # Both "nodes" share this machine's pid space, so one look covers both.
    wait_until(all_gone, "every process on both nodes to end", timeout=30)


def _rank_log(run, rank, tmp_path):
    path = tmp_path / ("rank%d.txt" % rank)
    run.download_file("user_logs/std_log_process_%d.txt" % rank, str(path))
    return path.read_text()


def test_pytorch_four_processes_on_two_nodes_all_reduce_over_gloo(ws, project, cluster, tmp_path):
    write_script(project, "ddp.py", ALL_REDUCE)
    config = ScriptRunConfig(source_directory=str(project), script="ddp.py",
                             compute_target=cluster, environment=_environment(),
                             distributed_job_config=PyTorchConfiguration(
                                 communication_backend="Gloo", process_count=4, node_count=2))
    submitted = time.time()
    run = Experiment(ws, "ddp-slurm").submit(config)
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed", run.get_details()

    names = run.get_file_names()
    starts = []
    for rank in range(4):
        assert "user_logs/std_log_process_%d.txt" % rank in names
        log = _rank_log(run, rank, tmp_path)
        node, host = (0, "amldnode") if rank < 2 else (1, "amldnode2")
        assert "rank %d of 4 local %d node %d on %s sum 10" % (rank, rank % 2, node, host) in log
        starts.append(float(re.search(r"start (\d+\.\d+)", log).group(1)))
    # Submit → every rank's first line, the figure of the closing note.
    print("submit -> all 4 ranks running on 2 nodes: %.2f s" % (max(starts) - submitted))

    processes = tmp_path / "processes.json"
    run.download_file("system_logs/amld-processes.json", str(processes))
    listed = json.loads(processes.read_text())
    assert [(p["rank"], p["node"], p["exit_code"]) for p in listed] == [
        (0, "amldnode", 0), (1, "amldnode", 0), (2, "amldnode2", 0), (3, "amldnode2", 0)]
    assert all(p["pid"] > 0 for p in listed)
    # `aml run show` lists them.
    show = subprocess.run([binary("aml"), "--socket", ws.socket_path, "run", "show", run.id],
                          capture_output=True, text=True, check=True).stdout
    for p in listed:
        assert "rank %d  node %s  pid %d  exit 0" % (p["rank"], p["node"], p["pid"]) in show, show


def test_mpi_allreduce_across_two_nodes(ws, project, cluster, tmp_path):
    write_script(project, "mpi.py", """\
import os
from mpi4py import MPI
comm = MPI.COMM_WORLD
print("rank %d of %d on %s sum %d" % (comm.Get_rank(), comm.Get_size(),
                                      os.environ.get("SLURMD_NODENAME"),
                                      comm.allreduce(comm.Get_rank() + 1)), flush=True)
""")
    config = ScriptRunConfig(source_directory=str(project), script="mpi.py",
                             compute_target=cluster, environment=_environment(),
                             distributed_job_config=MpiConfiguration(process_count_per_node=1,
                                                                     node_count=2))
    run = Experiment(ws, "mpi-slurm").submit(config)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    assert run.get_status() == "Completed", (run.get_details(), _rank_log(run, 0, tmp_path))
    assert "rank 0 of 2 on amldnode sum 3" in _rank_log(run, 0, tmp_path)
    assert "rank 1 of 2 on amldnode2 sum 3" in _rank_log(run, 1, tmp_path)


def test_a_failing_rank_on_the_second_node_fails_the_run_naming_it(ws, project, cluster):
    write_script(project, "fail.py", """\
import os, sys, time
if os.environ["RANK"] == "3":
    print("rank 3 gives up", flush=True)
    sys.exit(3)
print("rank", os.environ["RANK"], "works on", flush=True)
time.sleep(300)
""")
    config = ScriptRunConfig(source_directory=str(project), script="fail.py",
                             compute_target=cluster, environment=_environment(),
                             distributed_job_config=PyTorchConfiguration(process_count=4,
                                                                         node_count=2))
    started = time.monotonic()
    run = Experiment(ws, "ddp-slurm").submit(config)
    with pytest.raises(ActivityFailedException) as failed:
        run.wait_for_completion()
    assert "rank 3 exited with code 3 on amldnode2" in str(failed.value.error)
    assert run.get_status() == "Failed"
    # The others were stopped, not left to finish their sleep.
    assert time.monotonic() - started < 200


def test_cancel_leaves_no_process_on_either_node(ws, project, cluster, daemon):
    write_script(project, "wait.py", """\
import os, time
print("pid", os.getpid(), "on", os.environ["SLURMD_NODENAME"], flush=True)
time.sleep(300)
""")
    config = ScriptRunConfig(source_directory=str(project), script="wait.py",
                             compute_target=cluster, environment=_environment(),
                             distributed_job_config=PyTorchConfiguration(process_count=4,
                                                                         node_count=2))
    run = Experiment(ws, "ddp-slurm").submit(config)
    logs = [os.path.join(daemon.run_dir(run.id), "user_logs",
                         "std_log.txt" if r == 0 else "std_log_process_%d.txt" % r)
            for r in range(4)]

    def pids():
        found = []
        for log in logs:
            text = open(log).read() if os.path.exists(log) else ""
            m = re.search(r"pid (\d+) on (\w+)", text)
            if not m:
                return None
            found.append((int(m.group(1)), m.group(2)))
        return found

    started = wait_until(pids, "all 4 processes to start (their logs copied back)")
    assert sorted(node for _, node in started) == ["amldnode", "amldnode", "amldnode2",
                                                   "amldnode2"]
    run.cancel()
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"

    _wait_until_gone(started)


def test_a_request_the_cluster_can_never_hold_is_refused_at_submit(ws, project, cluster):
    """Three nodes from a cluster of two: refused when submitted, with Slurm's
    own reason (sbatch --test-only), instead of queued and failed later."""
    write_script(project, "noop.py", "print('never runs')\n")
    config = ScriptRunConfig(source_directory=str(project), script="noop.py",
                             compute_target=cluster, environment=_environment(),
                             distributed_job_config=PyTorchConfiguration(process_count=6,
                                                                         node_count=3))
    with pytest.raises(UserErrorException) as refused:
        Experiment(ws, "ddp-slurm").submit(config)
    message = str(refused.value)
    assert "Slurm can never run this request" in message, message
    assert "Node count specification invalid" in message, message


def test_gpus_are_shared_out_per_node_and_must_divide(ws, project, cluster):
    """resources.gpus is the run's total; on 2 nodes it goes out as
    --gpus-per-node, so 3 is refused (and 2 asks Slurm for a GPU per node,
    which this cluster has none of: refused with Slurm's reason)."""
    write_script(project, "noop.py", "print('never runs')\n")
    for gpus, words in ((3, "ask for a multiple of 2"), (2, "--gpus-per-node=1")):
        config = ScriptRunConfig(source_directory=str(project), script="noop.py",
                                 compute_target=cluster, environment=_environment(),
                                 distributed_job_config=PyTorchConfiguration(process_count=4,
                                                                             node_count=2))
        config.run_config.gpus = gpus
        with pytest.raises(UserErrorException) as refused:
            Experiment(ws, "ddp-slurm").submit(config)
        assert words in str(refused.value), str(refused.value)


def test_the_time_limit_ends_every_process_on_both_nodes(ws, project, cluster, daemon):
    write_script(project, "wait.py", """\
import os, time
print("pid", os.getpid(), "on", os.environ["SLURMD_NODENAME"], flush=True)
time.sleep(300)
""")
    config = ScriptRunConfig(source_directory=str(project), script="wait.py",
                             compute_target=cluster, environment=_environment(),
                             max_run_duration_seconds=8,
                             distributed_job_config=PyTorchConfiguration(process_count=4,
                                                                         node_count=2))
    run = Experiment(ws, "ddp-slurm").submit(config)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"  # azureml's status for a run past its limit
    assert "timed out after 8 s" in run.get_details()["error"]["error"]["message"]
    pids = []
    for rank in range(4):
        log = os.path.join(daemon.run_dir(run.id), "user_logs",
                           "std_log.txt" if rank == 0 else "std_log_process_%d.txt" % rank)
        m = re.search(r"pid (\d+) on (\w+)", open(log).read())
        assert m, "rank %d never started: %s" % (rank, open(log).read())
        pids.append((int(m.group(1)), m.group(2)))
    assert sorted(node for _, node in pids) == ["amldnode"] * 2 + ["amldnode2"] * 2

    _wait_until_gone(pids)
