"""Scrolling EEG traces: one lane per channel, labelled, with scaling, span and a filter toggle;
markers (a marker stream's, a file's triggers, the calibration wizard's) as a line with their text."""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.elided_label import ElidedLabel
from milmer_app.gui.no_data import NoDataOverlay
from milmer_app.gui.signal_quality import FLAT, MISSING, NOISY, OK
from milmer_app.gui.spectra import display_filter

SCALES_UV = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
AUTO_SCALE = "auto per channel"
FILTER_PAD_S = 2.0   # extra history fed to the causal filter so its start-up transient stays off screen
CLIP_LANES = 1.5     # traces are clipped at this many lanes from their own, so one bad channel cannot cover the rest
MARKERS_KEPT = 500   # the newest markers kept for drawing (a fast trigger stream cannot grow the list)
MARKER_TEXT_CHARS = 48


class ChannelAxis(pg.AxisItem):
    """Left axis that names the lanes; the mouse wheel over a name scales that channel."""

    gain_step = QtCore.Signal(int, float)

    def wheelEvent(self, event):
        view = self.linkedView()
        if view is None:
            return super().wheelEvent(event)
        lane = view.mapSceneToView(event.scenePos()).y()
        delta = event.delta() if hasattr(event, "delta") else event.angleDelta().y()
        self.gain_step.emit(int(round(lane)), 1.25 if delta > 0 else 0.8)
        event.accept()


