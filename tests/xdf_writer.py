"""A small XDF 1.0 writer for tests: stream headers, sample chunks, clock offsets, footers.

Follows the XDF specification (chunk = NumLengthBytes, Length, Tag, content; tags 1 FileHeader,
2 StreamHeader, 3 Samples, 4 ClockOffset, 6 StreamFooter), enough for pyxdf to read what
LabRecorder would have written: numeric and string streams with channel descriptions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

_FORMATS = {"float32": "<f4", "double64": "<f8", "int32": "<i4", "int16": "<i2"}


def _varlen(value: int) -> bytes:
    if value < 256:
        return b"\x01" + struct.pack("<B", value)
    if value < 2**32:
        return b"\x04" + struct.pack("<I", value)
    return b"\x08" + struct.pack("<Q", value)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


@dataclass
class XdfStream:
    name: str
    type: str
    channel_format: str                     # float32 | double64 | int32 | int16 | string
    nominal_srate: float
    time_stamps: np.ndarray                 # stamps on the recording machine's clock (before the offset)
    samples: list | np.ndarray              # (n, channels) numbers, or a list of lists of strings
    labels: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)   # (collection time, offset)

    @property
    def channel_count(self) -> int:
        if self.channel_format == "string":
            return len(self.samples[0])
        return int(np.asarray(self.samples).shape[1])

    def header(self) -> str:
        channels = ""
        if self.labels:
            rows = []
            for i, label in enumerate(self.labels):
                kind = self.types[i] if self.types else ""
                unit = self.units[i] if self.units else ""
                rows.append(f"<channel><label>{escape(label)}</label><type>{escape(kind)}</type>"
                            f"<unit>{escape(unit)}</unit></channel>")
            channels = f"<channels>{''.join(rows)}</channels>"
        return ('<?xml version="1.0"?><info>'
                f"<name>{escape(self.name)}</name><type>{escape(self.type)}</type>"
                f"<channel_count>{self.channel_count}</channel_count>"
                f"<nominal_srate>{self.nominal_srate}</nominal_srate>"
                f"<channel_format>{self.channel_format}</channel_format>"
                f"<source_id>{escape(self.name)}-id</source_id><version>1.1</version>"
                f"<created_at>0</created_at><uid>{escape(self.name)}</uid>"
                f"<desc>{channels}</desc></info>")


def _samples_chunk(stream_id: int, stream: XdfStream, start: int, stop: int) -> bytes:
    body = bytearray(struct.pack("<I", stream_id))
    body += _varlen(stop - start)
    for k in range(start, stop):
        body += b"\x08" + struct.pack("<d", float(stream.time_stamps[k]))
        if stream.channel_format == "string":
            for value in stream.samples[k]:
                raw = str(value).encode()
                body += _varlen(len(raw)) + raw
        else:
            body += np.asarray(stream.samples[k], dtype=_FORMATS[stream.channel_format]).tobytes()
    return _chunk(3, bytes(body))


def write_xdf(path: Path, streams: list[XdfStream], chunk: int = 64) -> Path:
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, stream in enumerate(streams, start=1):
        out += _chunk(2, struct.pack("<I", sid) + stream.header().encode())
    for sid, stream in enumerate(streams, start=1):
        for start in range(0, len(stream.time_stamps), chunk):
            out += _samples_chunk(sid, stream, start, min(start + chunk, len(stream.time_stamps)))
        for collected, offset in stream.clock_offsets:
            out += _chunk(4, struct.pack("<I", sid) + struct.pack("<dd", collected, offset))
    for sid, stream in enumerate(streams, start=1):
        stamps = stream.time_stamps
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{stamps[0]}</first_timestamp>'
                  f"<last_timestamp>{stamps[-1]}</last_timestamp><sample_count>{len(stamps)}</sample_count>"
                  "</info>")
        out += _chunk(6, struct.pack("<I", sid) + footer.encode())
    Path(path).write_bytes(bytes(out))
    return Path(path)
