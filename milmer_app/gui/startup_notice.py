"""While an engine starts: what it is doing (writing the demo subject, connecting, loading the model),
with the seconds it has taken, in every pane that has nothing to show yet."""

from __future__ import annotations

import time

from PySide6 import QtCore

TICK_MS = 1000


class StartupNotice(QtCore.QObject):
    """`show(stage)` for each stage the engine reports ("progress" events), `finish()` once it has started
    or failed: the panes get their usual words back."""

    def __init__(self, window, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.window = window
        self.stage: str | None = None
        self._started = 0.0
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._paint)

    def begin(self, stage: str) -> None:
        self._started = time.monotonic()
        self.show(stage)
        self._timer.start()

    def show(self, stage: str) -> None:
        self.stage = stage
        self._paint()

    def finish(self) -> None:
        self._timer.stop()
        self.stage = None
        self._paint()

    def text(self) -> str | None:
        if self.stage is None:
            return None
        return f"{self.stage}\n{time.monotonic() - self._started:.0f} s"

    def _paint(self) -> None:
        window, text = self.window, self.text()
        for overlay, usual in ((window.eeg_view.empty, "no EEG"), (window.spectrum_view.psd_empty, "no EEG"),
                               (window.spectrum_view.band_empty, "no EEG"),
                               (window.emotion_view.history.empty, "no predictions yet")):
            if overlay.empty:   # never over data already drawn
                overlay.setText(text or usual)
        frame = window.face_view.frame
        if frame.frame_time is None:
            frame.placeholder = text or "no video"
            frame.update()
