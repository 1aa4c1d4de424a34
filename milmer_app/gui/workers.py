"""Run a blocking call (LSL discovery, a DEAP scan, engine start/stop) on a QThread."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6 import QtCore

from models.errors import MilmerError

log = logging.getLogger(__name__)


class BackgroundCall(QtCore.QThread):
    """Calls `function()` off the GUI thread; `succeeded(result)` or `failed(message)` come back on it."""

    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, function: Callable[[], object], description: str, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.function = function
        self.description = description

    def run(self) -> None:
        try:
            result = self.function()
        except MilmerError as exc:
            message = str(exc) + (f" ({exc.hint})" if exc.hint else "")
            self.failed.emit(message)
        except Exception as exc:  # an unexpected failure must reach the window, not kill the thread silently
            log.exception("%s failed", self.description)
            self.failed.emit(f"{self.description} failed: {type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)


class CallRunner(QtCore.QObject):
    """Keeps background calls alive until they finish, and can wait for all of them."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._running: list[BackgroundCall] = []

    def start(self, function: Callable[[], object], description: str,
              on_success: Callable[[object], None] | None = None,
              on_failure: Callable[[str], None] | None = None) -> BackgroundCall:
        call = BackgroundCall(function, description, self)
        if on_success is not None:
            call.succeeded.connect(on_success)
        if on_failure is not None:
            call.failed.connect(on_failure)
        call.finished.connect(self._forget_finished)
        self._running.append(call)
        call.start()
        return call

    def busy(self) -> bool:
        return any(call.isRunning() for call in self._running)

    def wait_all(self) -> None:
        """Block until every call has returned: a QThread must never be destroyed while it runs,
        so there is no time-out after which the window could go on closing without them."""
        for call in list(self._running):
            call.wait()

    def _forget_finished(self) -> None:
        call = self.sender()
        if call in self._running:
            self._running.remove(call)
        call.deleteLater()
