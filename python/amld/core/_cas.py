"""Files to and from the daemon's content-addressed store, for what is not a source snapshot:
a registered model's files and the files of an interactive run (Experiment.start_logging).

Uploads hash each file with SHA-256 (the CAS's digest), ask FindMissingBlobs
which the daemon lacks, and send those: small ones in BatchUpdateBlobs
requests, larger ones through the Write stream. Source folders never come
here: they are snapshotted by ``aml snapshot create`` (ignore rules, stat
cache).

Downloads (``download_blob``) write to ``<dest>.part``, resume after a
dropped stream, check the whole file against its digest and then rename it
into place.
"""

import hashlib
import os

from amld.core._lazy import follow
from amld.exceptions import AmldException

_BATCH_BYTES = 3 << 20      # under the daemon's 4 MiB max_batch_bytes
_CHUNK = 1 << 20


def file_digest(path):
    """(hex sha256, size) of the file at ``path``."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return h.hexdigest(), size
            h.update(block)
            size += len(block)


def upload_files(client, paths):
    """Store the files ``paths`` in the daemon's CAS; returns one amld.v1.Digest per path."""
    from amld.v1 import cas_pb2, cas_pb2_grpc, common_pb2
    cas = cas_pb2_grpc.CasStub(client.channel)
    digests = []
    for path in paths:
        hexdigest, size = file_digest(path)
        digests.append(common_pb2.Digest(hash=hexdigest, size_bytes=size))
    missing = client.call(cas.FindMissingBlobs,
                          cas_pb2.FindMissingBlobsRequest(blob_digests=digests),
                          "ask amld which files it lacks").missing_blob_digests
    wanted = {(d.hash, d.size_bytes) for d in missing}
    batch, batch_bytes = [], 0

    def send_batch():
        if not batch:
            return
        response = client.call(cas.BatchUpdateBlobs,
                               cas_pb2.BatchUpdateBlobsRequest(requests=batch),
                               "upload files to amld")
        for r in response.responses:
            if r.code != 0:
                raise AmldException("amld refused a file (%s): %s" % (r.digest.hash, r.message))
        del batch[:]

    for path, digest in zip(paths, digests):
        key = (digest.hash, digest.size_bytes)
        if key not in wanted:
            continue
        wanted.discard(key)
        if digest.size_bytes > _BATCH_BYTES:
            _write(client, cas, cas_pb2, path, digest)
            continue
        if batch_bytes + digest.size_bytes > _BATCH_BYTES:
            send_batch()
            batch_bytes = 0
        with open(path, "rb") as f:
            batch.append(cas_pb2.BatchUpdateBlobsRequest.Request(digest=digest, data=f.read()))
        batch_bytes += digest.size_bytes
    send_batch()
    return digests


def _write(client, cas, cas_pb2, path, digest):
    def chunks():
        with open(path, "rb") as f:
            offset = 0
            while True:
                data = f.read(_CHUNK)
                last = offset + len(data) >= digest.size_bytes
                yield cas_pb2.WriteRequest(digest=digest, write_offset=offset, data=data,
                                           finish_write=last)
                offset += len(data)
                if last:
                    return

    client.call(cas.Write, chunks(), "upload %s to amld" % path)


def _partial_path(dest):
    """Where a download to ``dest`` is written first: "<dest>.part", or, when that name would
    pass NAME_MAX (255 bytes), a shorter hidden name in the same folder."""
    folder, base = os.path.split(dest)
    raw = os.fsencode(base)
    if len(raw) + len(b".part") <= 255:
        return dest + ".part"
    return os.path.join(folder, os.fsdecode(b"." + raw[:255 - len(b"..part")] + b".part"))


def download_blob(client, start_call, digest, dest, doing):
    """Stream a stored file to ``dest``, resuming after a dropped stream, checked by digest.

    ``start_call(offset)`` opens the server stream of FileChunk from ``offset``.
    """
    import grpc
    from amld.core._daemon import TRANSIENT_CODES, error_from_rpc
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    partial = _partial_path(dest)
    h = hashlib.sha256()
    offset = 0
    reconnector = follow()._Reconnector(120.0)
    with open(partial, "wb") as out:
        while True:
            call = start_call(offset)
            try:
                for chunk in call:
                    reconnector.answered()
                    data = chunk.data
                    if chunk.offset < offset:
                        data = data[offset - chunk.offset:]
                    elif chunk.offset > offset:
                        raise AmldException("%s: the daemon skipped from byte %d to %d"
                                            % (doing, offset, chunk.offset))
                    out.write(data)
                    h.update(data)
                    offset += len(data)
                break
            except grpc.RpcError as e:
                if e.code() not in TRANSIENT_CODES:
                    raise error_from_rpc(e, doing, client.socket_path) from None
                if not reconnector.pause():
                    raise error_from_rpc(e, doing, client.socket_path, mid_stream=True) from None
            except BaseException:
                call.cancel()
                raise
    if offset != digest.size_bytes or h.hexdigest() != digest.hash:
        os.unlink(partial)
        raise AmldException("%s: the bytes received do not match the stored file's digest "
                            "%s/%d (got %d bytes); try again" % (
                                doing, digest.hash, digest.size_bytes, offset), code="DATA_LOSS")
    os.replace(partial, dest)
