"""The SDK's rules that need no daemon: finding the workspace, building the RunConfig,
environments and distributed configurations, and mapping gRPC errors."""

import json
import os
import warnings

import grpc
import pytest

from amld.core import Environment, ScriptRunConfig, Workspace
from amld.core.runconfig import (
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from amld.exceptions import (
    AmldException,
    DaemonUnavailableException,
    NotFoundException,
    UnsupportedOptionError,
    UserErrorException,
)


def write_config(folder, content):
    os.makedirs(os.path.join(folder, ".amld"), exist_ok=True)
    path = os.path.join(folder, ".amld", "config.json")
    with open(path, "w") as f:
        f.write(json.dumps(content) if isinstance(content, dict) else content)
    return path


def test_from_config_searches_up_the_folder_tree(tmp_path, monkeypatch):
    write_config(str(tmp_path), {"socket": "run/amld.sock", "workspace_name": "lab"})
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.setenv("AMLD_SOCKET", "/elsewhere.sock")  # the project's config wins
    ws = Workspace.from_config()
    assert ws.socket_path == str(tmp_path / "run" / "amld.sock")  # relative to the project
    assert ws.name == "lab"
    assert Workspace.from_config(path=str(deep)) == ws
    assert Workspace.from_config(path=str(tmp_path / ".amld" / "config.json")) == ws


def test_from_config_without_a_file_uses_amld_socket_then_the_user_socket(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMLD_SOCKET", "/tmp/x/amld.sock")
    assert Workspace.from_config().socket_path == "/tmp/x/amld.sock"
    monkeypatch.delenv("AMLD_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert Workspace.from_config().socket_path == "/run/user/7/amld/amld.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert Workspace.from_config().socket_path == "/tmp/amld-%d/amld.sock" % os.getuid()


def test_from_config_refuses_a_bad_config_and_warns_about_auth(tmp_path):
    write_config(str(tmp_path), "{not json")
    with pytest.raises(UserErrorException, match="cannot read the workspace config"):
        Workspace.from_config(path=str(tmp_path))
    write_config(str(tmp_path), {"socket": 5})
    with pytest.raises(UserErrorException, match="must be a path"):
        Workspace.from_config(path=str(tmp_path))
    write_config(str(tmp_path), {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Workspace.from_config(path=str(tmp_path), auth=object())
    assert "auth is not used" in str(caught[0].message)
    with pytest.raises(UserErrorException, match="neither a config file nor a folder"):
        Workspace.from_config(path=str(tmp_path / "missing"))


def test_write_config_round_trips(tmp_path):
    ws = Workspace(str(tmp_path / "s.sock"), "mine")
    path = ws.write_config(path=str(tmp_path))
    assert path == str(tmp_path / ".amld" / "config.json")
    again = Workspace.from_config(path=str(tmp_path))
    assert again == ws and again.name == "mine"


def user_env(name="env"):
    env = Environment(name)
    env.python.user_managed_dependencies = True
    return env


def test_script_run_config_becomes_the_run_config():
    env = user_env()
    env.python.interpreter_path = "/opt/py/bin/python"
    env.environment_variables = {"SEED": 7}
    src = ScriptRunConfig("proj", script="./src//train.py", arguments=["--lr", 0.1, "--n", 3],
                          compute_target="local", environment=env, max_run_duration_seconds=60)
    config = src._to_proto("exp")
    assert config.experiment_name == "exp" and config.script == "src/train.py"
    assert list(config.arguments) == ["--lr", "0.1", "--n", "3"]
    assert config.environment.interpreter_path == "/opt/py/bin/python"
    assert dict(config.environment.environment_variables) == {"SEED": "7"}
    assert config.environment.user_managed_dependencies
    assert config.compute_target == "local" and config.max_run_duration_seconds == 60
    assert not config.HasField("distributed")
    # azureml's defaults: a 30-day limit, and (amld's) a user-managed python3.
    default = ScriptRunConfig("proj", script="train.py")._to_proto("exp")
    assert default.max_run_duration_seconds == 2592000
    assert default.environment.user_managed_dependencies
    assert default.environment.interpreter_path == ""


def test_run_config_target_and_environment_can_be_set_afterwards():
    src = ScriptRunConfig("proj", script="train.py")
    src.run_config.target = "gpu-box"
    src.run_config.environment = user_env("later")
    config = src._to_proto("exp")
    assert config.compute_target == "gpu-box" and config.environment.name == "later"
    old_style = RunConfiguration()
    old_style.environment.python.user_managed_dependencies = True
    assert ScriptRunConfig("p", script="t.py", run_config=old_style)._to_proto("e").script == "t.py"


def test_command_lists_are_joined_with_spaces_and_strings_kept():
    listed = ScriptRunConfig("p", command=["python", "train.py", "--lr", 0.1], arguments=["-v"])
    config = listed._to_proto("e")
    assert config.command == "python train.py --lr 0.1" and config.script == ""
    assert list(config.arguments) == ["-v"]
    assert ScriptRunConfig("p", command="ls && pwd")._to_proto("e").command == "ls && pwd"
    split = ScriptRunConfig("p", script="a.py", arguments="--lr 0.1 --name 'a b'")
    assert list(split._to_proto("e").arguments) == ["--lr", "0.1", "--name", "a b"]


def test_script_run_config_refuses_what_it_cannot_run():
    with pytest.raises(UserErrorException, match="either script or command"):
        ScriptRunConfig("p", script="a.py", command="ls")
    with pytest.raises(UserErrorException, match="nothing to run"):
        ScriptRunConfig("p")._to_proto("e")
    for script in ("/abs/train.py", "../train.py", "a/../../train.py"):
        with pytest.raises(UserErrorException):
            ScriptRunConfig("p", script=script)._to_proto("e")
    with pytest.raises(UnsupportedOptionError, match="resume_from"):
        ScriptRunConfig("p", script="a.py", resume_from="datapath")
    with pytest.raises(UnsupportedOptionError, match="docker_runtime_config"):
        ScriptRunConfig("p", script="a.py", docker_runtime_config=object())
    with pytest.raises(UserErrorException, match="distributed_job_config must be"):
        ScriptRunConfig("p", script="a.py", distributed_job_config={"nodes": 2})
    with pytest.raises(UserErrorException, match="max_run_duration_seconds"):
        ScriptRunConfig("p", script="a.py", max_run_duration_seconds=-1)._to_proto("e")
    with pytest.raises(UnsupportedOptionError, match="framework"):
        RunConfiguration(framework="R")


def test_distributed_configurations_keep_azureml_parameters():
    pt = ScriptRunConfig("p", script="a.py",
                         distributed_job_config=PyTorchConfiguration(node_count=2))._to_proto("e")
    assert pt.distributed.pytorch.communication_backend == "nccl"
    assert pt.distributed.pytorch.process_count == 2 and pt.distributed.pytorch.node_count == 2
    gloo = PyTorchConfiguration(communication_backend="Gloo", process_count=4)._to_proto()
    assert gloo.pytorch.communication_backend == "gloo" and gloo.pytorch.process_count == 4
    mpi = MpiConfiguration(process_count_per_node=4, node_count=2)._to_proto()
    assert (mpi.mpi.process_count_per_node, mpi.mpi.node_count) == (4, 2)
    tf = TensorflowConfiguration(worker_count=3, parameter_server_count=0)._to_proto()
    assert (tf.tensorflow.worker_count, tf.tensorflow.parameter_server_count) == (3, 0)
    with pytest.raises(UserErrorException, match="Nccl"):
        PyTorchConfiguration(communication_backend="mpi")._to_proto()
    with pytest.raises(UserErrorException, match="node_count"):
        MpiConfiguration(node_count=0)._to_proto()


def test_environments_not_runnable_as_they_are_are_refused_by_name():
    managed = Environment("managed")  # azureml's default: not user-managed
    with pytest.raises(UnsupportedOptionError, match="user_managed_dependencies"):
        managed._to_proto()
    conda = user_env()
    conda.python.conda_dependencies = object()
    with pytest.raises(UserErrorException, match="CondaDependencies"):
        conda._to_proto()
    docker = user_env()
    docker.docker.enabled = True
    with pytest.raises(UnsupportedOptionError, match="base_image"):
        docker._to_proto()
    # Images go to the daemon, which names them in its refusal.
    docker.docker.base_image = "python:3.11"
    assert docker._to_proto().docker_base_image == "python:3.11"


def test_pip_requirements_and_clone(tmp_path):
    env = user_env()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\n\nnumpy==1.24\nscipy\n")
    pip = Environment.from_pip_requirements("pip", str(requirements))
    assert list(pip._to_proto().pip_requirements) == ["numpy==1.24", "scipy"]
    clone = env.clone("copy")
    assert clone.name == "copy" and clone.python.user_managed_dependencies


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize("code, kind", [
    (grpc.StatusCode.INVALID_ARGUMENT, UserErrorException),
    (grpc.StatusCode.FAILED_PRECONDITION, UserErrorException),
    (grpc.StatusCode.NOT_FOUND, NotFoundException),
    (grpc.StatusCode.UNIMPLEMENTED, UnsupportedOptionError),
    (grpc.StatusCode.DATA_LOSS, AmldException),
])
def test_grpc_errors_keep_the_daemon_message_and_code(code, kind):
    from amld.core._daemon import error_from_rpc
    e = error_from_rpc(FakeRpcError(code, "the daemon's words"), "do a thing", "/s.sock")
    assert type(e) is kind
    assert str(e) == "cannot do a thing: the daemon's words (%s)" % code.name
    assert e.code == code.name


def test_an_absent_daemon_says_how_to_start_it():
    from amld.core._daemon import error_from_rpc
    down = error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, ""), "x", "/s.sock")
    assert isinstance(down, DaemonUnavailableException)
    assert str(down) == "amld is not running at /s.sock: start it with `aml daemon start`"
    lost = error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, ""), "read a log", "/s.sock",
                          mid_stream=True)
    assert "lost connection" in str(lost) and "read a log" in str(lost)
    with pytest.raises(DaemonUnavailableException, match="aml daemon start"):
        Workspace("/nonexistent/amld.sock").get_details()


def test_find_aml_order(monkeypatch, tmp_path):
    from amld.core import _snapshot
    fake = tmp_path / "aml"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AMLD_AML", str(fake))
    assert _snapshot.find_aml() == str(fake)
    monkeypatch.setenv("AMLD_AML", str(tmp_path / "missing"))
    with pytest.raises(UserErrorException, match="AMLD_AML"):
        _snapshot.find_aml()
    monkeypatch.delenv("AMLD_AML")
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "aml").symlink_to(fake)
    monkeypatch.setenv("PATH", str(on_path))
    assert _snapshot.find_aml() == str(on_path / "aml")
    # Not on PATH: the build tree the SDK was loaded from (build/python → build/bin/aml).
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = _snapshot.find_aml()
    import amld
    build_dir = os.path.dirname(os.path.dirname(os.path.dirname(amld.__file__)))
    assert found == os.path.join(build_dir, "bin", "aml")


