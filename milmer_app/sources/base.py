"""The life cycle every source shares: connect, a worker thread pulling data into a buffer, disconnect.

A subclass implements `_open()` (find and open the device, fill in what it
is: names, rate; raise SourceError if it cannot), `_pull()` (one short
blocking read that pushes what arrived) and `_close()`. A source is a context
manager: `with source:` connects it and disconnects it on the way out (a
disconnect before that is fine).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self

import numpy as np

from milmer_app.buffers import RATE_STOP, RATE_WARN, ClockGuard, Frame, FrameBuffer, SampleBuffer, StreamMonitor
from milmer_app.clock import local_clock
from milmer_app.stopping import join_or_warn
from models.errors import SourceError

log = logging.getLogger(__name__)

EventSink = Callable[[str, str], None]   # (level, message)
MarkerSink = Callable[[str, float], None]   # (text, LSL time): triggers, annotations, marker streams


class Source(ABC):
    role: str = ""                 # "eeg", "video" or "markers" (the registry's word for it)

    def __init__(self, name: str):
        self.name = name
        self.connected = False
        self.finished = threading.Event()      # set when a finite source (replay, file) has no more data
        self.error: str | None = None          # why the worker stopped, when it failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: list[EventSink] = []
        self._markers: list[MarkerSink] = []
        self.monitor = StreamMonitor(0.0)
        self.replay = None                     # a ReplayControl for replayed sources
        # LSL time where the data stopped being continuous with what came before (a replay's new
        # trial or a seek): windows reaching back before it would mix two pieces of signal.
        self.segment_start = float("-inf")
        self._replay_clock: tuple[int, float] | None = None   # (generation, anchor) of the last push
        # A replay's (segment_start, truth, description) of the data from that segment start on: the
        # replay itself moves on to the next item a moment before its source has pushed any of its data.
        self.segment_label: tuple[float, int | None, str] | None = None

    def _monitor_arrival(self, timestamps: np.ndarray) -> None:
        """Count an arrival; a replay's re-anchored clock (pause, seek, speed, next item) is an event of
        the replay, logged by the engine, not a gap of the stream."""
        replay = self.replay
        if replay is not None:
            generation, anchor, *_ = replay.snapshot()
            if self._replay_clock is not None and self._replay_clock != (generation, anchor):
                self.monitor.reanchor()
            self._replay_clock = (generation, anchor)
        self.monitor.record(timestamps)

    def mark_discontinuity(self, at: float, reason: str | None = None) -> None:
        """Data stamped from `at` on is not continuous with what came before (a new trial, a seek, a
        clock jump, a file's segment break): no window may span it. `reason` is reported as a warning."""
        self.segment_start = float(at)
        self.monitor.restart()
        if reason:
            self.emit_event("warning", f"{self.name}: {reason}")

    def add_event_sink(self, sink: EventSink) -> None:
        self._events.append(sink)

    def add_marker_sink(self, sink: MarkerSink) -> None:
        self._markers.append(sink)

    def emit_marker(self, text: str, timestamp: float) -> None:
        """A marker in the data (a trigger, an annotation, a marker stream's sample) at LSL time `timestamp`."""
        if not self._markers:
            log.info("%s: marker %s at %.3f", self.name, text, timestamp)
        for sink in list(self._markers):
            sink(text, timestamp)

    def emit_event(self, level: str, message: str) -> None:
        sinks = list(self._events)
        if not sinks:  # a listener (the engine) logs the event itself
            getattr(log, "error" if level == "error" else level if level == "warning" else "info")(message)
        for sink in sinks:
            sink(level, message)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def _check_connected(self, method: str) -> None:
        """RuntimeError naming `method` when the source was never connected (its buffer does not exist yet)."""
        if getattr(self, "buffer", None) is None:
            raise RuntimeError(f"{self.name}: {method}() needs a connected source; call connect() first "
                               "(or use the source in a 'with' block)")

    def connect(self) -> None:
        if self.connected:
            return
        self._open()
        self._prepare()
        self._stop.clear()
        self.finished.clear()
        self.error = None
        self._thread = threading.Thread(target=self._loop, name=f"source:{self.name}", daemon=True)
        self.connected = True
        self._thread.start()

    def _prepare(self) -> None:
        """Set up buffer and monitor once the device is open and described."""

    def disconnect(self) -> None:
        if not self.connected:
            return
        self._stop.set()
        if self._thread is not None:
            join_or_warn(self._thread, 5.0, f"source {self.name}'s reader", "the device is closed under it")
        self._thread = None
        try:
            self._close()
        finally:
            self.connected = False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                more = self._pull()
            except SourceError as exc:  # its message names the stream already
                self._fail(str(exc))
                return
            except Exception as exc:  # a worker thread must report, not vanish
                log.exception("%s: source worker failed", self.name)
                self._fail(f"{self.name}: source failed: {exc}")
                return
            if more is False:
                self.finished.set()
                return

    def _fail(self, message: str) -> None:
        self.error = message
        self.emit_event("error", message)
        self.finished.set()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _pull(self) -> bool | None:
        """Read once (block at most ~0.1 s). Return False when a finite source is exhausted."""

    def _close(self) -> None:
        """Release the device; default: nothing to release."""


BREAKS_LIMIT = 3
BREAKS_WINDOW = 10.0


class EEGSource(Source):
    """Pushes (C, n) float32 microvolt chunks with LSL-clock timestamps into `buffer`.

    A live source (one without a replay clock) is watched as it pushes: its clock by a
    `ClockGuard` (backward runs and jumps ahead become discontinuities), its rate by the
    monitor (over a full 5 s window of timestamps: more than 5 % off the nominal rate is a
    warning and the status flag `rate_off`, more than 20 % stops the source with a
    SourceError; samples delivered per second of this clock more than 20 % off over 10 s
    of steady arrival stop it too, whatever the timestamps say). A
    replay stamps its own samples on the replay clock (at --speed, across seeks and
    pauses), so it is not second-guessed. A clock that breaks BREAKS_LIMIT times within
    BREAKS_WINDOW seconds (a device stamping at its declared rate while sending at
    another runs ahead again and again) leaves no room for a window: the source stops.
    """

    role = "eeg"
    buffer_seconds = 60.0
    # What was already done to the data (DEAP's preprocessed files: 4-45 Hz, average reference).
    # Training read such data as it is, so the live path must not do it a second time.
    already_filtered: tuple[float, float] | None = None
    already_referenced: bool = False

    def __init__(self, name: str):
        super().__init__(name)
        self.channel_names: list[str] = []
        self.srate: float = 0.0
        self.buffer: SampleBuffer | None = None
        # The unit the device's samples arrived in (they are pushed as microvolts), and where
        # that came from: "stream" (its labels), "spec" (unit=), "amplitude" (judged: an
        # assumption), "device" (the device's documented unit) or "source" (our own files).
        self.unit = "µV"
        self.unit_origin = "source"
        self.clock: ClockGuard | None = None
        self._breaks: list[float] = []        # local times of recent clock breaks

    @property
    def unit_assumed(self) -> bool:
        return self.unit_origin == "amplitude"

    def unit_text(self) -> str:
        """The unit for status lines, e.g. "µV", "V (assumed)", "mV (set by spec)"."""
        note = {"amplitude": " (assumed)", "spec": " (set by spec)"}.get(self.unit_origin, "")
        return self.unit + note

    def _prepare(self) -> None:
        if not self.channel_names or self.srate <= 0:
            raise SourceError(f"{self.name}: source reported no channels or no sampling rate")
        if self.buffer is None or self.buffer.n_channels != len(self.channel_names):
            self.buffer = SampleBuffer(len(self.channel_names), int(self.buffer_seconds * self.srate))
        self.monitor = StreamMonitor(self.srate)
        self.clock = ClockGuard(self.srate) if self.replay is None else None

    def push(self, chunk: np.ndarray, timestamps: np.ndarray) -> None:
        self._check_connected("push")
        if self.clock is not None and len(timestamps):
            timestamps, breaks = self.clock.correct(timestamps, local_clock())
            for found in breaks:
                self.mark_discontinuity(float(timestamps[found.index]), found.message)
            if breaks:
                self._count_breaks(len(breaks))
        self.buffer.write(chunk, timestamps)
        self._monitor_arrival(timestamps)
        if self.clock is not None:
            self._check_rate()

    def _count_breaks(self, count: int) -> None:
        now = local_clock()
        self._breaks = [t for t in self._breaks if t > now - BREAKS_WINDOW] + [now] * count
        if len(self._breaks) >= BREAKS_LIMIT:
            raise SourceError(f"{self.name}: the stream's timestamps broke {len(self._breaks)} times within "
                              f"{BREAKS_WINDOW:g} s (declared rate {self.srate:g} Hz): samples arrive out of time "
                              "order or faster than their timestamps say; they cannot be placed in time",
                              hint="check the device's clock and declared sampling rate, or the player "
                                   "re-sending data")

    def _check_rate(self) -> None:
        delivered = self.monitor.delivery_ratio()
        if delivered is not None and abs(delivered - 1) > RATE_STOP:
            raise SourceError(f"{self.name}: the stream declares {self.srate:g} Hz but delivers "
                              f"{delivered * self.srate:.1f} samples per second (over "
                              f"{self.monitor.delivery_window:g} s of arrivals), whatever its timestamps say; "
                              "its samples cannot be placed in time",
                              hint="fix the device's or outlet's sampling rate")
        ratio = self.monitor.rate_ratio()
        if ratio is None:
            return
        measured = ratio * self.srate
        if abs(ratio - 1) > RATE_STOP:
            raise SourceError(f"{self.name}: the stream declares {self.srate:g} Hz but sends {measured:.1f} Hz "
                              f"(measured over {self.monitor.rate_window:g} s of its timestamps); "
                              "its samples cannot be placed in time",
                              hint="fix the device's or outlet's sampling rate")
        off = abs(ratio - 1) > RATE_WARN
        if off != self.monitor.rate_off:
            self.monitor.rate_off = off
            if off:
                self.emit_event("warning", f"{self.name}: the stream declares {self.srate:g} Hz but sends "
                                           f"{measured:.1f} Hz ({100 * (ratio - 1):+.0f} %)")
            else:
                self.emit_event("info", f"{self.name}: rate back to {measured:.1f} Hz (declared {self.srate:g} Hz)")


class VideoSource(Source):
    """Pushes BGR frames stamped on the LSL clock into `buffer`."""

    role = "video"
    buffer_seconds = 20.0
    _epochs = 0
    _epoch_lock = threading.Lock()

    def __init__(self, name: str):
        super().__init__(name)
        self.fps: float = 0.0
        self.buffer: FrameBuffer | None = None
        with VideoSource._epoch_lock:
            VideoSource._epochs += 1
            self._epoch = VideoSource._epochs
        self._seq = 0

    def _prepare(self) -> None:
        if self.fps <= 0:
            raise SourceError(f"{self.name}: video source reported no frame rate")
        if self.buffer is None:
            self.buffer = FrameBuffer(max(8, int(self.buffer_seconds * self.fps)))
        self.monitor = StreamMonitor(self.fps, gap_factor=4.0)

    def push(self, image: np.ndarray, timestamp: float) -> None:
        self._check_connected("push")
        self._seq += 1
        self.buffer.write(Frame(image, float(timestamp), (self._epoch, self._seq)))
        self._monitor_arrival(np.array([timestamp]))
