"""Self-assessment pictures in the manner of SAM manikins, drawn here with QPainter, and a rating
scale (continuous 1-9) under them."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import theme

PICTURES = 5            # figures at 1, 3, 5, 7 and 9
STEPS = 800             # slider resolution: 1..9 in steps of 0.01


def draw_manikin(painter: QtGui.QPainter, rect: QtCore.QRectF, scale: str, level: float) -> None:
    """One figure in `rect`; `level` 0..1 along the scale: valence frown -> smile, arousal calm ->
    excited (eyes wide, a burst in the body that grows, lines of movement around it)."""
    painter.save()
    pen = QtGui.QPen(QtGui.QColor(theme.FOREGROUND), max(1.0, rect.width() / 40))
    painter.setPen(pen)
    cx = rect.center().x()
    head_r = rect.width() * 0.22
    head = QtCore.QPointF(cx, rect.top() + head_r + 2)
    body = QtCore.QRectF(cx - rect.width() * 0.28, head.y() + head_r, rect.width() * 0.56, rect.height() * 0.5)
    painter.setBrush(QtGui.QColor(theme.BACKGROUND))
    painter.drawRoundedRect(body, 6, 6)
    painter.drawEllipse(head, head_r, head_r)
    eye_dy, eye_dx = head_r * 0.25, head_r * 0.4
    eye_size = head_r * (0.10 + (0.12 * level if scale == "arousal" else 0.06))
    painter.setBrush(QtGui.QColor(theme.FOREGROUND))
    for side in (-1, 1):
        painter.drawEllipse(QtCore.QPointF(head.x() + side * eye_dx, head.y() - eye_dy), eye_size, eye_size)
    painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
    mouth_w = head_r * 0.9
    mouth_y = head.y() + head_r * 0.45
    if scale == "valence":
        bend = (level - 0.5) * head_r * 0.9          # down at 0 (a frown), up at 1 (a smile)
        path = QtGui.QPainterPath(QtCore.QPointF(head.x() - mouth_w / 2, mouth_y))
        path.quadTo(QtCore.QPointF(head.x(), mouth_y + bend), QtCore.QPointF(head.x() + mouth_w / 2, mouth_y))
        painter.drawPath(path)
    else:
        painter.drawEllipse(QtCore.QPointF(head.x(), mouth_y), mouth_w * (0.15 + 0.25 * level),
                            head_r * (0.05 + 0.25 * level))
        burst = body.width() * (0.08 + 0.32 * level)
        centre = body.center()
        points = [QtCore.QPointF(centre.x() + math.cos(a) * (burst if i % 2 == 0 else burst * 0.45),
                                 centre.y() + math.sin(a) * (burst if i % 2 == 0 else burst * 0.45))
                  for i, a in enumerate(i * math.pi / 6 for i in range(12))]
        painter.setBrush(QtGui.QColor(theme.WARNING))
        painter.drawPolygon(QtGui.QPolygonF(points))
        painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        for i in range(round(level * 4)):       # movement lines beside the figure
            y = body.top() + body.height() * (0.2 + 0.2 * i)
            for side in (-1, 1):
                x0 = cx + side * (body.width() / 2 + 4)
                painter.drawLine(QtCore.QPointF(x0, y), QtCore.QPointF(x0 + side * rect.width() * 0.12, y))
    painter.restore()


class SamPictures(QtWidgets.QWidget):
    """Five figures along one scale, from its low end (left) to its high end (right)."""

    def __init__(self, scale: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.scale = scale
        self.setMinimumSize(320, 90)

    def paintEvent(self, event) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        width = self.width() / PICTURES
        for index in range(PICTURES):
            cell = QtCore.QRectF(index * width, 0, width, self.height()).adjusted(width * 0.2, 4, -width * 0.2, -4)
            draw_manikin(painter, cell, self.scale, index / (PICTURES - 1))
        painter.end()


class RatingScale(QtWidgets.QWidget):
    """The pictures, a continuous slider 1-9 under them, the ends named, the value shown."""

    changed = QtCore.Signal(float)

    def __init__(self, scale: str, low: str, high: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.scale = scale
        self.touched = False      # moved by the person since the last reset
        self.pictures = SamPictures(scale)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setObjectName(f"{scale}Slider")
        self.value_label = QtWidgets.QLabel()
        self.slider.valueChanged.connect(self._moved)
        ends = QtWidgets.QHBoxLayout()
        ends.addWidget(QtWidgets.QLabel(f"1 · {low}"))
        ends.addStretch(1)
        ends.addWidget(self.value_label)
        ends.addStretch(1)
        ends.addWidget(QtWidgets.QLabel(f"{high} · 9"))
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(f"<b>{scale.capitalize()}</b>"))
        layout.addWidget(self.pictures)
        layout.addWidget(self.slider)
        layout.addLayout(ends)
        self.reset()

    def value(self) -> float:
        return round(1.0 + 8.0 * self.slider.value() / STEPS, 2)

    def set_value(self, rating: float) -> None:
        self.slider.setValue(round((rating - 1.0) / 8.0 * STEPS))

    def reset(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(STEPS // 2)
        self.slider.blockSignals(False)
        self.touched = False
        self.value_label.setText("move the slider")

    def _moved(self, _: int) -> None:
        self.touched = True
        self.value_label.setText(f"{self.value():.2f}")
        self.changed.emit(self.value())
