"""Recordings with the properties of real DC-coupled amplifiers, written as real files and streamed over LSL.

`make_recording` builds an MNE Raw in volts: pink background, alpha (occipital) and beta
rhythms with wandering phase, per-channel electrode offsets of several mV, slow drift and
50 Hz mains on the EEG channels (10-20 labels, some in clinical spelling), mixed with EOG,
ECG, EMG, trigger and accelerometer channels. `RecordingOutlet` streams a Raw over a real
pylsl outlet in one of three ways: volts labelled as mne-lsl labels them (unit "0"),
microvolts labelled ``microvolts``, or microvolts with no unit; it pushes quickly, in steps
the test controls, with each sample stamped at its recording time (in the past).
"""

from __future__ import annotations

import numpy as np
import pylsl

# 20 EEG channels (old temporal names and clinical spellings included) among other kinds.
CHANNELS: tuple[tuple[str, str], ...] = (
    ("EEG Fp1-Ref", "eeg"), ("Fp2", "eeg"), ("hEOG", "eog"), ("F3", "eeg"), ("F4", "eeg"), ("F7", "eeg"),
    ("F8", "eeg"), ("Fz", "eeg"), ("ECG", "ecg"), ("C3", "eeg"), ("C4", "eeg"), ("Cz", "eeg"), ("T3", "eeg"),
    ("T4", "eeg"), ("EMG chin", "emg"), ("P3", "eeg"), ("P4", "eeg"), ("T5", "eeg"), ("T6", "eeg"),
    ("Pz", "eeg"), ("Trigger", "stim"), ("O1", "eeg"), ("O2", "eeg"), ("Oz", "eeg"),
    ("AccX", "misc"), ("AccY", "misc"), ("AccZ", "misc"),
)
EEG_NAMES = tuple(name for name, kind in CHANNELS if kind == "eeg")
UNIT_MODES = ("volts-mne", "microvolts", "none")


def _pink(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum *= np.where(freqs > 0.5, 1.0 / np.sqrt(np.maximum(freqs, 0.5)), 0.0)
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def _rhythm(rng: np.random.Generator, freq: float, n: int, rate: float) -> np.ndarray:
    phase = rng.uniform(0, 2 * np.pi) + np.cumsum(2 * np.pi * freq / rate + rng.normal(0, 0.02, n))
    return np.sin(phase)


def make_recording(rate: float = 512.0, seconds: float = 20.0, seed: int = 0, offset_mv: float = 8.0,
                   drift_uv_per_s: float = 20.0, mains_uv: float = 15.0):
    """An MNE RawArray in volts. Electrode offsets are uniform in +-offset_mv (at least a quarter of it)."""
    import mne

    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    data = np.zeros((len(CHANNELS), n))
    for row, (name, kind) in enumerate(CHANNELS):
        if kind == "eeg":
            alpha = 12.0 if name in ("O1", "O2", "Oz", "P3", "P4", "Pz", "T5", "T6") else 4.0
            uv = (10.0 * _pink(rng, n, rate) + alpha * _rhythm(rng, 10.0, n, rate)
                  + 3.0 * _rhythm(rng, 21.0, n, rate) + mains_uv * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 6)))
            offset = rng.choice([-1, 1]) * rng.uniform(0.25, 1.0) * offset_mv * 1e3
            drift = drift_uv_per_s * t * rng.uniform(-1, 1) + 200.0 * np.sin(2 * np.pi * t / 97.0 + rng.uniform(0, 6))
            data[row] = (uv + offset + drift) * 1e-6
        elif kind == "eog":
            blinks = np.zeros(n)
            blinks[rng.integers(0, n, max(1, int(seconds / 4)))] = 1.0
            blink_shape = np.convolve(blinks, np.hanning(int(0.3 * rate)), mode="same")
            data[row] = (blink_shape * 150 + 5 * rng.standard_normal(n)) * 1e-6
        elif kind == "ecg":
            beats = np.zeros(n)
            beats[:: max(1, int(rate * 0.85))] = 1.0
            data[row] = (np.convolve(beats, np.hanning(max(3, int(0.04 * rate))), mode="same") * 800) * 1e-6
        elif kind == "emg":
            data[row] = 30e-6 * rng.standard_normal(n)
        elif kind == "stim":
            data[row] = np.where((t % 5.0) < 0.1, 4.0, 0.0)
        else:   # accelerometer, in g
            data[row] = (1.0 if name == "AccZ" else 0.0) + 0.01 * rng.standard_normal(n)
    info = mne.create_info([name for name, _ in CHANNELS], rate, [kind for _, kind in CHANNELS])
    return mne.io.RawArray(data, info, verbose="error")


def write_and_read(raw, path):
    """Save a Raw as a FIF file and read it back (what a lab's file holds, float32 on disk)."""
    import mne

    raw.save(path, overwrite=True, verbose="error")
    return mne.io.read_raw_fif(path, preload=True, verbose="error")


def eeg_microvolts(raw) -> tuple[np.ndarray, list[str]]:
    """The recording's EEG rows in microvolts (float64) and their labels."""
    picks = [raw.ch_names.index(name) for name in EEG_NAMES]
    return raw.get_data(picks=picks) * 1e6, list(EEG_NAMES)


class RecordingOutlet:
    """A Raw on a pylsl outlet; `push_until(seconds)` pushes the recording up to that time at once."""

    def __init__(self, raw, name: str, unit_mode: str):
        if unit_mode not in UNIT_MODES:
            raise ValueError(f"unit_mode must be one of {UNIT_MODES}")
        self.rate = float(raw.info["sfreq"])
        values = raw.get_data()
        kinds = raw.get_channel_types()
        if unit_mode != "volts-mne":
            scale = np.array([1e6 if kind in ("eeg", "eog", "ecg", "emg") else 1.0 for kind in kinds])
            values = values * scale[:, None]
        self.samples = np.ascontiguousarray(values.T, dtype=np.float32)   # (n, channels)
        info = pylsl.StreamInfo(name, "EEG", len(raw.ch_names), self.rate, pylsl.cf_float32, f"rec-{name}")
        channels = info.desc().append_child("channels")
        for label, kind in zip(raw.ch_names, kinds, strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("type", kind.upper())
            if unit_mode == "volts-mne":
                channel.append_child_value("unit", "0")   # MNE's multiplier: volts
            elif unit_mode == "microvolts" and kind in ("eeg", "eog", "ecg", "emg"):
                channel.append_child_value("unit", "microvolts")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
        self.pushed = 0
        self.t0: float | None = None        # LSL time of sample 0

    def start_clock(self, now: float) -> None:
        """Stamp sample 0 so that the whole recording lies in the past of `now`."""
        self.t0 = now - len(self.samples) / self.rate - 1.0

    def push_until(self, seconds: float, chunk: int = 64) -> None:
        assert self.t0 is not None, "start_clock first"
        stop = min(len(self.samples), int(round(seconds * self.rate)))
        for first in range(self.pushed, stop, chunk):
            last = min(stop, first + chunk)
            self.outlet.push_chunk(self.samples[first:last], self.t0 + (last - 1) / self.rate)
        self.pushed = max(self.pushed, stop)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate
