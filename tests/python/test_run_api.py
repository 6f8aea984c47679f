"""The Run API inside and outside runs (issue 17 items 2 and 6): a training script written for
Azure ML runs unchanged (`from azureml.core import Run` is amld's Run through the alias the
daemon puts on the run's Python path); tags, properties, display name, uploads to any name,
fail(), model registration from inside a run; the same reads and changes from outside;
Experiment.start_logging() runs, child runs and Run.list."""

import os
import subprocess

import pytest

from conftest import PYTHON, PYTHON_DIR, binary, python_env, write_script

# As Azure ML's samples write a training script: nothing in it names amld.
SAMPLE_SCRIPT = """
import argparse
import os

from azureml.core import Run
from azureml.core.model import Model  # noqa: F401  (samples import it)

parser = argparse.ArgumentParser()
parser.add_argument("--regularization", type=float, default=0.01)
args = parser.parse_args()

run = Run.get_context()
run.log("Regularization Rate", args.regularization)
for epoch in range(3):
    run.log("accuracy", 0.5 + 0.1 * epoch)
run.log_list("losses", [0.9, 0.5, 0.25])
run.tag("framework", "sklearn")
run.set_tags({"stage": "train", "epochs": 3})
run.add_properties({"author": "samples"})
run.display_name = "sample training"

os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as f:
    f.write(b"model bytes " * 1000)
with open("notes.txt", "w") as f:
    f.write("hello")
run.upload_file(name="notes/notes.txt", path_or_stream="notes.txt")
run.upload_file(name="outputs/copy.txt", path_or_stream="notes.txt")
os.makedirs("plots", exist_ok=True)
for name in ("a.txt", "b.txt"):
    with open(os.path.join("plots", name), "w") as f:
        f.write(name)
run.upload_folder(name="plots", path="plots")
model = run.register_model(model_name="sample-model", model_path="outputs/model.pkl",
                           tags={"area": "demo"}, description="from the sample")
print("registered", model.name, "version", model.version)
run.complete()
"""


def submit_script(ws, text, name, experiment="run-api", environment=None, arguments=None):
    from amld.core import Experiment, ScriptRunConfig
    write_script(os.getcwd(), name, text)
    src = ScriptRunConfig(source_directory=".", script=name, arguments=arguments or [],
                          environment=environment, max_run_duration_seconds=300)
    return Experiment(ws, experiment).submit(src)


def test_an_azureml_training_script_runs_unchanged(ws, tmp_path):
    from amld.core import Model, Run
    run = submit_script(ws, SAMPLE_SCRIPT, "train.py", arguments=["--regularization", "0.5"])
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["Regularization Rate"] == 0.5
    assert metrics["accuracy"] == pytest.approx([0.5, 0.6, 0.7])
    assert metrics["losses"] == [0.9, 0.5, 0.25]
    # Tags and properties set inside the run land in its record (azureml: tags are strings).
    tags = run.get_tags()
    assert tags["framework"] == "sklearn" and tags["stage"] == "train" and tags["epochs"] == "3"
    assert run.get_details()["properties"]["author"] == "samples"
    assert run.get_properties() == {"author": "samples"}
    assert run.display_name == "sample training"
    # Files under any name: outputs/ as before, others from the run folder's uploads/.
    names = run.get_file_names()
    for name in ("outputs/model.pkl", "outputs/copy.txt", "notes/notes.txt", "plots/a.txt",
                 "plots/b.txt"):
        assert name in names
    run.download_file("notes/notes.txt", str(tmp_path / "n.txt"))
    assert (tmp_path / "n.txt").read_text() == "hello"
    # The model registered from inside the run, when it ended, from its stored file.
    model = Model(ws, "sample-model")
    assert model.version >= 1 and model.run_id == run.id
    assert model.tags == {"area": "demo"} and model.description == "from the sample"
    path = model.download(target_dir=str(tmp_path / "dl"))
    assert path == str(tmp_path / "dl" / "model.pkl")
    with open(path, "rb") as f:
        assert f.read() == b"model bytes " * 1000
    assert isinstance(Run.get(ws, run.id), Run)


