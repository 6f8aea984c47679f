"""Managed environments end to end against a real amld (issue 12).

The package index is a wheelhouse built here, offline, from three tiny local
packages (amldtest-alpha depends on amldtest-beta; amldtest-gamma is added
later), and the daemon's amld.yaml points pip at it alone
(environments: no_index, find_links). Nothing is fetched from the network.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import Daemon, wait_until, write_script
from wheelhouse import build_wheel

@pytest.fixture(scope="module")
def env_daemon():
    """An amld whose environments come from the test's wheelhouse only."""
    root = tempfile.mkdtemp(prefix="amldenv.", dir="/tmp")
    wheelhouse = os.path.join(root, "wheelhouse")
    os.makedirs(wheelhouse)
    for name in ("amldtest-beta", "amldtest-alpha"):
        build_wheel(name, wheelhouse, root)
    d = Daemon(root)
    os.makedirs(d.data_dir)
    with open(os.path.join(d.data_dir, "amld.yaml"), "w") as f:
        f.write("environments:\n  no_index: true\n  find_links: [%s]\n" % wheelhouse)
    d.wheelhouse = wheelhouse
    d.info = d.start()
    yield d
    d.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def env_ws(tmp_path, env_daemon, monkeypatch):
    folder = tmp_path / "project"
    (folder / ".amld").mkdir(parents=True)
    (folder / ".amld" / "config.json").write_text(json.dumps({"socket": env_daemon.socket}))
    (folder / ".amlignore").write_text(".amld/\n")
    monkeypatch.chdir(folder)
    from amld.core import Workspace
    return Workspace.from_config()


SCRIPT = ("import sys, amldtest_alpha\nprint(amldtest_alpha.hello())\n"
          "print('prefix', sys.prefix)\n")


def envs_dir(daemon):
    return os.path.join(daemon.data_dir, "envs")


def build_folders(daemon):
    return sorted(n for n in os.listdir(envs_dir(daemon)) if n.startswith(".build-"))


def preparing(run):
    """The PREPARING transition of a finished run, and how long it lasted."""
    history = run.get_details()["history"]
    prep = next(h for h in history if h["status"] == "Preparing")
    start = next(h for h in history if h["status"] == "Starting")
    seconds = (datetime.datetime.fromisoformat(start["time"])
               - datetime.datetime.fromisoformat(prep["time"])).total_seconds()
    return prep, seconds


def submit(ws, experiment, env, script="train.py"):
    from amld.core import Experiment, ScriptRunConfig
    return Experiment(ws, experiment).submit(ScriptRunConfig(".", script=script, environment=env))


def test_pip_requirements_environment_built_once_and_reused(env_ws, env_daemon, capsys):
    from amld.core import Environment
    write_script(".", "train.py", SCRIPT)
    with open("requirements.txt", "w") as f:
        f.write("# what train.py imports\namldtest-alpha\n")
    env = Environment.from_pip_requirements("alpha-env", "requirements.txt")
    first = submit(env_ws, "envs", env)
    first.wait_for_completion(show_output=True)
    shown = capsys.readouterr().out
    assert first.get_status() == "Completed"
    # The build streamed with the run's output, then the script ran in it.
    assert "amld: building environment" in shown
    assert "Successfully installed amldtest-alpha-1.0 amldtest-beta-1.0" in shown
    assert "alpha sees beta 42" in shown
    digest = first._fetch().config.environment.digest
    assert len(digest) == 64
    prep, first_seconds = preparing(first)
    assert prep["reason"] == "building environment " + digest[:12]
    run_dir = env_daemon.run_dir(first.id)
    with open(os.path.join(run_dir, "system_logs", "environment_build.log")) as f:
        assert "Successfully installed" in f.read()
    prefix = os.path.realpath(os.path.join(envs_dir(env_daemon), digest))
    assert ("prefix " + prefix) in shown

    # The same spec again: no build, same environment.
    second = submit(env_ws, "envs", Environment.from_pip_requirements("other-name",
                                                                      "requirements.txt"))
    second.wait_for_completion()
    assert second.get_status() == "Completed"
    prep2, second_seconds = preparing(second)
    assert prep2["reason"] == ""
    assert not os.path.exists(os.path.join(env_daemon.run_dir(second.id), "system_logs",
                                           "environment_build.log"))
    with open(os.path.join(env_daemon.run_dir(second.id), "user_logs", "std_log.txt")) as f:
        log = f.read()
    assert "(built before)" in log and ("prefix " + prefix) in log
    assert len(build_folders(env_daemon)) == 1
    print("environment build: first run %.2f s in PREPARING, second %.2f s"
          % (first_seconds, second_seconds), file=sys.stderr)
    # For the report: the same by hand.
    by_hand = tempfile.mkdtemp(prefix="amldenv-hand.", dir="/tmp")
    started = time.monotonic()
    subprocess.run(["python3", "-m", "venv", by_hand + "/venv"], check=True)
    subprocess.run([by_hand + "/venv/bin/python", "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", env_daemon.wheelhouse, "amldtest-alpha"], check=True)
    print("by hand: python3 -m venv + pip install %.2f s" % (time.monotonic() - started),
          file=sys.stderr)
    shutil.rmtree(by_hand, ignore_errors=True)


