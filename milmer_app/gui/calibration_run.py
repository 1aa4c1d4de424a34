"""After a calibration session: `milmer-train calibrate` in a background process (progress, Cancel),
its report shown as both models' held-out figures side by side with the chance line and the decision,
and "Use calibrated model", which switches the running engine's model without reconnecting."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from pathlib import Path

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme

log = logging.getLogger(__name__)

EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+)")
CANCEL_GRACE_MS = 5000     # after Ctrl-C, how long the process may take to stop cleanly before it is killed


def calibrate_command(recordings: list[Path], checkpoint: str, out: Path) -> list[str]:
    """The `milmer-train calibrate` command line, run with this interpreter."""
    return [sys.executable, "-m", "training.cli", "calibrate", "--recording", *map(str, recordings),
            "--checkpoint", checkpoint, "--out", str(out)]


def report_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".report.json")


class CalibrationRunPage(QtWidgets.QWidget):
    """Runs the calibration of a recorded session and shows its result."""

    result_ready = QtCore.Signal(object)        # the report (dict)
    failed = QtCore.Signal(str)

    def __init__(self, window, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.window = window
        self.recording: Path | None = None
        self.checkpoint = "demo"
        self.stem: Path | None = None
        self.report: dict | None = None
        self.process: QtCore.QProcess | None = None
        self._kill_timer = QtCore.QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self._cancelled = False
        self._last_error_line = ""

        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.calibrate_button = QtWidgets.QPushButton("Calibrate now")
        self.calibrate_button.clicked.connect(self.run)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.log_view.setMaximumHeight(110)
        self.log_view.setVisible(False)
        self.result = CalibrationResultView()
        self.result.setVisible(False)
        self.use_button = QtWidgets.QPushButton("Use calibrated model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_calibrated)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.calibrate_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.log_view)
        layout.addWidget(self.result, 1)

    def set_session(self, recording: Path | None, rated: int, checkpoint: str) -> None:
        self.recording, self.checkpoint = recording, checkpoint
        self.stem = recording.with_name(recording.name + "-calibrated") if recording is not None else None
        self.summary.setText(f"Session recorded in {recording} with {rated} rated trial(s). Calibration adapts "
                             f"the model ({Path(checkpoint).name}) to these trials and tests both models on "
                             "the last trials, which it does not train on.")
        self.calibrate_button.setEnabled(recording is not None)

    # -- the background run -------------------------------------------------------------------
    def run(self) -> None:
        if self.recording is None or self.stem is None or self.running:
            return
        self.report = None
        self._cancelled = False
        self._last_error_line = ""
        self.result.setVisible(False)
        self.use_button.setEnabled(False)
        self.log_view.clear()
        self.log_view.setVisible(True)
        command = calibrate_command([self.recording], self.checkpoint, self.stem)
        process = QtCore.QProcess(self)
        process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(lambda: self._read(process, False))
        process.readyReadStandardError.connect(lambda: self._read(process, True))
        process.finished.connect(lambda code, status: self._finished(process, code))
        process.errorOccurred.connect(lambda error: self._failed_to_start(process, error))
        self.process = process
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.calibrate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.log_view.appendPlainText(" ".join(command[1:]))
        process.start(command[0], command[1:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QtCore.QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Stop the run as Ctrl-C would (it leaves nothing half-written), killed if it does not stop."""
        if not self.running:
            return
        self._cancelled = True
        pid = self.process.processId()
        if pid and hasattr(signal, "SIGINT") and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            self.process.terminate()
        self._kill_timer.start(CANCEL_GRACE_MS)

    def _kill(self) -> None:
        if self.running:
            self.process.kill()

    def _read(self, process: QtCore.QProcess, errors: bool) -> None:
        data = process.readAllStandardError() if errors else process.readAllStandardOutput()
        for line in bytes(data).decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            self.log_view.appendPlainText(line)
            if errors:
                self._last_error_line = line
            found = EPOCH_LINE.search(line)
            if found:
                done, total = int(found.group(1)), int(found.group(2))
                self.progress.setRange(0, max(total, 1))
                self.progress.setValue(done)

    def _failed_to_start(self, process: QtCore.QProcess, error) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart:
            self._done(f"calibration could not start: {process.errorString()}")

    def _finished(self, process: QtCore.QProcess, code: int) -> None:
        self._read(process, False)
        self._read(process, True)
        self._kill_timer.stop()
        if self._cancelled:
            self._done("calibration cancelled; nothing was kept")
            return
        if code != 0:
            self._done(f"calibration failed: {self._last_error_line or f'exit status {code}'}")
            return
        try:
            report = json.loads(report_path(self.stem).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            self._done(f"calibration finished but its report is unreadable: {exc}")
            return
        self._done(None)
        self.show_report(report)

    def _done(self, problem: str | None) -> None:
        self.process = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.calibrate_button.setEnabled(self.recording is not None)
        if problem is not None:
            self.log_view.appendPlainText(problem)
            self.summary.setText(problem)
            self.failed.emit(problem)

    # -- the result ---------------------------------------------------------------------------------
    def show_report(self, report: dict, stem: Path | None = None) -> None:
        """Show a calibration report (STEM.report.json's content); "Use calibrated model" when it
        decided for the calibrated model and wrote it."""
        if stem is not None:
            self.stem = stem
        self.report = report
        self.result.show_report(report)
        self.result.setVisible(True)
        usable = report.get("decision") == "calibrated" and bool(report.get("checkpoint")) and self.stem is not None
        self.use_button.setEnabled(usable)
        self.use_button.setToolTip("" if usable else "the calibrated model was not kept: the current model stays")
        self.result_ready.emit(report)

    def use_calibrated(self) -> None:
        if self.stem is not None and self.use_button.isEnabled():
            self.use_button.setEnabled(False)
            self.window.use_checkpoint(self.stem)


FIGURES = (("trial accuracy (majority vote)", "trial_majority_vote_accuracy"), ("window accuracy", "accuracy"),
           ("window balanced accuracy", "balanced_accuracy"), ("window macro-F1", "macro_f1"))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class CalibrationResultView(QtWidgets.QWidget):
    """The base and the calibrated model on the same held-out trials: a bar each, the chance line,
    the figures side by side, the decision and its reasons."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.decision = QtWidgets.QLabel()
        self.decision.setObjectName("calibrationDecision")
        self.decision.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.reasons = QtWidgets.QLabel()
        self.reasons.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.setLabel("left", "held-out trial accuracy")
        self.plot.getAxis("bottom").setTicks([[(0, "base"), (1, "calibrated")]])
        self.plot.setXRange(-0.6, 1.6, padding=0)
        self.plot.setMinimumHeight(160)
        self.bars: pg.BarGraphItem | None = None
        self.chance_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(theme.WARNING, width=2,
                                                                                 style=QtCore.Qt.PenStyle.DashLine),
                                           label="chance", labelOpts={"position": 0.5, "color": theme.WARNING,
                                                                      "anchors": [(0.5, 1), (0.5, 1)]})
        self.plot.addItem(self.chance_line)
        self.table = QtWidgets.QTableWidget(len(FIGURES) + 1, 2)
        self.table.setHorizontalHeaderLabels(["base", "calibrated"])
        self.table.setVerticalHeaderLabels(["trials right"] + [label for label, _ in FIGURES])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(190)
        self.chance_text = QtWidgets.QLabel()
        self.chance_text.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.decision)
        layout.addWidget(self.reasons)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.plot, 1)
        row.addWidget(self.table, 1)
        layout.addLayout(row, 1)
        layout.addWidget(self.chance_text)

    def show_report(self, report: dict) -> None:
        decision = report.get("decision")
        kept = decision == "calibrated"
        self.decision.setText("Decision: use the calibrated model" if kept
                              else "Decision: keep the current model")
        colour = theme.GOOD if kept else theme.WARNING
        self.decision.setStyleSheet(f"font-size: 14pt; font-weight: bold; color: {colour};")
        self.reasons.setText("\n".join(f"• {r}" for r in report.get("reasons", []) if isinstance(r, str)))
        held = report.get("held_out", {}) if isinstance(report.get("held_out"), dict) else {}
        chance = report.get("chance", {}) if isinstance(report.get("chance"), dict) else {}
        tests = chance.get("test_trials")
        heights = []
        for column, which in enumerate(("base", "calibrated")):
            figures = held.get(which, {}) if isinstance(held.get(which), dict) else {}
            right = figures.get("trials_correct")
            self.table.setItem(0, column, QtWidgets.QTableWidgetItem(f"{right} of {tests}" if right is not None
                                                                     else "—"))
            for row, (_, key) in enumerate(FIGURES, start=1):
                value = _number(figures.get(key))
                self.table.setItem(row, column, QtWidgets.QTableWidgetItem("—" if value is None else f"{value:.3f}"))
            heights.append(_number(figures.get("trial_majority_vote_accuracy")) or 0.0)
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        self.bars = pg.BarGraphItem(x=[0, 1], height=heights, width=0.6,
                                    brushes=[pg.mkBrush(theme.MUTED), pg.mkBrush(theme.GOOD if kept else theme.ACCENT)])
        self.plot.addItem(self.bars)
        needed = _number(chance.get("accuracy_needed_p05"))
        self.chance_line.setVisible(needed is not None)
        if needed is not None:
            self.chance_line.setValue(needed)
        baseline = _number(chance.get("majority_class_baseline"))
        self.chance_text.setText(
            f"{tests} held-out trial(s); beating chance at p < 0.05 needs {chance.get('trials_needed_p05')} of "
            f"them right ({needed:.0%} of trials)" if needed is not None else "chance threshold not given")
        if baseline is not None:
            self.chance_text.setText(self.chance_text.text() + f"; always guessing the commonest class: "
                                                               f"{baseline:.0%}.")

    def bar_heights(self) -> list[float]:
        if self.bars is None:
            return []
        return [float(h) for h in self.bars.opts["height"]]
