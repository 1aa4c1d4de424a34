"""A small XDF 1.0 writer for tests: stream headers, sample chunks, clock offsets, footers.

The chunks are milmer_app.xdf_chunks' (the fuzz campaign writes its seeds with them), enough for pyxdf
to read what LabRecorder would have written: numeric and string streams with channel descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from milmer_app.xdf_chunks import clock_offset_chunk, file_header_chunk, sample_chunks, stream_chunk


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


def write_xdf(path: Path, streams: list[XdfStream], chunk: int = 64) -> Path:
    out = bytearray(b"XDF:")
    out += file_header_chunk()
    for sid, stream in enumerate(streams, start=1):
        out += stream_chunk(2, sid, stream.header().encode())
    for sid, stream in enumerate(streams, start=1):
        out += b"".join(sample_chunks(sid, stream.time_stamps, stream.samples, stream.channel_format, chunk))
        for collected, offset in stream.clock_offsets:
            out += clock_offset_chunk(sid, collected, offset)
    for sid, stream in enumerate(streams, start=1):
        stamps = stream.time_stamps
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{stamps[0]}</first_timestamp>'
                  f"<last_timestamp>{stamps[-1]}</last_timestamp><sample_count>{len(stamps)}</sample_count>"
                  "</info>")
        out += stream_chunk(6, sid, footer.encode())
    Path(path).write_bytes(bytes(out))
    return Path(path)
