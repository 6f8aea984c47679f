"""The SDK's rules that need no daemon: finding the workspace, building the RunConfig,
environments and distributed configurations, and mapping gRPC errors."""

import json
import os
import warnings

import grpc
import pytest

from conftest import listening_socket

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


def test_from_config_without_a_file_raises_as_azureml_unless_a_daemon_listens(tmp_path,
                                                                            monkeypatch, capsys):
    """azureml: Workspace.from_config() with no config.json in the folder or above raises
    UserErrorException("We could not find config.json in: <path> or in its parent
    directories. ..."). amld raises the same unless a daemon listens on $AMLD_SOCKET (else the
    user-mode socket); then it uses it and names it on stderr."""
    project = tmp_path / "p"
    project.mkdir()
    monkeypatch.chdir(project)
    sock = str(tmp_path / "d" / "amld.sock")
    monkeypatch.setenv("AMLD_SOCKET", sock)
    with pytest.raises(UserErrorException) as raised:
        Workspace.from_config()
    message = str(raised.value)
    assert message.startswith("We could not find config.json in: %s or in its parent "
                              "directories." % project)
    assert "no daemon listens on %s ($AMLD_SOCKET)" % sock in message
    server = listening_socket(sock)
    try:
        assert Workspace.from_config().socket_path == sock
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "using the daemon on %s ($AMLD_SOCKET)" % sock in err
        monkeypatch.delenv("AMLD_SOCKET")
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "d2"))
        with pytest.raises(UserErrorException, match="the user-mode default"):
            Workspace.from_config()
        user_sock = str(tmp_path / "d2" / "amld" / "amld.sock")
        second = listening_socket(user_sock)
        try:
            assert Workspace.from_config().socket_path == user_sock
            assert "(the user-mode default)" in capsys.readouterr().err
        finally:
            second.close()
    finally:
        server.close()
    # A socket file nobody listens on (a daemon that died) is no daemon.
    monkeypatch.setenv("AMLD_SOCKET", sock)
    with pytest.raises(UserErrorException, match="We could not find config.json"):
        Workspace.from_config()


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


def test_with_run_config_its_target_environment_and_limit_win_with_azureml_warning(caplog):
    """azureml's ScriptRunConfig: "If 'run_config' is specified, the following parameters will
    be ignored: 'compute_target', 'environment', 'distributed_job_config',
    'max_run_duration_seconds', and 'docker_runtime_config'." (logged as a warning); the
    run_config's target, environment and max_run_duration_seconds are used."""
    rc = RunConfiguration()
    rc.target = "gpu-box"
    rc.environment = user_env("from-run-config")
    rc.max_run_duration_seconds = 90
    with caplog.at_level("WARNING"):
        src = ScriptRunConfig("p", script="t.py", run_config=rc, compute_target="other",
                              environment=user_env("explicit"), max_run_duration_seconds=5,
                              distributed_job_config=MpiConfiguration(node_count=2),
                              docker_runtime_config=object())
    assert caplog.messages == [
        "If 'run_config' is specified, the following parameters will be ignored: "
        "'compute_target', 'environment', 'distributed_job_config', "
        "'max_run_duration_seconds', and 'docker_runtime_config'."]
    config = src._to_proto("e")
    assert config.compute_target == "gpu-box"
    assert config.environment.name == "from-run-config"
    assert config.max_run_duration_seconds == 90
    assert not config.HasField("distributed")
    assert src.run_config is rc
    # azureml's RunConfiguration has no time limit by default (None): the run has none.
    caplog.clear()
    with caplog.at_level("WARNING"):
        plain = ScriptRunConfig("p", script="t.py", run_config=RunConfiguration())
    assert caplog.messages == []  # nothing explicit was given: no warning
    assert plain._to_proto("e").max_run_duration_seconds == 0


