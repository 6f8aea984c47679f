"""Experiment.submit against a real daemon: the snapshot is `aml snapshot create`'s (the same
as `aml run submit` makes), unsupported options are refused by name, errors keep the
daemon's message, and the run's record matches the ScriptRunConfig."""

import json
import os
import subprocess
import sys

import pytest

from conftest import binary, write_script


def aml(ws, *args):
    done = subprocess.run([binary("aml"), "--socket", ws.socket_path] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return done


def git(folder, *args):
    subprocess.run(["git", "-C", str(folder)] + list(args), check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e",
                            GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e"))


def test_snapshot_create_is_the_snapshot_run_submit_makes(ws, project):
    from amld.core import Experiment, ScriptRunConfig
    write_script(project, "train.py", "print('hi')\n")
    os.makedirs(project / "data")
    (project / "data" / "big.bin").write_bytes(b"x" * 1000)
    with open(project / ".amlignore", "a") as f:
        f.write("data/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"],
                          stdout=subprocess.PIPE, text=True).stdout.strip()

    first = aml(ws, "--output", "json", "snapshot", "create", str(project))
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["git"]["commit"] == head and made["git"]["branch"] == "main"
    assert made["git"]["dirty"] is False
    assert made["source_dir"] == str(project)
    upload = made["upload"]
    assert upload["files_total"] == 2  # train.py and .amlignore: .amld/ and data/ are ignored
    assert upload["bytes_total"] < 1000

    again = json.loads(aml(ws, "--output", "json", "snapshot", "create", str(project)).stdout)
    assert again["snapshot_root"] == made["snapshot_root"]
    assert again["upload"]["files_uploaded"] == 0 and again["upload"]["bytes_uploaded"] == 0

    people = aml(ws, "snapshot", "create", str(project))
    assert people.returncode == 0
    assert made["snapshot_root"]["hash"] in people.stdout and head in people.stdout

    # The SDK's submit and the CLI's submit record the same snapshot and git info.
    run = Experiment(ws, "snapshots").submit(ScriptRunConfig(".", script="train.py"))
    cli = aml(ws, "--output", "json", "run", "submit", "-e", "snapshots", "-s", str(project),
              "train.py")
    assert cli.returncode == 0, cli.stderr
    cli_run = json.loads(cli.stdout)
    sdk_config = json.loads(aml(ws, "--output", "json", "run", "show", run.id).stdout)["config"]
    assert sdk_config["snapshot_root"] == made["snapshot_root"]
    assert cli_run["snapshot_root"] == "%s/%s" % (made["snapshot_root"]["hash"],
                                                 made["snapshot_root"]["size_bytes"])
    assert sdk_config["git"]["commit"] == head
    props = run.get_details()["properties"]
    assert props["azureml.git.commit"] == head and props["azureml.git.branch"] == "main"
    assert run.wait_for_completion()["status"] == "Completed"


def test_snapshot_create_errors_are_one_line_with_a_code(ws, tmp_path):
    missing = aml(ws, "--output", "json", "snapshot", "create", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "NOT_FOUND"
    assert "does not exist or is not a folder" in missing.stderr
    down = subprocess.run([binary("aml"), "--socket", str(tmp_path / "no.sock"), "snapshot",
                           "create", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    assert down.returncode == 1 and "aml daemon start" in down.stderr


def test_run_record_matches_the_script_run_config(ws, project):
    from amld.core import Environment, Experiment, ScriptRunConfig
    write_script(project, "show_env.py", "import os, sys\nprint(os.environ['GREETING'], "
                 "sys.argv[1:])\n")
    env = Environment("env-with-vars")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = "/usr/bin/python3"
    env.environment_variables = {"GREETING": "hello"}
    src = ScriptRunConfig(source_directory=str(project), script="./show_env.py",
                          arguments=["--n", 3, "--x", 0.5], environment=env,
                          max_run_duration_seconds=120)
    run = Experiment(ws, "records").submit(src, tags={"team": "vision", "try": 2})
    assert run.experiment.name == "records" and run.id.startswith("records_")
    run.wait_for_completion()
    details = run.get_details()
    definition = details["runDefinition"]
    assert definition["script"] == "show_env.py"
    assert definition["arguments"] == ["--n", "3", "--x", "0.5"]
    assert definition["environment"]["python"]["interpreterPath"] == "/usr/bin/python3"
    assert definition["environment"]["environmentVariables"] == {"GREETING": "hello"}
    assert details["tags"] == {"team": "vision", "try": "2"} == run.get_tags()
    assert details["startTimeUtc"] and details["endTimeUtc"]
    log = os.path.join(str(project), "std_log.txt")
    run.download_file("user_logs/std_log.txt", log)
    assert open(log).read() == "hello ['--n', '3', '--x', '0.5']\n"
    logs = run.get_details_with_logs()["logFiles"]
    assert logs["user_logs/std_log.txt"] == "hello ['--n', '3', '--x', '0.5']\n"
    assert [r.id for r in Experiment(ws, "records").get_runs(tags={"team": "vision"})] == [run.id]
    assert list(Experiment(ws, "records").get_runs(tags="other")) == []
    assert "records" in ws.experiments


def test_command_runs_through_the_shell(ws, project):
    from amld.core import Experiment, ScriptRunConfig
    src = ScriptRunConfig(source_directory=str(project),
                          command=["echo", "from-command", "&&", "mkdir", "-p", "outputs", "&&",
                                   "echo", "done", ">", "outputs/flag.txt"])
    run = Experiment(ws, "commands").submit(src)
    run.wait_for_completion()
    out = project / "downloaded"
    assert run.download_files(prefix="outputs/", output_directory=str(out)) == [
        str(out / "outputs" / "flag.txt")]
    assert (out / "outputs" / "flag.txt").read_text() == "done\n"
    flat = project / "flat"
    run.download_files(prefix="outputs/", output_directory=str(flat), append_prefix=False)
    assert (flat / "flag.txt").read_text() == "done\n"


def _distributed():
    from amld.core import ScriptRunConfig
    from amld.core.runconfig import PyTorchConfiguration
    return ScriptRunConfig(".", script="train.py", distributed_job_config=PyTorchConfiguration(
        communication_backend="Gloo", process_count=4, node_count=2))


def _docker_image():
    from amld.core import ScriptRunConfig
    src = ScriptRunConfig(".", script="train.py")
    src.run_config.environment.docker.base_image = "python:3.11"
    return src


@pytest.mark.parametrize("make_config, named", [
    (_distributed, "distributed"),
    (_docker_image, "docker_base_image"),
])
def test_options_the_daemon_does_not_support_are_refused_by_name(ws, project, make_config,
                                                                  named):
    from amld.core import Experiment
    from amld.exceptions import UnsupportedOptionError
    write_script(project, "train.py", "print('never runs')\n")
    with pytest.raises(UnsupportedOptionError) as caught:
        Experiment(ws, "unsupported").submit(make_config())
    # The daemon's own message, kept.
    assert named in str(caught.value) and caught.value.code == "UNIMPLEMENTED"
    assert isinstance(caught.value, NotImplementedError)


def test_daemon_errors_keep_their_message_and_code(ws, project, tmp_path):
    from amld.core import Experiment, Run, ScriptRunConfig, Workspace
    from amld.exceptions import DaemonUnavailableException, NotFoundException, UserErrorException
    write_script(project, "train.py", "print('x')\n")
    with pytest.raises(NotFoundException) as caught:
        Experiment(ws, "errors").submit(ScriptRunConfig(".", script="train.py",
                                                        compute_target="gpu-box"))
    assert "gpu-box" in str(caught.value) and caught.value.code == "NOT_FOUND"
    with pytest.raises(NotFoundException):
        Run.get(ws, "errors_1_00000000")
    with pytest.raises(UserErrorException, match="does not exist in"):
        Experiment(ws, "errors").submit(ScriptRunConfig(".", script="missing.py"))
    (project / "ignored.py").write_text("print(1)\n")
    with open(project / ".amlignore", "a") as f:
        f.write("ignored.py\n")
    with pytest.raises(UserErrorException) as ignored:
        Experiment(ws, "errors").submit(ScriptRunConfig(".", script="ignored.py"))
    assert ignored.value.code == "FAILED_PRECONDITION" and "ignored.py" in str(ignored.value)
    down = Workspace(str(tmp_path / "none.sock"))
    with pytest.raises(DaemonUnavailableException, match="aml daemon start"):
        Experiment(down, "errors").submit(ScriptRunConfig(".", script="train.py"))


def test_cancel_ends_the_run_canceled_and_wait_raises(ws, project):
    from amld.core import Experiment, ScriptRunConfig
    from amld.exceptions import ActivityFailedException
    write_script(project, "sleep.py", "import time\nprint('sleeping', flush=True)\n"
                 "time.sleep(600)\n")
    run = Experiment(ws, "cancels").submit(ScriptRunConfig(".", script="sleep.py"))
    run.cancel()
    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion()
    assert caught.value.status == "Canceled" and run.get_status() == "Canceled"


def test_runs_get_the_submitters_environment_and_python(ws, project, monkeypatch):
    from amld.core import Experiment, ScriptRunConfig
    write_script(project, "env.py", "import os, sys\nprint(sys.executable, "
                 "os.environ.get('MY_SETTING'), os.environ.get('MY_API_TOKEN'))\n")
    monkeypatch.setenv("MY_SETTING", "42")
    monkeypatch.setenv("MY_API_TOKEN", "hunter2")

    def output_of_a_run():
        run = Experiment(ws, "submitter-env").submit(
            ScriptRunConfig(source_directory=str(project), script="env.py"))
        run.wait_for_completion(raise_on_error=True)
        log = os.path.join(str(project), "std_log.txt")
        run.download_file("user_logs/std_log.txt", log)
        return open(log).read()

    # The session's daemon started before MY_SETTING was set: only the
    # submitter's environment has it; the secret-looking name stays behind.
    assert output_of_a_run() == "%s 42 None\n" % sys.executable
    monkeypatch.setenv("AMLD_NO_SUBMITTER_ENV", "1")
    assert output_of_a_run().split()[1:] == ["None", "None"]
