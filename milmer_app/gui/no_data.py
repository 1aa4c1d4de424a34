"""A centred message over a plot that has nothing to draw, in place of its empty, collapsed axes."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme


class NoDataOverlay(QtWidgets.QLabel):
    """Covers `plot` (a PlotWidget) with `text` while `set_empty(True)`; the axes hide meanwhile."""

    def __init__(self, plot: pg.PlotWidget, text: str = "no data", axes: tuple[str, ...] = ("left", "bottom")):
        super().__init__(text, plot)
        self.plot = plot
        self.axes = axes
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet(f"color: {theme.MUTED}; background: transparent;")
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        plot.installEventFilter(self)
        self.empty = False
        self.set_empty(True)

    def set_empty(self, empty: bool, text: str | None = None) -> None:
        if text is not None:
            self.setText(text)
        if empty == self.empty:
            return
        self.empty = empty
        for axis in self.axes:
            self.plot.getPlotItem().showAxis(axis, not empty)
        self.setVisible(empty)
        self._fit()

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if watched is self.plot and event.type() == QtCore.QEvent.Type.Resize:
            self._fit()
        return False

    def _fit(self) -> None:
        self.setGeometry(self.plot.rect())
        self.raise_()
