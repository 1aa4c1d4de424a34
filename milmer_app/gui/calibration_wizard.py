"""The guided calibration session: preflight, a rest baseline, then N trials of fixation -> stimulus
-> valence and arousal ratings -> washout, with pause, resume and redo. It records into a normal
recording and writes exactly the calibration protocol's markers (`models.calibration_protocol`);
afterwards it runs `milmer-train calibrate` in the background (`CalibrationRunPage`)."""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import replace
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.calibration.plan import QUADRANT_WORDS, PlannedTrial, Timings, builtin_plan, external_plan, folder_plan
from milmer_app.calibration.preflight import calibration_problem
from milmer_app.gui import theme
from milmer_app.gui.calibration_run import CalibrationRunPage
from milmer_app.gui.controls import browse_button
from milmer_app.gui.sam import RatingScale
from models.calibration_protocol import (
    ProtocolError,
    Rating,
    parse_marker,
    rating_text,
    trial_end_text,
    trial_start_text,
)
from models.contract import QUADRANT_CLASSES
from models.errors import MilmerError
from models.pipeline.labels import LabelRule

log = logging.getLogger(__name__)

STIMULI = {"builtin": "built-in recall and imagery prompts", "folder": "my own images and videos (a folder)",
           "external": "external: experiment software sends the markers"}
MARKER_STREAM = "milmer calibration wizard"


