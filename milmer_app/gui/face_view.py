"""The live camera frame with its face box, and the strip of the current bag's face crops."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import theme


def rgb_image(pixels: np.ndarray) -> QtGui.QImage:
    """A QImage owning a copy of an RGB uint8 (H, W, 3) array."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, _ = pixels.shape
    return QtGui.QImage(pixels.data, width, height, 3 * width, QtGui.QImage.Format.Format_RGB888).copy()


def bgr_image(pixels: np.ndarray) -> QtGui.QImage:
    """A QImage from an OpenCV BGR uint8 (H, W, 3) frame, or a grey (H, W) one."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return rgb_image(pixels[:, :, ::-1])


def _fit(source: QtCore.QSize, target: QtCore.QRect) -> QtCore.QRect:
    """The largest rectangle with `source`'s aspect ratio centred in `target`."""
    scaled = source.scaled(target.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio)
    left = target.left() + (target.width() - scaled.width()) // 2
    top = target.top() + (target.height() - scaled.height()) // 2
    return QtCore.QRect(left, top, scaled.width(), scaled.height())


class FrameView(QtWidgets.QWidget):
    """Paints the latest frame scaled to fit, with the detected face box.

    Faces are searched once per prediction, not on every frame, so most frames come without
    a box: the last box stays up for `box_hold_s` seconds of frame time after the last frame
    that came with one (the window sets it to one prediction interval).
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, box_hold_s: float = 1.0):
        super().__init__(parent)
        self.setMinimumSize(160, 120)
        self.box_hold_s = box_hold_s
        self._image: QtGui.QImage | None = None
        self._box: tuple[int, int, int, int] | None = None
        self._box_time: float | None = None
        self.frame_time: float | None = None
        self.placeholder = "no video"

    def set_frame(self, frame_bgr: np.ndarray, timestamp: float, box: tuple[int, int, int, int] | None) -> None:
        if timestamp == self.frame_time:
            return
        self._image = bgr_image(frame_bgr)
        if box is not None:
            self._box, self._box_time = box, timestamp
        elif self._box_time is not None and not 0.0 <= timestamp - self._box_time <= self.box_hold_s:
            self._box, self._box_time = None, None      # too old, or the replay jumped back
        self.frame_time = timestamp
        self.update()

    def clear(self, placeholder: str = "no video") -> None:
        self._image, self._box, self._box_time, self.frame_time = None, None, None, None
        self.placeholder = placeholder
        self.update()

    @property
    def face_box(self) -> tuple[int, int, int, int] | None:
        return self._box

    def paintEvent(self, event):
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor("#111214"))
        if self._image is None:
            painter.setPen(QtGui.QColor(theme.MUTED))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        target = _fit(self._image.size(), self.rect())
        painter.drawImage(target, self._image)
        if self._box is not None:
            x, y, w, h = self._box
            scale = target.width() / self._image.width()
            painter.setPen(QtGui.QPen(QtGui.QColor(theme.GOOD), 2))
            painter.drawRect(QtCore.QRectF(target.left() + x * scale, target.top() + y * scale, w * scale, h * scale))


class CropStrip(QtWidgets.QWidget):
    """The bag's face crops left to right in time, each with its MIL instance weight.

    The crops with the largest weights (those the model relied on) get a coloured
    frame; crops without a detected face, or below the quality floor, are greyed out with the
    reason. Each crop shows its face size; the tooltip has face size, sharpness and detector score.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, highlight: int = 3):
        super().__init__(parent)
        self.highlight = highlight
        self.setMinimumHeight(70)
        self._crops: list[QtGui.QImage | None] = []
        self._weights: list[float] = []
        self._mask: list[bool] = []
        self._quality: list[tuple[float, float, float] | None] = []
        self._problems: list[str | None] = []

    def set_bag(self, crops: np.ndarray | None, weights: list[float], mask: list[bool],
                quality: np.ndarray | None = None, problems: list[str | None] | None = None) -> None:
        count = len(weights) if weights else (0 if crops is None else len(crops))
        self._weights = [float(w) for w in weights] if weights else [0.0] * count
        self._mask = list(mask) if mask else [True] * count
        self._quality = [None] * count
        if quality is not None:
            for index in range(min(count, len(quality))):
                if np.isfinite(quality[index]).all():
                    self._quality[index] = tuple(float(v) for v in quality[index])  # type: ignore[assignment]
        self._problems = (list(problems) + [None] * count)[:count] if problems else [None] * count
        self.setToolTip("\n".join(
            f"{i + 1}: " + (f"face {q[0]:.0f} px, sharpness {q[1]:.0f}, score {q[2]:.2f}" if q else "no crop")
            + (f" - masked: {self._problems[i]}" if not self._mask[i] and self._problems[i] else "")
            for i, q in enumerate(self._quality)) if quality is not None else "")
        self._crops = []
        for index in range(count):
            present = crops is not None and index < len(crops) and self._mask[index]
            self._crops.append(rgb_image(crops[index]) if present else None)
        self.update()

    def used_instances(self) -> list[int]:
        """Indices of the highlighted crops: the heaviest with a face, at most `highlight` of them,
        leaving out those with less than half a uniform share of the weight (the model ignored those)."""
        floor = 0.5 / max(len(self._weights), 1)
        candidates = [i for i in range(len(self._weights)) if self._mask[i] and self._weights[i] >= floor]
        candidates.sort(key=lambda i: self._weights[i], reverse=True)
        return sorted(candidates[: self.highlight])

    @property
    def weights(self) -> list[float]:
        return list(self._weights)

    def paintEvent(self, event):
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(theme.BACKGROUND))
        count = len(self._crops)
        if count == 0:
            painter.setPen(QtGui.QColor(theme.MUTED))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "face crops of the current window")
            return
        used = set(self.used_instances())
        top_weight = max(self._weights) if self._weights and max(self._weights) > 0 else 1.0
        text_height = 14
        cell = min(self.width() / count, float(self.height() - text_height - 6))
        for index, image in enumerate(self._crops):
            left = index * (self.width() / count) + (self.width() / count - cell) / 2
            square = QtCore.QRectF(left, 2, cell - 4, cell - 4)
            problem = self._problems[index] if index < len(self._problems) else None
            quality = self._quality[index] if index < len(self._quality) else None
            if image is None:
                painter.fillRect(square, QtGui.QColor("#2a2c30"))
                painter.setPen(QtGui.QColor(theme.MUTED))
                text = "no face" if problem in (None, "no face") else ("low quality" if quality else problem)
                painter.drawText(square, QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap, text)
            else:
                painter.drawImage(square, image)
            if quality is not None and cell >= 40:
                painter.setPen(QtGui.QColor(theme.FOREGROUND if image is not None else theme.MUTED))
                painter.drawText(square.adjusted(2, 1, -2, -1), QtCore.Qt.AlignmentFlag.AlignLeft
                                 | QtCore.Qt.AlignmentFlag.AlignTop, f"{quality[0]:.0f}px")
            if index in used:
                painter.setPen(QtGui.QPen(QtGui.QColor(theme.GOOD), 3))
                painter.drawRect(square)
            weight = self._weights[index]
            bar = QtCore.QRectF(left, square.bottom() + 3, (cell - 4) * weight / top_weight, 3)
            painter.fillRect(bar, QtGui.QColor(theme.GOOD if index in used else theme.ACCENT))
            painter.setPen(QtGui.QColor(theme.FOREGROUND))
            painter.drawText(QtCore.QRectF(left, square.bottom() + 5, cell - 4, text_height),
                             QtCore.Qt.AlignmentFlag.AlignCenter, f"{weight:.2f}")


