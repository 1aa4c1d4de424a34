"""Labels that shorten their text with "…" instead of widening (or lengthening) their layout; the
whole text is always in the tooltip."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets


class ElidedLabel(QtWidgets.QLabel):
    """Shows as much of its text as fits on one line, cut in the middle by default (both the start and
    the end of a trial name, a stream or a model description say something); asks for `min_chars`
    characters of room at least, its whole text at best, so a narrow window shortens it rather than
    growing past the screen."""

    def __init__(self, text: str = "", min_chars: int = 8, parent: QtWidgets.QWidget | None = None,
                 mode: QtCore.Qt.TextElideMode = QtCore.Qt.TextElideMode.ElideMiddle, hide_empty: bool = False):
        super().__init__(text, parent)
        self.min_chars = min_chars
        self.mode = mode
        self.hide_empty = hide_empty   # take no room while there is nothing to say
        self.setToolTip(text)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        if hide_empty and not text:
            self.setVisible(False)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
        if self.hide_empty:
            self.setVisible(bool(text))
        self.updateGeometry()

    def minimumSizeHint(self) -> QtCore.QSize:
        hint = super().minimumSizeHint()
        return QtCore.QSize(min(hint.width(), self.fontMetrics().averageCharWidth() * self.min_chars), hint.height())

    def elided(self) -> bool:
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def shown_text(self) -> str:
        """The text as painted (with "…" where it is cut)."""
        return self.fontMetrics().elidedText(self.text(), self.mode, self.contentsRect().width())

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        painter.drawText(self.contentsRect(), int(self.alignment() | QtCore.Qt.AlignmentFlag.AlignVCenter),
                         self.shown_text())


class ClampedLabel(QtWidgets.QLabel):
    """Word-wrapped text of at most `lines` lines, the last one ending in "…" when the text is longer
    (a kind's help text would otherwise take a third of the Sources dock)."""

    def __init__(self, text: str = "", lines: int = 2, parent: QtWidgets.QWidget | None = None):
        super().__init__(text, parent)
        self.lines = lines
        self.setWordWrap(True)
        self.setToolTip(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def _cap(self) -> int:
        margins = self.contentsMargins()
        return self.lines * self.fontMetrics().lineSpacing() + margins.top() + margins.bottom()

    def heightForWidth(self, width: int) -> int:
        return min(super().heightForWidth(width), self._cap())

    def sizeHint(self) -> QtCore.QSize:
        hint = super().sizeHint()
        return QtCore.QSize(hint.width(), min(hint.height(), self._cap()))

    def minimumSizeHint(self) -> QtCore.QSize:
        hint = super().minimumSizeHint()
        return QtCore.QSize(hint.width(), min(hint.height(), self._cap()))

    def shown_lines(self) -> list[str]:
        """The lines as painted (the last with "…" where the text goes on)."""
        width = max(1, self.contentsRect().width())
        metrics = self.fontMetrics()
        layout = QtGui.QTextLayout(self.text(), self.font())
        layout.beginLayout()
        spans = []
        while len(spans) < self.lines:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            spans.append((line.textStart(), line.textLength()))
        layout.endLayout()
        text = self.text()
        shown = [text[start:start + length].rstrip() for start, length in spans]
        if spans and sum(spans[-1]) < len(text):
            last_start = spans[-1][0]
            shown[-1] = metrics.elidedText(text[last_start:], QtCore.Qt.TextElideMode.ElideRight, width)
        return shown

    def elided(self) -> bool:
        return any(line.endswith("…") for line in self.shown_lines()) and not self.text().endswith("…")

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        rect = self.contentsRect()
        step = self.fontMetrics().lineSpacing()
        for index, line in enumerate(self.shown_lines()):
            painter.drawText(QtCore.QRect(rect.left(), rect.top() + index * step, rect.width(), step),
                             int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter), line)
