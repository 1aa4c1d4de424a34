"""XDF 1.0 chunks as bytes, to write XDF files: the fuzz campaign's seeds (milmer_app.fuzzing_files) and the
tests' writer.

A chunk is NumLengthBytes, Length, Tag, content; the tags used: 1 FileHeader, 2 StreamHeader, 3 Samples,
4 ClockOffset, 6 StreamFooter. Every sample is written with its own 8-byte time stamp.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

NUMERIC_FORMATS = {"float32": "<f4", "double64": "<f8", "int32": "<i4", "int16": "<i2"}
FILE_HEADER = b'<?xml version="1.0"?><info><version>1.0</version></info>'


def varlen(value: int) -> bytes:
    """A length as XDF writes it: one byte saying how many bytes follow (1, 4 or 8), then the value."""
    if value < 256:
        return b"\x01" + struct.pack("<B", value)
    if value < 2**32:
        return b"\x04" + struct.pack("<I", value)
    return b"\x08" + struct.pack("<Q", value)


def chunk(tag: int, content: bytes) -> bytes:
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def file_header_chunk() -> bytes:
    return chunk(1, FILE_HEADER)


def stream_chunk(tag: int, stream_id: int, content: bytes) -> bytes:
    """A chunk about one stream (header, samples, clock offset, footer): its id, then `content`."""
    return chunk(tag, struct.pack("<I", stream_id) + content)


def sample_chunks(stream_id: int, stamps: Sequence[float] | np.ndarray, samples: Sequence | np.ndarray,
                  channel_format: str, per_chunk: int = 64) -> list[bytes]:
    """Samples chunks of up to `per_chunk` samples: `samples[k]` (one value per channel; strings for a
    "string" stream) stamped `stamps[k]`."""
    chunks = []
    for start in range(0, len(stamps), per_chunk):
        stop = min(start + per_chunk, len(stamps))
        body = bytearray(varlen(stop - start))
        for k in range(start, stop):
            body += b"\x08" + struct.pack("<d", float(stamps[k]))
            if channel_format == "string":
                for value in samples[k]:
                    raw = str(value).encode()
                    body += varlen(len(raw)) + raw
            else:
                body += np.asarray(samples[k], dtype=NUMERIC_FORMATS[channel_format]).tobytes()
        chunks.append(stream_chunk(3, stream_id, bytes(body)))
    return chunks


def clock_offset_chunk(stream_id: int, collected: float, offset: float) -> bytes:
    return stream_chunk(4, stream_id, struct.pack("<dd", collected, offset))