class EegTraceView(QtWidgets.QWidget):
    """Traces of all channels, newest sample at the right edge (time 0); when the EEG source
    failed, why, and a Retry for it alone."""

    retry_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.span_s = 10.0
        self.scale_uv: float | None = 200.0          # None: each channel scaled to its own spread
        self.filter_enabled = True
        self._gains: dict[str, float] = {}
        self._flags: dict[str, str] = {}
        self._flag_text = ""
        self._coverage = ""     # how many of the model's channels the stream provides, when not all
        self._names: list[str] = []
        self._curves: list[pg.PlotDataItem] = []
        self.drawn_until: float | None = None         # timestamp of the newest sample on screen
        self._markers: deque[tuple[float, str]] = deque(maxlen=MARKERS_KEPT)   # (LSL time, text)
        self._marker_items: list[tuple[pg.InfiniteLine, pg.TextItem]] = []

        self.span_box = QtWidgets.QDoubleSpinBox(minimum=1.0, maximum=60.0, value=self.span_s, suffix=" s",
                                                 decimals=0, singleStep=1.0)
        self.span_box.setToolTip("time span shown")
        self.span_box.valueChanged.connect(self.set_span)
        self.scale_box = QtWidgets.QComboBox()
        self.scale_box.addItems([f"{s:g} µV" for s in SCALES_UV] + [AUTO_SCALE])
        self.scale_box.setCurrentText("200 µV")
        self.scale_box.setToolTip("amplitude of one lane; the mouse wheel over a channel name scales that channel")
        self.scale_box.currentTextChanged.connect(self._scale_chosen)
        # Sized for "200 µV", not for its longest entry, so the header fits a 1024-pixel-wide window.
        self.scale_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.scale_box.setMinimumContentsLength(7)
        self.filter_box = QtWidgets.QCheckBox("filter 1-40 Hz")
        self.filter_box.setChecked(True)
        self.filter_box.toggled.connect(self.set_filter_enabled)
        self.flag_label = ElidedLabel("", min_chars=4)
        self.flag_label.setObjectName("channelFlags")
        self.flag_label.setStyleSheet(f"color: {theme.WARNING};")

        self.retry_button = QtWidgets.QPushButton("Retry EEG")
        self.retry_button.setToolTip("open the EEG source again (the video keeps running)")
        self.retry_button.clicked.connect(self.retry_requested.emit)
        self.retry_button.setVisible(False)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>EEG</b>"))
        controls.addWidget(self.flag_label, 1)
        controls.addWidget(self.retry_button)
        controls.addWidget(QtWidgets.QLabel("span"))
        controls.addWidget(self.span_box)
        controls.addWidget(QtWidgets.QLabel("scale"))
        controls.addWidget(self.scale_box)
        controls.addWidget(self.filter_box)

        self.axis = ChannelAxis("left")
        self.axis.gain_step.connect(self._step_gain)
        self.plot = pg.PlotWidget(axisItems={"left": self.axis})
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.showGrid(x=True, y=False, alpha=0.25)
        self.plot.setXRange(-self.span_s, 0, padding=0)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)
        self.empty = NoDataOverlay(self.plot, "no EEG")

    # settings -----------------------------------------------------------------
    def set_span(self, seconds: float) -> None:
        self.span_s = float(seconds)
        if self.span_box.value() != seconds:
            self.span_box.setValue(seconds)
        self.plot.setXRange(-self.span_s, 0, padding=0)

    def set_scale(self, microvolts: float | None) -> None:
        self.scale_uv = microvolts
        text = AUTO_SCALE if microvolts is None else f"{microvolts:g} µV"
        if self.scale_box.findText(text) < 0:
            self.scale_box.addItem(text)
        self.scale_box.setCurrentText(text)

    def set_filter_enabled(self, enabled: bool) -> None:
        self.filter_enabled = bool(enabled)
        self.filter_box.setChecked(self.filter_enabled)

    def set_channel_gain(self, name: str, gain: float) -> None:
        self._gains[name] = float(gain)

    def channel_gain(self, name: str) -> float:
        return self._gains.get(name, 1.0)

    def _scale_chosen(self, text: str) -> None:
        self.scale_uv = None if text == AUTO_SCALE else float(text.split()[0])

    def _step_gain(self, lane: int, factor: float) -> None:
        index = len(self._names) - 1 - lane
        if 0 <= index < len(self._names):
            name = self._names[index]
            self.set_channel_gain(name, self.channel_gain(name) * factor)

    # data ---------------------------------------------------------------------
    @property
    def history_seconds(self) -> float:
        """How much data `draw` wants: the span plus the filter's warm-up."""
        return self.span_s + (FILTER_PAD_S if self.filter_enabled else 0.0)

    def set_flags(self, flags: dict[str, str]) -> None:
        """Channel flags ("ok", "flat", "noisy", "missing") shown on the labels and in the header."""
        if flags == self._flags:
            return
        self._flags = dict(flags)
        bad = {kind: [n for n, f in flags.items() if f == kind] for kind in (FLAT, NOISY, MISSING)}
        self._flag_text = "; ".join(f"{kind}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
                                    for kind, names in bad.items() if names)
        self._show_header()
        self._apply_labels()
        for index, name in enumerate(self._names):
            self._curves[index].setPen(self._pen(index, flags.get(name, OK)))

    def set_model_coverage(self, used: int, expected: int) -> None:
        """Say when the model gets fewer EEG channels than it was trained on (the rest are masked)."""
        self._coverage = f"model gets {used} of its {expected} channels" if 0 < expected and used < expected else ""
        self._show_header()

    def _show_header(self) -> None:
        self.flag_label.setText(" · ".join(part for part in (self._flag_text, self._coverage) if part))

    def flags(self) -> dict[str, str]:
        return dict(self._flags)

    def draw(self, data: np.ndarray, timestamps: np.ndarray, names: list[str], srate: float) -> None:
        """Draw (C, n) samples stamped `timestamps` (LSL seconds); the newest at x = 0."""
        if list(names) != self._names:
            self._rebuild(list(names))
        if data.shape[1] == 0 or not names:
            for curve in self._curves:
                curve.setData([], [])
            return
        self.empty.set_empty(False)
        newest = float(timestamps[-1])
        start = np.searchsorted(timestamps, newest - self.span_s)
        if self.filter_enabled and srate > 8:
            data = display_filter(data, srate)
            # Hide the filter's start-up transient when the buffer holds less than span + warm-up.
            start = max(start, int(np.searchsorted(timestamps, timestamps[0] + FILTER_PAD_S)))
        data = data[:, start:]
        x = (timestamps[start:] - newest).astype(np.float64)
        scales = self._lane_scales(data, names)
        count = len(names)
        for index, curve in enumerate(self._curves):
            lane = count - 1 - index
            trace = np.clip(data[index] / scales[index], -CLIP_LANES, CLIP_LANES)
            curve.setData(x, trace + lane, connect="finite")
        self.drawn_until = newest
        self._place_markers(newest)

    # markers ------------------------------------------------------------------
    def add_marker(self, text: str, timestamp: float) -> None:
        """A marker at LSL time `timestamp`; drawn as a line with its text while it is in the span."""
        self._markers.append((float(timestamp), str(text)))
        if self.drawn_until is not None:
            self._place_markers(self.drawn_until)

    def _place_markers(self, newest: float) -> None:
        shown = [(t, text) for t, text in self._markers if newest - self.span_s <= t <= newest]
        while len(self._marker_items) < len(shown):
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(theme.ACCENT, width=1,
                                                                         style=QtCore.Qt.PenStyle.DashLine))
            background = QtGui.QColor(theme.BACKGROUND)
            background.setAlpha(210)     # readable over the traces it covers
            label = pg.TextItem(color=theme.ACCENT, anchor=(0, 0), fill=pg.mkBrush(background))
            label.setZValue(10)
            self.plot.addItem(line, ignoreBounds=True)
            self.plot.addItem(label, ignoreBounds=True)
            self._marker_items.append((line, label))
        top = max(len(self._names), 1) - 0.5
        for index, (line, label) in enumerate(self._marker_items):
            if index < len(shown):
                stamp, text = shown[index]
                x = stamp - newest
                line.setPos(x)
                short = text if len(text) <= MARKER_TEXT_CHARS else text[:MARKER_TEXT_CHARS - 1] + "…"
                if label.toPlainText() != short:
                    label.setText(short)
                    label.setToolTip(text)
                # Staggered down the lanes so that close markers do not print over each other.
                label.setPos(x, top - (index % 4) * 1.2)
            line.setVisible(index < len(shown))
            label.setVisible(index < len(shown))

    def shown_markers(self) -> list[tuple[float, str]]:
        """The markers on screen: (x in seconds from the newest sample, text as drawn)."""
        return [(float(line.value()), label.toPlainText()) for line, label in self._marker_items
                if line.isVisible()]

    def show_problem(self, message: str | None, retrying: bool = False) -> None:
        """Say why there is no EEG (None: there is), with a Retry button."""
        self.retry_button.setVisible(bool(message))
        self.retry_button.setEnabled(not retrying)
        self.retry_button.setText("retrying…" if retrying else "Retry EEG")
        if message:
            self.clear(message + "\n(predictions from video alone)")

    def clear(self, message: str = "no EEG") -> None:
        """Forget the channels, their flags and the traces (a new source is coming, or none)."""
        self.empty.set_empty(True, message)
        self._rebuild([])
        self.set_flags({})
        self.set_model_coverage(0, 0)
        self.drawn_until = None
        self._markers.clear()
        for line, label in self._marker_items:
            line.setVisible(False)
            label.setVisible(False)

    def _lane_scales(self, data: np.ndarray, names: list[str]) -> np.ndarray:
        """Amplitude (in data units) that spans one lane, per channel."""
        if self.scale_uv is None:
            with np.errstate(all="ignore"):
                spread = np.nanstd(data, axis=1) * 6.0
            base = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        else:
            base = np.full(len(names), self.scale_uv)
        gains = np.array([self.channel_gain(n) for n in names])
        return base / gains

    def _rebuild(self, names: list[str]) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
        self._names = names
        self._curves = []
        for index, _ in enumerate(names):
            curve = pg.PlotDataItem(pen=self._pen(index, OK))
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self.plot.addItem(curve)
            self._curves.append(curve)
        self.plot.setYRange(-1, max(len(names), 1), padding=0)
        self._apply_labels()

    def _apply_labels(self) -> None:
        count = len(self._names)
        ticks = []
        for index, name in enumerate(self._names):
            flag = self._flags.get(name, OK)
            ticks.append((count - 1 - index, name if flag == OK else f"{name} [{flag}]"))
        self.axis.setTicks([ticks, []])
        metrics = QtGui.QFontMetrics(self.axis.style.get("tickFont") or self.font())
        widest = max((metrics.horizontalAdvance(text) for _, text in ticks), default=20)
        self.axis.setWidth(widest + 12)

    @staticmethod
    def _pen(index: int, flag: str):
        if flag == FLAT:
            return pg.mkPen(theme.MUTED, width=1)
        if flag == NOISY:
            return pg.mkPen(theme.WARNING, width=1)
        if flag == MISSING:
            return pg.mkPen(theme.ERROR, width=1, style=QtCore.Qt.PenStyle.DashLine)
        return pg.mkPen(theme.TRACE_COLORS[index % len(theme.TRACE_COLORS)], width=1)

    def channel_names(self) -> list[str]:
        return list(self._names)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) currently drawn for channel `name` (for tests and the bench)."""
        curve = self._curves[self._names.index(name)]
        x, y = curve.getData()
        return (np.asarray(x) if x is not None else np.zeros(0), np.asarray(y) if y is not None else np.zeros(0))
