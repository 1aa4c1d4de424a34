"""The milmer-app main window: a view over the live engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import settings as stored
from milmer_app.gui.bridge import EngineBridge
from milmer_app.gui.controls import RecordControls, ReplayControls
from milmer_app.gui.eeg_view import EegTraceView
from milmer_app.gui.emotion_view import EmotionView
from milmer_app.gui.face_view import FaceView
from milmer_app.gui.selection import SourceSelection
from milmer_app.gui.signal_quality import assess_channels
from milmer_app.gui.sources_panel import SourcesPanel
from milmer_app.gui.spectrum_view import SpectrumView
from milmer_app.gui.startup_notice import StartupNotice
from milmer_app.gui.status_bar import EngineStatusBar
from milmer_app.gui.workers import CLOSE_WAIT_S

DRAW_INTERVAL_MS = 25       # traces and camera frame (40 Hz asked, so 30 Hz holds under load)
SLOW_INTERVAL_MS = 500      # spectrum, channel flags, replay position, recording, stale status
QUALITY_SECONDS = 4.0
SOURCES_WIDTH = 290         # room for the widest sources page (LSL stream table, DEAP trial table)
WINDOW_TITLE = "milmer — EEG + face emotion recognition"
LOST_EVENT = "stream lost: "   # the engine's event text, followed by the stream name


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, settings: QtCore.QSettings, base_args: argparse.Namespace | None = None,
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(WINDOW_TITLE)
        self.settings = settings
        self.base_args = base_args   # its outputs apply to every connection (--record: to the first only)
        self.selection: SourceSelection | None = None
        self.last_error: str | None = None
        self.redraws = 0                       # fast-timer draws with data (bench and tests)
        self._retrying: dict[str, bool] = {}   # role -> a Retry of that source is running
        self.connecting = False                 # an engine is starting (Connect can be cancelled)
        self._failed_streams: set[str] = set()
        self.last_prediction = None             # the newest prediction (the calibration preflight reads it)
        self.wizard = None                      # the calibration wizard, once opened

        self.bridge = EngineBridge(self)
        self.sources = SourcesPanel()
        self.eeg_view = EegTraceView()
        self.spectrum_view = SpectrumView()
        self.face_view = FaceView()
        self.emotion_view = EmotionView()
        self.replay_controls = ReplayControls()
        self.record_controls = RecordControls(Path(stored.value(settings, "record/folder",
                                                                str(stored.default_recording_folder()), str)))
        self.status = EngineStatusBar()
        self.setStatusBar(self.status)
        self._build_layout()
        self._restore_view_settings()

        self.sources.connect_requested.connect(self.connect_to)
        self.sources.cancel_requested.connect(self.cancel_connect)
        self.sources.disconnect_requested.connect(self.disconnect_engine)
        self.startup = StartupNotice(self, self)
        self.bridge.started.connect(self._engine_started)
        self.bridge.start_failed.connect(self._engine_failed)
        self.bridge.stopped.connect(self._engine_stopped)
        self.bridge.prediction_ready.connect(self._show_prediction)
        self.bridge.status_ready.connect(self._show_streams)
        self.bridge.event.connect(self._show_event)
        self.bridge.marker.connect(lambda text, stamp, _stream: self.eeg_view.add_marker(text, stamp))
        self.record_controls.start_requested.connect(self._start_recording)
        self.record_controls.stop_requested.connect(self._stop_recording)
        self.replay_controls.paused_changed.connect(lambda _: self._show_run_state())
        self.replay_controls.trial_changed.connect(self._follow_replay_item)
        self.face_view.retry_requested.connect(lambda: self.retry_source("video"))
        self.eeg_view.retry_requested.connect(lambda: self.retry_source("eeg"))

        self.draw_timer = QtCore.QTimer(self)
        self.draw_timer.setInterval(DRAW_INTERVAL_MS)
        self.draw_timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.draw_timer.timeout.connect(self.draw_fast)
        self.slow_timer = QtCore.QTimer(self)
        self.slow_timer.setInterval(SLOW_INTERVAL_MS)
        self.slow_timer.timeout.connect(self.draw_slow)
        self.draw_timer.start()
        self.slow_timer.start()

    # layout ---------------------------------------------------------------------
    def _build_layout(self) -> None:
        toolbar = QtWidgets.QToolBar("Controls")
        toolbar.setObjectName("controls")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        dock = QtWidgets.QDockWidget("Sources", self)
        dock.setObjectName("sourcesDock")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.sources)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(SOURCES_WIDTH)
        dock.setWidget(scroll)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.sources_dock = dock
        sources_action = dock.toggleViewAction()
        sources_action.setText("Sources")
        toolbar.addAction(sources_action)
        toolbar.addSeparator()
        toolbar.addWidget(self.replay_controls)
        toolbar.addSeparator()
        toolbar.addWidget(self.record_controls)
        toolbar.addSeparator()
        self.calibrate_action = toolbar.addAction("Calibrate…")
        self.calibrate_action.setToolTip("a guided session that adapts the model to the person in front of "
                                         "the camera, and compares it with the current one")
        self.calibrate_action.triggered.connect(lambda: self.open_calibration())

        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(self.eeg_view)
        left.addWidget(self.spectrum_view)
        left.setSizes([600, 150])
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.face_view)
        right.addWidget(self.emotion_view)
        right.setSizes([330, 420])
        self.main_splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.main_splitter.addWidget(left)
        self.main_splitter.addWidget(right)
        self.main_splitter.setStretchFactor(0, 5)
        self.main_splitter.setStretchFactor(1, 4)
        self.left_splitter, self.right_splitter = left, right
        self.setCentralWidget(self.main_splitter)
        screen = QtGui.QGuiApplication.primaryScreen()
        room = screen.availableGeometry().size() if screen is not None else QtCore.QSize(1280, 800)
        self.resize(min(1280, room.width()), min(800, room.height()))   # a small screen gets all of it
        self.resizeDocks([dock], [scroll.minimumWidth()], QtCore.Qt.Orientation.Horizontal)

    def _restore_view_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self.eeg_view.set_span(stored.value(s, "eeg/span", 10.0, float))
        scale = s.value("eeg/scale", "200")
        self.eeg_view.set_scale(None if scale == "auto" else stored.value(s, "eeg/scale", 200.0, float))
        self.eeg_view.set_filter_enabled(stored.value(s, "eeg/filter", True, bool))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("eeg/span", self.eeg_view.span_s)
        s.setValue("eeg/scale", "auto" if self.eeg_view.scale_uv is None else self.eeg_view.scale_uv)
        s.setValue("eeg/filter", self.eeg_view.filter_enabled)
        s.setValue("record/folder", str(self.record_controls.folder))
        if self.selection is not None:
            stored.save_selection(s, self.selection)
        s.sync()

    # connection -----------------------------------------------------------------
    @property
    def engine(self):
        return self.bridge.engine

    def connect_to(self, selection: SourceSelection) -> None:
        """Connect (or reconnect) to `selection`; the engine starts off the GUI thread."""
        selection = selection.absolute()   # stored with absolute paths: the same from any folder
        self.selection = selection
        self.sources.clear_marks()
        self.sources.set_selection(selection)
        stored.save_selection(self.settings, selection)
        self.last_error = None
        self._clear_views()
        self.setWindowTitle(f"{WINDOW_TITLE} — {selection.describe()}")
        self.status.set_state("connecting…", "warning")
        self.sources.set_connecting()
        self.sources.show_message("connecting…")
        self.startup.begin("starting the engine…")
        self.sources.show_connected_stream(None)
        self.connecting = True
        base_args = self.base_args
        self.bridge.connect_engine(lambda: selection.engine_config(base_args))

    def show_unavailable(self, selection: SourceSelection, field: str, message: str) -> None:
        """Open on a stored selection whose file or folder has gone: show it with that field marked
        and say why, without connecting (the user fixes the field and presses Connect)."""
        self.selection = selection
        self.sources.set_selection(selection)
        self.sources.set_connected(False)
        self.sources.mark_problem(field, f"the saved {field} is not there any more: {message}")
        self.status.set_state("not connected", "warning")
        self.status.show_event("warning", f"saved {field} not found: {message}")

    def cancel_connect(self) -> None:
        """Stop waiting for a connection that takes too long (a stream search, a model loading)."""
        if not self.connecting:
            return
        self.connecting = False
        self.startup.finish()
        self.bridge.cancel_connect()
        self.status.set_state("not connected", "warning")
        self.sources.set_connected(False)
        self.sources.show_message("connection cancelled", "warning")

    def disconnect_engine(self) -> None:
        self.connecting = False
        self.status.set_state("disconnecting…", "warning")
        self.sources.set_connected(False, busy=True)
        self._clear_views()
        self.bridge.disconnect_engine()

    def _clear_views(self) -> None:
        self.last_prediction = None
        self.status.clearMessage()
        self.eeg_view.clear()
        self.replay_controls.bind(None)
        self.record_controls.refresh(None)
        self.status.clear_engine()
        self.emotion_view.reset()
        self.face_view.show_problem(None)
        self.face_view.frame.clear()
        self.face_view.strip.set_bag(None, [], [])
        self.spectrum_view.clear()

    def _engine_started(self, engine) -> None:
        self.startup.finish()
        self.connecting = False
        if getattr(self.base_args, "record", None) is not None:
            # --record DIR records the session the window opened with; one folder holds one recording,
            # so later connections record only through the Record button.
            self.base_args = argparse.Namespace(**{**vars(self.base_args), "record": None})
        self._show_run_state()
        self._show_model(engine)
        self.sources.set_connected(True)
        self.sources.show_message(connected_text(engine), "warning" if engine.source_errors else "info")
        self.sources.show_connected_stream(connected_lsl_stream(engine))
        self.emotion_view.set_class_names(list(engine.contract.class_names))
        self.replay_controls.bind(engine.replay)
        self._follow_replay_item()
        self._show_source_problems()
        self.record_controls.refresh(engine.recording_status())

    def _show_run_state(self) -> None:
        engine = self.engine
        if engine is None:
            return
        if engine.replay is not None and engine.replay.paused:
            self.status.set_state("paused", "warning")
        else:
            self.status.set_state("running", "good")

    def _show_source_problems(self) -> None:
        """Each source on its own: a failed one says why, with a Retry, while the other keeps running."""
        engine = self.engine
        if engine is None:
            return
        video, eeg = engine.video_source, engine.eeg_source
        if video is None:
            self.face_view.show_problem(None)
            self.face_view.frame.clear("no video source")
        elif video.error is not None and not self._retrying.get("video"):
            self.face_view.show_problem(f"video not connected: {video.error}")
        elif video.error is None:
            self.face_view.show_problem(None)
        if eeg is None:
            self.eeg_view.clear("no EEG source")
        elif eeg.error is not None and not self._retrying.get("eeg"):
            self.eeg_view.show_problem(f"EEG not connected: {eeg.error}")
        elif eeg.error is None:
            self.eeg_view.show_problem(None)

    def retry_source(self, role: str) -> None:
        """Reconnect only the EEG or only the video source, off the GUI thread."""
        engine = self.engine
        if engine is None or self._retrying.get(role):
            return
        self._retrying[role] = True
        (self.face_view if role == "video" else self.eeg_view).show_problem(f"{role}: reconnecting…", retrying=True)

        def done(_=None) -> None:
            self._retrying[role] = False
            if self.engine is engine:
                self.sources.show_message(connected_text(engine), "warning" if engine.source_errors else "info")
                self._show_source_problems()

        self.bridge.runner.start(lambda: engine.retry(role), f"reconnecting the {role} source", done,
                                 lambda message: done())

    def _engine_failed(self, message: str) -> None:
        self.startup.finish()
        self.connecting = False
        self.last_error = message
        self.status.set_state("not connected", "error")
        self.status.show_event("error", message)
        self.sources.set_connected(False)
        self.sources.show_message(message, "error")

    def _engine_stopped(self) -> None:
        self.status.set_state("disconnected")
        self.sources.set_connected(False)
        self.sources.show_message("disconnected")
        self.sources.show_connected_stream(None)

    # engine signals ---------------------------------------------------------------
    def _show_streams(self, statuses) -> None:
        self.status.set_streams(statuses)
        failed = {status.name for status in statuses if status.error}
        if failed != self._failed_streams:   # a source failed mid-run, or came back
            self._failed_streams = failed
            self._show_source_problems()

    def _follow_replay_item(self) -> None:
        """Show the replayed item's truth (header and plane together) as soon as the replay moves to it."""
        replay = self.engine.replay if self.engine is not None else None
        if replay is not None and replay.description != self.emotion_view.item:
            self.emotion_view.show_item(replay.description, replay.truth, replay.ratings)
            self.face_view.strip.set_bag(None, [], [])   # the crops were of the previous trial's window

    def _show_prediction(self, prediction) -> None:
        self.last_prediction = prediction
        replay = self.engine.replay if self.engine is not None else None
        item = prediction.source if replay is not None else None
        if item is not None and item != self.emotion_view.item and item == replay.description:
            self._follow_replay_item()   # its first window arrived before the slow timer noticed the new item
        shown = self.emotion_view.add_prediction(prediction.window_end, prediction.quadrant, prediction.label,
                                                 list(prediction.probabilities), prediction.truth, item)
        self.status.add_latency(prediction.latency)
        if not shown:
            return
        self.face_view.strip.set_bag(prediction.crops, list(prediction.instance_weights),
                                     list(prediction.face_mask), prediction.face_quality,
                                     list(prediction.face_problems))
        if self.engine is not None and self.engine.contract is not None:
            self.eeg_view.set_model_coverage(prediction.eeg_channels_used, len(self.engine.contract.eeg_channels))

    def _show_event(self, level: str, message: str) -> None:
        if level == "progress":   # a stage of the engine's start
            if self.connecting:
                self.startup.show(message)
            return
        self.status.show_event(level, message)
        if message.startswith(LOST_EVENT):
            self.status.mark_lost(message[len(LOST_EVENT):].split(" (no data")[0])
        if message.startswith("recording"):
            self._refresh_recording()

    def _start_recording(self, folder: Path) -> None:
        engine = self.engine
        if engine is None:
            self.status.show_event("warning", "connect a source before recording")
            self.record_controls.refresh(None)
            return
        try:
            engine.start_recording(folder)
        except Exception as exc:  # a full disk or bad folder must not take the window down
            self.status.show_event("error", f"cannot record to {folder}: {exc}")
        else:
            self.status.show_event("info", f"recording to {folder}")
        self._refresh_recording()

    def _stop_recording(self) -> None:
        if self.engine is not None:
            self.engine.stop_recording()
        self._refresh_recording()

    def _refresh_recording(self) -> None:
        self.record_controls.refresh(self.engine.recording_status() if self.engine is not None else None)

    # calibration --------------------------------------------------------------------
    def open_calibration(self, timings=None):
        """The calibration wizard (one per window; `timings`: its phase durations, for tests)."""
        from milmer_app.gui.calibration_wizard import CalibrationWizard

        busy = self.wizard is not None and (self.wizard.phase not in ("setup", "done")
                                            or self.wizard.calibrate_page.running)
        if not busy:      # a session or a calibration under way is shown again, else a fresh wizard
            if self.wizard is not None:
                self.wizard.close()
                self.wizard.deleteLater()
            self.wizard = CalibrationWizard(self, **({"timings": timings} if timings is not None else {}))
        self.wizard.show()
        self.wizard.raise_()
        return self.wizard

    def use_checkpoint(self, checkpoint) -> None:
        """Switch the running engine to `checkpoint` (same input contract) without reconnecting the sources."""
        engine = self.engine
        if engine is None:
            self.status.show_event("warning", "connect first: no model is running")
            return

        def done(_=None) -> None:
            if self.engine is engine:
                self._show_model(engine)
                if self.selection is not None:   # the next start uses it too
                    from dataclasses import replace

                    self.selection = replace(self.selection, checkpoint=str(checkpoint))
                    stored.save_selection(self.settings, self.selection)

        self.bridge.runner.start(lambda: engine.use_checkpoint(checkpoint), "switching the model", done,
                                 lambda message: self.status.show_event("error", message))

    def _show_model(self, engine) -> None:
        description = engine.model_description
        if isinstance(engine.provenance.get("calibration"), dict):
            description = f"{engine.model_name} · {description}"     # a person's model: its own name first
        self.status.set_model(engine.model_name, str(engine.device), engine.is_demo_model, description)

    # drawing ----------------------------------------------------------------------
    def draw_fast(self) -> None:
        engine = self.engine
        if engine is None:
            return
        # The traces span wall-clock seconds: a replay at 2x needs twice the samples to fill them.
        speed = engine.replay.speed if engine.replay is not None else 1.0
        data, timestamps, names, srate = engine.eeg_snapshot(self.eeg_view.history_seconds * speed)
        if data.shape[1] > 1:
            self.eeg_view.draw(data, timestamps, names, srate)
            self.redraws += 1
        frame = engine.latest_frame()
        if frame is not None:
            self.face_view.frame.box_hold_s = engine.config.hop   # one face search per hop (a replay's: recording time)
            self.face_view.frame.set_frame(*frame)

    def draw_slow(self) -> None:
        self.status.check_stale()
        engine = self.engine
        if engine is None:
            return
        data, _, names, srate = engine.eeg_snapshot(max(QUALITY_SECONDS, self.spectrum_view.seconds))
        if data.shape[1] > 16:
            self.spectrum_view.draw(data, srate)
            self.eeg_view.set_flags(dict(zip(names, assess_channels(data), strict=True)))
        replay = engine.replay
        if replay is not None:
            self.replay_controls.refresh()
            self._follow_replay_item()
            self._show_run_state()
        self._refresh_recording()

    # closing ----------------------------------------------------------------------
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.draw_timer.stop()
        self.slow_timer.stop()
        self.save_settings()
        if self.wizard is not None:
            self.wizard.close()      # ends a running session cleanly (and a background calibration)
        self.status.set_state("stopping…", "warning")
        self.status.state_label.repaint()   # not processEvents(): no queued engine signal may run mid-close
        self.sources.runner.wait_all(CLOSE_WAIT_S)
        self.bridge.shutdown()
        super().closeEvent(event)


def connected_text(engine) -> str:
    """What the engine actually opened, for the sources panel (a failed source says so)."""
    def name(source) -> str:
        if source is None:
            return "none"
        return source.name if source.error is None else f"{source.name} (not connected)"

    return f"connected · EEG {name(engine.eeg_source)} · video {name(engine.video_source)}"


def connected_lsl_stream(engine):
    """The LSL stream the engine reads, as the Sources table lists streams (None for other sources)."""
    from milmer_app.sources.lsl_streams import LslStreamEntry

    source = engine.eeg_source
    identity = getattr(source, "identity", None)
    if identity is None or not source.connected:
        return None
    return LslStreamEntry(identity.name, "", source.srate, len(source.channel_names), identity.source_id,
                          identity.hostname)


def grab_png(window: QtWidgets.QWidget, path: Path) -> bool:
    """Save what the window shows (used for the README screenshot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return window.grab().save(str(path), "PNG")

