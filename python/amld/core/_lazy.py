"""The SDK's imports of gRPC and the generated stubs, made on first use.

A training script on a machine without grpcio or protobuf can still import
amld.core and log to its run (which only appends to a file); only calls
that talk to the daemon import them.
"""


def pb():
    """amld.v1.runs_pb2, imported on first use."""
    from amld.v1 import runs_pb2
    return runs_pb2


def follow():
    """amld.core._follow (and with it grpc), imported on first use."""
    from amld.core import _follow
    return _follow
