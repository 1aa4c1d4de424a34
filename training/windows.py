"""Cutting a DEAP trial into windows, and finding the face frames of the same wall-clock span.

Trial time t = 0 is the first EEG sample (start of the 3 s baseline). Windows start after
the baseline: window k covers [baseline + k * hop, baseline + k * hop + window). Face frames
are located through the video's own frame rate and frame count; the video's first frame is
taken at trial time ``video_offset_s`` (0: the video starts with the trial).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from models.contract import GENEVA_CHANNELS
from models.errors import DataError
from models.pipeline.eeg import EEGTransform, offline_eeg

DEAP_RATE = 128.0
DEAP_BAND = (4.0, 45.0)


def deap_trial_eeg(trial: np.ndarray, srate: float) -> np.ndarray:
    """A DEAP trial's 32 EEG rows through the contract's offline EEG transform, at ``srate``.

    DEAP's preprocessed files (and ``read_bdf_trials``' output) are already band-passed 4-45 Hz
    and average-referenced at 128 Hz, so, as in the live app's DEAP replay, only resampling
    is left to do, and only when the contract's rate is another.
    """
    transform = EEGTransform(rate=srate, band=DEAP_BAND, cutoffs=DEAP_BAND)
    return offline_eeg(trial[:len(GENEVA_CHANNELS)], DEAP_RATE, transform, already_filtered=DEAP_BAND,
                       already_referenced=True)


@dataclass(frozen=True)
class WindowSpec:
    window_s: float = 3.0
    hop_s: float = 3.0
    baseline_s: float = 3.0
    num_instances: int = 10
    channels: tuple[str, ...] = GENEVA_CHANNELS
    srate: float = 128.0
    max_windows: int | None = None  # None: as many as fit (DEAP: 20)
    video_offset_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        unknown = [c for c in self.channels if c not in GENEVA_CHANNELS]
        if unknown:
            raise DataError(f"unknown DEAP channel(s) {', '.join(unknown)}; DEAP has {', '.join(GENEVA_CHANNELS)}")
        if self.window_s <= 0 or self.hop_s <= 0 or self.baseline_s < 0 or self.num_instances < 1 or self.srate <= 0:
            raise DataError(f"bad window settings: {self}")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.srate))

    @property
    def channel_indices(self) -> np.ndarray:
        return np.asarray([GENEVA_CHANNELS.index(c) for c in self.channels], np.int64)

    def window_starts(self, trial_samples: int) -> np.ndarray:
        """Start times (s, trial clock) of every window that fits in ``trial_samples``."""
        usable = trial_samples / self.srate - self.baseline_s
        count = int(np.floor((usable - self.window_s) / self.hop_s + 1e-9)) + 1 if usable >= self.window_s else 0
        if self.max_windows is not None:
            count = min(count, self.max_windows)
        return self.baseline_s + self.hop_s * np.arange(count)

    def cut_eeg(self, trial: np.ndarray) -> np.ndarray:
        """(channels_all, samples) -> (windows, len(channels), window_samples) float32."""
        starts = np.rint(self.window_starts(trial.shape[-1]) * self.srate).astype(np.int64)
        picked = trial[self.channel_indices]
        out = np.empty((len(starts), len(self.channels), self.window_samples), np.float32)
        for i, first in enumerate(starts):
            out[i] = picked[:, first:first + self.window_samples]
        return out

    def frame_times(self, start_s: float) -> np.ndarray:
        """``num_instances`` times spread evenly over [start, start + window): bin centres."""
        return start_s + (np.arange(self.num_instances) + 0.5) * self.window_s / self.num_instances

    def frame_indices(self, start_s: float, fps: float, frame_count: int) -> np.ndarray:
        """Video frame numbers for a window; -1 where the time falls outside the video."""
        if fps <= 0:
            raise DataError(f"video frame rate {fps} is not usable")
        index = np.floor((self.frame_times(start_s) - self.video_offset_s) * fps).astype(np.int64)
        index[(index < 0) | (index >= frame_count)] = -1
        return index

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> WindowSpec:
        return cls(**{**data, "channels": tuple(data.get("channels", GENEVA_CHANNELS))})