def test_fail_inside_a_run_fails_it_whatever_its_exit_code(ws):
    from amld.exceptions import ActivityFailedException
    script = ("from azureml.core import Run\nrun = Run.get_context()\n"
              "run.fail(error_details='the data was empty')\nprint('still running')\n")
    run = submit_script(ws, script, "fails.py")
    with pytest.raises(ActivityFailedException, match="the data was empty"):
        run.wait_for_completion()
    details = run.get_details()
    assert details["status"] == "Failed" and details["properties"]["exitCode"] == 0
    assert "the script called run.fail(): the data was empty" in details["error"]["error"]["message"]


def test_tags_properties_and_display_name_from_outside(ws):
    from amld.core import Experiment, Run
    from amld.exceptions import AmldException
    exp = Experiment(ws, "run-api-outside")
    run = submit_script(ws, "print('hi')\n", "hi.py", experiment=exp.name)
    run.wait_for_completion()
    # azureml tags finished runs too.
    run.tag("reviewed")
    run.set_tags({"quality": 5})
    assert run.get_tags()["reviewed"] == "" and run.get_tags()["quality"] == "5"
    run.remove_tags(["quality"])
    assert "quality" not in run.get_tags()
    run.add_properties({"dataset": "v1"})
    run.add_properties({"dataset": "v1"})  # the same value again is fine
    with pytest.raises(AmldException, match="properties cannot change"):
        run.add_properties({"dataset": "v2"})
    assert run.get_details()["properties"]["dataset"] == "v1"
    run.display_name = "first try"
    assert Run.get(ws, run.id).display_name == "first try"
    # Run.list filters by status, tags and properties.
    listed = [r.id for r in Run.list(exp, status="Completed", tags={"reviewed": ""})]
    assert listed == [run.id]
    assert [r.id for r in Run.list(exp, properties={"dataset": "v1"})] == [run.id]
    assert list(Run.list(exp, status="Running")) == []
    assert [r.id for r in exp.get_runs(tags="reviewed")] == [run.id]
    with pytest.raises(AmldException, match="use one of"):
        list(Run.list(exp, status="Done"))
    # Logging and ending belong to the run's own process.
    with pytest.raises(AmldException, match="run.cancel"):
        run.fail("nope")


def test_start_logging_child_runs_and_complete(ws, tmp_path):
    from amld.core import Experiment, Model, Run
    exp = Experiment(ws, "notebook")
    run = exp.start_logging(display_name="cell 3")
    assert run.get_status() == "Running" and run.display_name == "cell 3"
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.log_row("table", x=1, y=2)
    run.tag("where", "notebook")
    (tmp_path / "weights.bin").write_bytes(b"w" * 5000)
    run.upload_file("outputs/weights.bin", str(tmp_path / "weights.bin"))
    child = run.child_run(name="fold-1")
    child.log("acc", 0.9)
    child.complete()
    assert [c.id for c in run.get_children()] == [child.id]
    assert child.parent.id == run.id and child.get_status() == "Completed"
    model = run.register_model("notebook-model", "outputs/weights.bin")
    assert model.version >= 1 and model.run_id == run.id
    run.complete()
    assert run.get_status() == "Completed"
    assert run.get_metrics()["loss"] == [0.5, 0.25]
    assert run.get_tags()["where"] == "notebook"
    assert "outputs/weights.bin" in run.get_file_names()
    assert Model(ws, "notebook-model", version=model.version).get_file_names() == ["weights.bin"]
    failed = exp.start_logging()
    failed.fail("diverged")
    assert failed.get_status() == "Failed"
    assert "diverged" in failed.get_details()["error"]["error"]["message"]
    canceled = exp.start_logging()
    canceled.cancel()
    assert canceled.get_status() == "Canceled"
    assert [r.id for r in Run.list(exp, status="Failed")] == [failed.id]


def test_the_alias_can_be_turned_off_per_environment(ws):
    from amld.core import Environment
    env = Environment("no-alias")
    env.python.user_managed_dependencies = True
    env.amld_azureml_alias = False
    script = ("try:\n    import azureml\nexcept ImportError:\n    print('no azureml')\n"
              "else:\n    print('azureml from', azureml.__file__)\n")
    run = submit_script(ws, script, "alias_off.py", environment=env)
    run.wait_for_completion()
    with_alias = submit_script(ws, script, "alias_on.py")
    with_alias.wait_for_completion()
    import tempfile
    out = tempfile.mkdtemp()
    run.download_file("user_logs/std_log.txt", os.path.join(out, "off.txt"))
    with_alias.download_file("user_logs/std_log.txt", os.path.join(out, "on.txt"))
    assert "no azureml" in open(os.path.join(out, "off.txt")).read()
    assert "azureml-alias" in open(os.path.join(out, "on.txt")).read()


