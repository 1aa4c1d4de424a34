"""Valence-arousal plane with the prediction trail and ground truth, and probabilities over time."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.elided_label import ElidedLabel
from milmer_app.gui.no_data import NoDataOverlay
from models.contract import QUADRANT_CLASSES

QUADRANT_CENTRES = {"HAHV": (7.0, 7.0), "LAHV": (7.0, 3.0), "LALV": (3.0, 3.0), "HALV": (3.0, 7.0)}
# Each quadrant spans its centre +- 2 on both axes of the 1-9 scale.
QUADRANT_HALF_WIDTH = 2.0
TRAIL_LENGTH = 20
WAITING = "waiting…"   # for the first prediction (of this source or this replayed trial)


def quadrant_names(class_names: list[str]) -> list[str] | None:
    """The quadrant each class stands for, or None for a model whose classes are not quadrants."""
    upper = [name.upper() for name in class_names]
    if sorted(upper) == sorted(QUADRANT_CLASSES):
        return upper
    if len(class_names) == 4:
        return list(QUADRANT_CLASSES)
    return None


def plane_position(probabilities: Sequence[float], quadrants: Sequence[str]) -> tuple[float, float]:
    """The probability-weighted mean of the quadrant centres: (valence, arousal) on the 1-9 scale."""
    weights = np.asarray(probabilities, dtype=float)
    total = weights.sum()
    weights = weights / total if total > 0 else np.full(len(weights), 1.0 / len(weights))
    centres = np.array([QUADRANT_CENTRES[q] for q in quadrants])
    valence, arousal = weights @ centres
    return float(valence), float(arousal)


class ValenceArousalPlane(pg.PlotWidget):
    """The four quadrants, the current prediction, its recent trail and the true quadrant."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.enableAutoRange(False)
        self._fix_range()
        self.setLabel("bottom", "valence")
        self.setLabel("left", "arousal")
        for value in (5.0,):
            self.addItem(pg.InfiniteLine(value, angle=90, pen=pg.mkPen(theme.MUTED)))
            self.addItem(pg.InfiniteLine(value, angle=0, pen=pg.mkPen(theme.MUTED)))
        self.truth_box = QtWidgets.QGraphicsRectItem()
        self.truth_box.setBrush(QtGui.QColor(76, 195, 138, 50))
        self.truth_box.setPen(pg.mkPen(theme.GOOD, width=2))
        self.truth_box.setVisible(False)
        self.addItem(self.truth_box)
        self.quadrant_labels: dict[str, pg.TextItem] = {}
        for name, (valence, arousal) in QUADRANT_CENTRES.items():
            label = pg.TextItem(name, color=theme.MUTED, anchor=(0.5, 0.5))
            label.setPos(valence, 8.5 if arousal > 5 else 1.5)
            self.addItem(label)
            self.quadrant_labels[name] = label
        self.rating_marker = pg.ScatterPlotItem(size=14, symbol="star", brush=pg.mkBrush(theme.GOOD), pen=None)
        self.addItem(self.rating_marker)
        self.trail_curve = pg.PlotDataItem(pen=pg.mkPen(theme.ACCENT, width=1), symbol="o", symbolSize=5,
                                           symbolBrush=pg.mkBrush(79, 163, 255, 120), symbolPen=None)
        self.addItem(self.trail_curve)
        self.current = pg.ScatterPlotItem(size=16, brush=pg.mkBrush(theme.ACCENT), pen=pg.mkPen("w", width=1.5))
        self.addItem(self.current)
        self.trail: deque[tuple[float, float]] = deque(maxlen=TRAIL_LENGTH)
        self.quadrants: list[str] | None = list(QUADRANT_CLASSES)

    def _fix_range(self) -> None:
        self.plotItem.vb.setRange(xRange=(1, 9), yRange=(1, 9), padding=0.02)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.plotItem is not None:   # Qt resizes the view once before PlotWidget has built its plot
            self._fix_range()

    def set_class_names(self, class_names: list[str]) -> None:
        self.quadrants = quadrant_names(class_names)
        self._colour_labels(None)
        self.clear_trail()

    def _colour_labels(self, current: int | None) -> None:
        """Quadrant names in their class colours (the key for the probability plot); the current one bold."""
        for index, name in enumerate(self.quadrants or []):
            label = self.quadrant_labels[name]
            label.setColor(theme.CLASS_COLORS[index % len(theme.CLASS_COLORS)])
            font = label.textItem.font()
            font.setBold(index == current)
            font.setPointSize(11 if index == current else 9)
            label.setFont(font)

    def clear_trail(self) -> None:
        self.trail.clear()
        self.trail_curve.setData([], [])
        self.current.setData([], [])
        self._colour_labels(None)   # no quadrant stays highlighted from an earlier prediction

    def add_prediction(self, probabilities: list[float], quadrant: int) -> None:
        if self.quadrants is None or len(probabilities) != len(self.quadrants):
            return
        position = plane_position(probabilities, self.quadrants)
        self.trail.append(position)
        xs, ys = zip(*self.trail, strict=True)
        self.trail_curve.setData(list(xs), list(ys))
        self.current.setData([position[0]], [position[1]])
        self._colour_labels(quadrant)

    def shown_truth(self) -> int | None:
        """The class whose quadrant the truth box marks (None when hidden)."""
        if not self.truth_box.isVisible() or self.quadrants is None:
            return None
        centre = self.truth_box.rect().center()
        for index, name in enumerate(self.quadrants):
            if QUADRANT_CENTRES[name] == (centre.x(), centre.y()):
                return index
        return None

    def set_truth(self, truth: int | None, ratings: dict | None = None) -> None:
        if truth is None or self.quadrants is None or not 0 <= truth < len(self.quadrants):
            self.truth_box.setVisible(False)
        else:
            valence, arousal = QUADRANT_CENTRES[self.quadrants[truth]]
            side = 2 * QUADRANT_HALF_WIDTH
            self.truth_box.setRect(QtCore.QRectF(valence - QUADRANT_HALF_WIDTH, arousal - QUADRANT_HALF_WIDTH,
                                                 side, side))
            self.truth_box.setVisible(True)
        valence = (ratings or {}).get("valence")
        arousal = (ratings or {}).get("arousal")
        if valence is not None and arousal is not None:
            self.rating_marker.setData([float(valence)], [float(arousal)])
        else:
            self.rating_marker.setData([], [])


