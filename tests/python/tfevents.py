"""TensorBoard event files by hand, for tests: TFRecord framing and the Event protobuf written
from their public descriptions (no tensorflow, tensorboard or protobuf library), and a reader of
the same. The tests copy this file into run projects, so training scripts write with it too.

Framing, per record: uint64 length (little-endian), uint32 masked CRC32C of those 8 bytes, the
data, uint32 masked CRC32C of the data; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
Event: wall_time = 1 (double), step = 2 (int64), summary = 5; Summary.value = 1; Value: tag = 1,
simple_value = 2 (float), tensor = 8 (TensorProto: dtype = 1, tensor_shape = 2, float_val = 5),
metadata = 9 (plugin_data = 1 → plugin_name = 1).
"""

import os
import socket
import struct
import time

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _bytes(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def record(data):
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data +
            struct.pack("<I", masked_crc32c(data)))


def event(step, values, wall_time=None):
    summary = b"".join(_bytes(1, v) for v in values)
    return (_key(1, 1) + struct.pack("<d", time.time() if wall_time is None else wall_time) +
            _key(2, 0) + _varint(step) + _bytes(5, summary))


def simple_value(tag, value):
    """torch's SummaryWriter.add_scalar, TF1."""
    return _bytes(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)


def tensor_value(tag, value):
    """TF2's tf.summary.scalar: a rank-0 float tensor, plugin "scalars"."""
    tensor = _key(1, 0) + _varint(1) + _bytes(2, b"") + _bytes(5, struct.pack("<f", value))
    return _bytes(1, tag.encode()) + _bytes(8, tensor) + _bytes(9, _bytes(1, _bytes(1, b"scalars")))


class EventsWriter:
    """Appends records to <folder>/events.out.tfevents.<time>.<host>, flushed at once."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "events.out.tfevents.%d.%s" % (time.time(), socket.gethostname()))
        self.write(record(_key(1, 1) + struct.pack("<d", time.time()) + _bytes(3, b"brain.Event:2")))

    def write(self, data):
        with open(self.path, "ab") as f:
            f.write(data)

    def scalar(self, tag, value, step, tensor=False):
        self.write(record(event(step, [(tensor_value if tensor else simple_value)(tag, value)])))


def read_scalars(path):
    """[(tag, step, value)] of the simple_value scalars of whole, checked records."""
    with open(path, "rb") as f:
        data = f.read()
    out, at = [], 0
    while at + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        end = at + 12 + length + 4
        if end > len(data):
            break
        payload = data[at + 12:at + 12 + length]
        assert struct.unpack_from("<I", data, at + 12 + length)[0] == masked_crc32c(payload)
        step = 0
        i = 0
        tag = None
        while i < len(payload):
            key = payload[i]
            i += 1
            if key == 0x09:  # wall_time
                i += 8
            elif key == 0x10:  # step
                step, shift = 0, 0
                while True:
                    b = payload[i]
                    i += 1
                    step |= (b & 0x7F) << shift
                    shift += 7
                    if b < 0x80:
                        break
            elif key == 0x2A:  # summary: one value of tag + simple_value, as written above
                n = payload[i]
                i += 1
                value = payload[i + 2:i + n]
                tlen = value[1]
                tag = value[2:2 + tlen].decode()
                out.append((tag, step, struct.unpack_from("<f", value, 2 + tlen + 1)[0]))
                i += n - 2 + 2
                break
            else:  # file_version and anything else: the record has no scalar
                break
        at = end
    return out