def test_conda_dependencies_as_azureml(tmp_path):
    from amld.core import CondaDependencies
    cd = CondaDependencies.create(python_version="3.11", pip_packages=["alpha==1.0"],
                                  conda_packages=["pip"])
    cd.add_pip_package("beta")
    cd.add_pip_package("alpha>=1.1")  # replaces the earlier alpha
    cd.add_conda_package("numpy=1.26")
    cd.add_channel("conda-forge")
    assert cd.get_python_version() == "3.11"
    assert list(cd.pip_packages) == ["beta", "alpha>=1.1"]
    assert list(cd.conda_packages) == ["python=3.11", "pip", "numpy=1.26"]
    env = Environment("conda")
    env.python.conda_dependencies = cd
    proto = env._to_proto()
    assert list(proto.conda_packages) == ["python=3.11", "pip", "numpy=1.26"]
    assert list(proto.conda_channels) == ["conda-forge"]
    assert list(proto.pip_requirements) == ["beta", "alpha>=1.1"]
    assert not proto.user_managed_dependencies
    # The YAML round-trips through from_conda_specification.
    path = tmp_path / "env.yml"
    cd.save(str(path))
    loaded = Environment.from_conda_specification("loaded", str(path))
    assert loaded.python.conda_dependencies == cd
    assert "  - pip:\n    - beta\n" in path.read_text()
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ndependencies: [python=3.11]\nimage: nope\n")
    with pytest.raises(UserErrorException, match="unknown keys image"):
        Environment.from_conda_specification("bad", str(bad))


