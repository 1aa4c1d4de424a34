"""The contract's EEG transform on a live stream: stateful, chunk by chunk, equal to the offline one.

`StreamingEEG` takes device chunks (microvolts, LSL-clock timestamps) as they arrive and
runs the stages of `models.pipeline.eeg` with their state kept across chunks: the offset
high-pass (steady-state start at the segment's first sample), a polyphase resampler with
the taps of ``resample_poly`` (zero history at the segment start, as ``resample_poly``
pads), and the linear-phase FIR band-pass. Nothing is padded per window, so the window
given to the model equals `offline_eeg` of the whole segment over the same span, newest
samples included, to float rounding.

The price is a delay: a linear-phase FIR (and the resampler's) output is final only
half its length after its input. The window therefore ends ``delay`` seconds before the
newest sample (97 taps at 128 Hz: 0.375 s; with a resampler about 0.45 s in all); the
bag's video frames come from the same, earlier span and every prediction reports the
delay. The alternatives measured (see `models.pipeline.eeg`): a causal IIR band-pass has
no delay but its phase leaves a correlation of 0.36-0.72 with zero-phase filtering; a
forward-backward IIR streamed with a look-ahead only approximates its offline result.

Steps the source has done already (DEAP's preprocessed files: 4-45 Hz, average reference)
are skipped, as training skips them. A discontinuity (`restart`) starts every state afresh;
no window spans one. Channels are checked on every window: any NaN/Inf within it or the
filters' reach, flat (std below `flat_uv` after filtering) or saturated (pinned at one
extreme value on consecutive samples for `saturated_fraction` of the window) are masked and named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from models.contract import InputContract
from models.pipeline.channels import ChannelMap
from models.pipeline.eeg import EEGTransform

# Reasons a contract channel is not fed to the model, besides being absent from the stream.
NON_FINITE, FLAT, SATURATED = "NaN/Inf", "flat", "saturated"


@dataclass(frozen=True)
class SignalChecks:
    flat_uv: float = 0.1              # std of the filtered window below this: flat
    saturated_fraction: float = 0.02  # this share of the window's raw samples held at one extreme: saturated
    non_finite_reach_s: float = 1.0   # a NaN/Inf this long before the window (filter reach) still masks it


@dataclass
class EEGWindow:
    eeg: np.ndarray                   # (C, T) float32, as fed to the model (masked rows zero)
    mask: np.ndarray                  # (C,) bool: fed to the model
    start: float                      # LSL time of the first sample
    end: float                        # LSL time of the last sample
    newest_input: float               # LSL time of the newest input sample when it was made
    problems: dict[str, str] = field(default_factory=dict)   # channel -> why masked (absent ones not listed)

    @property
    def delay(self) -> float:
        """Seconds between the window's end and the newest sample received."""
        return self.newest_input - self.end


class _Resampler:
    """resample_poly's polyphase filter with its history kept: output m is at input position m * down / up."""

    def __init__(self, channels: int, up: int, down: int, h: np.ndarray, batch: int = 1024):
        self.up, self.down, self.batch = up, down, batch
        self.half_len = (len(h) - 1) // 2
        self.length = int(np.ceil(len(h) / up))           # input samples under the filter per output
        index = np.arange(up)[:, None] + np.arange(self.length)[None, :] * up
        scaled = h * up
        self.taps = np.where(index < len(h), scaled[np.minimum(index, len(h) - 1)], 0.0)   # (up, length)
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        # Zero history before the first sample, as resample_poly pads.
        self.history = np.zeros((self.channels, self.length))
        self.history_start = -self.length
        self.received = 0
        self.next_out = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.history = np.concatenate([self.history, x], axis=1)
        self.received += x.shape[1]
        last_ready = ((self.received * self.up) - 1 - self.half_len) // self.down
        parts = []
        while self.next_out <= last_ready:
            m = np.arange(self.next_out, min(last_ready, self.next_out + self.batch - 1) + 1)
            position = m * self.down + self.half_len
            newest, phase = position // self.up, position % self.up
            index = newest[:, None] - np.arange(self.length)[None, :] - self.history_start
            parts.append(np.einsum("cml,ml->cm", self.history[:, index], self.taps[phase]))
            self.next_out = int(m[-1]) + 1
        keep_from = (self.next_out * self.down + self.half_len) // self.up - (self.length - 1)
        drop = max(0, keep_from - self.history_start)
        self.history = self.history[:, drop:]
        self.history_start += drop
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0))