def test_conda_dependencies_with_pip_packages(env_ws, env_daemon):
    from amld.core import CondaDependencies, Environment
    write_script(".", "beta.py", "import amldtest_beta\nprint('beta', amldtest_beta.value())\n")
    env = Environment("conda-env")
    env.python.conda_dependencies = CondaDependencies.create(
        python_version="%d.%d" % sys.version_info[:2], pip_packages=["amldtest-beta"],
        conda_packages=["pip"])
    run = submit(env_ws, "envs", env, script="beta.py")
    run.wait_for_completion()
    assert run.get_status() == "Completed", run.get_details()
    with open(os.path.join(env_daemon.run_dir(run.id), "user_logs", "std_log.txt")) as f:
        assert "beta 41" in f.read()


def test_conda_packages_without_a_conda_tool_are_refused_by_name(env_ws):
    from amld.core import CondaDependencies, Environment
    from amld.exceptions import UserErrorException
    write_script(".", "train.py", SCRIPT)
    env = Environment("needs-conda")
    env.python.conda_dependencies = CondaDependencies.create(conda_packages=["numpy", "pip"],
                                                             pip_packages=["amldtest-beta"])
    with pytest.raises(UserErrorException) as caught:
        submit(env_ws, "envs", env)
    assert "numpy" in str(caught.value) and "environments.conda_path" in str(caught.value)
    assert caught.value.code == "FAILED_PRECONDITION"


def test_three_concurrent_runs_of_a_new_spec_build_it_once(env_ws, env_daemon):
    from amld.core import CondaDependencies, Environment
    write_script(".", "train.py", SCRIPT)
    env = Environment("concurrent")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["amldtest-alpha", "amldtest-beta==1.0"])
    runs = [submit(env_ws, "concurrent", env) for _ in range(3)]
    for run in runs:
        run.wait_for_completion()
        assert run.get_status() == "Completed", run.get_details()
    built = [r for r in runs if os.path.exists(
        os.path.join(env_daemon.run_dir(r.id), "system_logs", "environment_build.log"))]
    assert len(built) == 1
    digest = runs[0]._fetch().config.environment.digest
    assert all(r._fetch().config.environment.digest == digest for r in runs)
    logs = []
    for r in runs:
        with open(os.path.join(env_daemon.run_dir(r.id), "user_logs", "std_log.txt")) as f:
            logs.append(f.read())
    assert sum("Successfully installed" in log for log in logs) == 1
    assert all("alpha sees beta 42" in log for log in logs)


def test_broken_requirement_fails_clearly_leaves_nothing_and_retries(env_ws, env_daemon):
    from amld.core import Environment
    from amld.exceptions import ActivityFailedException
    write_script(".", "gamma.py", "import amldtest_gamma\nprint(amldtest_gamma.NAME)\n")
    with open("requirements.txt", "w") as f:
        f.write("amldtest-gamma\n")
    before = build_folders(env_daemon)
    run = submit(env_ws, "broken", Environment.from_pip_requirements("gamma", "requirements.txt"),
                 script="gamma.py")
    with pytest.raises(ActivityFailedException):
        run.wait_for_completion(raise_on_error=True)
    error = run.get_details()["error"]["error"]["message"]
    assert "could not build environment" in error
    assert "No matching distribution found for amldtest-gamma" in error
    digest = run._fetch().config.environment.digest
    assert not os.path.lexists(os.path.join(envs_dir(env_daemon), digest))
    assert build_folders(env_daemon) == before
    # The same spec once the package exists: built cleanly.
    build_wheel("amldtest-gamma", env_daemon.wheelhouse, os.path.dirname(env_daemon.wheelhouse))
    again = submit(env_ws, "broken", Environment.from_pip_requirements("gamma",
                                                                       "requirements.txt"),
                   script="gamma.py")
    again.wait_for_completion()
    assert again.get_status() == "Completed", again.get_details()
    assert os.path.islink(os.path.join(envs_dir(env_daemon), digest))