class FaceView(QtWidgets.QWidget):
    """Frame on top, crop strip below; when the video source failed, why, and a Retry for it alone."""

    retry_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.frame = FrameView()
        self.strip = CropStrip()
        title = QtWidgets.QLabel("<b>Face</b> · live frame; crops of the current window with their MIL weights")
        title.setWordWrap(True)
        self.problem = QtWidgets.QLabel("")
        self.problem.setObjectName("videoProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(f"color: {theme.ERROR};")
        self.retry_button = QtWidgets.QPushButton("Retry video")
        self.retry_button.setToolTip("open the video source again (the EEG keeps running)")
        self.retry_button.clicked.connect(self.retry_requested.emit)
        problem_row = QtWidgets.QHBoxLayout()
        problem_row.addWidget(self.problem, 1)
        problem_row.addWidget(self.retry_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addLayout(problem_row)
        layout.addWidget(self.frame, 3)
        layout.addWidget(self.strip, 1)
        self.show_problem(None)

    def show_problem(self, message: str | None, retrying: bool = False) -> None:
        """Say why there is no video (None: there is, or none was asked for), with a Retry button."""
        self.problem.setText(message or "")
        self.problem.setVisible(bool(message))
        self.retry_button.setVisible(bool(message))
        self.retry_button.setEnabled(not retrying)
        self.retry_button.setText("retrying…" if retrying else "Retry video")
        if message:
            self.frame.clear("video not connected: predictions from EEG alone")