def test_explicit_script_arguments_command_win_over_the_run_configs(caplog):
    """azureml: "If 'script' has been provided here and a script file name has been specified
    in 'run_config', 'script' provided in ScriptRunConfig initialization will take
    precedence." — the same for 'arguments' and 'command'; when given only in run_config,
    they are taken from it."""
    rc = RunConfiguration(script="old.py", arguments=["--old", 1])
    with caplog.at_level("WARNING"):
        src = ScriptRunConfig("p", script="new.py", arguments=["--new", 2], run_config=rc)
    assert src.script == "new.py" and src.arguments == ["--new", 2]
    assert len(caplog.messages) == 2
    assert caplog.messages[0].startswith("If 'script' has been provided here")
    assert caplog.messages[1].startswith("If 'arguments' has been provided here")
    config = src._to_proto("e")
    assert config.script == "new.py" and list(config.arguments) == ["--new", "2"]
    inherited = ScriptRunConfig("p", run_config=rc)
    assert inherited.script == "old.py" and inherited.arguments == ["--old", 1]
    assert list(inherited._to_proto("e").arguments) == ["--old", "1"]
    rc_command = RunConfiguration(command="ls -l")
    assert ScriptRunConfig("p", run_config=rc_command)._to_proto("e").command == "ls -l"


def test_non_string_arguments_reach_the_script_as_their_str():
    """azureml's samples pass ['--arg1', arg1_val, ...] with numbers; the script receives
    each as text, str(value)."""
    src = ScriptRunConfig("p", script="t.py",
                          arguments=["--lr", 0.01, "--epochs", 3, "--flag", True, "--none", None])
    assert list(src._to_proto("e").arguments) == ["--lr", "0.01", "--epochs", "3",
                                                  "--flag", "True", "--none", "None"]


def test_unknown_or_unsupported_config_attributes_raise():
    """What amld would not act on raises instead of being kept and ignored."""
    rc = RunConfiguration()
    with pytest.raises(UnsupportedOptionError, match="environment.environment_variables"):
        rc.environment_variables = {"A": "1"}
    with pytest.raises(UnsupportedOptionError, match="RunConfiguration.docker: amld does not "
                                                     "run containers"):
        rc.docker.use_docker = True
    with pytest.raises(UserErrorException, match="RunConfiguration.mpi must be a "
                                                 "MpiConfiguration, got dict"):
        rc.mpi = {"process_count_per_node": 2}
    with pytest.raises(UnsupportedOptionError, match="communicator='ParallelTask'"):
        rc.communicator = "ParallelTask"
    with pytest.raises(UnsupportedOptionError, match="framework='PySpark'"):
        rc.framework = "PySpark"
    with pytest.raises(UserErrorException, match="RunConfiguration has no field 'targt'"):
        rc.targt = "gpu-box"
    with pytest.raises(AttributeError):
        rc.targt
    with pytest.raises(UnsupportedOptionError, match="framework"):
        rc.framework = "R"
    rc.framework = "Python"
    with pytest.raises(UserErrorException, match="gpus must be a non-negative integer"):
        rc.gpus = -1
    src = ScriptRunConfig("p", script="t.py")
    with pytest.raises(UserErrorException, match="ScriptRunConfig has no field 'compute_target'"):
        src.compute_target = "gpu-box"
    src.arguments = ["--x", 1]  # a field it has
    assert src.max_run_duration_seconds == 2592000


def test_gpus_and_cpus_are_asked_for_through_run_config():
    src = ScriptRunConfig("p", script="t.py")
    assert not src._to_proto("e").HasField("resources")  # the daemon's default_gpus applies
    src.run_config.gpus = 2
    config = src._to_proto("e")
    assert (config.resources.gpus, config.resources.cpus) == (2, 0)
    src.run_config.gpus = 0  # an explicit "none" is sent: no default GPU
    src.run_config.cpus = 4
    config = src._to_proto("e")
    assert config.HasField("resources") and (config.resources.gpus,
                                             config.resources.cpus) == (0, 4)


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


