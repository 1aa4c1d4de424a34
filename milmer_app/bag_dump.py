"""``--dump-bags DIR``: every bag the model saw, as it saw it, one ``.npz`` per prediction.

``DIR/bag-NNNNNN.npz`` (numbered from 0 in prediction order) holds ``eeg`` float32 (C, T)
exactly as fed to the model, ``eeg_mask`` bool (C,), ``channels`` (C,) str (the model's
channel names), ``faces`` uint8 (N, S, S, 3) RGB as fed (zeros where masked), ``face_mask``
bool (N,), ``window_start`` and ``window_end`` float64 on the LSL clock (first and last EEG
sample), ``delay`` float64 (seconds from the window's end to the newest sample received) and
``source_rate`` float64 (the EEG stream's nominal rate; 0 without EEG), ``face_quality`` float32
(N, 3) (per instance: face box side in pixels, sharpness, detector score; NaN without a crop)
with ``face_quality_fields`` naming the columns, and ``face_problems`` (N,) str (why an instance
was masked: "no frame", "no face", "face 20 px < 24", ...; "" when fed). Files are written
atomically (`models.atomic`), so a reader never sees half a bag.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from milmer_app.bags import QUALITY_FIELDS
from milmer_app.prediction import Prediction
from models.atomic import atomic_open
from models.errors import MilmerError

log = logging.getLogger(__name__)


class BagDumper:
    def __init__(self, folder: Path, channels: list[str], source_rate: float):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MilmerError(f"--dump-bags {self.folder}: cannot create the folder ({exc.strerror or exc})") from exc
        self.channels = np.asarray(channels, dtype=str)
        self.source_rate = float(source_rate)
        self.count = 0
        self._failed = False

    @staticmethod
    def _quality(prediction: Prediction) -> np.ndarray:
        if prediction.face_quality is None:
            return np.full((len(prediction.face_mask), len(QUALITY_FIELDS)), np.nan, np.float32)
        return np.asarray(prediction.face_quality, np.float32)

    def write(self, prediction: Prediction) -> None:
        if prediction.eeg is None or prediction.eeg_mask is None or prediction.crops is None:
            raise ValueError("a prediction without its bag (eeg, eeg_mask, crops) cannot be dumped")
        if self._failed:
            return
        path = self.folder / f"bag-{self.count:06d}.npz"
        try:
            with atomic_open(path) as handle:
                np.savez(handle, eeg=np.asarray(prediction.eeg, np.float32),
                         eeg_mask=np.asarray(prediction.eeg_mask, bool), channels=self.channels,
                         faces=np.asarray(prediction.crops, np.uint8),
                         face_mask=np.asarray(prediction.face_mask, bool),
                         window_start=np.float64(prediction.window_start), window_end=np.float64(prediction.window_end),
                         delay=np.float64(prediction.delay), source_rate=np.float64(self.source_rate),
                         face_quality=self._quality(prediction), face_quality_fields=np.asarray(QUALITY_FIELDS),
                         face_problems=np.asarray([p or "" for p in prediction.face_problems]
                                                  or [""] * len(prediction.face_mask), dtype=str))
        except OSError as exc:
            if not self._failed:   # once: a full disk must not flood the log every hop
                log.error("--dump-bags: cannot write %s (%s); later bags are not dumped either", path, exc)
            self._failed = True
            return
        self.count += 1
