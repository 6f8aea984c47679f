"""Packaging: PYTHONPATH=build/python imports the SDK with the build's stubs; the stubs
checked in for `pip install ./python` are the ones the build generates; and that install
works offline (its dependencies, grpcio and protobuf, come from Debian here)."""

import filecmp
import glob
import os
import shutil
import subprocess

from conftest import BUILD_DIR, PYTHON, PYTHON_DIR, SOURCE_DIR


def stub_names(folder):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*_pb2*.py")))


def test_build_tree_imports_the_sdk_beside_the_generated_stubs():
    import amld.core
    import amld.v1.runs_pb2
    assert amld.core.__file__.startswith(os.path.join(PYTHON_DIR, "amld", "core"))
    assert amld.v1.runs_pb2.__file__ == os.path.join(PYTHON_DIR, "amld", "v1", "runs_pb2.py")


def test_checked_in_stubs_match_the_generated_ones():
    protos = glob.glob(os.path.join(SOURCE_DIR, "proto", "amld", "v1", "*.proto"))
    expected = sorted(os.path.basename(p)[:-len(".proto")] + suffix
                      for p in protos for suffix in ("_pb2.py", "_pb2_grpc.py"))
    assert len(expected) >= 10
    generated = os.path.join(BUILD_DIR, "python", "amld", "v1")
    checked_in = os.path.join(SOURCE_DIR, "python", "amld", "v1")
    fix = "run scripts/update-python-stubs"
    assert stub_names(checked_in) == expected, (
        "python/amld/v1/ does not hold exactly the stubs of proto/amld/v1/: " + fix)
    assert set(expected) <= set(stub_names(generated)), (
        "the build did not generate every stub into %s" % generated)
    _, mismatch, errors = filecmp.cmpfiles(generated, checked_in, expected, shallow=False)
    assert mismatch == [] and errors == [], (
        "python/amld/v1/%s differ from the stubs the build generates from proto/: %s"
        % (", ".join(mismatch + errors), fix))


def test_pip_install_works_offline_and_the_installed_package_imports(tmp_path):
    # Built from a copy: pip builds in the tree it is given.
    source = tmp_path / "src"
    shutil.copytree(os.path.join(SOURCE_DIR, "python"), source,
                    ignore=shutil.ignore_patterns("__pycache__", "CMakeLists.txt", "*.cmake"))
    target = tmp_path / "site"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([PYTHON, "-m", "pip", "install", "--no-deps", "--no-index",
                           "--no-build-isolation", "--target", str(target), str(source)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert done.returncode == 0, done.stdout
    check = ("import amld, amld.core, amld.core.runconfig, amld.v1.runs_pb2_grpc, "
             "amld.v1.daemon_pb2_grpc; from amld.core import Workspace, Experiment, Environment, "
             "ScriptRunConfig, Run; print(amld.__file__, amld.v1.runs_pb2_grpc.__file__)")
    imported = subprocess.run([PYTHON, "-c", check], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
                              env=dict(env, PYTHONPATH=str(target)))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == [str(target / "amld" / "__init__.py"),
                                       str(target / "amld" / "v1" / "runs_pb2_grpc.py")]
    metadata = glob.glob(str(target / "amld-*.dist-info" / "METADATA"))
    assert metadata, "no dist-info written"
    requires = [line for line in open(metadata[0]) if line.startswith("Requires-Dist:")]
    assert any("grpcio" in line for line in requires)
    assert any("protobuf" in line for line in requires)
