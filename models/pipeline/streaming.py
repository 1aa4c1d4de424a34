"""EEG preprocessing that reproduces a checkpoint's input contract on live data.

Device channels -> contract order (missing ones masked), resample to the
contract's rate, band-pass as in training, average reference over the channels
present, last `window_seconds`. Steps the source has already done (DEAP's
preprocessed files are band-passed 4-45 Hz and average-referenced, and training
reads them as they are) are not done twice. A little history before the
window is filtered with it, so the filter's start-up transient falls outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.pipeline.channels import ChannelMap
from models.contract import InputContract
from models.pipeline.eeg import average_reference, bandpass, resample


@dataclass
class EEGPreprocessor:
    contract: InputContract
    channels: ChannelMap
    source_rate: float
    already_filtered: tuple[float, float] | None = None
    already_referenced: bool = False
    history_seconds: float = 1.0

    @property
    def source_samples(self) -> int:
        """Samples at the source rate to fetch for one window, history included."""
        return int(math.ceil((self.contract.window_seconds + self.history_seconds) * self.source_rate))

    @property
    def window_source_samples(self) -> int:
        return int(round(self.contract.window_seconds * self.source_rate))

    def __call__(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Device samples (C_dev, n >= window) -> (eeg (C, T) float32, mask (C,) bool)."""
        eeg = self.channels.apply(data)
        mask = self.channels.mask.copy()
        finite = np.isfinite(eeg).all(axis=1)
        mask &= finite
        eeg[~finite] = 0.0
        eeg = resample(eeg, self.source_rate, self.contract.sampling_rate)
        band = self.contract.filter_band
        if band is not None and self.already_filtered != tuple(band) and mask.any():
            eeg[mask] = bandpass(eeg[mask], self.contract.sampling_rate, band[0], band[1])
        if self.contract.reference == "average" and not self.already_referenced and mask.any():
            eeg[mask] = average_reference(eeg[mask])
        window = self.contract.window_samples
        if eeg.shape[1] < window:
            padded = np.zeros((eeg.shape[0], window), np.float32)
            padded[:, window - eeg.shape[1]:] = eeg
            eeg = padded
        return np.ascontiguousarray(eeg[:, -window:], dtype=np.float32), mask
