"""The gRPC connection to one amld daemon and the mapping of its errors.

One :class:`DaemonClient` per socket: a channel to ``unix:<socket>`` (thread
safe, shared by every stub) and the amld.v1 stubs. Every call goes through
:meth:`DaemonClient.call`, which turns a gRPC error into an amld exception
that keeps the daemon's message, in one place.
"""

import os

import grpc

from amld.exceptions import (
    AmldException,
    DaemonUnavailableException,
    NotFoundException,
    UnsupportedOptionError,
    UserErrorException,
)
from amld.v1 import (
    compute_pb2_grpc,
    daemon_pb2,
    daemon_pb2_grpc,
    experiments_pb2_grpc,
    runs_pb2_grpc,
)

_USER_ERROR_CODES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
)

# Codes after which reopening a stream can help (as the C++ client's follow).
TRANSIENT_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


def not_running_error(socket_path):
    """The error for a socket where no daemon answers (same words as `aml`)."""
    return DaemonUnavailableException(
        "amld is not running at %s: start it with `aml daemon start`" % socket_path,
        code="UNAVAILABLE")


def error_from_rpc(error, doing, socket_path, mid_stream=False):
    """Turn a grpc.RpcError into the matching amld exception.

    :param error: the grpc.RpcError raised by a stub.
    :param doing: what the SDK tried, e.g. "submit the run"; starts the message.
    :param socket_path: named when the daemon does not answer.
    :param mid_stream: True when the daemon answered before and went away.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else None
    details = details or "the daemon gave no reason"
    if code == grpc.StatusCode.UNAVAILABLE:
        if not mid_stream:
            return not_running_error(socket_path)
        return DaemonUnavailableException(
            "lost connection to amld at %s while trying to %s: check it with `aml daemon status`"
            % (socket_path, doing), code=code.name)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DaemonUnavailableException(
            "amld at %s did not answer in time while trying to %s: check it with "
            "`aml daemon status`" % (socket_path, doing), code=code.name)
    message = "cannot %s: %s (%s)" % (doing, details, code.name)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return UnsupportedOptionError(message, code=code.name)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundException(message, code=code.name)
    if code in _USER_ERROR_CODES:
        return UserErrorException(message, code=code.name)
    return AmldException(message, code=code.name)


def error_from_code_name(code_name, message):
    """The amld exception for an error reported as a code name (``aml --output json``)."""
    code = getattr(grpc.StatusCode, code_name or "", None)
    if code == grpc.StatusCode.UNAVAILABLE or code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DaemonUnavailableException(message, code=code_name)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return UnsupportedOptionError(message, code=code_name)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundException(message, code=code_name)
    if code in _USER_ERROR_CODES or code_name == "USAGE":
        return UserErrorException(message, code=code_name)
    return AmldException(message, code=code_name)


class DaemonClient:
    """A channel to one daemon's socket and its amld.v1 stubs (thread safe)."""

    def __init__(self, socket_path):
        """Open (lazily: nothing is sent yet) a channel to ``unix:<socket_path>``."""
        self.socket_path = os.path.abspath(socket_path)
        options = [
            # Log and file chunks are a few MiB at most; leave room above 4 MiB.
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", -1),
            # Reconnect quickly after a daemon restart instead of gRPC's long backoff.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self.channel = grpc.insecure_channel("unix:" + self.socket_path, options=options)
        self.runs = runs_pb2_grpc.RunsStub(self.channel)
        self.experiments = experiments_pb2_grpc.ExperimentsStub(self.channel)
        self.daemon = daemon_pb2_grpc.DaemonStub(self.channel)
        self.compute = compute_pb2_grpc.ComputeTargetsStub(self.channel)
        self._environments = None

    @property
    def environments(self):
        """The Environments stub (registered and curated environments)."""
        if self._environments is None:
            from amld.v1 import environments_pb2_grpc
            self._environments = environments_pb2_grpc.EnvironmentsStub(self.channel)
        return self._environments

    @property
    def models(self):
        """The Models stub (registered models)."""
        if getattr(self, "_models", None) is None:
            from amld.v1 import models_pb2_grpc
            self._models = models_pb2_grpc.ModelsStub(self.channel)
        return self._models

    def call(self, method, request, doing, timeout=None, mid_stream=False):
        """Make a unary call; a gRPC error becomes an amld exception (see error_from_rpc)."""
        if not os.path.exists(self.socket_path):
            raise not_running_error(self.socket_path)
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise error_from_rpc(e, doing, self.socket_path, mid_stream) from None

    def get_info(self, timeout=10):
        """Daemon.GetInfo: the daemon's facts (amld.v1.DaemonInfo)."""
        return self.call(self.daemon.GetInfo, daemon_pb2.GetInfoRequest(),
                         "ask amld for its info", timeout=timeout)

    def close(self):
        """Close the channel; calls in flight are cancelled."""
        self.channel.close()
