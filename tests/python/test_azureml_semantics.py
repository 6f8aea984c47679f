"""azureml's behaviour where amld's names match it, against a real daemon: the status of a run
stopped by its time limit, and GPUs where training code expects them (a run on a machine
with GPUs that got none says so in the first line of its output).

The GPU daemon is told it has GPUs 0 and 1 (amld.yaml `gpus:`; this machine may have none:
amld hands out ids through CUDA_VISIBLE_DEVICES and never opens a device itself)."""

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import Daemon, binary, write_script

NOTICE = "amld: this run has no GPU"
SHOW_GPUS = "import os\nprint('visible=[%s]' % os.environ.get('CUDA_VISIBLE_DEVICES'))\n"


def test_a_run_past_its_time_limit_ends_canceled_as_in_azureml(ws):
    """azureml's ScriptRunConfig(max_run_duration_seconds=...): "The maximum time allowed for
    the run. The system will attempt to automatically cancel the run if it took longer than
    this value." A run stopped that way is Canceled, with the reason."""
    from amld.core import Experiment, ScriptRunConfig
    write_script(os.getcwd(), "slow.py", "import time\nprint('started', flush=True)\n"
                                         "time.sleep(120)\n")
    src = ScriptRunConfig(".", script="slow.py", max_run_duration_seconds=2)
    run = Experiment(ws, "limits").submit(src)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Canceled"
    assert details["error"]["error"]["message"] == "timed out after 2 s"
    assert details["runDefinition"]["maxRunDurationSeconds"] == 2


@pytest.fixture(scope="module")
def gpu_daemon():
    """An amld that has GPUs 0 and 1 and gives a run that asks for none one of them."""
    root = tempfile.mkdtemp(prefix="amldgpu.", dir="/tmp")
    config = os.path.join(root, "amld.yaml")
    with open(config, "w") as f:
        f.write("gpus: [0, 1]\ndefault_gpus: 1\n")
    d = Daemon(root, extra_args=["--config", config])
    d.start()
    yield d
    d.stop()
    shutil.rmtree(root, ignore_errors=True)


def submit_and_read_log(gpu_daemon, tmp_path, gpus=None):
    from amld.core import Experiment, ScriptRunConfig, Workspace
    write_script(str(tmp_path), "show.py", SHOW_GPUS)
    src = ScriptRunConfig(str(tmp_path), script="show.py")
    if gpus is not None:
        src.run_config.gpus = gpus
    run = Experiment(Workspace(gpu_daemon.socket), "gpus").submit(src)
    assert run.wait_for_completion()["status"] == "Completed"
    with open(os.path.join(gpu_daemon.run_dir(run.id), "user_logs", "std_log.txt")) as f:
        return f.read()


def test_a_run_that_got_no_gpu_says_so_in_its_first_line(gpu_daemon, tmp_path):
    log = submit_and_read_log(gpu_daemon, tmp_path, gpus=0)
    first, rest = log.split("\n", 1)
    assert first.startswith(NOTICE)
    assert "this machine has 2: 0,1" in first and "--gpus N" in first
    assert "run_config.gpus = N" in first
    assert rest == "visible=[]\n"  # CUDA sees no device: the line above says why


def test_a_run_with_gpus_sees_them_and_gets_no_line(gpu_daemon, tmp_path):
    log = submit_and_read_log(gpu_daemon, tmp_path, gpus=2)
    assert log == "visible=[0,1]\n"


def test_amld_yaml_default_gpus_applies_to_a_run_that_asks_for_none(gpu_daemon, tmp_path):
    log = submit_and_read_log(gpu_daemon, tmp_path)
    assert NOTICE not in log
    assert log in ("visible=[0]\n", "visible=[1]\n")


def test_the_cli_asks_for_gpus_and_an_explicit_zero_gets_the_line(gpu_daemon, tmp_path):
    write_script(str(tmp_path), "show.py", SHOW_GPUS)
    for flag, expect_notice in (("0", True), ("2", False)):
        done = subprocess.run([binary("aml"), "--socket", gpu_daemon.socket, "run", "submit",
                               "show.py", "--gpus", flag, "--wait"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 0, done.stderr
        assert (NOTICE in done.stdout) == expect_notice, done.stdout
        assert ("visible=[]" if expect_notice else "visible=[0,1]") in done.stdout
