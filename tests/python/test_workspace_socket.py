"""Which daemon a Workspace given no socket uses: the one `aml` uses, chosen in the same order
(base/workspace_paths.h ClientSocketPath): $AMLD_SOCKET, else the user daemon when one answers,
else the system daemon when its socket exists, else the user-mode socket.

No root and no system daemon needed: $AMLD_SYSTEM_SOCKET, which `aml` honours too, names the
session's real amld (a user-mode daemon on a tmp socket) as "the system daemon"."""

import os
import subprocess

import pytest

from conftest import SOURCE_DIR, binary, listening_socket

from amld.core import Workspace
from amld.core.workspace import SYSTEM_SOCKET, client_socket_path, system_socket_path
from amld.exceptions import UserErrorException


def aml_chosen_socket():
    """The socket `aml daemon status` reports talking to, in this process's environment."""
    p = subprocess.run([binary("aml"), "daemon", "status"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("socket:")]
    assert len(lines) == 1, p.stdout
    return lines[0].split(None, 1)[1]


def test_system_socket_constant_is_the_daemons(monkeypatch):
    monkeypatch.delenv("AMLD_SYSTEM_SOCKET", raising=False)
    assert system_socket_path() == SYSTEM_SOCKET == "/run/amld/amld.sock"
    monkeypatch.setenv("AMLD_SYSTEM_SOCKET", "")  # empty is unset, as in C++
    assert system_socket_path() == SYSTEM_SOCKET
    with open(os.path.join(SOURCE_DIR, "base", "workspace_paths.cc")) as f:
        assert 'return "%s";' % SYSTEM_SOCKET in f.read()


def test_workspace_chooses_the_daemon_in_amls_order(daemon, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AMLD_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path)  # no .amld/config.json here or above
    user = str(tmp_path / "run" / "amld" / "amld.sock")

    # No user daemon, no system socket: the user-mode socket, so errors name it.
    monkeypatch.setenv("AMLD_SYSTEM_SOCKET", str(tmp_path / "no-system.sock"))
    assert client_socket_path() == (user, "the user-mode default")
    assert Workspace().socket_path == user
    with pytest.raises(UserErrorException, match="no daemon listens on %s \\(the user-mode "
                                                 "default\\)" % user):
        Workspace.from_config()

    # No user daemon, a system daemon: the system daemon, as `aml` finds it.
    monkeypatch.setenv("AMLD_SYSTEM_SOCKET", daemon.socket)
    assert client_socket_path() == (daemon.socket, "the system daemon")
    assert Workspace().socket_path == daemon.socket
    ws = Workspace.from_config()
    assert ws.socket_path == daemon.socket
    assert "using the daemon on %s (the system daemon)" % daemon.socket in capsys.readouterr().err
    assert ws.get_details()["pid"] == str(daemon.process.pid)  # int64: a JSON string
    assert aml_chosen_socket() == daemon.socket

    # A user daemon answering wins over the system daemon.
    server = listening_socket(user)
    try:
        assert client_socket_path() == (user, "the user-mode default")
        assert Workspace().socket_path == user
        assert Workspace.from_config().socket_path == user
        assert "(the user-mode default)" in capsys.readouterr().err
        # $AMLD_SOCKET wins over both, answering or not.
        elsewhere = str(tmp_path / "elsewhere.sock")
        monkeypatch.setenv("AMLD_SOCKET", elsewhere)
        assert client_socket_path() == (elsewhere, "$AMLD_SOCKET")
        assert Workspace().socket_path == elsewhere
        monkeypatch.delenv("AMLD_SOCKET")
    finally:
        server.close()

    # The user socket left behind by a daemon that died is no user daemon.
    assert os.path.exists(user)
    assert client_socket_path() == (daemon.socket, "the system daemon")
    assert aml_chosen_socket() == daemon.socket
