"""Ring buffers with timestamps, a monitor per stream, and a guard on a live stream's clock.

Writers copy each incoming chunk once into preallocated storage (at most two
slice assignments when it wraps); readers get copies of just the span they ask
for. Positions are absolute sample counts, so a reader can tell what is new.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from milmer_app.clock import local_clock

ChunkListener = Callable[[np.ndarray, np.ndarray], None]


class SampleBuffer:
    """Multichannel samples (C, capacity) float32 with float64 timestamps."""

    def __init__(self, n_channels: int, capacity: int):
        if n_channels < 1 or capacity < 1:
            raise ValueError(f"SampleBuffer needs channels and capacity >= 1, got {n_channels}, {capacity}")
        self.n_channels = n_channels
        self.capacity = capacity
        self._data = np.zeros((n_channels, capacity), dtype=np.float32)
        self._times = np.zeros(capacity, dtype=np.float64)
        self._count = 0
        self._cond = threading.Condition()
        self._listeners: list[ChunkListener] = []

    @property
    def count(self) -> int:
        """Samples written since creation (absolute position of the next sample)."""
        return self._count

    def add_listener(self, listener: ChunkListener) -> None:
        """Called with each written chunk (C, n) and its timestamps, on the writer's thread."""
        self._listeners.append(listener)

    def remove_listener(self, listener: ChunkListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def write(self, chunk: np.ndarray, timestamps: np.ndarray) -> None:
        """Append a chunk shaped (C, n) with n timestamps."""
        n = chunk.shape[1]
        if chunk.shape[0] != self.n_channels or timestamps.shape != (n,):
            raise ValueError(f"chunk {chunk.shape} / timestamps {timestamps.shape} "
                             f"do not fit {self.n_channels} channels")
        if n == 0:
            return
        if n > self.capacity:
            chunk, timestamps = chunk[:, -self.capacity:], timestamps[-self.capacity:]
            skipped = n - self.capacity
            n = self.capacity
        else:
            skipped = 0
        with self._cond:
            start = (self._count + skipped) % self.capacity
            first = min(n, self.capacity - start)
            self._data[:, start:start + first] = chunk[:, :first]
            self._times[start:start + first] = timestamps[:first]
            if first < n:
                self._data[:, :n - first] = chunk[:, first:]
                self._times[:n - first] = timestamps[first:]
            self._count += skipped + n
            self._cond.notify_all()
        for listener in list(self._listeners):
            listener(chunk, timestamps)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` samples have been written or the timeout passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count >= count, timeout=timeout)

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A copy of the last n samples (fewer if fewer are held): (C, m) and (m,)."""
        with self._cond:
            m = min(n, self._count, self.capacity)
            return self._copy(self._count - m, m)

    def since(self, position: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Samples from absolute position on (clipped to what is still held), and the new position."""
        with self._cond:
            start = max(position, self._count - self.capacity)
            m = max(0, self._count - start)
            data, times = self._copy(start, m)
            return data, times, self._count

    def last_timestamp(self) -> float | None:
        with self._cond:
            if self._count == 0:
                return None
            return float(self._times[(self._count - 1) % self.capacity])

    def _copy(self, start: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        idx = (start + np.arange(m)) % self.capacity
        return self._data[:, idx], self._times[idx]


@dataclass(frozen=True)
class Frame:
    """One video frame: BGR uint8 image, LSL timestamp, and a key unique within the engine's run."""

    image: np.ndarray
    timestamp: float
    key: tuple[int, int]   # (source epoch, sequence number)


class FrameBuffer:
    """The last `capacity` frames, in arrival order."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._frames: deque[Frame] = deque(maxlen=capacity)
        self._lock = threading.Condition()
        self._count = 0
        self._listeners: list[Callable[[Frame], None]] = []

    @property
    def count(self) -> int:
        return self._count

    def add_listener(self, listener: Callable[[Frame], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Frame], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def write(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self._count += 1
            self._lock.notify_all()
        for listener in list(self._listeners):
            listener(frame)

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._count >= count, timeout=timeout)

    def latest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def between(self, start: float, end: float) -> list[Frame]:
        """Frames with start <= timestamp <= end, oldest first."""
        with self._lock:
            return [f for f in self._frames if start <= f.timestamp <= end]


@dataclass
class MonitorReport:
    nominal_rate: float
    effective_rate: float
    gaps: int
    dropped: int
    late: int
    seconds_since_last: float
    lost: bool
    rate_off: bool = False        # the measured rate differs from the nominal one by more than RATE_WARN


RATE_WARN = 0.05   # measured rate this far (relative) from the nominal one: a warning and a status flag
RATE_STOP = 0.20   # this far: the stream is not what it says it is; the source stops with an error


class StreamMonitor:
    """Arrival statistics of one stream.

    - effective rate: samples per second of timestamps over the last `rate_window` seconds;
      `rate_ratio()` gives measured / nominal once a full `rate_window` of timestamps has
      been seen since the start or the last `restart()` (a discontinuity);
    - delivery: samples per second of this machine's clock over the last `delivery_window`
      seconds of uninterrupted arrival (`delivery_ratio()`): it catches a stream whose
      timestamps follow the declared rate while its samples come faster or slower. A pause
      longer than `lost_after` starts the measurement again, so a catch-up after an outage
      is not taken for a fast stream;
    - gaps: jumps between consecutive timestamps larger than `gap_factor` sample periods
      (and at least 0.1 s); dropped: samples those gaps should have held;
    - late: chunks arriving more than `late_s` after their last timestamp;
    - lost: no data for more than `lost_after` seconds (checked by `check()`).
    """

    def __init__(self, nominal_rate: float, lost_after: float = 1.25, rate_window: float = 5.0,
                 gap_factor: float = 3.0, late_s: float = 1.0, delivery_window: float = 10.0):
        self.nominal_rate = nominal_rate
        self.lost_after = lost_after
        self.rate_window = rate_window
        self.delivery_window = delivery_window
        self._delivered: deque[tuple[float, int]] = deque()  # (local arrival time, samples)
        self.gap_factor = gap_factor
        self.late_s = late_s
        self._lock = threading.Lock()
        self._arrivals: deque[tuple[float, int]] = deque()   # (last timestamp of chunk, samples)
        self._last_ts: float | None = None
        self._last_arrival: float | None = None
        self._gaps = 0
        self._dropped = 0
        self._late = 0
        self._lost = False
        self.rate_off = False     # set by the source that judges `rate_ratio()`
        self._held_rate = 0.0     # the rate before the last `reanchor()`

    def restart(self) -> None:
        """Forget the rate measurement (after a discontinuity: spans across it mean nothing)."""
        with self._lock:
            self._arrivals.clear()
            self._delivered.clear()

    def delivery_ratio(self) -> float | None:
        """Samples delivered per second of this clock / nominal rate, over a full `delivery_window`."""
        with self._lock:
            if self.nominal_rate <= 0 or len(self._delivered) < 2:
                return None
            span = self._delivered[-1][0] - self._delivered[0][0]
            if span < self.delivery_window:
                return None
            samples = sum(n for _, n in list(self._delivered)[1:])
            return samples / span / self.nominal_rate

    def _rate(self) -> float:
        """Samples per second of timestamps over the arrivals held (call with the lock held)."""
        if len(self._arrivals) < 2:
            return 0.0
        span = self._arrivals[-1][0] - self._arrivals[0][0]
        samples = sum(n for _, n in list(self._arrivals)[1:])
        return samples / span if span > 0 else 0.0

    def rate_ratio(self) -> float | None:
        """Measured / nominal rate over a full `rate_window` of timestamps; None until there is one."""
        with self._lock:
            if self.nominal_rate <= 0 or len(self._arrivals) < 2:
                return None
            span = self._arrivals[-1][0] - self._arrivals[0][0]
            if span < self.rate_window:
                return None
            samples = sum(n for _, n in list(self._arrivals)[1:])
            return samples / span / self.nominal_rate

    def reanchor(self) -> None:
        """The stream's clock was re-anchored on purpose (a replay's pause, seek, speed or item change):
        the next chunk is not compared with the last one, so the jump is not counted as a gap."""
        with self._lock:
            self._held_rate = self._rate()   # shown until the new clock has two chunks to measure
            self._last_ts = None
            self._arrivals.clear()
            self._lost = False

    def record(self, timestamps: np.ndarray) -> None:
        """Account for a chunk of samples (or one frame) that just arrived."""
        if len(timestamps) == 0:
            return
        now = local_clock()
        last = float(timestamps[-1])
        with self._lock:
            period = 1.0 / self.nominal_rate if self.nominal_rate > 0 else None
            if self._last_ts is not None and period is not None:
                steps = np.diff(np.concatenate([[self._last_ts], timestamps]))
                limit = max(self.gap_factor * period, 0.1)
                jumps = steps[steps > limit]
                if len(jumps):
                    self._gaps += len(jumps)
                    self._dropped += int(np.round(jumps.sum() / period)) - len(jumps)
            if now - last > self.late_s:
                self._late += 1
            if self._last_arrival is not None and now - self._last_arrival > self.lost_after:
                self._delivered.clear()
            self._delivered.append((now, len(timestamps)))
            while len(self._delivered) > 1 and self._delivered[1][0] <= now - self.delivery_window:
                self._delivered.popleft()
            self._last_ts = last
            self._last_arrival = now
            self._arrivals.append((last, len(timestamps)))
            # Keep one chunk older than the window, so that a full window can be measured.
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= last - self.rate_window:
                self._arrivals.popleft()

    def check(self) -> tuple[MonitorReport, str | None]:
        """The current report and a transition: "lost", "back" or None."""
        now = local_clock()
        with self._lock:
            since = now - self._last_arrival if self._last_arrival is not None else float("inf")
            transition = None
            if self._last_arrival is not None:
                lost = since > self.lost_after
                if lost != self._lost:
                    transition = "lost" if lost else "back"
                    self._lost = lost
            rate = self._rate() if len(self._arrivals) >= 2 else self._held_rate
            report = MonitorReport(self.nominal_rate, rate, self._gaps, self._dropped, self._late,
                                   since, self._lost, self.rate_off)
        return report, transition


@dataclass(frozen=True)
class ClockBreak:
    index: int          # first sample of the chunk after the break
    message: str


class ClockGuard:
    """Keeps a live stream's timestamps usable when its clock jumps.

    A sample stamped more than `back_tolerance` s before the newest one already
    received (timestamps running backwards), or more than `ahead_limit` s ahead of
    this machine's clock at arrival, starts a new piece of signal: from there on the
    stream is re-anchored, i.e. its timestamps are shifted so that the piece
    continues after what came before and its newest sample is stamped no later than
    its arrival. The caller marks the break as a discontinuity, so no window spans it.
    Smaller backward steps are timestamp jitter of chunked devices and pass unchanged.
    Once re-anchored, the stream is held closer (`reanchored_limit`): a backward run
    that was a burst of old samples (mne-lsl's player re-sends its file so when the
    file length is a multiple of its chunk size) is followed by the stream's own clock
    again, which the offset would otherwise leave ahead of this machine's clock.
    """

    def __init__(self, rate: float, ahead_limit: float = 2.0, back_tolerance: float = 0.2,
                 reanchored_limit: float = 0.5):
        self.period = 1.0 / rate
        self.ahead_limit = ahead_limit
        self.reanchored_limit = reanchored_limit
        self.back_tolerance = back_tolerance
        self.offset = 0.0                  # added to the stream's own timestamps
        self.last: float | None = None     # newest corrected timestamp so far

    def reset_offset(self) -> None:
        """A reopened stream starts on its own clock again (a break is still caught against `last`)."""
        self.offset = 0.0

    def correct(self, raw: np.ndarray, now: float) -> tuple[np.ndarray, list[ClockBreak]]:
        """The chunk's timestamps on the guarded clock, and the breaks found in it."""
        times = np.asarray(raw, dtype=np.float64) + self.offset
        breaks: list[ClockBreak] = []
        start = 0
        while start < len(times):
            previous = np.concatenate([[self.last if self.last is not None else -np.inf], times[:-1]])[start:]
            newest = np.maximum.accumulate(previous)
            backwards = times[start:] < newest - self.back_tolerance
            # After a break the rest of the chunk belongs to the new piece: it is only checked for
            # backward runs (continuity with a piece that was itself ahead keeps it ahead for now).
            limit = self.ahead_limit if self.offset == 0 else self.reanchored_limit
            ahead = times[start:] > now + limit if not breaks else np.zeros(len(times) - start, bool)
            found = np.flatnonzero(backwards | ahead)
            if not len(found):
                break
            k = start + int(found[0])
            if ahead[k - start]:
                message = f"timestamps jumped {times[k] - now:.3g} s ahead of this machine's clock"
            else:
                message = f"timestamps ran {newest[k - start] - times[k]:.3g} s backwards"
            # The newest sample of the chunk is stamped at its arrival, unless that would overlap the past.
            shift = now - times[-1]
            if np.isfinite(newest[k - start]):
                shift = max(shift, newest[k - start] + self.period - times[k])
            times[k:] += shift
            self.offset += shift
            breaks.append(ClockBreak(k, message + f"; re-anchored by {shift:+.3g} s, no window spans the break"))
            start = k + 1
        if len(times):
            self.last = max(float(times.max()), self.last if self.last is not None else -np.inf)
        return times, breaks