def test_run_configuration_mpi_pytorch_tensorflow_communicator_node_count_as_azureml():
    """azureml v1's older way to ask for a distributed run: run_config.framework, .communicator
    and .node_count with run_config.mpi / .pytorch / .tensorflow. azureml's ScriptRunConfig
    (distributed_job_config=X) sets exactly these from X — node_count = X.node_count
    (TensorflowConfiguration: its worker_count); MpiConfiguration: framework "Python",
    communicator "IntelMpi"; PyTorchConfiguration: framework "PyTorch", communicator
    X.communication_backend; TensorflowConfiguration: framework "TensorFlow", communicator
    "ParameterServer" — so a run_config built either way runs the same; node_count of the
    run_config is the run's."""
    rc = RunConfiguration()
    assert (rc.mpi.process_count_per_node, rc.pytorch.process_count,
            rc.tensorflow.worker_count) == (1, None, 1)  # azureml's defaults
    rc.communicator = "IntelMpi"
    rc.mpi.process_count_per_node = 2
    rc.node_count = 2
    rc.target = "cluster"
    config = ScriptRunConfig("p", script="t.py", run_config=rc)._to_proto("e")
    assert (config.distributed.mpi.process_count_per_node, config.distributed.mpi.node_count,
            config.compute_target) == (2, 2, "cluster")
    for name in ("OpenMpi", "Mpi", "intelmpi"):
        rc.communicator = name
        assert ScriptRunConfig("p", script="t.py", run_config=rc)._to_proto("e").HasField(
            "distributed")

    torch = RunConfiguration(framework="PyTorch", communicator="Gloo")
    torch.pytorch = PyTorchConfiguration(process_count=4, node_count=2)
    torch.node_count = 2
    pt = ScriptRunConfig("p", script="t.py", run_config=torch)._to_proto("e").distributed.pytorch
    assert (pt.communication_backend, pt.process_count, pt.node_count) == ("gloo", 4, 2)
    torch.pytorch.node_count = 3  # disagrees with run_config.node_count: not silently either
    with pytest.raises(UserErrorException, match="run_config.pytorch.node_count=3 but "
                                                 "run_config.node_count=2"):
        ScriptRunConfig("p", script="t.py", run_config=torch)._to_proto("e")

    tf = RunConfiguration(framework="TensorFlow", communicator="ParameterServer")
    tf.tensorflow = TensorflowConfiguration(worker_count=2, parameter_server_count=1)
    t = ScriptRunConfig("p", script="t.py", run_config=tf)._to_proto("e").distributed.tensorflow
    assert (t.worker_count, t.parameter_server_count) == (2, 1)

    # distributed_job_config= without run_config fills the run_config as azureml's does.
    src = ScriptRunConfig("p", script="t.py",
                          distributed_job_config=MpiConfiguration(process_count_per_node=3,
                                                                  node_count=2))
    assert (src.run_config.framework, src.run_config.communicator,
            src.run_config.node_count) == ("Python", "IntelMpi", 2)
    src = ScriptRunConfig("p", script="t.py",
                          distributed_job_config=PyTorchConfiguration(communication_backend="Gloo"))
    assert (src.run_config.framework, src.run_config.communicator) == ("PyTorch", "Gloo")
    src = ScriptRunConfig("p", script="t.py",
                          distributed_job_config=TensorflowConfiguration(worker_count=3))
    assert (src.run_config.framework, src.run_config.communicator,
            src.run_config.node_count) == ("TensorFlow", "ParameterServer", 3)
    # ... and the run_config so made, given as run_config=, makes the same run.
    again = ScriptRunConfig("p", script="t.py", run_config=src.run_config)._to_proto("e")
    assert again.distributed == src._to_proto("e").distributed

    # What does not map is refused, saying what to set.
    with pytest.raises(UnsupportedOptionError, match="set run_config.framework = \"PyTorch\""):
        ScriptRunConfig("p", script="t.py",
                        run_config=RunConfiguration(communicator="Nccl"))._to_proto("e")
    with pytest.raises(UnsupportedOptionError, match="TensorFlow only"):
        ScriptRunConfig("p", script="t.py",
                        run_config=RunConfiguration(communicator="ParameterServer"))._to_proto("e")
    several = RunConfiguration()
    several.node_count = 2
    with pytest.raises(UnsupportedOptionError, match="node_count=2 with communicator \"None\""):
        ScriptRunConfig("p", script="t.py", run_config=several)._to_proto("e")
    with pytest.raises(UserErrorException, match="communication_backend must be"):
        ScriptRunConfig("p", script="t.py",
                        distributed_job_config=PyTorchConfiguration(communication_backend="mpi"))
