"""The one place the window meets the engine: engine callbacks (worker threads) become Qt signals.

Engines are built, started and stopped on a QThread so the window never blocks on
model loading, device start-up or thread joins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6 import QtCore

from milmer_app.gui.workers import CLOSE_WAIT_S, CallRunner

log = logging.getLogger(__name__)


class EngineBridge(QtCore.QObject):
    """Owns the running `Engine`; signals are delivered on the GUI thread."""

    prediction_ready = QtCore.Signal(object)     # Prediction
    status_ready = QtCore.Signal(object)         # list[StreamStatus]
    event = QtCore.Signal(str, str)              # level, message
    marker = QtCore.Signal(str, float, str)      # text, LSL time, the stream it came from
    started = QtCore.Signal(object)              # the started Engine
    start_failed = QtCore.Signal(str)
    stopped = QtCore.Signal()
    # Engine threads emit these with their engine's generation; the GUI thread checks it again on
    # delivery, so what an old engine queued just before a reconnect never reaches the new views.
    _engine_prediction = QtCore.Signal(int, object)
    _engine_status = QtCore.Signal(int, object)
    _engine_event = QtCore.Signal(int, str, str)
    _engine_marker = QtCore.Signal(int, str, float, str)

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.engine = None
        self.runner = CallRunner(self)
        self._generation = 0          # callbacks of a replaced engine are dropped
        self._closed = False
        self._lock = threading.Lock()  # one start/stop sequence at a time, in order
        # Every engine started and not yet stopped, whether or not the GUI thread has adopted it
        # as `self.engine` yet: a start can finish just before a disconnect or a close, and its
        # engine must still be stopped (guarded by `_lock`).
        self._live: list = []
        self._engine_prediction.connect(self._deliver_prediction)
        self._engine_status.connect(self._deliver_status)
        self._engine_event.connect(self._deliver_event)
        self._engine_marker.connect(self._deliver_marker)

    @property
    def busy(self) -> bool:
        return self.runner.busy()

    def connect_engine(self, make_config: Callable[[], object]) -> None:
        """Stop the running engine (if any) and start one configured by `make_config()` (an
        EngineConfig; called off the GUI thread, as importing the engine is heavy)."""
        if self._closed:
            return
        self._generation += 1
        generation = self._generation
        self.engine = None
        self.runner.start(lambda: self._replace(make_config, generation), "starting the engine",
                          lambda engine: self._on_started(engine, generation),
                          lambda message: self._on_failed(message, generation))

    def cancel_connect(self) -> None:
        """Give up on the engine being started: the window is free at once, and that engine is
        stopped as soon as its start returns (a device or stream search cannot be interrupted)."""
        if self._closed:
            return
        self._generation += 1
        self.engine = None

    def disconnect_engine(self) -> None:
        if self._closed:
            return
        self._generation += 1
        self.engine = None
        self.runner.start(self._stop_all, "stopping the engine", lambda _: self.stopped.emit(), self._on_failed)

    def shutdown(self) -> None:
        """Stop every engine and wait for the background calls, CLOSE_WAIT_S at most (used when the window
        closes). After this no engine calls back into the window: a start still running is let go and
        stops its own engine when it returns."""
        self._closed = True
        self._generation += 1
        self.runner.wait_all(CLOSE_WAIT_S)
        self.engine = None
        # An engine start still running holds the lock; it stops its own engine when it returns
        # (superseded), so a close does not wait for a stream search or a model load to end.
        if self._lock.acquire(timeout=CLOSE_WAIT_S):
            try:
                self._stop_live()
            finally:
                self._lock.release()

    # worker-thread side ---------------------------------------------------------
    def _replace(self, make_config: Callable[[], object], generation: int):
        with self._lock:
            self._stop_live()
            if generation != self._generation:   # superseded before it began
                return None
            from milmer_app.engine import Engine

            engine = Engine(make_config())
            engine.add_prediction_listener(lambda p: self._emit(self._engine_prediction, generation, p))
            engine.add_status_listener(lambda s: self._emit(self._engine_status, generation, s))
            engine.add_event_listener(lambda level, message: self._emit(self._engine_event, generation, level,
                                                                        message))
            engine.add_marker_listener(lambda text, stamp, stream: self._emit(self._engine_marker, generation, text,
                                                                              stamp, stream))
            try:
                engine.start()
            except BaseException:
                engine.stop()
                raise
            if generation != self._generation:   # superseded while starting
                engine.stop()
                return None
            self._live.append(engine)
            return engine

    def _emit(self, signal, *args) -> None:
        if not self._closed:         # a closed window's Qt objects may be gone
            signal.emit(*args)

    def _stop_all(self) -> None:
        with self._lock:
            self._stop_live()

    def _stop_live(self) -> None:
        while self._live:
            self._live.pop().stop()

    # GUI-thread side ------------------------------------------------------------
    def _deliver_prediction(self, generation: int, prediction) -> None:
        if generation == self._generation:
            self.prediction_ready.emit(prediction)

    def _deliver_status(self, generation: int, statuses) -> None:
        if generation == self._generation:
            self.status_ready.emit(statuses)

    def _deliver_event(self, generation: int, level: str, message: str) -> None:
        if generation == self._generation:
            self.event.emit(level, message)

    def _deliver_marker(self, generation: int, text: str, stamp: float, stream: str) -> None:
        if generation == self._generation:
            self.marker.emit(text, stamp, stream)

    def _on_started(self, engine, generation: int) -> None:
        # A superseded engine is stopped by the call (or the shutdown) that superseded it.
        if engine is None or generation != self._generation:
            return
        self.engine = engine
        self.started.emit(engine)

    def _on_failed(self, message: str, generation: int | None = None) -> None:
        log.warning("%s", message)
        if generation is None or generation == self._generation:   # a cancelled start fails quietly
            self.start_failed.emit(message)
