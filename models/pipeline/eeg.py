"""EEG signal helpers (numpy/scipy) shared by the DEAP BDF reader and the live app.

All arrays are electrode x time, ``(C, T)``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from models.contract import GENEVA_CHANNELS
from models.errors import DataError

__all__ = ["DEAP_PERIPHERAL_CHANNELS", "GENEVA_CHANNELS", "StreamingBandpass", "average_reference", "bandpass",
           "resample"]

# DEAP channels 33-40 of the preprocessed files.
DEAP_PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)


def _bandpass_sos(srate: float, low: float | None, high: float | None, order: int) -> np.ndarray:
    nyquist = srate / 2.0
    if low is not None and high is not None:
        if not 0 < low < high < nyquist:
            raise DataError(f"band-pass {low}-{high} Hz does not fit a {srate} Hz signal (Nyquist {nyquist} Hz)")
        return signal.butter(order, [low, high], btype="bandpass", fs=srate, output="sos")
    if low is not None:
        return signal.butter(order, low, btype="highpass", fs=srate, output="sos")
    if high is not None:
        return signal.butter(order, high, btype="lowpass", fs=srate, output="sos")
    raise DataError("band-pass needs a low or a high cut-off")


def bandpass(x: np.ndarray, srate: float, low: float | None, high: float | None, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along time (offline use). ``low``/``high`` None = one-sided."""
    sos = _bandpass_sos(srate, low, high, order)
    x = np.asarray(x)
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    return signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen).astype(np.float32, copy=False)


class StreamingBandpass:
    """Causal Butterworth band-pass that keeps its state across consecutive chunks (live use)."""

    def __init__(self, channels: int, srate: float, low: float | None, high: float | None, order: int = 4):
        self._sos = _bandpass_sos(srate, low, high, order)
        self.channels = channels
        self._zi: np.ndarray | None = None

    def reset(self) -> None:
        self._zi = None

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] != self.channels:
            raise DataError(f"streaming band-pass expects ({self.channels}, T) chunks, got {chunk.shape}")
        if self._zi is None:
            # Start from the steady state for the first sample so the filter does not ring.
            zi = signal.sosfilt_zi(self._sos)  # (sections, 2)
            self._zi = zi[:, None, :] * chunk[None, :, :1]
        out, self._zi = signal.sosfilt(self._sos, chunk, axis=-1, zi=self._zi)
        return out.astype(np.float32)


def resample(x: np.ndarray, src_rate: float, dst_rate: float) -> np.ndarray:
    """Polyphase resampling along time (anti-aliased)."""
    if src_rate <= 0 or dst_rate <= 0:
        raise DataError(f"cannot resample from {src_rate} Hz to {dst_rate} Hz")
    if src_rate == dst_rate:
        return np.asarray(x, dtype=np.float32)
    ratio = Fraction(dst_rate / src_rate).limit_denominator(1000)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def average_reference(x: np.ndarray) -> np.ndarray:
    """Common average reference: subtract the mean over electrodes at every sample."""
    x = np.asarray(x, dtype=np.float32)
    return x - x.mean(axis=0, keepdims=True)
