"""The SDK's imports of gRPC and the generated stubs, made on first use.

A training script on a machine without grpcio or protobuf can still import
amld.core and log to its run (which only appends to a file); only calls
that talk to the daemon import them.
"""


def pb():
    """amld.v1.runs_pb2, imported on first use."""
    try:
        from amld.v1 import runs_pb2
    except ImportError:
        # A run on an SSH or Slurm target gets the SDK without its stubs:
        # say which calls work there rather than "no module amld.v1".
        from amld.core.workspace import _refuse_off_the_daemons_machine
        _refuse_off_the_daemons_machine()
        raise
    return runs_pb2


def follow():
    """amld.core._follow (and with it grpc), imported on first use."""
    from amld.core import _follow
    return _follow
