"""Spectrum, band power and the display filter for the EEG views (numpy/scipy, no Qt)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def power_spectrum(data: np.ndarray, srate: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density per channel: freqs (F,), psd (C, F). Non-finite samples count as 0."""
    clean = np.nan_to_num(np.asarray(data, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    nperseg = int(min(clean.shape[1], max(8, round(2 * srate))))
    freqs, psd = signal.welch(clean, fs=srate, nperseg=nperseg, axis=1)
    return freqs, psd


def band_powers(freqs: np.ndarray, psd: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Integrated power per band (C, bands), for the bands below the Nyquist frequency."""
    names: list[str] = []
    columns: list[np.ndarray] = []
    nyquist = freqs[-1] if len(freqs) else 0.0
    step = freqs[1] - freqs[0] if len(freqs) > 1 else 1.0
    for name, (low, high) in BANDS.items():
        if low >= nyquist:
            continue
        inside = (freqs >= low) & (freqs < min(high, nyquist + step))
        names.append(name)
        columns.append(psd[:, inside].sum(axis=1) * step)
    if not columns:
        return [], np.zeros((psd.shape[0], 0))
    return names, np.stack(columns, axis=1)


def relative_band_powers(freqs: np.ndarray, psd: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Band power as a fraction of the summed band power, averaged over channels: (bands,)."""
    names, powers = band_powers(freqs, psd)
    total = powers.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(total > 0, powers / total, 0.0)
    return names, fractions.mean(axis=0) if len(fractions) else fractions


@lru_cache(maxsize=16)
def _display_sos(srate: float, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """The display band-pass as second-order sections, and its unit-step initial state."""
    nyquist = srate / 2.0
    high = min(high, 0.9 * nyquist)
    sos = signal.butter(4, [low / nyquist, high / nyquist], btype="bandpass", output="sos")
    return sos, signal.sosfilt_zi(sos)


def display_filter(data: np.ndarray, srate: float, band: tuple[float, float] = (1.0, 40.0)) -> np.ndarray:
    """Causal band-pass for the scrolling traces (like a scope: no look-ahead at the newest edge).

    Non-finite samples are filtered as zeros and put back as NaN so gaps stay visible.
    """
    finite = np.isfinite(data)
    sos, step_zi = _display_sos(float(srate), float(band[0]), float(band[1]))
    clean = np.where(finite, data, 0.0)
    # Start the filter from the first sample's value to avoid a step transient.
    zi = np.broadcast_to(step_zi[:, None, :], (sos.shape[0], data.shape[0], 2)) * clean[None, :, :1]
    filtered, _ = signal.sosfilt(sos, clean, axis=1, zi=zi)
    return np.where(finite, filtered, np.nan).astype(np.float32)