def test_pip_requirements_keep_their_options(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--find-links /srv/wheels\n--no-index\nalpha\n")
    env = Environment.from_pip_requirements("pip", str(requirements), pip_version="23.2")
    proto = env._to_proto()
    assert list(proto.pip_requirements) == ["--find-links /srv/wheels", "--no-index", "alpha"]
    assert list(proto.conda_packages) == ["pip=23.2"]


def test_submitter_environment_makes_relative_path_list_folders_absolute():
    from amld.core import _submitter_env
    from amld.v1 import runs_pb2
    message = runs_pb2.SubmitterEnvironment()
    _submitter_env.capture(message, environ={
        "PYTHONPATH": "build/python:/opt/lib::./tools/:../up/x/..",
        "LD_LIBRARY_PATH": "lib",
        "PATH": "bin:/usr/bin",
        "MODEL": "models/best.pt",
    }, python="/usr/bin/python3", cwd="/home/u/proj")
    assert message.variables["PYTHONPATH"] == (
        "/home/u/proj/build/python:/opt/lib::/home/u/proj/tools:/home/u/up")
    assert message.variables["LD_LIBRARY_PATH"] == "/home/u/proj/lib"
    assert message.variables["PATH"] == "/home/u/proj/bin:/usr/bin"
    assert message.variables["MODEL"] == "models/best.pt"  # not a path list: data
    # By default, the process's working folder.
    message = runs_pb2.SubmitterEnvironment()
    _submitter_env.capture(message, environ={"PYTHONPATH": "src"}, python="/usr/bin/python3")
    assert message.variables["PYTHONPATH"] == os.path.join(os.getcwd(), "src")
