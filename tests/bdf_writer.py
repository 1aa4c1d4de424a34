"""A small BioSemi BDF writer for tests (24-bit EDF variant, one-second records, a Status channel),
as MNE can read but not write BDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_bdf(path: Path, names: list[str], rate: int, data_uv: np.ndarray, status: np.ndarray) -> Path:
    """`data_uv` (C, n) microvolts; `status` (n,) Status words (trigger bits 0-15 plus system bits)."""
    per = int(rate)
    records = data_uv.shape[1] // per
    labels = list(names) + ["Status"]
    count = len(labels)

    def field(text: object, width: int) -> bytes:
        return str(text).ljust(width)[:width].encode("ascii")

    physical_min = [-262144] * len(names) + [-8388608]
    physical_max = [262144] * len(names) + [8388607]
    digital_min, digital_max = [-8388608] * count, [8388607] * count
    head = (b"\xffBIOSEMI" + field("X", 80) + field("X", 80) + field("01.01.20", 8) + field("00.00.00", 8)
            + field(256 * (count + 1), 8) + field("24BIT", 44) + field(records, 8) + field(1, 8) + field(count, 4))
    for values, width in ((labels, 16), (["Active electrode"] * len(names) + ["Triggers and Status"], 80),
                          (["uV"] * len(names) + ["Boolean"], 8), (physical_min, 8), (physical_max, 8),
                          (digital_min, 8), (digital_max, 8), ([""] * count, 80), ([per] * count, 8),
                          ([""] * count, 32)):
        head += b"".join(field(value, width) for value in values)
    gain = (np.array(digital_max[:-1]) - np.array(digital_min[:-1])) / (
        np.array(physical_max[:-1]) - np.array(physical_min[:-1]))
    rows = np.vstack([np.round(data_uv * gain[:, None]).astype(np.int64), status[None, :].astype(np.int64)])
    body = bytearray()
    for record in range(records):
        for row in rows[:, record * per:(record + 1) * per]:
            word = row & 0xFFFFFF
            body += np.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], axis=1).astype(np.uint8).tobytes()
    Path(path).write_bytes(head + bytes(body))
    return Path(path)
