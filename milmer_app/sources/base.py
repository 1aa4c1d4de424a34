"""The life cycle every source shares: connect, a worker thread pulling data into a buffer, disconnect.

A subclass implements `_open()` (find and open the device, fill in what it
is: names, rate; raise SourceError if it cannot), `_pull()` (one short
blocking read that pushes what arrived) and `_close()`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from milmer_app.buffers import Frame, FrameBuffer, SampleBuffer, StreamMonitor
from models.errors import SourceError

log = logging.getLogger(__name__)

EventSink = Callable[[str, str], None]   # (level, message)


class Source(ABC):
    kind: str = ""

    def __init__(self, name: str):
        self.name = name
        self.connected = False
        self.finished = threading.Event()      # set when a finite source (replay, file) has no more data
        self.error: str | None = None          # why the worker stopped, when it failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: list[EventSink] = []
        self.monitor = StreamMonitor(0.0)
        self.replay = None                     # a ReplayControl for replayed sources
        # LSL time where the data stopped being continuous with what came before (a replay's new
        # trial or a seek): windows reaching back before it would mix two pieces of signal.
        self.segment_start = float("-inf")

    def mark_discontinuity(self, at: float, reason: str | None = None) -> None:
        """Data stamped from `at` on is not continuous with what came before (a new trial, a seek, a
        clock jump, a file's segment break): no window may span it. `reason` is reported as a warning."""
        self.segment_start = float(at)
        if reason:
            self.emit_event("warning", f"{self.name}: {reason}")

    def add_event_sink(self, sink: EventSink) -> None:
        self._events.append(sink)

    def emit_event(self, level: str, message: str) -> None:
        sinks = list(self._events)
        if not sinks:  # a listener (the engine) logs the event itself
            getattr(log, "error" if level == "error" else level if level == "warning" else "info")(message)
        for sink in sinks:
            sink(level, message)

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
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
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


class EEGSource(Source):
    """Pushes (C, n) float32 microvolt chunks with LSL-clock timestamps into `buffer`."""

    kind = "eeg"
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

    def _prepare(self) -> None:
        if not self.channel_names or self.srate <= 0:
            raise SourceError(f"{self.name}: source reported no channels or no sampling rate")
        if self.buffer is None or self.buffer.n_channels != len(self.channel_names):
            self.buffer = SampleBuffer(len(self.channel_names), int(self.buffer_seconds * self.srate))
        self.monitor = StreamMonitor(self.srate)

    def push(self, chunk: np.ndarray, timestamps: np.ndarray) -> None:
        assert self.buffer is not None
        self.buffer.write(chunk, timestamps)
        self.monitor.record(timestamps)


class VideoSource(Source):
    """Pushes BGR frames stamped on the LSL clock into `buffer`."""

    kind = "video"
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
        assert self.buffer is not None
        self._seq += 1
        self.buffer.write(Frame(image, float(timestamp), (self._epoch, self._seq)))
        self.monitor.record(np.array([timestamp]))