class CalibrationWizard(QtWidgets.QDialog):
    """Runs one calibration session on the window's running engine."""

    session_finished = QtCore.Signal(object)     # the recording folder (Path)

    def __init__(self, window, timings: Timings | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent or window)
        self.setWindowTitle("Calibrate for this person")
        self.window = window
        self.timings = timings if timings is not None else Timings()
        self.plan: list[PlannedTrial] = []
        self.index = 0
        self.phase = "setup"        # setup | rest | fixation | stimulus | rating | washout | external | done
        self.paused = False
        self.recording: Path | None = None
        self._started_recording = False
        self.ratings: dict[str, Rating] = {}         # trial id -> its latest rating
        self._remaining_ms: int | None = None
        self._rule = LabelRule()
        self._video = None
        self.timer = QtCore.QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._phase_done)
        self.clock = QtCore.QTimer(self)             # the countdown shown, and video frames
        self.clock.setInterval(100)
        self.clock.timeout.connect(self._tick)

        self.pages = QtWidgets.QStackedWidget()
        self.setup_page = self._build_setup()
        self.run_page = self._build_run()
        self.calibrate_page = CalibrationRunPage(window)
        for page in (self.setup_page, self.run_page, self.calibrate_page):
            self.pages.addWidget(page)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.pages)
        self.resize(760, 640)
        window.bridge.marker.connect(self._marker_seen)

    # -- setup ----------------------------------------------------------------------------
    def _build_setup(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout()
        self.stimulus_box = QtWidgets.QComboBox()
        for key, text in STIMULI.items():
            self.stimulus_box.addItem(text, key)
        self.folder_edit = QtWidgets.QLineEdit()
        self.folder_edit.setPlaceholderText("folder of images/videos")
        folder_button = browse_button("choose the folder of stimuli")
        folder_button.clicked.connect(lambda: self._browse(self.folder_edit, folder=True))
        self.csv_edit = QtWidgets.QLineEdit()
        self.csv_edit.setPlaceholderText("optional CSV: file,quadrant (HAHV, LAHV, LALV, HALV)")
        csv_button = browse_button("choose the CSV of target quadrants")
        csv_button.clicked.connect(lambda: self._browse(self.csv_edit, folder=False))
        self.markers_edit = QtWidgets.QLineEdit()
        self.markers_edit.setPlaceholderText("the experiment's marker stream, e.g. lsl:type=Markers")
        self.markers_edit.setToolTip("external stimuli: the LSL marker stream the experiment software sends "
                                     "the calibration markers on (as --markers takes it)")
        self.trials_box = QtWidgets.QSpinBox(minimum=1, maximum=200, value=20)
        self.trials_box.setToolTip("5 per target quadrant for 20")

        def seconds(value: float, minimum: float = 0.0) -> QtWidgets.QDoubleSpinBox:
            box = QtWidgets.QDoubleSpinBox(minimum=minimum, maximum=3600.0, value=value, decimals=1, suffix=" s")
            return box

        t = self.timings
        self.rest_box, self.fixation_box = seconds(t.rest_s), seconds(t.fixation_s)
        self.stimulus_s_box, self.washout_box = seconds(t.stimulus_s, 0.1), seconds(t.washout_s)
        row = self._row
        form.addRow("stimuli", self.stimulus_box)
        form.addRow("folder", row(self.folder_edit, folder_button))
        form.addRow("targets", row(self.csv_edit, csv_button))
        form.addRow("marker stream", self.markers_edit)
        form.addRow("trials", self.trials_box)
        form.addRow("rest baseline", self.rest_box)
        form.addRow("fixation", self.fixation_box)
        form.addRow("stimulus", self.stimulus_s_box)
        form.addRow("washout", self.washout_box)
        self.setup_problem = QtWidgets.QLabel()
        self.setup_problem.setWordWrap(True)
        self.setup_problem.setObjectName("calibrationProblem")
        self.setup_problem.setStyleSheet(f"color: {theme.ERROR};")
        self.start_button = QtWidgets.QPushButton("Start calibration")
        self.start_button.clicked.connect(self.start)
        intro = QtWidgets.QLabel(
            "The session records your EEG and face while you recall or imagine situations, then asks how you "
            "felt (valence: unpleasant to pleasant; arousal: calm to excited). Sit comfortably facing the "
            "camera. Afterwards a model is adapted to you and compared with the current one on trials it "
            "never saw; you choose whether to use it.")
        intro.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.setup_problem)
        layout.addStretch(1)
        layout.addWidget(self.start_button, 0, QtCore.Qt.AlignmentFlag.AlignRight)
        self.stimulus_box.currentIndexChanged.connect(self._stimulus_kind_changed)
        self._stimulus_kind_changed()
        return page

    @staticmethod
    def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
        holder = QtWidgets.QWidget()
        line = QtWidgets.QHBoxLayout(holder)
        line.setContentsMargins(0, 0, 0, 0)
        for widget in widgets:
            line.addWidget(widget, 1 if isinstance(widget, QtWidgets.QLineEdit) else 0)
        return holder

    def _browse(self, edit: QtWidgets.QLineEdit, folder: bool) -> None:
        if folder:
            chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Stimulus folder", edit.text())
        else:
            chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Target quadrants", edit.text(), "CSV (*.csv)")
        if chosen:
            edit.setText(chosen)

    def _stimulus_kind_changed(self) -> None:
        own = self.stimulus_box.currentData() == "folder"
        self.folder_edit.setEnabled(own)
        self.csv_edit.setEnabled(own)
        engine = self.window.engine
        current = engine.marker_source if engine is not None else None
        self.markers_edit.setEnabled(self.stimulus_box.currentData() == "external" and current is None)
        if current is not None:
            self.markers_edit.setText(str(engine.config.markers))

    def chosen_timings(self) -> Timings:
        return Timings(self.rest_box.value(), self.fixation_box.value(), self.stimulus_s_box.value(),
                       self.washout_box.value())

    def make_plan(self) -> list[PlannedTrial]:
        kind, trials = self.stimulus_box.currentData(), self.trials_box.value()
        if kind == "folder":
            folder = self.folder_edit.text().strip()
            if not folder:
                raise MilmerError("choose the folder of your images or videos")
            targets = self.csv_edit.text().strip()
            return folder_plan(Path(folder).expanduser(), Path(targets).expanduser() if targets else None, trials)
        if kind == "external":
            return external_plan(trials)
        return builtin_plan(trials)

    # -- the session ----------------------------------------------------------------------------
    def start(self) -> None:
        """Preflight, then the rest baseline; the reason in the setup page when it cannot start."""
        try:
            self.timings = self.chosen_timings()
            plan = self.make_plan()
            engine = self.window.engine
            problem = calibration_problem(engine, self.window.last_prediction)
            if problem is not None:
                raise MilmerError(problem)
            if plan[0].stimulus.kind == "external" and engine.marker_source is None:
                self._connect_markers(engine)
                return
            self._start_recording()
        except MilmerError as exc:
            self.setup_problem.setText(f"Cannot start: {exc}")
            return
        self.setup_problem.clear()
        self.plan, self.index, self.ratings = plan, 0, {}
        self.pages.setCurrentWidget(self.run_page)
        self._show_progress()
        self._enter("rest", self.timings.rest_s)

    def _connect_markers(self, engine) -> None:
        """External stimuli: open the marker stream named in the form, then start again."""
        spec = self.markers_edit.text().strip()
        if not spec:
            raise MilmerError("external stimuli need the experiment's marker stream: name it (e.g. "
                              "lsl:type=Markers), or start milmer-app with --markers")
        self.start_button.setEnabled(False)
        self.setup_problem.setText(f"connecting the marker stream {spec}…")

        def connected(_=None) -> None:
            self.start_button.setEnabled(True)
            if engine.marker_source is not None:
                self.start()

        def failed(message: str) -> None:
            self.start_button.setEnabled(True)
            self.setup_problem.setText(f"Cannot start: {message}")

        self.window.bridge.runner.start(lambda: engine.connect_markers(spec), "connecting the marker stream",
                                        connected, failed)

    def _start_recording(self) -> None:
        engine = self.window.engine
        status = engine.recording_status()
        if status.active:
            self.recording, self._started_recording = status.path, False
            return
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path(self.window.record_controls.folder) / f"calibration-{stamp}"
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = folder.with_name(f"calibration-{stamp}-{suffix}")
        engine.start_recording(folder)
        self.recording, self._started_recording = folder, True
        self.window.record_controls.refresh(engine.recording_status())

    def _marker(self, text: str) -> bool:
        """Write a protocol marker; when the recording has gone (sources disconnected, disk full) the
        session stops, saying so, instead of going on unrecorded."""
        engine = self.window.engine
        status = engine.recording_status() if engine is not None else None
        if status is None or not status.active:
            why = "the sources were disconnected" if engine is None else (status.error or "the recording was stopped")
            self._abort(f"session stopped: {why}; {self.recording or 'nothing'} keeps what was recorded")
            return False
        engine.add_marker(text, stream=MARKER_STREAM)
        return True

    def _abort(self, message: str) -> None:
        self.timer.stop()
        self.clock.stop()
        self._stop_video()
        self.phase, self.paused = "setup", False
        self.setup_problem.setText(message)
        self.pages.setCurrentWidget(self.setup_page)

    @property
    def current(self) -> PlannedTrial:
        return self.plan[self.index]

    def _enter(self, phase: str, seconds: float | None) -> None:
        self.phase = phase
        self._stop_video()
        self.timer.stop()
        self.rating_box.setVisible(phase == "rating")
        self.stimulus_view.setVisible(phase != "rating")
        if seconds is not None and not self.paused:
            self.timer.start(max(0, round(seconds * 1000)))
        if not self.clock.isActive():
            self.clock.start()
        self._remaining_ms = None
        if phase == "rest":
            self._say("Rest", "Sit still with your eyes open, relaxed, looking at the cross.", "+")
        elif phase == "fixation":
            self._say(f"Trial {self.index + 1} of {len(self.plan)}", "Look at the cross.", "+")
        elif phase == "stimulus":
            self._show_stimulus(self.current)
        elif phase == "rating":
            self._say(f"Trial {self.index + 1}: how did you feel?", "", "")
            self.valence.reset()
            self.arousal.reset()
            self.unsure_box.setChecked(False)
            self._update_submit()
        elif phase == "washout":
            self._say("Relax", "Let the feeling fade. Breathe slowly.", "")
        elif phase == "external":
            self._say("Experiment running", "The experiment software runs the trials and sends the markers. "
                      "Press Finish when it is done.", "")
        self._update_buttons()

    def _phase_done(self) -> None:
        phase = self.phase
        if phase == "rest":
            if self.plan and self.plan[0].stimulus.kind == "external":
                self._enter("external", None)
            else:
                self._enter("fixation", self.timings.fixation_s)
        elif phase == "fixation":
            if self._marker(trial_start_text(self.current.trial)):
                self._enter("stimulus", self.timings.stimulus_s)
        elif phase == "stimulus":
            if self._marker(trial_end_text(self.current.trial)):
                self._enter("rating", None)
        elif phase == "washout":
            self.index += 1
            if self.index >= len(self.plan):
                self.finish()
            else:
                self._enter("fixation", self.timings.fixation_s)

    def submit_rating(self) -> None:
        if self.phase != "rating" or self.paused:
            return
        trial = self.current
        skip = self.unsure_box.isChecked()
        text = rating_text(trial.trial, None if skip else self.valence.value(), None if skip else self.arousal.value(),
                           stimulus=trial.stimulus.title, skip=skip)
        if not self._marker(text):
            return
        rating = parse_marker(text)
        assert isinstance(rating, Rating)
        self.ratings[trial.trial] = rating
        self._show_progress()
        self._enter("washout", self.timings.washout_s)

    def toggle_pause(self) -> None:
        if self.phase in ("setup", "done"):
            return
        if not self.paused:
            self.paused = True
            if self.timer.isActive():
                self._remaining_ms = self.timer.remainingTime()
                self.timer.stop()
            if self.phase == "stimulus":
                # A trial interrupted is done again from its fixation: its span must be one stretch.
                self._marker(trial_end_text(self.current.trial))
                self._remaining_ms = None
            self._stop_video()
            self.phase_title.setText(self.phase_title.text() + " (paused)")
        else:
            self.paused = False
            if self.phase == "stimulus":
                self._enter("fixation", self.timings.fixation_s)      # the trial again, same id
            else:
                if self._remaining_ms is not None:
                    self.timer.start(self._remaining_ms)
                    self._remaining_ms = None
                self.phase_title.setText(self.phase_title.text().removesuffix(" (paused)"))
        self._update_buttons()

    def redo_trial(self) -> None:
        """Do the current trial again (in fixation before it has started: the previous one); the
        protocol drops a redone trial's earlier span and rating."""
        if self.phase not in ("fixation", "stimulus", "rating", "washout") or not self.plan:
            return
        if self.phase == "fixation" and self.index > 0:
            self.index -= 1
        if self.phase == "stimulus" and not self.paused:
            self._marker(trial_end_text(self.current.trial))
        self.ratings.pop(self.current.trial, None)
        self.paused = False
        self._show_progress()
        self._enter("fixation", self.timings.fixation_s)

    def finish(self) -> None:
        """End the session (all trials done, or stopped early): the recording is closed and kept."""
        if self.phase == "stimulus" and not self.paused:
            self._marker(trial_end_text(self.current.trial))
        self.timer.stop()
        self.clock.stop()
        self._stop_video()
        self.phase = "done"
        engine = self.window.engine
        if self._started_recording and engine is not None:
            engine.stop_recording()
            self.window.record_controls.refresh(engine.recording_status())
        rated = sum(1 for r in self.ratings.values() if not r.skip)
        self.calibrate_page.set_session(self.recording, rated,
                                        str(engine.checkpoint_path) if engine is not None and
                                        engine.checkpoint_path is not None else "demo")
        self.pages.setCurrentWidget(self.calibrate_page)
        self.session_finished.emit(self.recording)

    def _marker_seen(self, text: str, stamp: float, stream: str) -> None:
        """Ratings sent by experiment software (external stimuli) count in the progress too."""
        if self.phase != "external" or stream == MARKER_STREAM:
            return
        try:
            marker = parse_marker(text)
        except ProtocolError as exc:
            self.stimulus_text.setText(f"marker ignored: {exc}")
            return
        if isinstance(marker, Rating):
            self.ratings[marker.trial] = marker
            self._show_progress()
            if len(self.ratings) >= len(self.plan):
                self.finish()

    # -- the run page -----------------------------------------------------------------------------
    def _build_run(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.progress_label = QtWidgets.QLabel()
        self.progress_label.setObjectName("calibrationProgress")
        self.phase_title = QtWidgets.QLabel()
        self.phase_title.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.countdown = QtWidgets.QLabel()
        self.countdown.setStyleSheet(f"color: {theme.MUTED};")
        self.stimulus_view = QtWidgets.QLabel()
        self.stimulus_view.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.stimulus_view.setMinimumHeight(300)
        self.stimulus_view.setWordWrap(True)
        self.stimulus_text = QtWidgets.QLabel()
        self.stimulus_text.setWordWrap(True)
        self.stimulus_text.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.stimulus_text.setStyleSheet("font-size: 14pt;")

        self.rating_box = QtWidgets.QWidget()
        self.valence = RatingScale("valence", "unpleasant", "pleasant")
        self.arousal = RatingScale("arousal", "calm", "excited")
        self.unsure_box = QtWidgets.QCheckBox("unsure: I cannot say (this trial is left out)")
        self.submit_button = QtWidgets.QPushButton("Submit rating")
        self.submit_button.clicked.connect(self.submit_rating)
        for widget in (self.valence, self.arousal):
            widget.changed.connect(lambda _: self._update_submit())
        self.unsure_box.toggled.connect(lambda _: self._update_submit())
        rating_layout = QtWidgets.QVBoxLayout(self.rating_box)
        rating_layout.addWidget(self.valence)
        rating_layout.addWidget(self.arousal)
        rating_layout.addWidget(self.unsure_box)
        rating_layout.addWidget(self.submit_button, 0, QtCore.Qt.AlignmentFlag.AlignRight)

        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.redo_button = QtWidgets.QPushButton("Redo trial")
        self.redo_button.setToolTip("do the current trial again (before it starts: the previous one)")
        self.redo_button.clicked.connect(self.redo_trial)
        self.finish_button = QtWidgets.QPushButton("Finish")
        self.finish_button.setToolTip("end the session now; the recording keeps what was done")
        self.finish_button.clicked.connect(self.finish)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.redo_button)
        buttons.addStretch(1)
        buttons.addWidget(self.finish_button)
        layout = QtWidgets.QVBoxLayout(page)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.phase_title)
        layout.addWidget(self.countdown)
        layout.addWidget(self.stimulus_view, 1)
        layout.addWidget(self.stimulus_text)
        layout.addWidget(self.rating_box, 1)
        layout.addLayout(buttons)
        return page

    def _say(self, title: str, text: str, big: str) -> None:
        self.phase_title.setText(title)
        self.stimulus_text.setText(text)
        self.stimulus_view.setPixmap(QtGui.QPixmap())
        self.stimulus_view.setStyleSheet("font-size: 48pt;")
        self.stimulus_view.setText(big)

    def _show_stimulus(self, trial: PlannedTrial) -> None:
        stimulus = trial.stimulus
        self.phase_title.setText(f"Trial {self.index + 1} of {len(self.plan)}")
        self.stimulus_view.setText("")
        if stimulus.kind == "image" and stimulus.path is not None:
            pixmap = QtGui.QPixmap(str(stimulus.path))
            if pixmap.isNull():
                self.stimulus_view.setText("(image unreadable)")
            else:
                self.stimulus_view.setPixmap(pixmap.scaled(self.stimulus_view.size(),
                                                           QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                                           QtCore.Qt.TransformationMode.SmoothTransformation))
            self.stimulus_text.setText("Look at the picture and let it affect you.")
        elif stimulus.kind == "video" and stimulus.path is not None:
            import cv2

            self._video = cv2.VideoCapture(str(stimulus.path))
            self.stimulus_text.setText("Watch the video.")
        else:
            self.stimulus_view.setPixmap(QtGui.QPixmap())
            self.stimulus_view.setStyleSheet("font-size: 20pt;")
            self.stimulus_view.setText(stimulus.text)
            self.stimulus_text.setText("Close your eyes if it helps; stay with the feeling until the time is up.")

    def _stop_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def _tick(self) -> None:
        if self.timer.isActive():
            self.countdown.setText(f"{self.timer.remainingTime() / 1000:.0f} s")
        elif self.phase == "rating":
            self.countdown.setText("rate, then submit")
        else:
            self.countdown.setText("")
        if self._video is not None:
            import cv2

            ok, frame = self._video.read()
            if not ok:
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._video.read()
            if ok:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                image = QtGui.QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0],
                                     QtGui.QImage.Format.Format_RGB888).copy()
                self.stimulus_view.setPixmap(QtGui.QPixmap.fromImage(image).scaled(
                    self.stimulus_view.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio))

    def _update_submit(self) -> None:
        ready = self.unsure_box.isChecked() or (self.valence.touched and self.arousal.touched)
        self.submit_button.setEnabled(ready and not self.paused)
        self.valence.setEnabled(not self.unsure_box.isChecked())
        self.arousal.setEnabled(not self.unsure_box.isChecked())

    def _update_buttons(self) -> None:
        running = self.phase not in ("setup", "done")
        self.pause_button.setEnabled(running and self.phase != "external")
        self.pause_button.setText("Resume" if self.paused else "Pause")
        self.redo_button.setEnabled(self.phase in ("fixation", "stimulus", "rating", "washout"))
        if self.phase == "rating":
            self._update_submit()

    def progress(self) -> dict[str, int]:
        """Rated trials (not skipped) per quadrant of their rating; ratings on the threshold apart."""
        counts = {name: 0 for name in QUADRANT_CLASSES}
        counts["on the threshold"] = 0
        for rating in self.ratings.values():
            if rating.skip:
                continue
            assert rating.valence is not None and rating.arousal is not None
            if self._rule.threshold in (rating.valence, rating.arousal):
                counts["on the threshold"] += 1
            else:
                counts[QUADRANT_CLASSES[self._rule.apply(rating.valence, rating.arousal)]] += 1
        return counts

    def _show_progress(self) -> None:
        counts = self.progress()
        planned = {name: sum(1 for t in self.plan if t.target == name) for name in QUADRANT_CLASSES}
        parts = [f"{name} ({QUADRANT_WORDS[name].split(',')[0]}) {counts[name]}"
                 + (f"/{planned[name]}" if planned[name] else "") for name in QUADRANT_CLASSES]
        skipped = sum(1 for r in self.ratings.values() if r.skip)
        extra = [f"{counts['on the threshold']} on the threshold"] if counts["on the threshold"] else []
        extra += [f"{skipped} unsure"] if skipped else []
        self.progress_label.setText(f"rated {len(self.ratings)} of {len(self.plan)} · " + " · ".join(parts + extra))

    def closeEvent(self, event) -> None:
        if self.phase not in ("setup", "done"):
            self.finish()
        self.calibrate_page.cancel()
        super().closeEvent(event)


def small_timings(seconds: float = 0.2) -> Timings:
    """Every phase `seconds` long (tests, a quick look)."""
    return replace(Timings(), rest_s=seconds, fixation_s=seconds, stimulus_s=seconds, washout_s=seconds)