def test_registered_environment_used_by_version(env_ws, env_daemon):
    from amld.core import CondaDependencies, Environment
    from amld.exceptions import NotFoundException, UserErrorException
    write_script(".", "train.py", SCRIPT)
    env = Environment("team-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["amldtest-beta"])
    v1 = env.register(env_ws)
    assert v1.version == "1"
    assert env.register(env_ws).version == "1"  # the same spec: the same version
    env.python.conda_dependencies.add_pip_package("amldtest-alpha")
    v2 = env.register(env_ws)
    assert v2.version == "2"
    assert Environment.get(env_ws, "team-env").version == "2"
    got = Environment.get(env_ws, "team-env", version=2)
    assert list(got.python.conda_dependencies.pip_packages) == ["amldtest-beta", "amldtest-alpha"]
    assert list(Environment.get(env_ws, "team-env", version="1")
                .python.conda_dependencies.pip_packages) == ["amldtest-beta"]
    run = submit(env_ws, "registered", got)
    run.wait_for_completion()
    assert run.get_status() == "Completed", run.get_details()
    details = run.get_details()["runDefinition"]["environment"]
    assert (details["name"], details["version"]) == ("team-env", "2")
    assert "team-env" in Environment.list(env_ws)
    with pytest.raises(NotFoundException, match="has no version \"7\"; it has 1, 2"):
        Environment.get(env_ws, "team-env", version=7)
    with pytest.raises(UserErrorException, match="curated"):
        mine = Environment("AzureML-Minimal")
        mine.python.user_managed_dependencies = True
        mine.register(env_ws)


def test_curated_environments(env_ws):
    from amld.core import Environment
    from amld.exceptions import NotFoundException
    env = Environment.get(env_ws, "AzureML-Minimal")
    assert env.python.user_managed_dependencies and env.version == "1"
    assert env._to_proto().interpreter_path == ""
    assert {"AzureML-Minimal", "amld-python3"} <= set(Environment.list(env_ws))
    with pytest.raises(NotFoundException, match="AzureML-Minimal, amld-python3"):
        Environment.get(env_ws, "AzureML-TensorFlow-2.3-GPU")
    with pytest.raises(NotFoundException, match="only version 1"):
        Environment.get(env_ws, "amld-python3", version="2")


def aml(daemon, *args):
    from conftest import binary
    return subprocess.run([binary("aml"), "--socket", daemon.socket] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


CONDA_YML = """\
name: yaml-env
channels:
  - conda-forge
dependencies:
  - python
  - pip
  - pip:
    - amldtest-alpha
"""


def test_job_and_environment_yaml_files(env_ws, env_daemon):
    """`aml env create -f env.yml` and `aml run submit -f job.yml` in Azure ML's shapes: a
    registered environment used by version, an inline conda_file, and an unknown key refused
    with its line."""
    os.makedirs("src")
    write_script("src", "train.py", SCRIPT)
    with open("conda.yml", "w") as f:
        f.write(CONDA_YML)
    with open("env.yml", "w") as f:
        f.write("$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
                "name: yaml-env\ndescription: from a file\nconda_file: conda.yml\n")
    created = aml(env_daemon, "env", "create", "-f", "env.yml")
    assert created.returncode == 0, created.stderr
    assert "environment yaml-env:1 registered" in created.stdout
    # Version 1 with the same spec is that version; version 5 is not the next.
    with open("env5.yml", "w") as f:
        f.write("name: yaml-env\nversion: 5\nconda_file: conda.yml\n")
    refused = aml(env_daemon, "env", "create", "-f", "env5.yml")
    assert refused.returncode != 0
    assert "amld numbers versions 1, 2, ...; the next is 2" in refused.stderr
    shown = json.loads(aml(env_daemon, "--output", "json", "env", "show", "yaml-env:1").stdout)
    assert shown["environment"]["pip_requirements"] == ["amldtest-alpha"]
    assert shown["environment"]["conda_packages"] == ["python", "pip"]

    with open("job.yml", "w") as f:
        f.write("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                "type: command\nexperiment_name: yaml-jobs\ncode: ./src\n"
                "command: python train.py\n"
                "environment: azureml:yaml-env:1\n"
                "environment_variables:\n  GREETING: hi\n"
                "limits:\n  timeout: 600\n")
    done = aml(env_daemon, "--output", "json", "run", "submit", "-f", "job.yml", "--wait")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "COMPLETED", run
    assert run["config"]["environment"]["name"] == "yaml-env"
    assert run["config"]["environment"]["version"] == "1"
    assert run["config"]["environment"]["environment_variables"] == {"GREETING": "hi"}
    assert run["config"]["max_run_duration_seconds"] == 600
    logs = aml(env_daemon, "run", "logs", run["id"]).stdout
    assert "alpha sees beta 42" in logs

    # The same spec inline (environment: {conda_file}) is the same cached build.
    with open("inline.yml", "w") as f:
        f.write("command: python train.py\ncode: src\nexperiment_name: yaml-jobs\n"
                "environment:\n  conda_file: conda.yml\n")
    inline = aml(env_daemon, "--output", "json", "run", "submit", "-f", "inline.yml", "--wait")
    assert inline.returncode == 0, inline.stderr
    inline_run = json.loads(inline.stdout)
    assert inline_run["config"]["environment"]["digest"] == run["config"]["environment"]["digest"]

    with open("bad.yml", "w") as f:
        f.write("command: python train.py\ncode: src\nresources:\n  instance_count: 1\n"
                "  gpu_count: 1\n")
    bad = aml(env_daemon, "run", "submit", "-f", "bad.yml")
    assert bad.returncode != 0
    assert "bad.yml:5:3: " in bad.stderr and "gpu_count" in bad.stderr, bad.stderr
    with open("image.yml", "w") as f:
        f.write("command: python train.py\nenvironment:\n  image: python:3.11\n"
                "  conda_file: conda.yml\n")
    image = aml(env_daemon, "run", "submit", "-f", "image.yml")
    assert image.returncode != 0 and "image.yml:3:3: amld runs no containers yet" in image.stderr
    both = aml(env_daemon, "run", "submit", "-f", "job.yml", "-c", "cluster")
    assert both.returncode != 0 and "excludes" in both.stderr, both.stderr



def test_env_build_prune_and_the_cache_in_daemon_status(env_ws, env_daemon, tmp_path):
    """`aml env build` builds a registered environment ahead of its runs (once), `aml env
    prune` removes what no run uses (never the environment of a running run, also after a
    daemon restart), and `aml daemon status` shows the cache. Last in this file: it prunes
    what the other tests built."""
    from amld.core import CondaDependencies, Environment
    env = Environment("cache-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["amldtest-beta>=1.0"])
    assert env.register(env_ws).version == "1"
    built = aml(env_daemon, "env", "build", "cache-env")
    assert built.returncode == 0, built.stderr
    assert "Successfully installed amldtest-beta-1.0" in built.stdout
    assert "environment cache-env built: " in built.stdout
    digest = json.loads(aml(env_daemon, "--output", "json", "env", "build",
                            "cache-env:1").stdout)["digest"]
    again = aml(env_daemon, "env", "build", "cache-env:1")
    assert again.returncode == 0 and "already built" in again.stdout, again.stdout
    assert "Successfully installed" not in again.stdout
    link = os.path.join(envs_dir(env_daemon), digest)
    assert os.path.islink(link)
    assert "nothing to build" in aml(env_daemon, "env", "build", "AzureML-Minimal").stdout
    missing = aml(env_daemon, "env", "build", "no-such-env")
    assert missing.returncode != 0 and "no-such-env" in missing.stderr
    broken = Environment("cache-broken")
    broken.python.conda_dependencies = CondaDependencies.create(pip_packages=["amldtest-nope"])
    broken.register(env_ws)
    failed = aml(env_daemon, "env", "build", "cache-broken")
    assert failed.returncode != 0
    assert "No matching distribution found for amldtest-nope" in failed.stdout + failed.stderr

    status = aml(env_daemon, "daemon", "status").stdout
    info = json.loads(aml(env_daemon, "--output", "json", "daemon", "status").stdout)
    count = int(info["environment_cache_count"])
    assert count >= 2 and int(info["environment_cache_bytes"]) > 1000000
    assert "environments:  %d built" % count in status, status

    # A run holds its environment while it runs, across a daemon restart.
    release = tmp_path / "release"
    write_script(".", "hold.py", "import os, time, amldtest_beta\nprint('holding', flush=True)\n"
                 "while not os.path.exists(%r):\n    time.sleep(0.1)\n" % str(release))
    run = submit(env_ws, "cache", Environment.get(env_ws, "cache-env"), script="hold.py")
    wait_until(lambda: run.get_status() == "Running", "the run to run")
    env_daemon.stop()
    env_daemon.start()
    pruned = aml(env_daemon, "env", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "environment(s) removed" in pruned.stdout and "1 kept" in pruned.stdout, pruned.stdout
    assert digest[:12] not in pruned.stdout
    assert os.path.islink(link)
    assert [n for n in os.listdir(envs_dir(env_daemon)) if len(n) == 64] == [digest]
    release.write_text("")
    run.wait_for_completion()
    assert run.get_status() == "Completed", run.get_details()
    pruned = aml(env_daemon, "env", "prune")
    assert ("removed " + digest[:12]) in pruned.stdout, pruned.stdout
    assert "1 environment(s) removed" in pruned.stdout and "0 kept" in pruned.stdout
    assert not os.path.lexists(link)
    assert not [n for n in os.listdir(envs_dir(env_daemon)) if n.startswith(".build-")]
    info = json.loads(aml(env_daemon, "--output", "json", "daemon", "status").stdout)
    assert int(info.get("environment_cache_count", 0)) == 0
