"""The EEG transform of the input contract, offline (whole recordings) and its design.

All arrays are electrode x time, ``(C, T)``, in microvolts. The transform, in order
(parameters in `InputContract`; `EEGTransform` holds them):

1. offset/drift removal at the source rate, before resampling: a causal Butterworth
   high-pass (default 2nd order, 0.1 Hz) started in its steady state for the first
   sample. It must come first: a polyphase resampler's phases differ slightly in DC gain,
   so a 50 mV electrode offset resampled 125 -> 128 Hz leaves a 52 uV ripple in band.
2. polyphase resampling to the contract rate with scipy's ``resample_poly`` filter;
3. the band-pass: a linear-phase FIR (firwin, Hamming), applied zero-phase offline;
4. the reference (common average over the channels in use).

`offline_eeg` runs these over a whole recording with scipy's one-shot functions;
`models.pipeline.streaming.StreamingEEG` runs the same stages on arriving chunks with
their state kept and equals it sample for sample, ``delay`` seconds later.

Why a linear-phase FIR (``bench/filter_design.py``: 2 min of 1/f EEG with alpha and beta
rhythms at 128 Hz, 3 s windows, scored against zero-phase 4-45 Hz Butterworth filtering,
the kind DEAP's preprocessed data and this project's earlier offline path had):

- a causal Butterworth band-pass needs no delay but its phase ruins the match: correlation
  0.36 (order 4) or 0.72 (order 2), 0.01 / 0.48 over the newest 0.25 s;
- forward-backward Butterworth streamed with a look-ahead approximates its own offline
  result (0.9985 over the newest 0.25 s at 0.375 s look-ahead, 0.9996 at 0.42 s), never
  exactly, and passes 50 Hz mains at -26 dB;
- the linear-phase FIR chosen here (97 taps at 128 Hz, Hamming, -6 dB at 4 and 45 Hz like
  the zero-phase Butterworth) is applied zero-phase offline and equals that exactly live,
  0.375 s later; it correlates >= 0.9975 with the zero-phase Butterworth (0.993 over the
  newest 0.25 s, amplitude within 1 %) and rejects 50 Hz by 63 dB and drift below 2 Hz by
  >= 40 dB. With a resampler in front the delay is about 0.45 s in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from scipy import signal

from models.contract import GENEVA_CHANNELS
from models.errors import DataError

if TYPE_CHECKING:
    from models.contract import InputContract

__all__ = ["DEAP_PERIPHERAL_CHANNELS", "GENEVA_CHANNELS", "EEGTransform", "average_reference", "offline_eeg",
           "rate_ratio"]

# DEAP channels 33-40 of the preprocessed files.
DEAP_PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)


def rate_ratio(src_rate: float, dst_rate: float) -> tuple[int, int]:
    """(up, down) with dst/src = up/down, as small as 1000 allows."""
    if src_rate <= 0 or dst_rate <= 0:
        raise DataError(f"cannot resample from {src_rate} Hz to {dst_rate} Hz")
    ratio = Fraction(dst_rate / src_rate).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


@dataclass(frozen=True)
class EEGTransform:
    """The contract's EEG transform parameters (see the module docstring)."""

    rate: float                                  # output (contract) rate, Hz
    band: tuple[float, float] | None             # nominal pass band; None: no band-pass
    cutoffs: tuple[float, float] | None          # the FIR's -6 dB frequencies
    taps: int = 97
    window: str = "hamming"
    dc_highpass_hz: float = 0.1
    dc_highpass_order: int = 2
    resample_kaiser_beta: float = 5.0
    resample_half_width: int = 10
    reference: str = "average"

    @classmethod
    def from_contract(cls, contract: InputContract) -> EEGTransform:
        return cls(rate=contract.sampling_rate, band=contract.filter_band, cutoffs=contract.filter_cutoffs,
                   taps=contract.filter_taps, window=contract.filter_window,
                   dc_highpass_hz=contract.dc_highpass_hz, dc_highpass_order=contract.dc_highpass_order,
                   resample_kaiser_beta=contract.resample_kaiser_beta,
                   resample_half_width=contract.resample_half_width, reference=contract.reference)

    @classmethod
    def deap(cls) -> EEGTransform:
        """The DEAP contract's transform (128 Hz, 4-45 Hz, average reference) with default design."""
        return cls(rate=128.0, band=(4.0, 45.0), cutoffs=(4.0, 45.0))

    # -- what a source still needs ---------------------------------------------------------
    def needs_filter(self, already_filtered: tuple[float, float] | None) -> bool:
        """Offset removal and band-pass, unless the source's data is already band-passed to this band."""
        return self.band is not None and (already_filtered is None or tuple(already_filtered) != tuple(self.band))

    def needs_reference(self, already_referenced: bool) -> bool:
        return self.reference == "average" and not already_referenced

    # -- designs -------------------------------------------------------------------------------
    def dc_highpass_sos(self, source_rate: float) -> np.ndarray | None:
        if self.dc_highpass_hz <= 0 or self.dc_highpass_order <= 0:
            return None
        if not self.dc_highpass_hz < source_rate / 2:
            raise DataError(f"offset high-pass at {self.dc_highpass_hz} Hz does not fit a {source_rate} Hz signal")
        return signal.butter(self.dc_highpass_order, self.dc_highpass_hz, btype="highpass", fs=source_rate,
                             output="sos")

    def bandpass_taps(self) -> np.ndarray:
        assert self.cutoffs is not None
        low, high = self.cutoffs
        nyquist = self.rate / 2.0
        if not 0 < low < high < nyquist:
            raise DataError(f"band-pass cut-offs {low}-{high} Hz do not fit a {self.rate} Hz signal "
                            f"(Nyquist {nyquist} Hz)")
        return signal.firwin(self.taps, [low, high], pass_zero=False, window=self.window, fs=self.rate)

    def resampler_taps(self, source_rate: float) -> tuple[int, int, np.ndarray | None]:
        """(up, down, h): resample_poly's anti-aliasing filter for source_rate -> rate (h not scaled by up;
        None when the rates are equal)."""
        up, down = rate_ratio(source_rate, self.rate)
        if (up, down) == (1, 1):
            return up, down, None
        half_len = self.resample_half_width * max(up, down)
        h = signal.firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", self.resample_kaiser_beta))
        return up, down, h

    def delay_samples(self, source_rate: float, already_filtered: tuple[float, float] | None = None) -> float:
        """Output samples the live result trails the newest input by (resampler + band-pass)."""
        delay = 0.0
        up, down = rate_ratio(source_rate, self.rate)
        if (up, down) != (1, 1):
            delay += self.resample_half_width * max(up, down) / down
        if self.needs_filter(already_filtered):
            delay += (self.taps - 1) / 2
        return delay


