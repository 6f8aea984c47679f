"""Workspace: one amld daemon, reached through its Unix socket (azureml.core.Workspace).

In Azure ML a workspace is a cloud resource found through ``config.json``;
in amld it is a daemon and its data folder, found through its socket. A
project says which one it uses in ``.amld/config.json``::

    {"socket": "/run/user/1000/amld/amld.sock", "workspace_name": "laptop"}

("socket" may be relative to the folder holding ``.amld/``; both keys are
optional.)
"""

import json
import os
import sys
import warnings

from amld.exceptions import UserErrorException

CONFIG_DIR = ".amld"
CONFIG_FILE = "config.json"


# The system daemon's socket (`amld --system`); base/workspace_paths.cc SystemSocketPath.
SYSTEM_SOCKET = "/run/amld/amld.sock"


def default_socket_path():
    """The user-mode socket, as the daemon and the CLI compute it.

    ``$AMLD_SOCKET``, else ``$XDG_RUNTIME_DIR/amld/amld.sock``, else
    ``/tmp/amld-$UID/amld.sock`` (base/workspace_paths.cc).
    """
    if os.environ.get("AMLD_SOCKET"):
        return os.environ["AMLD_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "amld", "amld.sock")
    return "/tmp/amld-%d/amld.sock" % os.getuid()


def system_socket_path():
    """The system daemon's socket: ``$AMLD_SYSTEM_SOCKET`` (tests, unusual installs), else
    SYSTEM_SOCKET, as base/workspace_paths.cc SystemSocketPath."""
    return os.environ.get("AMLD_SYSTEM_SOCKET") or SYSTEM_SOCKET


def client_socket_path():
    """The daemon a client given no socket talks to, and why, as `aml` chooses it.

    base/workspace_paths.h ClientSocketPath, in its order: ``$AMLD_SOCKET`` when set; else
    the user daemon's socket when a daemon answers there, or when no system socket exists (so
    errors name the user daemon to start); else the system socket. Returns ``(path, why)``,
    ``why`` being "$AMLD_SOCKET", "the user-mode default" or "the system daemon".
    """
    user = default_socket_path()
    if os.environ.get("AMLD_SOCKET"):
        return user, "$AMLD_SOCKET"
    system = system_socket_path()
    if not _is_socket(system) or _daemon_listening(user):
        return user, "the user-mode default"
    return system, "the system daemon"


def _is_socket(path):
    import stat
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _daemon_listening(socket_path):
    """True when something accepts connections on the Unix socket ``socket_path``."""
    import socket
    if not _is_socket(socket_path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(socket_path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _find_config(start, file_name):
    """The first ``.amld/<file_name>`` in ``start`` or a folder above it, or None."""
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, CONFIG_DIR, file_name)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _read_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise UserErrorException("cannot read the workspace config %s: %s" % (path, e)) from None
    if not isinstance(config, dict):
        raise UserErrorException("the workspace config %s must hold a JSON object, like "
                                 '{"socket": "/path/to/amld.sock"}' % path)
    return config


def _refuse_off_the_daemons_machine():
    """Inside a run on an SSH or Slurm target the daemon's socket is on another machine: say
    which calls work there instead of failing on a missing socket (or gRPC)."""
    target = os.environ.get("AMLD_COMPUTE_TARGET")
    run_id = os.environ.get("AMLD_RUN_ID")
    if not run_id or target in (None, "", "local"):
        return
    from amld.exceptions import RunEnvironmentException
    raise RunEnvironmentException(
        "this call needs the amld daemon's socket, which run %s on compute target %r (an SSH "
        "host or Slurm node) cannot reach. Inside such a run, Run.get_context() logs through "
        "the run's metrics file: log, log_list, log_row, log_table, log_image, tag, set_tags, "
        "remove_tags, add_properties, display_name, upload_file, upload_files, upload_folder, "
        "fail and register_model work there; read the run (its tags, metrics, children, "
        "parent) from the submitting side with Run.get(ws, %r)" % (run_id, target, run_id))


class Workspace:
    """An amld daemon and its data folder, reached through its Unix socket.

    :param socket_path: the daemon's socket; None means the one `aml` uses
        (client_socket_path: ``$AMLD_SOCKET``, else the user daemon when one
        answers, else the system daemon when its socket exists).
    :param workspace_name: a name for people; defaults to "amld".
    """

    def __init__(self, socket_path=None, workspace_name=None):
        """Refer to the daemon at ``socket_path``; nothing is sent until a call needs it."""
        self._socket_path = os.path.abspath(socket_path or client_socket_path()[0])
        self._name = workspace_name or "amld"
        self._client = None

    @staticmethod
    def from_config(path=None, auth=None, _logger=None, _file_name=None):
        """The workspace a project uses, as azureml's Workspace.from_config.

        Looks for ``.amld/config.json`` in ``path`` (default: the current
        folder) and each folder above it; ``path`` may also be the config file
        itself. Without a config file, azureml raises UserErrorException("We
        could not find config.json in: ..."); amld does too, unless a daemon
        listens on the socket `aml` would use (client_socket_path:
        ``$AMLD_SOCKET``, else the user-mode socket when a daemon answers there,
        else the system daemon's ``/run/amld/amld.sock`` when it exists): then
        it uses that daemon and says so on stderr (one line naming the socket
        and which one it is; ``ws.write_config()`` pins it for the project).

        :param auth: Azure credentials have no meaning here (the daemon knows
            the caller from the socket); passing one warns and is not used.
        :param _file_name: look for ``.amld/<_file_name>`` instead of config.json.
        """
        if auth is not None:
            warnings.warn("Workspace.from_config: auth is not used by amld (the daemon identifies "
                          "callers by their uid on its Unix socket)", stacklevel=2)
        file_name = _file_name or CONFIG_FILE
        config_path = None
        if path is not None and os.path.isfile(path):
            config_path = path
        else:
            start = path if path is not None else os.getcwd()
            if path is not None and not os.path.isdir(path):
                raise UserErrorException("Workspace.from_config: %s is neither a config file nor "
                                         "a folder" % path)
            config_path = _find_config(start, file_name)
        if config_path is None:
            return Workspace._without_config(path if path is not None else os.getcwd(),
                                             file_name)
        config = _read_config(config_path)
        socket = config.get("socket")
        if socket is not None and not isinstance(socket, str):
            raise UserErrorException("%s: \"socket\" must be a path (a string)" % config_path)
        if socket:
            # Relative to the folder that holds .amld/.
            base = os.path.dirname(os.path.dirname(os.path.abspath(config_path)))
            socket = os.path.join(base, os.path.expanduser(socket))
        return Workspace(socket_path=socket or None, workspace_name=config.get("workspace_name"))

    @staticmethod
    def _without_config(searched, file_name):
        """from_config() when no config file was found: the daemon listening, or azureml's error."""
        socket_path, why = client_socket_path()
        socket_path = os.path.abspath(socket_path)
        if _daemon_listening(socket_path):
            sys.stderr.write(
                "amld: Workspace.from_config(): no %s/%s in %s or its parent folders; using the "
                "daemon on %s (%s). ws.write_config() pins it for this project.\n"
                % (CONFIG_DIR, file_name, searched, socket_path, why))
            sys.stderr.flush()
            return Workspace(socket_path)
        raise UserErrorException(
            "We could not find config.json in: %s or in its parent directories. Please provide "
            "the full path to the config file or ensure that config.json exists in the parent "
            "directories. (amld looks for %s/%s, and no daemon listens on %s (%s) either: start "
            "one with `aml daemon start`, or set $AMLD_SOCKET.)"
            % (searched, CONFIG_DIR, file_name, socket_path, why))

    @staticmethod
    def _for_run():
        """Inside a run: the project's config when the run's folder has one, else the default
        socket (the run's AMLD_SOCKET), without from_config()'s error or notice."""
        config_path = _find_config(os.getcwd(), CONFIG_FILE)
        return Workspace.from_config(path=config_path) if config_path else Workspace()

    def write_config(self, path=None, file_name=None):
        """Write ``.amld/config.json`` (or ``.amld/<file_name>``) under ``path`` (default: cwd).

        Workspace.from_config() in that folder or any below it then finds
        this workspace. Returns the path written.
        """
        folder = os.path.join(os.path.abspath(path or os.getcwd()), CONFIG_DIR)
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, file_name or CONFIG_FILE)
        with open(target, "w", encoding="utf-8") as f:
            json.dump({"socket": self._socket_path, "workspace_name": self._name}, f, indent=2)
            f.write("\n")
        return target

    @property
    def name(self):
        """The workspace's name (from the config, else "amld")."""
        return self._name

    @property
    def socket_path(self):
        """The absolute path of the daemon's socket."""
        return self._socket_path

    @property
    def experiments(self):
        """All experiments of the workspace, as a dict of name → Experiment."""
        from amld.core.experiment import Experiment
        from amld.v1 import experiments_pb2
        response = self._daemon().call(self._daemon().experiments.ListExperiments,
                                       experiments_pb2.ListExperimentsRequest(),
                                       "list experiments")
        return {e.name: Experiment(self, e.name) for e in response.experiments}

    @property
    def environments(self):
        """The environments available by name (curated and registered), as a dict."""
        from amld.core.environment import Environment
        return Environment.list(self)

    @property
    def compute_targets(self):
        """The daemon's compute targets, "local" included, as a dict of name → ComputeTarget."""
        from amld.core.compute import ComputeTarget
        return {t.name: t for t in ComputeTarget.list(self)}

    def get_details(self):
        """The daemon's facts (version, data folder, socket, pid, counters) as a dict."""
        from google.protobuf import json_format
        info = self._daemon().get_info()
        details = json_format.MessageToDict(info, preserving_proto_field_name=True)
        details["workspace_name"] = self._name
        return details

    def _daemon(self):
        if self._client is None:
            _refuse_off_the_daemons_machine()
            from amld.core._daemon import DaemonClient
            self._client = DaemonClient(self._socket_path)
        return self._client

    def __repr__(self):
        """Workspace.create-style summary."""
        return "Workspace.create(name=%r, socket_path=%r)" % (self._name, self._socket_path)

    def __eq__(self, other):
        """Two workspaces are the same when they use the same socket."""
        return isinstance(other, Workspace) and other._socket_path == self._socket_path

    def __hash__(self):
        """Hash of the socket path."""
        return hash(self._socket_path)
