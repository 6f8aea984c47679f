"""Distributed runs on the local target, with real torch.distributed and real Open MPI.

A distributed run is one run: one status, one cancel that ends every process,
one error that names the process that failed. Each process's output is
user_logs/std_log_process_<rank>.txt (rank 0's is also std_log.txt), as in
azureml. Needs Debian's python3-torch, openmpi-bin and python3-mpi4py
(scripts/install-deps).
"""

import json
import os
import re
import subprocess

import pytest

from amld.core import Experiment, ScriptRunConfig
from amld.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from amld.exceptions import ActivityFailedException, UnsupportedOptionError
from conftest import binary, wait_until, write_script

ALL_REDUCE = """\
import json
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print("rank %d of %d local %s node %s sum %g" % (rank, world, os.environ["LOCAL_RANK"],
                                              os.environ["NODE_RANK"], t.item()), flush=True)
dist.destroy_process_group()
"""


def _rank_log(run, rank, tmp_path):
    path = tmp_path / ("rank%d.txt" % rank)
    run.download_file("user_logs/std_log_process_%d.txt" % rank, str(path))
    return path.read_text()


def test_pytorch_two_processes_all_reduce_over_gloo(ws, project, tmp_path):
    write_script(project, "ddp.py", ALL_REDUCE)
    config = ScriptRunConfig(source_directory=str(project), script="ddp.py",
                             distributed_job_config=PyTorchConfiguration(
                                 communication_backend="Gloo", process_count=2))
    run = Experiment(ws, "ddp").submit(config)
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed"

    names = run.get_file_names()
    assert "user_logs/std_log_process_0.txt" in names
    assert "user_logs/std_log_process_1.txt" in names
    assert "rank 0 of 2 local 0 node 0 sum 3" in _rank_log(run, 0, tmp_path)
    assert "rank 1 of 2 local 1 node 0 sum 3" in _rank_log(run, 1, tmp_path)
    # std_log.txt is rank 0's.
    std_log = tmp_path / "std_log.txt"
    run.download_file("user_logs/std_log.txt", str(std_log))
    assert "rank 0 of 2" in std_log.read_text() and "rank 1 of 2" not in std_log.read_text()
    # Each process holds a CPU slot.
    assert run._fetch().config.resources.cpus == 2

    # `aml run logs --rank N` reads one process's log; a rank the run never
    # had is an error, not an empty log.
    def logs(rank):
        return subprocess.run([binary("aml"), "--socket", ws.socket_path, "run", "logs", run.id,
                               "--rank", str(rank)], capture_output=True, text=True)
    assert "rank 1 of 2" in logs(1).stdout
    missing = logs(7)
    assert missing.returncode != 0 and "std_log_process_7.txt" in missing.stderr


def test_a_failing_rank_stops_the_others_and_is_named(ws, project):
    write_script(project, "fail.py", """\
import os, sys, time
if os.environ["RANK"] == "1":
    print("rank 1 gives up", flush=True)
    sys.exit(3)
print("rank 0 works on", flush=True)
time.sleep(120)
""")
    config = ScriptRunConfig(source_directory=str(project), script="fail.py",
                             distributed_job_config=PyTorchConfiguration(process_count=2))
    run = Experiment(ws, "ddp").submit(config)
    with pytest.raises(ActivityFailedException) as failed:
        run.wait_for_completion()
    assert "rank 1 exited with code 3" in str(failed.value.error)
    details = run.get_details()
    assert details["status"] == "Failed"
    # Rank 0 was stopped long before its sleep ended.
    assert "stopping the other 1 process(es)" in failed.value.log_tail


def test_cancel_ends_every_process(ws, project, daemon):
    write_script(project, "wait.py", """\
import os, time
print("pid", os.getpid(), flush=True)
time.sleep(300)
""")
    config = ScriptRunConfig(source_directory=str(project), script="wait.py",
                             distributed_job_config=PyTorchConfiguration(process_count=2))
    run = Experiment(ws, "ddp").submit(config)
    logs = [os.path.join(daemon.run_dir(run.id), "user_logs",
                         "std_log_process_%d.txt" % r) for r in range(2)]

    def pids():
        found = []
        for log in logs:
            text = open(log).read() if os.path.exists(log) else ""
            m = re.search(r"pid (\d+)", text)
            if not m:
                return None
            found.append(int(m.group(1)))
        return found

    started = wait_until(pids, "both processes to start")
    run.cancel()
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _pids_in_rank_logs(daemon, run, count):
    """The pid each rank printed first ("pid N"), once every rank has; else None."""
    found = []
    for rank in range(count):
        log = os.path.join(daemon.run_dir(run.id), "user_logs", "std_log_process_%d.txt" % rank)
        m = re.search(r"pid (\d+)", open(log).read() if os.path.exists(log) else "")
        if not m:
            return None
        found.append(int(m.group(1)))
    return found