def test_the_opt_in_alias_for_the_submitting_side(tmp_path):
    out = subprocess.run([PYTHON, "-m", "amld.azureml_alias", "path"], env=python_env(),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.endswith("_azureml_alias") and os.path.isdir(os.path.join(out, "azureml", "core"))
    code = ("import amld.core, amld.exceptions, amld.train.hyperdrive as hd\n"
            "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig, Run, "
            "Model\n"
            "from azureml.core.run import Run as Run2\n"
            "from azureml.core.compute import ComputeTarget, AmlCompute\n"
            "from azureml.core.compute_target import ComputeTargetException\n"
            "from azureml.train.hyperdrive import HyperDriveConfig, choice\n"
            "from azureml.train.hyperdrive.parameter_expressions import uniform\n"
            "from azureml.exceptions import WebserviceException\n"
            "assert Run is amld.core.Run and Run2 is amld.core.Run\n"
            "assert ComputeTarget is amld.core.compute.ComputeTarget\n"
            "assert ComputeTargetException is amld.exceptions.ComputeTargetException\n"
            "assert HyperDriveConfig is hd.HyperDriveConfig and uniform is hd.uniform\n"
            "print('ok')\n")
    env = python_env(PYTHONPATH=out + os.pathsep + PYTHON_DIR)
    result = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_aml_model_commands(ws, tmp_path):
    from amld.core import Model
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"x" * 10000)
    (folder / "sub" / "vocab.txt").write_text("a b c")
    first = Model.register(ws, model_path=str(folder), model_name="cli-model",
                           tags={"kind": "folder"})
    second = Model.register(ws, model_path=str(folder), model_name="cli-model")
    assert second.version == first.version + 1
    # The same content: new version, same blobs.
    assert [f.digest for f in first._proto.files] == [f.digest for f in second._proto.files]
    assert [m.version for m in Model.list(ws, name="cli-model")] == [second.version, first.version]
    assert [m.version for m in Model.list(ws, name="cli-model", tags=[["kind", "folder"]])] == [
        first.version]
    aml = binary("aml")
    env = python_env(AMLD_SOCKET=ws._daemon().socket_path)
    listed = subprocess.run([aml, "model", "list", "cli-model"], env=env, capture_output=True,
                            text=True, check=True).stdout
    assert "cli-model" in listed and str(second.version) in listed
    shown = subprocess.run([aml, "model", "show", "cli-model:%d" % first.version], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert "kind=folder" in shown and "sub/vocab.txt" in shown
    dest = tmp_path / "dl"
    subprocess.run([aml, "model", "download", "cli-model", "-d", str(dest)], env=env, check=True,
                   capture_output=True)
    assert (dest / "model" / "sub" / "vocab.txt").read_text() == "a b c"
    again = subprocess.run([aml, "model", "download", "cli-model", "-d", str(dest)], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "--force" in again.stderr
    path = second.download(target_dir=str(tmp_path / "sdk"))
    assert open(os.path.join(path, "weights.bin"), "rb").read() == b"x" * 10000
    from amld.exceptions import WebserviceException
    with pytest.raises(WebserviceException, match="File already exists"):
        second.download(target_dir=str(tmp_path / "sdk"))
    with pytest.raises(WebserviceException, match="ModelNotFound"):
        Model(ws, "no-such-model")


def test_the_run_side_sdk_a_remote_target_gets_needs_only_the_standard_library(daemon, tmp_path):
    """<data>/run-python (what the SSH and Slurm executors install on their target) runs the
    samples' script on a bare python3 (no site-packages: no gRPC, no protobuf, no SDK), and a
    call that needs the daemon's socket says which calls work there instead."""
    import json
    tree = os.path.join(daemon.data_dir, "run-python")
    assert sorted(os.listdir(tree)) == ["amld", "azureml"]
    assert not os.path.exists(os.path.join(tree, "amld", "v1")), "no gRPC stubs on a target"
    run_dir = tmp_path / "run"
    wd = run_dir / "wd"
    (wd / "outputs").mkdir(parents=True)
    write_script(str(wd), "train.py", SAMPLE_SCRIPT + """
import sys
print("grpc or protobuf imported:", any(m.startswith(("grpc", "google")) for m in sys.modules))
print("amld from", sys.modules["amld"].__file__)
try:
    run.get_tags()
except Exception as e:
    print("get_tags:", type(e).__name__, e)
""")
    env = {"PATH": "/usr/bin:/bin", "AMLD_RUN_ID": "remote_1_00000001",
           "AMLD_EXPERIMENT": "remote", "AMLD_COMPUTE_TARGET": "box",
           "AMLD_METRICS_FILE": str(run_dir / "metrics.jsonl"),
           "AMLD_OUTPUTS_DIR": str(wd / "outputs"), "PYTHONPATH": tree,
           "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(["/usr/bin/python3", "-S", "train.py"], cwd=str(wd), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "grpc or protobuf imported: False" in out.stdout
    assert "amld from " + os.path.join(tree, "amld", "__init__.py") in out.stdout
    assert "registered sample-model version None" in out.stdout
    assert ("get_tags: RunEnvironmentException this call needs the amld daemon's socket, which "
            "run remote_1_00000001 on compute target 'box'") in out.stdout
    lines = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    kinds = [line.get("kind", "metric") for line in lines]
    for kind in ("metric", "tags", "properties", "display_name", "upload", "register_model"):
        assert kind in kinds, kinds
    assert (run_dir / "uploads" / "notes" / "notes.txt").read_text() == "hello"
    assert (wd / "outputs" / "copy.txt").read_text() == "hello"


# An Azure ML v1 training notebook's cells as the samples write them (compute target lookup,
# environment, ScriptRunConfig, submit, wait, metrics, register model, download), run with no
# line changed through the opt-in alias of the submitting side. Only the compute target's name
# is this machine's: "local", which the samples' try/except finds without creating anything.
NOTEBOOK = """
from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig, Model
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException

ws = Workspace.from_config()

cluster_name = "local"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
    compute_target.wait_for_completion(show_output=True)

env = Environment("sklearn-env")
env.python.user_managed_dependencies = True

src = ScriptRunConfig(source_directory=".", script="train.py",
                      arguments=["--regularization", 0.5],
                      compute_target=compute_target, environment=env)
run = Experiment(workspace=ws, name="notebook-sample").submit(config=src)
run.wait_for_completion(show_output=True)

metrics = run.get_metrics()
print("accuracy", metrics["accuracy"])
model = run.register_model(model_name="notebook-sample-model",
                           model_path="outputs/model.pkl")
print("model version", model.version)
Model(ws, "notebook-sample-model").download(target_dir="downloaded", exist_ok=True)
run.download_file(name="outputs/model.pkl", output_file_path="model-copy.pkl")
print("done", run.get_status(), run.id)
"""


def test_an_azureml_notebook_runs_unchanged_through_the_opt_in_alias(daemon, tmp_path):
    alias = subprocess.run([PYTHON, "-m", "amld.azureml_alias", "path"], env=python_env(),
                           capture_output=True, text=True, check=True).stdout.strip()
    write_script(str(tmp_path), "train.py", SAMPLE_SCRIPT)
    write_script(str(tmp_path), "notebook.py", NOTEBOOK)
    env = python_env(PYTHONPATH=alias + os.pathsep + PYTHON_DIR,
                     AMLD_SOCKET=daemon.socket)
    result = subprocess.run([PYTHON, "notebook.py"], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found existing compute target" in result.stdout
    assert "accuracy [0.5, 0.6, 0.7]" in result.stdout.replace("0.6000000000000001", "0.6")
    assert "done Completed" in result.stdout
    with open(tmp_path / "downloaded" / "model.pkl", "rb") as f:
        assert f.read() == b"model bytes " * 1000
    assert (tmp_path / "model-copy.pkl").read_bytes() == b"model bytes " * 1000
