"""Which live band-pass can equal zero-phase filtering? The measurements behind the EEG transform's design.

Signal: 2 minutes of 16 channels at 128 Hz, pink background plus a 10 Hz alpha and a
wandering 20 Hz beta rhythm. Reference: zero-phase 4-45 Hz Butterworth (order 4,
sosfiltfilt over the whole recording), the kind of filtering DEAP's preprocessed data
and the earlier offline path had. Each candidate is scored on 3 s windows: correlation
with the reference (min and median over channels and windows, and over each window's
newest 0.25 s), amplitude ratio, and the delay it needs live.

- causal Butterworth (sosfilt): no delay, exact live = offline, but phase-distorted;
- linear-phase FIR (firwin, Hamming; -6 dB at 4 and 45 Hz, where the zero-phase
  Butterworth has its -6 dB points too): live = offline exactly when
  offline applies it zero-phase, delay (taps - 1) / 2 samples;
- forward-backward Butterworth streamed with a look-ahead: the backward pass starts the
  look-ahead after the window's end, so it only approximates the whole-recording result.

    .venv/bin/python bench/filter_design.py
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import signal

RATE = 128.0
CHANNELS = 16
WINDOW = 384
NEWEST = 32


def test_signal(seconds: float = 120.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    gain = np.where(freqs > 0, 1 / np.sqrt(np.maximum(freqs, 1e-9)), 0.0)
    rows = []
    for _ in range(CHANNELS):
        pink = np.fft.irfft(gain * np.exp(2j * np.pi * rng.random(len(freqs))), n)
        pink *= 10 / pink.std()
        beta_phase = 2 * np.pi * 20 * t + np.cumsum(rng.normal(0, 0.05, n))
        rows.append(pink + 5 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6)) + 2 * np.sin(beta_phase))
    return np.stack(rows)


def score(reference: np.ndarray, candidate: np.ndarray, skip: int) -> tuple[float, float, float, float, float]:
    corr, newest, ratio = [], [], []
    for start in range(skip, reference.shape[1] - skip - WINDOW, WINDOW):
        for c in range(reference.shape[0]):
            a, b = reference[c, start:start + WINDOW], candidate[c, start:start + WINDOW]
            corr.append(np.corrcoef(a, b)[0, 1])
            newest.append(np.corrcoef(a[-NEWEST:], b[-NEWEST:])[0, 1])
            ratio.append(b.std() / a.std())
    return min(corr), float(np.median(corr)), min(newest), min(ratio), max(ratio)


def streamed_filtfilt(x: np.ndarray, sos: np.ndarray, lookahead: float, skip: int) -> np.ndarray:
    """Each window as a live filtfilt would make it: forward state kept, backward pass from `lookahead` later."""
    forward, _ = signal.sosfilt(sos, x, axis=-1, zi=signal.sosfilt_zi(sos)[:, None, :] * x[None, :, :1])
    ahead = int(round(lookahead * RATE))
    out = np.zeros_like(x)
    for start in range(skip, x.shape[1] - skip - WINDOW, WINDOW):
        end = start + WINDOW
        block = forward[:, start - 2 * WINDOW:end + ahead][:, ::-1]
        zi = signal.sosfilt_zi(sos)[:, None, :] * block[None, :, :1]
        back = signal.sosfilt(sos, block, axis=-1, zi=zi)[0][:, ::-1]
        out[:, start:end] = back[:, 2 * WINDOW:2 * WINDOW + WINDOW]
    return out


def main() -> int:
    x = test_signal()
    skip = int(10 * RATE)
    butter4 = signal.butter(4, [4, 45], btype="bandpass", fs=RATE, output="sos")
    reference = signal.sosfiltfilt(butter4, x, axis=-1)
    print(f"{'candidate':44} {'delay s':>7} {'corr min':>8} {'median':>7} {'newest':>7} {'amplitude':>13}")

    def row(name: str, y: np.ndarray, delay: float) -> None:
        low, med, new, rlo, rhi = score(reference, y, skip)
        print(f"{name:44} {delay:7.3f} {low:8.4f} {med:7.4f} {new:7.4f} {rlo:6.3f}-{rhi:6.3f}")

    for order in (4, 2):
        sos = signal.butter(order, [4, 45], btype="bandpass", fs=RATE, output="sos")
        row(f"causal Butterworth order {order}", signal.sosfilt(sos, x, axis=-1), 0.0)
    for taps in (65, 81, 97, 113, 129):
        h = signal.firwin(taps, [4.0, 45.0], pass_zero=False, window="hamming", fs=RATE)
        row(f"linear-phase FIR, {taps} taps", signal.oaconvolve(x, h[None, :], mode="same", axes=-1),
            (taps - 1) / 2 / RATE)
    for lookahead in (0.25, 0.375, 0.42, 0.5, 1.0):
        row(f"streamed filtfilt, {lookahead:g} s look-ahead", streamed_filtfilt(x, butter4, lookahead, skip), lookahead)
    bands = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 45.0, 47.0, 50.0]
    h = signal.firwin(97, [4.0, 45.0], pass_zero=False, window="hamming", fs=RATE)
    _, fir = signal.freqz(h, worN=bands, fs=RATE)
    _, butter = signal.sosfreqz(butter4, worN=bands, fs=RATE)
    for name, db in (("chosen FIR, 97 taps", 20 * np.log10(np.abs(fir))),
                     ("zero-phase Butterworth 4", 40 * np.log10(np.abs(butter)))):
        print(f"{name} response, dB: " + ", ".join(f"{f:g} Hz {d:.1f}" for f, d in zip(bands, db, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