def test_the_time_limit_ends_every_process(ws, project, daemon):
    """One time limit for the whole run: when it passes, every rank is stopped
    and the run fails saying so, as one process would."""
    write_script(project, "wait.py", """\
import os, time
print("pid", os.getpid(), flush=True)
time.sleep(300)
""")
    config = ScriptRunConfig(source_directory=str(project), script="wait.py",
                             max_run_duration_seconds=4,
                             distributed_job_config=PyTorchConfiguration(process_count=2))
    run = Experiment(ws, "ddp").submit(config)
    started = wait_until(lambda: _pids_in_rank_logs(daemon, run, 2), "both processes to start")
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == "Canceled"  # azureml's status for a run past its limit
    assert "timed out after 4 s" in run.get_details()["error"]["error"]["message"]
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_tensorflow_tasks_reach_each_other_at_the_addresses_tf_config_names(ws, project,
                                                                             tmp_path):
    # No TensorFlow needed: each task listens where TF_CONFIG says it is and
    # connects to every other task.
    write_script(project, "tf.py", """\
import json, os, socket, time
config = json.loads(os.environ["TF_CONFIG"])
me = config["task"]
tasks = [(kind, i, addr) for kind in ("worker", "ps")
         for i, addr in enumerate(config["cluster"].get(kind, []))]
host, port = config["cluster"][me["type"]][me["index"]].rsplit(":", 1)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))
server.listen(8)
reached = 0
for kind, i, addr in tasks:
    if (kind, i) == (me["type"], me["index"]):
        continue
    h, p = addr.rsplit(":", 1)
    for _ in range(600):
        try:
            socket.create_connection((h, int(p)), timeout=1).close()
            reached += 1
            break
        except OSError:
            time.sleep(0.05)
print("%s %d reached %d of %d" % (me["type"], me["index"], reached, len(tasks) - 1), flush=True)
time.sleep(1)  # stay up while the others connect
""")
    config = ScriptRunConfig(source_directory=str(project), script="tf.py",
                             distributed_job_config=TensorflowConfiguration(
                                 worker_count=2, parameter_server_count=1))
    run = Experiment(ws, "tf").submit(config)
    run.wait_for_completion()
    assert "worker 0 reached 2 of 2" in _rank_log(run, 0, tmp_path)
    assert "worker 1 reached 2 of 2" in _rank_log(run, 1, tmp_path)
    assert "ps 0 reached 2 of 2" in _rank_log(run, 2, tmp_path)


def test_mpi_allreduce_across_two_processes(ws, project, tmp_path):
    write_script(project, "mpi.py", """\
from mpi4py import MPI
comm = MPI.COMM_WORLD
print("rank %d of %d sum %d" % (comm.Get_rank(), comm.Get_size(),
                                comm.allreduce(comm.Get_rank() + 1)), flush=True)
""")
    config = ScriptRunConfig(source_directory=str(project), script="mpi.py",
                             distributed_job_config=MpiConfiguration(process_count_per_node=2))
    run = Experiment(ws, "mpi").submit(config)
    run.wait_for_completion()
    assert "rank 0 of 2 sum 3" in _rank_log(run, 0, tmp_path)
    assert "rank 1 of 2 sum 3" in _rank_log(run, 1, tmp_path)


def test_several_nodes_are_refused_on_this_machine(ws, project):
    write_script(project, "ddp.py", ALL_REDUCE)
    config = ScriptRunConfig(source_directory=str(project), script="ddp.py",
                             distributed_job_config=PyTorchConfiguration(process_count=4,
                                                                         node_count=2))
    with pytest.raises(UnsupportedOptionError, match="distributed run on 2 nodes needs a Slurm target"):
        Experiment(ws, "ddp").submit(config)


def test_a_distributed_job_yaml_runs_each_rank(ws, project):
    """distribution: {type: pytorch, process_count_per_instance: 2} in a job YAML is the same
    run as PyTorchConfiguration(process_count=2): two ranks, each with its log."""
    from conftest import binary
    write_script(project, "ranks.py",
                 "import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n")
    (project / "dist.yml").write_text(
        "experiment_name: yaml-dist\ncommand: /usr/bin/python3 ranks.py\n"
        "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n")
    done = subprocess.run([binary("aml"), "--socket", ws.socket_path, "--output", "json", "run",
                           "submit", "-f", str(project / "dist.yml"), "--wait"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["config"]["distributed"]["pytorch"]["process_count"] == 2
    for rank in (0, 1):
        logs = subprocess.run([binary("aml"), "--socket", ws.socket_path, "run", "logs", run["id"],
                               "--rank", str(rank)], stdout=subprocess.PIPE, text=True).stdout
        assert logs.endswith("rank %d of 2\n" % rank), logs


def test_run_configuration_communicator_asks_for_the_same_distributed_run(ws, project, tmp_path):
    """azureml v1's older way: RunConfiguration(framework="PyTorch", communicator="Gloo") with
    run_config.pytorch.process_count, given as ScriptRunConfig(run_config=...), is the run
    PyTorchConfiguration(process_count=2) makes: two ranks, each with its log."""
    from amld.core.runconfig import RunConfiguration
    write_script(project, "ranks.py",
                 "import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n")
    rc = RunConfiguration(framework="PyTorch", communicator="Gloo")
    rc.pytorch.process_count = 2
    rc.max_run_duration_seconds = 300
    run = Experiment(ws, "rc-dist").submit(
        ScriptRunConfig(source_directory=str(project), script="ranks.py", run_config=rc))
    run.wait_for_completion()
    assert run._fetch().config.distributed.pytorch.process_count == 2
    for rank in (0, 1):
        assert _rank_log(run, rank, tmp_path).endswith("rank %d of 2\n" % rank)
