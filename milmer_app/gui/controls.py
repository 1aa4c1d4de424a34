"""Replay controls (play, pause, speed, seek, next trial) and the record button."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme

SPEEDS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
SEEK_STEPS = 1000
DESCRIPTION_WIDTH = 190   # the replayed item's name, elided: a longer one must not shift the toolbar


def fix_width(widget: QtWidgets.QWidget, *texts: str, padding: int = 24) -> None:
    """A fixed width that holds the widest of `texts`, so the toolbar does not move when the text changes."""
    metrics = widget.fontMetrics()
    widget.setFixedWidth(max(metrics.horizontalAdvance(text) for text in texts) + padding)


def browse_button(tooltip: str) -> QtWidgets.QPushButton:
    """A small folder-icon button for choosing a file or folder."""
    button = QtWidgets.QPushButton()
    button.setIcon(QtWidgets.QApplication.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_DirOpenIcon))
    button.setToolTip(tooltip)
    button.setFixedWidth(30)
    return button


def format_bytes(count: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count /= 1024
        power += 1
    return f"{count:.0f} {units[power]}" if power < 2 else f"{count:.1f} {units[power]}"


def format_clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class ReplayControls(QtWidgets.QWidget):
    """Drives an engine `ReplayControl`; disabled when the source is live."""

    trial_changed = QtCore.Signal()
    paused_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.replay = None
        self.play_button = QtWidgets.QPushButton("Pause")
        self.play_button.setToolTip("pause or resume the replay")
        self.play_button.clicked.connect(self.toggle_pause)
        self.speed_box = QtWidgets.QComboBox()
        self.speed_box.addItems([f"{s:g}x" for s in SPEEDS])
        self.speed_box.setCurrentText("1x")
        self.speed_box.setToolTip("replay speed")
        self.speed_box.currentTextChanged.connect(self._speed_chosen)
        self.seek_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.seek_slider.setRange(0, SEEK_STEPS)
        self.seek_slider.setMinimumWidth(120)
        self.seek_slider.sliderReleased.connect(self._seek_released)
        self.position_label = QtWidgets.QLabel("–")
        self.next_button = QtWidgets.QPushButton("Next trial")
        self.next_button.clicked.connect(self.next_trial)
        self.description_label = QtWidgets.QLabel("live source")
        self.description_label.setFixedWidth(DESCRIPTION_WIDTH)
        self.description_label.setStyleSheet(f"color: {theme.MUTED};")
        fix_width(self.play_button, "Play", "Pause")
        fix_width(self.next_button, "Next trial")
        fix_width(self.position_label, "00:00 / 00:00", padding=8)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.play_button, self.speed_box, self.seek_slider, self.position_label, self.next_button,
                       self.description_label):
            layout.addWidget(widget)
        self.bind(None)

    def bind(self, replay) -> None:
        self.replay = replay
        for widget in (self.play_button, self.speed_box, self.seek_slider, self.next_button):
            widget.setEnabled(replay is not None)
        if replay is None:
            self.play_button.setText("Play")
            self.position_label.setText("–")
            self._describe("live source")
            self.seek_slider.setValue(0)
        else:
            self.speed_box.setCurrentText(f"{replay.speed:g}x")
            self.refresh()

    def refresh(self) -> None:
        replay = self.replay
        if replay is None:
            return
        self.play_button.setText("Play" if replay.paused else "Pause")
        self._describe(replay.description)
        duration = max(replay.duration, 1e-9)
        position = replay.position
        self.position_label.setText(f"{format_clock(position)} / {format_clock(replay.duration)}")
        if not self.seek_slider.isSliderDown():
            self.seek_slider.setValue(int(round(SEEK_STEPS * min(position / duration, 1.0))))

    def _describe(self, text: str) -> None:
        metrics = self.description_label.fontMetrics()
        self.description_label.setText(metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideMiddle,
                                                          self.description_label.width() - 4))
        self.description_label.setToolTip(text)

    def toggle_pause(self) -> None:
        if self.replay is None:
            return
        if self.replay.paused:
            self.replay.resume()
        else:
            self.replay.pause()
        self.refresh()
        self.paused_changed.emit(self.replay.paused)

    def next_trial(self) -> None:
        if self.replay is not None and self.replay.next_trial():
            self.trial_changed.emit()
        self.refresh()

    def _speed_chosen(self, text: str) -> None:
        if self.replay is not None and text:
            self.replay.set_speed(float(text.rstrip("x")))

    def _seek_released(self) -> None:
        if self.replay is not None:
            self.replay.seek(self.seek_slider.value() / SEEK_STEPS * self.replay.duration)
            self.refresh()


class RecordControls(QtWidgets.QWidget):
    """Record button with elapsed time and the free space where recordings go."""

    start_requested = QtCore.Signal(Path)
    stop_requested = QtCore.Signal()

    def __init__(self, folder: Path, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.folder = Path(folder)
        self.record_button = QtWidgets.QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("record EEG, frames, markers and predictions")
        self.record_button.clicked.connect(self._clicked)
        self.folder_button = browse_button("folder that new recordings go into")
        self.folder_button.clicked.connect(self._choose_folder)
        self.elapsed_label = QtWidgets.QLabel("")
        self.free_label = QtWidgets.QLabel("")
        self.free_label.setStyleSheet(f"color: {theme.MUTED};")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.record_button, self.folder_button, self.elapsed_label, self.free_label):
            layout.addWidget(widget)
        self.last_path: Path | None = None
        self.refresh(None)

    def set_folder(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.refresh(None)

    def new_recording_path(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"recording-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = self.folder / f"recording-{stamp}-{suffix}"
        return path

    def refresh(self, status) -> None:
        """Show an engine `RecordingStatus` (None: idle, no engine)."""
        active = bool(status is not None and status.active)
        self.record_button.blockSignals(True)
        self.record_button.setChecked(active)
        self.record_button.setText("■ Stop" if active else "● Record")
        self.record_button.blockSignals(False)
        if status is not None and getattr(status, "error", None):
            self.elapsed_label.setText(f"recording error: {status.error}")
            self.elapsed_label.setStyleSheet(f"color: {theme.ERROR};")
        elif active:
            self.elapsed_label.setText(f"REC {format_clock(status.elapsed_s)}")
            self.elapsed_label.setStyleSheet(f"color: {theme.ERROR}; font-weight: bold;")
        else:
            self.elapsed_label.setText("")
        free = status.free_bytes if active and status.free_bytes is not None else self._free_bytes()
        self.free_label.setText(f"free {format_bytes(free)}" if free is not None else "")

    def _free_bytes(self) -> int | None:
        probe = self.folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free
        except OSError:
            return None

    def _clicked(self, checked: bool) -> None:
        if checked:
            self.last_path = self.new_recording_path()
            self.start_requested.emit(self.last_path)
        else:
            self.stop_requested.emit()

    def _choose_folder(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder for recordings", str(self.folder))
        if chosen:
            self.set_folder(Path(chosen))