class StreamingEEG:
    """One stream's contract channels through the contract's EEG transform, continuously."""

    def __init__(self, contract: InputContract, channels: ChannelMap, source_rate: float,
                 already_filtered: tuple[float, float] | None = None, already_referenced: bool = False,
                 checks: SignalChecks = SignalChecks()):
        self.contract = contract
        self.channels = channels
        self.source_rate = float(source_rate)
        self.checks = checks
        self.transform = EEGTransform.from_contract(contract)
        self.filtering = self.transform.needs_filter(already_filtered)
        self.referencing = self.transform.needs_reference(already_referenced)
        self.names = list(contract.eeg_channels)
        n = len(self.names)
        self._highpass = self.transform.dc_highpass_sos(self.source_rate) if self.filtering else None
        up, down, h = self.transform.resampler_taps(self.source_rate)
        self.up, self.down = up, down
        self._resampler = _Resampler(n, up, down, h) if (up, down) != (1, 1) else None
        self._bandpass = self.transform.bandpass_taps() if self.filtering else None
        self._bandpass_lag = (len(self._bandpass) - 1) // 2 if self._bandpass is not None else 0
        self.window_samples = contract.window_samples
        self._raw_keep = int(np.ceil((contract.window_seconds + 2.0 + self.delay) * self.source_rate))
        self.restart()

    @property
    def delay(self) -> float:
        """Designed delay in seconds: how long after the newest input its window's last sample is final."""
        return self.transform.delay_samples(self.source_rate,
                                            None if self.filtering else self.transform.band) / self.transform.rate

    def restart(self) -> None:
        """A new segment: the data from now on is not continuous with what came before."""
        n = len(self.names)
        self._hp_state: np.ndarray | None = None
        if self._resampler is not None:
            self._resampler.reset()
        self._bp_state = np.zeros((n, len(self._bandpass) - 1)) if self._bandpass is not None else None
        self._hold = np.zeros(n)
        self._received = 0                      # input samples in this segment
        self._resampled = 0                     # resampled samples in this segment (before the band-pass lag)
        self._in_index = np.zeros(0, np.int64)   # recent input sample numbers and their times
        self._in_times = np.zeros(0)
        self._raw = np.zeros((n, 0), np.float32)   # recent held raw input (times: _in_times), for the saturation check
        self._out = np.zeros((n, 0))
        self._out_times = np.zeros(0)
        self._bad_until = np.full(n, -np.inf)   # LSL time of each channel's newest NaN/Inf sample

    # -- feeding ---------------------------------------------------------------------------------
    def feed(self, chunk: np.ndarray, times: np.ndarray) -> None:
        """Device samples (C_dev, n) in microvolts with their LSL times, continuing the segment."""
        n = chunk.shape[1]
        if n == 0:
            return
        data = self.channels.apply(chunk).astype(np.float64)   # absent channels are zeros
        self._replace_non_finite(data, times)
        self._remember_input(data, times)
        if self._highpass is not None:
            if self._hp_state is None:   # steady state for the first sample: no start-up step
                self._hp_state = signal.sosfilt_zi(self._highpass)[:, None, :] * data[None, :, :1]
            data, self._hp_state = signal.sosfilt(self._highpass, data, axis=-1, zi=self._hp_state)
        self._received += n
        if self._resampler is not None:
            data = self._resampler(data)
        first = self._resampled
        self._resampled += data.shape[1]
        if self._bandpass is not None and data.shape[1]:
            data, self._bp_state = signal.lfilter(self._bandpass, 1.0, data, axis=-1, zi=self._bp_state)
            # lfilter output j is the zero-phase output j - lag; the first `lag` belong before the start.
            skip = max(0, self._bandpass_lag - first)
            data = data[:, skip:]
            first = first + skip - self._bandpass_lag
        if data.shape[1]:
            stamps = self._times_of(first + np.arange(data.shape[1]))
            keep = self.window_samples
            self._out = np.concatenate([self._out, data], axis=1)[:, -keep:]
            self._out_times = np.concatenate([self._out_times, stamps])[-keep:]

    def _replace_non_finite(self, data: np.ndarray, times: np.ndarray) -> None:
        """NaN/Inf would poison the filters' state: hold each channel's last finite value instead."""
        bad = ~np.isfinite(data)
        rows = np.flatnonzero(bad.any(axis=1))
        for c in rows:
            good = ~bad[c]
            last_good = np.maximum.accumulate(np.where(good, np.arange(len(good)), -1))
            held = np.where(last_good >= 0, data[c, np.maximum(last_good, 0)], self._hold[c])
            data[c] = held
            self._bad_until[c] = float(times[np.flatnonzero(bad[c])[-1]])
        self._hold = data[:, -1].copy()

    def _remember_input(self, data: np.ndarray, times: np.ndarray) -> None:
        index = self._received + np.arange(len(times))
        keep = self._raw_keep
        self._in_index = np.concatenate([self._in_index, index])[-keep:]
        self._in_times = np.concatenate([self._in_times, np.asarray(times, np.float64)])[-keep:]
        self._raw = np.concatenate([self._raw, data.astype(np.float32)], axis=1)[:, -keep:]

    def _times_of(self, resampled_index: np.ndarray) -> np.ndarray:
        """LSL times of resampled samples: at input positions index * down / up, between input stamps."""
        position = resampled_index * (self.down / self.up)
        return np.interp(position, self._in_index, self._in_times)

    # -- windows -------------------------------------------------------------------------------------
    def window(self) -> EEGWindow | None:
        """The newest complete window of this segment, checked and referenced; None until there is one."""
        if self._out.shape[1] < self.window_samples:
            return None
        eeg = self._out.copy()
        start, end = float(self._out_times[0]), float(self._out_times[-1])
        mask = self.channels.mask.copy()
        problems: dict[str, str] = {}
        for c in np.flatnonzero(mask & (self._bad_until >= start - self.checks.non_finite_reach_s)):
            problems[self.names[c]] = NON_FINITE
        flat = eeg.std(axis=1) < self.checks.flat_uv
        saturated = self._saturated(start, end)
        for c in np.flatnonzero(mask):
            if self.names[c] in problems:
                continue
            if flat[c]:
                problems[self.names[c]] = FLAT
            elif saturated[c]:
                problems[self.names[c]] = SATURATED
        for name in problems:
            mask[self.names.index(name)] = False
        eeg[~mask] = 0.0
        if self.referencing and mask.any():
            eeg[mask] -= eeg[mask].mean(axis=0, keepdims=True)
        return EEGWindow(eeg.astype(np.float32), mask, start, end, float(self._in_times[-1]), problems)

    def _saturated(self, start: float, end: float) -> np.ndarray:
        span = (self._in_times >= start) & (self._in_times <= end)
        raw = self._raw[:, span]
        if raw.shape[1] == 0:
            return np.zeros(len(self.names), bool)
        # Held at an extreme for consecutive samples (a periodic signal touches its peak and leaves).
        pinned = np.zeros(len(self.names), np.int64)
        for extreme in (raw.max(axis=1, keepdims=True), raw.min(axis=1, keepdims=True)):
            at = raw == extreme
            pinned = np.maximum(pinned, (at[:, 1:] & at[:, :-1]).sum(axis=1))
        return pinned >= max(4, self.checks.saturated_fraction * raw.shape[1])
