"""Following a run: its log (Runs.StreamLogs) and its status (Runs.WaitRun).

The same loops as the C++ client's client/follow.cc: a dropped stream (a
daemon restart, a broken connection) is reopened and continues where it was
— the log from the byte after the last one handed out, so output is never
lost or repeated — and the loops give up only when the daemon has not
answered for ``reconnect_timeout`` seconds.

A KeyboardInterrupt raised while a stream is read cancels that stream's call
and propagates; nothing is changed on the daemon, so the run goes on and a
later follow reattaches.
"""

import time

import grpc

from amld.core._daemon import TRANSIENT_CODES, error_from_rpc
from amld.v1 import runs_pb2

TERMINAL = (runs_pb2.RunStatus.COMPLETED, runs_pb2.RunStatus.FAILED,
            runs_pb2.RunStatus.CANCELED)


def is_terminal(status):
    """True for COMPLETED, FAILED and CANCELED."""
    return status in TERMINAL


class _Reconnector:
    """Backoff between reopened streams, and a deadline that moves whenever the daemon answers."""

    def __init__(self, reconnect_timeout, initial_backoff=0.05):
        self._timeout = reconnect_timeout
        self._initial = initial_backoff
        self.answered()

    def answered(self):
        """Data arrived: the next pause starts short again."""
        self.alive()
        self._backoff = self._initial

    def alive(self):
        """The daemon answers but has nothing new: keep backing off."""
        self._give_up_at = time.monotonic() + self._timeout

    def pause(self):
        """Sleep before the next try; False when it is time to give up."""
        left = self._give_up_at - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self._backoff, left))
        self._backoff = min(self._backoff * 2, 1.0)
        return True


def _read_stream(call, on_message):
    """Hand each message of a server stream to on_message; return the final grpc.RpcError or None.

    The call is cancelled when on_message asks to stop (returns True) or when
    anything (a KeyboardInterrupt) escapes.
    """
    try:
        for message in call:
            if on_message(message):
                call.cancel()
                return None
        return None
    except grpc.RpcError as e:
        return e
    except BaseException:
        call.cancel()
        raise


def _get_run(client, run_id):
    """GetRun once; (run, None) or (None, grpc.RpcError)."""
    try:
        return client.runs.GetRun(runs_pb2.GetRunRequest(run_id=run_id)), None
    except grpc.RpcError as e:
        return None, e


def follow_run(client, run_id, on_change=None, reconnect_timeout=120.0):
    """Follow the run until it is terminal and return its final amld.v1.Run.

    :param on_change: called with the first state and after each status change.
    """
    reconnector = _Reconnector(reconnect_timeout)
    reported = [runs_pb2.RunStatus.UNKNOWN]
    terminal = []
    doing = "wait for run " + run_id

    def on_message(resp):
        reconnector.answered()
        if resp.run.status != reported[0]:
            reported[0] = resp.run.status
            if on_change is not None:
                on_change(resp.run)
        if is_terminal(resp.run.status):
            terminal.append(resp.run)
            return True
        return False

    while True:
        call = client.runs.WaitRun(runs_pb2.WaitRunRequest(run_id=run_id))
        error = _read_stream(call, on_message)
        if terminal:
            return terminal[0]
        if error is not None and error.code() not in TRANSIENT_CODES:
            raise error_from_rpc(error, doing, client.socket_path)
        if not reconnector.pause():
            if error is None:
                raise error_from_rpc(_Unavailable(), doing, client.socket_path, mid_stream=True)
            raise error_from_rpc(error, doing, client.socket_path, mid_stream=True)


class _Unavailable(grpc.RpcError):
    """Stands for a stream that ended without a terminal status, when giving up."""

    def code(self):
        """UNAVAILABLE."""
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        """No details."""
        return ""


def follow_log(client, run_id, sink, path="", offset=0, follow=True, reconnect_timeout=120.0):
    """Stream the run's log at ``path`` ("" = user_logs/std_log.txt) to ``sink(bytes)``.

    Without ``follow``, stops at the current end; with it, keeps going until
    the run is terminal and the whole log is handed out. Returns the offset
    after the last byte handed to the sink. A log that does not exist yet
    counts as empty (with ``follow``, the loop waits for it).
    """
    reconnector = _Reconnector(reconnect_timeout)
    doing = "read the log of run " + run_id
    # The last read does not follow: it comes after the run was seen
    # terminal and catches what an ended stream (or a late log) missed.
    final_pass = not follow
    position = [offset]

    def on_message(chunk):
        reconnector.answered()
        begin = chunk.offset
        end = begin + len(chunk.data)
        if end <= position[0]:
            return False  # already handed out before a reconnect
        data = chunk.data
        if begin < position[0]:
            data = data[position[0] - begin:]
        sink(data)
        position[0] = end
        return False

    while True:
        request = runs_pb2.StreamLogsRequest(run_id=run_id, path=path, offset=position[0],
                                             follow=not final_pass)
        error = _read_stream(client.runs.StreamLogs(request), on_message)
        log_missing = error is not None and error.code() == grpc.StatusCode.NOT_FOUND
        if error is None and final_pass:
            return position[0]
        if error is not None and not log_missing:
            if error.code() not in TRANSIENT_CODES:
                raise error_from_rpc(error, doing, client.socket_path)
            if not reconnector.pause():
                raise error_from_rpc(error, doing, client.socket_path, mid_stream=True)
            continue
        # A followed stream ended, or the run or its log is missing: ask the run.
        run, run_error = _get_run(client, run_id)
        if run is None and log_missing and run_error.code() == grpc.StatusCode.NOT_FOUND:
            raise error_from_rpc(error, doing, client.socket_path)
        if run is None and run_error.code() not in TRANSIENT_CODES:
            raise error_from_rpc(run_error, "look up run " + run_id, client.socket_path)
        if run is not None:
            reconnector.alive()
            if log_missing and final_pass:
                return position[0]  # no log was ever written
            if is_terminal(run.status):
                final_pass = True
                continue
        if not reconnector.pause():
            raise error_from_rpc(run_error or error or _Unavailable(), doing, client.socket_path,
                                 mid_stream=True)
