"""Status bar: connection state, per-stream rates/gaps/loss, latency, device, model, DEMO MODEL."""

from __future__ import annotations

import statistics
import time
from collections import deque

from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.elided_label import ElidedLabel

STALE_AFTER_S = 1.5   # no status report from the engine for this long -> its streams count as lost
NAME_CHARS = 28       # longer stream names are shortened in the bar (the tooltip has them whole)
MODEL_WIDTH = 330     # the model's description is elided to this many pixels (the tooltip has it whole)
EVENT_SHOWN_MS = 10_000   # how long an event (not an error) stays in the bar


def short_name(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def stream_text(status) -> tuple[str, bool]:
    """One stream's label text and whether it is shown as lost."""
    kind = f"{status.role.upper()} {short_name(status.name)}"
    if not status.connected:
        return f"{kind}: not connected", True
    if getattr(status, "ended", False):
        return f"{kind}: ended", False
    if getattr(status, "paused", False):
        return f"{kind}: paused", False
    if status.lost:
        return f"{kind}: LOST ({status.seconds_since_last:.1f} s)", True
    if getattr(status, "problem", ""):
        return f"{kind}: NO USABLE EEG", True
    unit = f"{status.unit} · " if getattr(status, "unit", "") else ""
    text = f"{kind}: {unit}{status.effective_rate:.1f}/{status.nominal_rate:g} Hz"
    masked = getattr(status, "masked", {})
    if masked:
        text += f" · masked {', '.join(masked)}"
    if getattr(status, "rate_off", False):
        text += " · RATE MISMATCH"
    if status.gaps or status.dropped:
        text += f" · gaps {status.gaps} · dropped {status.dropped}"
    return text, False


class EngineStatusBar(QtWidgets.QStatusBar):
    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.state_label = QtWidgets.QLabel("disconnected")
        self.state_label.setObjectName("connectionState")
        self.streams_box = QtWidgets.QWidget()
        self.streams_layout = QtWidgets.QHBoxLayout(self.streams_box)
        self.streams_layout.setContentsMargins(0, 0, 0, 0)
        self.latency_label = QtWidgets.QLabel("latency –")
        self.device_label = QtWidgets.QLabel("")
        self.model_label = ElidedLabel("", min_chars=16)
        self.demo_badge = QtWidgets.QLabel("DEMO MODEL")
        self.demo_badge.setObjectName("demoBadge")
        self.demo_badge.setStyleSheet(theme.DEMO_BADGE)
        self.demo_badge.setToolTip("the built-in demo model, trained on synthetic data: "
                                   "it says nothing about real emotions")
        self.demo_badge.setVisible(False)
        # Events in a label of their own, elided in the middle with the whole text in its tooltip: the
        # bar's own message area cut them off at the edge ("replay: s01 tr").
        self.event_label = ElidedLabel("", min_chars=22)
        self.event_label.setObjectName("eventMessage")
        self.addWidget(self.event_label, 1)
        self._event_timer = QtCore.QTimer(self)
        self._event_timer.setSingleShot(True)
        self._event_timer.timeout.connect(lambda: self.event_label.setText(""))
        # All permanent: a QStatusBar hides its normal widgets while a message shows, and the
        # stream rates and losses must stay visible next to an event message.
        for widget in (self.state_label, self.streams_box, self.latency_label, self.device_label,
                       self.model_label, self.demo_badge):
            self.addPermanentWidget(widget)
        self.stream_labels: dict[tuple[str, str], QtWidgets.QLabel] = {}
        self._latencies: deque[float] = deque(maxlen=30)
        self._last_report: float | None = None
        self._last_streams: list = []

    # connection -----------------------------------------------------------------
    def set_state(self, text: str, level: str = "info") -> None:
        """A one-word connection state (what is connected is in the window title)."""
        colour = {"info": theme.FOREGROUND, "good": theme.GOOD, "warning": theme.WARNING, "error": theme.ERROR}[level]
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"color: {colour}; font-weight: bold;")

    def set_model(self, name: str, device: str, demo: bool, description: str = "") -> None:
        """The model by what it is (preset, protocol, fold, training data, LEAKY), its file name in the tooltip."""
        text = f"model {description or name}"
        self.model_label.setText(text)
        self.model_label.setMaximumWidth(MODEL_WIDTH)
        self.model_label.setToolTip(f"{text}\ncheckpoint: {name}")
        self.model_label.setStyleSheet(f"color: {theme.ERROR};" if "LEAKY" in description else "")
        self.device_label.setText(f"device {device.upper()}")
        self.demo_badge.setVisible(demo)

    def clear_engine(self) -> None:
        self.model_label.setText("")
        self.device_label.setText("")
        self.demo_badge.setVisible(False)
        self.latency_label.setText("latency –")
        self._latencies.clear()
        self._last_report = None
        self._last_streams = []
        for label in self.stream_labels.values():
            self.streams_layout.removeWidget(label)
            label.deleteLater()
        self.stream_labels.clear()

    # streams ------------------------------------------------------------------
    def set_streams(self, statuses: list, now: float | None = None) -> None:
        self._last_report = time.monotonic() if now is None else now
        self._last_streams = list(statuses)
        for status in statuses:
            text, lost = stream_text(status)
            self._label_for(status).setText(text)
            self._paint(self._label_for(status), lost)

    def check_stale(self, now: float | None = None) -> None:
        """Mark every stream lost when the engine has stopped reporting (called on a GUI timer)."""
        if self._last_report is None:
            return
        silent = (time.monotonic() if now is None else now) - self._last_report
        if silent > STALE_AFTER_S:
            for status in self._last_streams:
                label = self._label_for(status)
                label.setText(f"{status.role.upper()} {short_name(status.name)}: LOST (no report for {silent:.1f} s)")
                self._paint(label, True)

    def mark_lost(self, name: str) -> None:
        """Show a stream as lost as soon as the engine's "stream lost" event arrives."""
        for (_, label_name), label in self.stream_labels.items():
            if label_name == name and "LOST" not in label.text():
                label.setText(f"{label.text().rsplit(':', 1)[0]}: LOST")
                self._paint(label, True)

    def lost_streams(self) -> list[str]:
        return [label.text() for label in self.stream_labels.values() if "LOST" in label.text()
                or "not connected" in label.text()]

    def _label_for(self, status) -> QtWidgets.QLabel:
        key = (status.role, status.name)
        if key not in self.stream_labels:
            label = ElidedLabel(min_chars=14)
            label.setObjectName(f"stream_{status.role}")
            self.streams_layout.addWidget(label)
            self.stream_labels[key] = label
        return self.stream_labels[key]

    @staticmethod
    def _paint(label: QtWidgets.QLabel, lost: bool) -> None:
        label.setStyleSheet(f"color: {theme.ERROR}; font-weight: bold;" if lost else f"color: {theme.FOREGROUND};")

    # predictions --------------------------------------------------------------
    def add_latency(self, seconds: float) -> None:
        self._latencies.append(seconds)
        median = statistics.median(self._latencies)
        self.latency_label.setText(f"latency {1000 * median:.0f} ms")

    def show_event(self, level: str, message: str) -> None:
        colour = {"info": theme.FOREGROUND, "warning": theme.WARNING, "error": theme.ERROR}.get(level, theme.FOREGROUND)
        self.event_label.setStyleSheet(f"color: {colour};")
        self.event_label.setText(message)
        if level == "error":
            self._event_timer.stop()
        else:
            self._event_timer.start(EVENT_SHOWN_MS)

    def event_text(self) -> str:
        return self.event_label.text()

    def clearMessage(self) -> None:
        super().clearMessage()
        self._event_timer.stop()
        self.event_label.setText("")