class ProbabilityHistory(pg.PlotWidget):
    """One line per class: its probability for each prediction over the last `span_s` seconds,
    the newest at 0, with a legend of the class names in their colours."""

    span_s = 60.0
    tick_step_s = 15.0

    def __init__(self, parent: QtWidgets.QWidget | None = None, keep: int = 300):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.enableAutoRange(False)
        self.setXRange(-self.span_s - 2, 2, padding=0)   # room for the end ticks' labels
        self.setYRange(0, 1, padding=0.03)
        self.setLabel("bottom", "s before the latest")
        self.setLabel("left", "probability")
        # Few fixed ticks: pyqtgraph's automatic ones run together in a narrow plot.
        steps = np.arange(-self.span_s, 0.1, self.tick_step_s)
        self.getAxis("bottom").setTicks([[(float(t), f"{t:g}") for t in steps], []])
        self.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], []])
        self.setToolTip("probability of each class per prediction")
        # The key of the class colours, above the plot (the window puts it there): inside the plot it
        # would cover the lines or be cut off in a narrow window; as a wrapping label it never is.
        self.legend = QtWidgets.QLabel()
        self.legend.setObjectName("probabilityLegend")
        # One line of class names in their line colours: with the line glyphs it wrapped at 1024x700.
        self.legend.setWordWrap(False)
        self.legend.setToolTip("the classes in the colours of their probability lines")
        self.keep = keep
        self.times: deque[float] = deque(maxlen=keep)
        self.rows: deque[list[float]] = deque(maxlen=keep)
        self.curves: list[pg.PlotDataItem] = []
        self.class_names: list[str] = []
        self.empty = NoDataOverlay(self, "no predictions yet")

    def set_class_names(self, class_names: list[str]) -> None:
        for curve in self.curves:
            self.removeItem(curve)
        self.class_names = list(class_names)
        colours = [theme.CLASS_COLORS[i % len(theme.CLASS_COLORS)] for i in range(len(self.class_names))]
        self.curves = [pg.PlotDataItem(pen=pg.mkPen(colour, width=2), name=name)
                       for name, colour in zip(self.class_names, colours, strict=True)]
        for curve in self.curves:
            self.addItem(curve)
        self.legend.setText(" &nbsp;".join(f"<span style='color:{colour}'><b>{name}</b></span>"
                                           for name, colour in zip(self.class_names, colours, strict=True)))
        self.times.clear()
        self.rows.clear()
        self.empty.set_empty(True)

    def legend_names(self) -> list[str]:
        return [curve.name() for curve in self.curves]

    def add_prediction(self, time: float, probabilities: list[float]) -> None:
        if len(probabilities) != len(self.curves):
            self.set_class_names([f"class {i}" for i in range(len(probabilities))])
        self.times.append(time)
        self.rows.append(list(probabilities))
        values = np.asarray(self.rows)
        times = np.asarray(self.times) - time
        for index, curve in enumerate(self.curves):
            curve.setData(times, values[:, index])
        self.empty.set_empty(False)


class AgreementCounter:
    """Running agreement between predicted and true quadrants (replay only)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.matches = 0
        self.total = 0

    def add(self, predicted: int, truth: int | None) -> None:
        if truth is None:
            return
        self.total += 1
        self.matches += int(predicted == truth)

    @property
    def fraction(self) -> float | None:
        return self.matches / self.total if self.total else None


class EmotionView(QtWidgets.QWidget):
    """The plane, the probability history and a one-line readout of the latest prediction.

    In a replay, what is shown belongs to one item (a DEAP trial): `show_item` switches the truth,
    the header and the plane together, and a late prediction of the previous item only counts
    towards the agreement (it is not drawn over the new item's truth).
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.plane = ValenceArousalPlane()
        self.history = ProbabilityHistory()
        self.readout = QtWidgets.QLabel(WAITING)
        self.readout.setObjectName("predictionReadout")
        self.agreement = AgreementCounter()
        self.agreement_label = ElidedLabel("", min_chars=16)
        self.agreement_label.setObjectName("agreement")
        self.class_names: list[str] = list(QUADRANT_CLASSES)
        self.predictions_shown = 0
        self.item: str | None = None          # the replayed item whose truth is shown
        self.truth: int | None = None
        self.plane_truth: int | None = None   # the truth of the prediction the plane's current point shows
        header = QtWidgets.QHBoxLayout()
        header.addWidget(QtWidgets.QLabel("<b>Emotion</b>"))
        header.addWidget(self.readout, 1)
        header.addWidget(self.agreement_label)
        history = QtWidgets.QVBoxLayout()
        history.setSpacing(0)
        history.addWidget(self.history.legend)
        history.addWidget(self.history, 1)
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.plane, 2)
        plots.addLayout(history, 3)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addLayout(plots, 1)
        self.set_class_names(self.class_names)

    def set_class_names(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.plane.set_class_names(self.class_names)
        self.history.set_class_names(self.class_names)
        self.plane_truth = None

    def reset(self) -> None:
        """Forget the trail, history, item and agreement (a new source)."""
        self.set_class_names(self.class_names)
        self.agreement.reset()
        self.item, self.truth = None, None
        self.plane.set_truth(None)
        self.agreement_label.setText("")
        self.readout.setText(WAITING)

    def truth_name(self, truth: int | None) -> str | None:
        if truth is None:
            return None
        return self.class_names[truth] if 0 <= truth < len(self.class_names) else str(truth)

    def show_item(self, item: str | None, truth: int | None, ratings: dict | None = None) -> None:
        """A replayed item starts: its truth in the plane and the header at once, its own trail.
        The agreement keeps running over the whole replay."""
        self.item, self.truth = item, truth
        self.plane.set_truth(truth, ratings)
        self.plane.clear_trail()
        self.plane_truth = None
        self.readout.setText(WAITING)
        self._show_agreement()

    def set_truth(self, truth: int | None, ratings: dict | None = None) -> None:
        """The true class of what is shown (no item boundaries: a single trial, or tests)."""
        self.truth = truth
        self.plane.set_truth(truth, ratings)
        self._show_agreement()

    def _show_agreement(self) -> None:
        parts = []
        name = self.truth_name(self.truth)
        if name is not None:
            parts.append(f"truth {name}")
        fraction = self.agreement.fraction
        if fraction is not None:
            parts.append(f"agreement {fraction:.0%} ({self.agreement.matches}/{self.agreement.total})")
        self.agreement_label.setText(" · ".join(parts))

    def add_prediction(self, time: float, quadrant: int, label: str, probabilities: list[float],
                       truth: int | None, item: str | None = None) -> bool:
        """Show a prediction; False when it belongs to an earlier item than the one shown (it then only
        counts towards the agreement)."""
        self.agreement.add(quadrant, truth)
        if item is not None and self.item is not None and item != self.item:
            self._show_agreement()
            return False
        if self.item is None and truth is not None and truth != self.truth:
            self.set_truth(truth)
        self.predictions_shown += 1
        self.plane.add_prediction(probabilities, quadrant)
        self.plane_truth = truth
        self.history.add_prediction(time, probabilities)
        confidence = probabilities[quadrant] if 0 <= quadrant < len(probabilities) else float("nan")
        self.readout.setText(f"<b style='color:{theme.CLASS_COLORS[quadrant % len(theme.CLASS_COLORS)]}'>"
                             f"{label}</b> &nbsp; p = {confidence:.2f}")
        self._show_agreement()
        return True

    def consistent(self) -> bool:
        """The header's truth, the plane's truth box and the truth of the plotted prediction agree."""
        name = self.truth_name(self.truth)
        header = self.agreement_label.text()
        header_ok = (f"truth {name}" in header) if name is not None else "truth" not in header
        box_ok = self.plane.shown_truth() == (self.truth if self.plane.quadrants is not None else None)
        point_ok = len(self.plane.trail) == 0 or self.plane_truth is None or self.plane_truth == self.truth
        return header_ok and box_ok and point_ok
