"""Flag EEG channels that are flat, noisy or missing, from a recent stretch of data (no Qt).

Thresholds are relative to the other channels of the same stream, so the flags work
whatever unit the stream uses (volts from some LSL apps, microvolts from BrainFlow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OK, FLAT, NOISY, MISSING = "ok", "flat", "noisy", "missing"


@dataclass(frozen=True)
class QualityThresholds:
    missing_fraction: float = 0.5   # more non-finite samples than this -> missing
    flat_ratio: float = 0.02        # robust spread below this x the median channel's -> flat
    noisy_ratio: float = 5.0        # robust spread above this x the median channel's -> noisy


def robust_spread(data: np.ndarray) -> np.ndarray:
    """Per-channel spread (1.4826 x median absolute deviation), NaNs ignored; (C, n) -> (C,)."""
    with np.errstate(all="ignore"):
        median = np.nanmedian(data, axis=1, keepdims=True)
        return 1.4826 * np.nanmedian(np.abs(data - median), axis=1)


def assess_channels(data: np.ndarray, thresholds: QualityThresholds | None = None) -> list[str]:
    """One flag per channel of `data` (C, n): "ok", "flat", "noisy" or "missing"."""
    thresholds = thresholds or QualityThresholds()
    channels, samples = data.shape
    if samples == 0:
        return [MISSING] * channels
    finite = np.isfinite(data)
    missing = (1.0 - finite.mean(axis=1)) > thresholds.missing_fraction
    flags = [MISSING if m else OK for m in missing]
    present = ~missing
    if not present.any():
        return flags
    spread = np.zeros(channels)
    spread[present] = robust_spread(data[present])
    # A channel with identical samples has zero MAD and zero range.
    finite_only = np.where(finite, data, np.nan)
    with np.errstate(all="ignore"):
        peak_to_peak = np.where(present, np.nanmax(finite_only, axis=1) - np.nanmin(finite_only, axis=1), 0.0)
    reference = float(np.median(spread[present]))
    for index in np.flatnonzero(present):
        if peak_to_peak[index] == 0.0 or spread[index] <= thresholds.flat_ratio * reference:
            flags[index] = FLAT
        elif reference > 0 and spread[index] >= thresholds.noisy_ratio * reference:
            flags[index] = NOISY
    return flags
