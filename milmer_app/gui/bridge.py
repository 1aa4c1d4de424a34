"""The one place the window meets the engine: engine callbacks (worker threads) become Qt signals.

Engines are built, started and stopped on a QThread so the window never blocks on
model loading, device start-up or thread joins.
"""

from __future__ import annotations

import argparse
import logging
import threading

from PySide6 import QtCore

from milmer_app.gui.workers import CallRunner

log = logging.getLogger(__name__)


class EngineBridge(QtCore.QObject):
    """Owns the running `Engine`; signals are delivered on the GUI thread."""

    prediction_ready = QtCore.Signal(object)     # Prediction
    status_ready = QtCore.Signal(object)         # list[StreamStatus]
    event = QtCore.Signal(str, str)              # level, message
    started = QtCore.Signal(object)              # the started Engine
    start_failed = QtCore.Signal(str)
    stopped = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.engine = None
        self._runner = CallRunner(self)
        self._generation = 0          # callbacks of a replaced engine are dropped
        self._lock = threading.Lock()  # one start/stop sequence at a time, in order

    @property
    def busy(self) -> bool:
        return self._runner.busy()

    def connect_engine(self, args: argparse.Namespace) -> None:
        """Stop the running engine (if any) and start one configured from `args`, off the GUI thread."""
        self._generation += 1
        generation = self._generation
        previous, self.engine = self.engine, None
        self._runner.start(lambda: self._replace(previous, args, generation), "starting the engine",
                           lambda engine: self._on_started(engine, generation), self._on_failed)

    def disconnect_engine(self) -> None:
        self._generation += 1
        previous, self.engine = self.engine, None
        self._runner.start(lambda: self._stop(previous), "stopping the engine", lambda _: self.stopped.emit(),
                           self._on_failed)

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop everything and wait (used when the window closes)."""
        self._generation += 1
        self._runner.wait_all(timeout_ms)
        previous, self.engine = self.engine, None
        self._stop(previous)

    # worker-thread side ---------------------------------------------------------
    def _replace(self, previous, args: argparse.Namespace, generation: int):
        with self._lock:
            self._stop_engine(previous)
            from milmer_app.engine import Engine, EngineConfig

            engine = Engine(EngineConfig.from_args(args))
            engine.add_prediction_listener(lambda p: self._forward(generation, self.prediction_ready, p))
            engine.add_status_listener(lambda s: self._forward(generation, self.status_ready, s))
            engine.add_event_listener(lambda level, message: self._forward_event(generation, level, message))
            try:
                engine.start()
            except BaseException:
                engine.stop()
                raise
            if generation != self._generation:   # superseded while starting
                engine.stop()
                return None
            return engine

    def _stop(self, engine) -> None:
        with self._lock:
            self._stop_engine(engine)

    @staticmethod
    def _stop_engine(engine) -> None:
        if engine is not None:
            engine.stop()

    def _forward(self, generation: int, signal: QtCore.SignalInstance, value) -> None:
        if generation == self._generation:
            signal.emit(value)

    def _forward_event(self, generation: int, level: str, message: str) -> None:
        if generation == self._generation:
            self.event.emit(level, message)

    # GUI-thread side ------------------------------------------------------------
    def _on_started(self, engine, generation: int) -> None:
        if engine is None:
            return
        if generation != self._generation:
            self._runner.start(lambda: self._stop(engine), "stopping a superseded engine")
            return
        self.engine = engine
        self.started.emit(engine)

    def _on_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.start_failed.emit(message)
