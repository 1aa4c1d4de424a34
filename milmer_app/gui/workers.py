"""Run a blocking call (LSL discovery, a DEAP scan, engine start/stop) on a QThread.

As mne-qt-browser's LoadThread: a call can ask `interrupted()` between its steps and stop early,
its result is dropped once it was asked to stop, and a closing window waits for the calls with a
limit (`CallRunner.wait_all(limit)`): a call still running after it is let go, to end on its own
(the process waits for it at exit, as a QThread must never be destroyed while it runs).
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable

from PySide6 import QtCore

from models.errors import MilmerError

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 2.0     # how long a closing window waits for background calls before letting them go


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
            if not self.isInterruptionRequested():
                self.failed.emit(message)
        except Exception as exc:  # an unexpected failure must reach the window, not kill the thread silently
            log.exception("%s failed", self.description)
            if not self.isInterruptionRequested():
                self.failed.emit(f"{self.description} failed: {type(exc).__name__}: {exc}")
        else:
            if not self.isInterruptionRequested():     # asked to stop: nobody waits for the result any more
                self.succeeded.emit(result)


def interrupted() -> bool:
    """Whether the background call running on this thread was asked to stop (False off such a thread)."""
    return QtCore.QThread.currentThread().isInterruptionRequested()


_let_go: set[BackgroundCall] = set()       # calls a closed window stopped waiting for (kept: never destroyed running)


@atexit.register
def _wait_for_let_go() -> None:
    for call in list(_let_go):
        try:
            call.wait()
        except RuntimeError:   # its Qt object is gone already: nothing runs
            pass


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

    def wait_all(self, limit: float | None = None) -> list[str]:
        """Ask every call to stop and wait for them, `limit` seconds at most in all (None: as long as they
        take). A call still running then is let go: its result is dropped, and it is kept alive (not a
        child of this runner any more) until it ends. Returns what the calls let go were doing."""
        calls = list(self._running)
        for call in calls:
            call.requestInterruption()
        deadline = None if limit is None else time.monotonic() + limit
        left = []
        for call in calls:
            if deadline is None:
                call.wait()
            elif not call.wait(max(0, int((deadline - time.monotonic()) * 1000))):
                left.append(call)
        for call in left:
            self._running.remove(call)
            call.finished.disconnect(self._forget_finished)
            call.setParent(None)
            _let_go.add(call)
            log.info("%s still runs; not waiting for it (it ends on its own)", call.description)
        return [call.description for call in left]

    def _forget_finished(self) -> None:
        call = self.sender()
        if call in self._running:
            self._running.remove(call)
        call.deleteLater()
