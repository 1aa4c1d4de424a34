"""Reading a milmer_app recording folder (the format is described in `milmer_app/recording.py`).

The reader lives here, below the app, so that training (calibration on a person's recordings)
reads recordings with the same code as the app's replay and export.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from models.errors import DataError

FORMAT = "milmer-recording"
VERSION = 1
EEG_FILE, EEG_TS_FILE = "eeg.f32", "eeg_ts.f64"
FRAMES_FILE, FRAMES_INDEX = "frames.mjpg", "frames.idx"
MARKERS_FILE, PREDICTIONS_FILE, META_FILE = "markers.jsonl", "predictions.jsonl", "meta.json"


class RecordingReader:
    """Reads a recording folder, keeping every complete record of a cut-off tail."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta_path = self.folder / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{self.folder}: not a recording (no {META_FILE})")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta_path}: unreadable ({exc})") from exc
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: not a milmer recording (format {self.meta.get('format')!r})")
        if self.meta.get("version") != VERSION:
            raise DataError(f"{meta_path}: recording version {self.meta.get('version')!r} is not supported")

    @property
    def channel_names(self) -> list[str]:
        return list((self.meta.get("eeg") or {}).get("channels", []))

    @property
    def srate(self) -> float:
        return float((self.meta.get("eeg") or {}).get("srate", 0.0))

    def eeg(self) -> tuple[np.ndarray, np.ndarray]:
        """(C, n) float32 microvolts and (n,) timestamps of every complete sample."""
        channels = len(self.channel_names)
        data_path, ts_path = self.folder / EEG_FILE, self.folder / EEG_TS_FILE
        if not channels or not data_path.is_file() or not ts_path.is_file():
            return np.zeros((channels, 0), np.float32), np.zeros(0)
        n = min(data_path.stat().st_size // (4 * channels), ts_path.stat().st_size // 8)
        data = np.fromfile(data_path, dtype="<f4", count=n * channels).reshape(n, channels).T
        stamps = np.fromfile(ts_path, dtype="<f8", count=n)
        return np.ascontiguousarray(data), stamps

    def frame_index(self) -> np.ndarray:
        """(M, 3) float64: timestamp, offset, length of every frame whose bytes are on disk."""
        index_path, data_path = self.folder / FRAMES_INDEX, self.folder / FRAMES_FILE
        if not index_path.is_file():
            return np.zeros((0, 3))
        count = index_path.stat().st_size // 24
        index = np.fromfile(index_path, dtype="<f8", count=count * 3).reshape(count, 3)
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