def average_reference(x: np.ndarray) -> np.ndarray:
    """Common average reference: subtract the mean over electrodes at every sample."""
    x = np.asarray(x, dtype=np.float32)
    return x - x.mean(axis=0, keepdims=True)


def offline_eeg(x: np.ndarray, source_rate: float, transform: EEGTransform,
                already_filtered: tuple[float, float] | None = None, already_referenced: bool = False) -> np.ndarray:
    """The transform of a whole recording (C, T) at `source_rate` -> (C, T') float32 at `transform.rate`.

    Output sample m is at input time m / rate from the first input sample. Steps the source has
    done already (`already_filtered` band, `already_referenced`) are skipped. All rows are referenced
    together: pass only the channels in use.
    """
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2:
        raise DataError(f"EEG must be (channels, samples), got shape {data.shape}")
    filtering = transform.needs_filter(already_filtered)
    if filtering and data.shape[1]:
        sos = transform.dc_highpass_sos(source_rate)
        if sos is not None:
            zi = signal.sosfilt_zi(sos)[:, None, :] * data[None, :, :1]
            data, _ = signal.sosfilt(sos, data, axis=-1, zi=zi)
    up, down, h = transform.resampler_taps(source_rate)
    if (up, down) != (1, 1):
        data = signal.resample_poly(data, up, down, axis=-1, window=h)
    if filtering:
        taps = transform.bandpass_taps()
        data = signal.oaconvolve(data, taps[None, :], mode="same", axes=-1)
    if transform.needs_reference(already_referenced) and data.shape[0]:
        data = data - data.mean(axis=0, keepdims=True)
    return data.astype(np.float32)
