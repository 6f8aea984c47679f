"""Snapshotting a source folder by running ``aml snapshot create``.

The SDK does not hash folders or apply ignore rules itself: the C++ ignore
engine follows git exactly, and a second implementation would drift from it.
``aml snapshot create DIR --output json`` builds and uploads the snapshot
exactly as ``aml run submit`` does and prints the root digest, the git state
and the upload stats; experiment.submit then submits the run over gRPC.

Which ``aml`` runs, first found wins:

1. ``$AMLD_AML``, the path of an aml binary;
2. ``aml`` on ``$PATH``;
3. the aml beside the daemon the workspace talks to (its /proc/PID/exe), so
   a daemon started from a build tree brings its own CLI;
4. ``bin/aml`` of the build tree this SDK was loaded from
   (``build/python/amld`` → ``build/bin/aml``).
"""

import json
import os
import shutil
import subprocess
import sys

from amld.core._daemon import error_from_code_name
from amld.exceptions import ExperimentExecutionException, UserErrorException
from amld.v1 import common_pb2, runs_pb2
from google.protobuf import json_format


class SourceSnapshot:
    """What ``aml snapshot create`` reports: the root digest, git state and upload stats."""

    def __init__(self, root, git, upload):
        """Keep the root (amld.v1.Digest), git (amld.v1.GitInfo or None) and upload stats (dict)."""
        self.root = root
        self.git = git
        self.upload = upload


def _executable(path):
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _beside_daemon(daemon_pid):
    if not daemon_pid:
        return None
    try:
        exe = os.readlink("/proc/%d/exe" % daemon_pid)
    except OSError:
        return None  # another user's daemon, or not on this machine's /proc
    return _executable(os.path.join(os.path.dirname(exe), "aml"))


def _in_build_tree():
    # This file is <build>/python/amld/core/_snapshot.py in a build tree.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build_dir = os.path.dirname(os.path.dirname(package_root))
    return _executable(os.path.join(build_dir, "bin", "aml"))


def find_aml(daemon_pid=None):
    """The path of the ``aml`` to run (see the module docstring for the order)."""
    override = os.environ.get("AMLD_AML")
    if override:
        if not _executable(override):
            raise UserErrorException(
                "AMLD_AML is %s, which is not an executable file: point it at the aml binary "
                "(e.g. build/bin/aml) or unset it" % override)
        return override
    found = shutil.which("aml") or _beside_daemon(daemon_pid) or _in_build_tree()
    if found:
        return found
    raise ExperimentExecutionException(
        "cannot find the `aml` command, which snapshots the source folder: put it on PATH, "
        "or set AMLD_AML to its path (in a build tree it is build/bin/aml)")


def create_snapshot(socket_path, source_directory, daemon_pid=None):
    """Snapshot and upload ``source_directory`` into the daemon at ``socket_path``.

    Returns a SourceSnapshot. An error of aml keeps its message and maps its
    code like a gRPC error (e.g. UNAVAILABLE → DaemonUnavailableException).
    Warnings aml prints (e.g. an unreadable git repository) go to stderr.
    """
    aml = find_aml(daemon_pid)
    command = [aml, "--socket", socket_path, "--output", "json", "snapshot", "create",
               os.fspath(source_directory)]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, check=False)
    except OSError as e:
        raise ExperimentExecutionException("cannot run %s: %s" % (aml, e)) from None
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace")
    try:
        result = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        result = {}
    if done.returncode != 0:
        error = result.get("error") if isinstance(result, dict) else None
        if isinstance(error, dict) and error.get("message"):
            raise error_from_code_name(error.get("code"), error["message"])
        raise ExperimentExecutionException(
            "`%s` failed with exit code %d: %s" % (" ".join(command), done.returncode,
                                                   stderr.strip() or stdout.strip()))
    for line in stderr.splitlines():
        if line.strip():
            print(line, file=sys.stderr)
    try:
        root = json_format.ParseDict(result["snapshot_root"], common_pb2.Digest(),
                                    ignore_unknown_fields=True)
        git = None
        if result.get("git"):
            git = json_format.ParseDict(result["git"], runs_pb2.GitInfo(),
                                        ignore_unknown_fields=True)
        return SourceSnapshot(root, git, result.get("upload", {}))
    except (KeyError, TypeError, json_format.ParseError) as e:
        raise ExperimentExecutionException(
            "`%s` printed something other than a snapshot (%s): %s" % (" ".join(command), e,
                                                                      stdout[:500])) from None
