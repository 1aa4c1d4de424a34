"""Reading a milmer_app recording folder (the format is described in `milmer_app/recording.py`).

The reader lives here, below the app, so that training (calibration on a person's recordings)
reads recordings with the same code as the app's replay and export.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.errors import DataError

FORMAT = "milmer-recording"
VERSION = 1
EEG_FILE, EEG_TS_FILE = "eeg.f32", "eeg_ts.f64"
FRAMES_FILE, FRAMES_INDEX = "frames.mjpg", "frames.idx"
MARKERS_FILE, PREDICTIONS_FILE, META_FILE = "markers.jsonl", "predictions.jsonl", "meta.json"
EEG_DTYPE, STAMP_DTYPE = "<f4", "<f8"   # eeg.f32 samples; eeg_ts.f64 stamps and frames.idx rows


def new_meta(created_utc: str, created_lsl: float, eeg: dict | None, video: dict | None,
             model: dict | None) -> dict[str, Any]:
    """A recording's meta.json document, as every writer (the app's recorder, the simulated person) writes it."""
    return {"format": FORMAT, "version": VERSION, "created_utc": created_utc, "created_lsl": created_lsl,
            "eeg": eeg, "video": video, "model": model}


def frame_index_row(stamp: float, offset: int, size: int) -> bytes:
    """One frames.idx row: the frame's LSL timestamp, its byte offset and length in frames.mjpg."""
    return np.array([stamp, offset, size], STAMP_DTYPE).tobytes()


MAX_META_BYTES = 1 << 20          # a meta.json is a few hundred bytes; a larger one is not ours
MAX_META_DEPTH = 16
MAX_CHANNELS = 4096
MAX_SRATE = 100_000.0


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_meta(path: Path) -> dict[str, Any]:
    """meta.json as a dict, refused in one line (naming the file and the field) when it is not one of ours:
    too large, nested too deeply, not an object, wrong format or version, or an EEG entry whose fields
    have the wrong types (channels a list of strings, srate a positive plausible number)."""
    try:
        size = path.stat().st_size
        if size > MAX_META_BYTES:
            raise DataError(f"{path}: {size} bytes, too large for a recording's meta.json")
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise DataError(f"{path}: nested too deeply for a recording's meta.json") from None
    except (OSError, ValueError) as exc:   # ValueError: JSON and UTF-8 decoding errors
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: holds a JSON {type(meta).__name__}, not a recording's description (an object)")
    if _depth(meta) > MAX_META_DEPTH:
        raise DataError(f"{path}: nested too deeply for a recording's meta.json")
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a milmer recording (format {_short(meta.get('format'))})")
    if meta.get("version") != VERSION:
        raise DataError(f"{path}: recording version {_short(meta.get('version'))} is not supported")
    eeg = meta.get("eeg")
    if eeg is None:
        return meta
    if not isinstance(eeg, dict):
        raise DataError(f"{path}: field 'eeg' is a {type(eeg).__name__}, expected an object or null")
    channels = eeg.get("channels")
    if not isinstance(channels, list) or not all(isinstance(name, str) for name in channels):
        raise DataError(f"{path}: field 'eeg.channels' must be a list of channel names (strings), "
                        f"got {_short(channels)}")
    if len(channels) > MAX_CHANNELS:
        raise DataError(f"{path}: field 'eeg.channels' holds {len(channels)} names (at most {MAX_CHANNELS})")
    if not channels:       # no EEG samples can have been written
        return meta
    srate = eeg.get("srate")
    if isinstance(srate, bool) or not isinstance(srate, (int, float)) or not math.isfinite(srate) \
            or not 0 < srate <= MAX_SRATE:
        raise DataError(f"{path}: field 'eeg.srate' must be a sampling rate in Hz (a number above 0, at most "
                        f"{MAX_SRATE:g}), got {_short(srate)}")
    return meta


class RecordingReader:
    """Reads a recording folder, keeping every complete record of a cut-off tail."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta_path = self.folder / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{self.folder}: not a recording (no {META_FILE})")
        self.meta = read_meta(meta_path)

    @property
    def channel_names(self) -> list[str]:
        return list((self.meta.get("eeg") or {}).get("channels", []))

    @property
    def srate(self) -> float:
        return float((self.meta.get("eeg") or {}).get("srate", 0.0))

    def eeg(self, mapped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(C, n) float32 microvolts and (n,) timestamps of every complete sample; `mapped`: memory maps of
        the files (a replay reads what it reaches, whatever the recording's length), else arrays in memory."""
        channels = len(self.channel_names)
        data_path, ts_path = self.folder / EEG_FILE, self.folder / EEG_TS_FILE
        if not channels or not data_path.is_file() or not ts_path.is_file():
            return np.zeros((channels, 0), np.float32), np.zeros(0)
        n = min(data_path.stat().st_size // (4 * channels), ts_path.stat().st_size // 8)
        if mapped and n:
            return (np.memmap(data_path, dtype=EEG_DTYPE, mode="r", shape=(n, channels)).T,
                    np.memmap(ts_path, dtype=STAMP_DTYPE, mode="r", shape=(n,)))
        data = np.fromfile(data_path, dtype=EEG_DTYPE, count=n * channels).reshape(n, channels).T
        stamps = np.fromfile(ts_path, dtype=STAMP_DTYPE, count=n)
        return np.ascontiguousarray(data), stamps

    def frame_index(self) -> np.ndarray:
        """(M, 3) float64: timestamp, offset, length of every frame whose bytes are on disk."""
        index_path, data_path = self.folder / FRAMES_INDEX, self.folder / FRAMES_FILE
        if not index_path.is_file():
            return np.zeros((0, 3))
        count = index_path.stat().st_size // 24
        index = np.fromfile(index_path, dtype=STAMP_DTYPE, count=count * 3).reshape(count, 3)
        size = data_path.stat().st_size if data_path.is_file() else 0
        return index[index[:, 1] + index[:, 2] <= size]

    def read_frames(self, rows: np.ndarray):
        """Yield (timestamp, BGR image) for the given rows of `frame_index()`."""
        with (self.folder / FRAMES_FILE).open("rb") as handle:
            for stamp, offset, length in rows:
                handle.seek(int(offset))
                data = np.frombuffer(handle.read(int(length)), np.uint8)
                image = cv2.imdecode(data, cv2.IMREAD_COLOR)
                if image is not None:
                    yield float(stamp), image

    def _lines(self, name: str) -> list[dict]:
        path = self.folder / name
        if not path.is_file():
            return []
        records = []
        for line in path.read_bytes().split(b"\n"):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # the empty last line or a line cut by a kill
            if isinstance(record, dict):
                records.append(record)
        return records

    def markers(self) -> list[dict]:
        return self._lines(MARKERS_FILE)

    def predictions(self) -> list[dict]:
        return self._lines(PREDICTIONS_FILE)
