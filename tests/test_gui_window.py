"""The main window over the real engine (Qt offscreen, real LSL on loopback, real replay and recording)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtWidgets

from milmer_app.gui.emotion_view import WAITING
from milmer_app.gui.selection import SourceSelection

pytestmark = [pytest.mark.gui, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_MS = 90_000   # first engine start in a process imports torch and may write the demo subject


def cli_args(**values) -> argparse.Namespace:
    from milmer_app.cli import build_parser

    args = build_parser().parse_args([])
    for key, value in values.items():
        setattr(args, key, value)
    return args


def wait_for_predictions(qtbot, window, count: int = 1, timeout: int = START_TIMEOUT_MS) -> None:
    target = window.emotion_view.predictions_shown + count
    qtbot.waitUntil(lambda: window.emotion_view.predictions_shown >= target or window.last_error is not None,
                    timeout=timeout)
    assert window.last_error is None, window.last_error


def test_window_opens_on_the_demo_and_shows_predictions(qtbot, open_window):
    window = open_window(cli_args(demo=True))
    assert "connecting" in window.status.state_label.text()
    # The empty panes say what the start is doing (its first stage, then the engine's own).
    assert window.eeg_view.empty.text().startswith("starting the engine…")
    assert window.face_view.frame.placeholder.startswith("starting the engine…")
    wait_for_predictions(qtbot, window, 2)
    assert window.startup.stage is None and "starting" not in window.spectrum_view.psd_empty.text()
    assert not window.status.demo_badge.isHidden()
    assert window.status.model_label.text().startswith("model demo · tiny preset")   # by its provenance
    assert window.replay_controls.play_button.isEnabled() and window.replay_controls.replay is not None
    qtbot.waitUntil(lambda: window.redraws > 0 and window.face_view.frame.frame_time is not None, timeout=5000)
    assert len(window.eeg_view.channel_names()) == 32
    assert len(window.face_view.strip.weights) == window.engine.contract.num_instances
    assert window.emotion_view.readout.text() != WAITING
    assert window.status.stream_labels and not window.status.lost_streams()
    # The panel says what is connected: the demo replays its trial's face video.
    assert window.sources.video_kind.currentData() == "deap"
    assert f"video {window.engine.video_source.name}" in window.sources.message.text()


ENGINE_THREADS = {"scheduler", "monitor", "inference"}


def engine_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name in ENGINE_THREADS]


def test_closing_just_after_an_engine_started_stops_it(qtbot, open_window, tiny_checkpoint):
    window = open_window(cli_args(eeg="demo", video="none", checkpoint=str(tiny_checkpoint)))
    # Block the GUI thread until the start has finished: the started engine exists, but the
    # signal handing it to the window is still queued when the window closes.
    window.bridge.runner.wait_all()
    assert engine_threads() and window.engine is None
    window.close()
    assert engine_threads() == []
    qtbot.wait(50)                          # the queued hand-over arrives after the close: ignored
    assert window.engine is None and not window.bridge.busy


class LslCap:
    """A real 32-channel LSL outlet with Geneva labels, fed from a thread until `stop()`."""

    def __init__(self, name: str):
        import pylsl

        from models.pipeline.eeg import GENEVA_CHANNELS

        info = pylsl.StreamInfo(name, "EEG", len(GENEVA_CHANNELS), 128.0, pylsl.cf_float32, f"{name}-id")
        channels = info.desc().append_child("channels")
        for label in GENEVA_CHANNELS:
            channels.append_child("channel").append_child_value("label", label).append_child_value("unit", "microvolts")
        self.outlet = pylsl.StreamOutlet(info)
        self.source_id = f"{name}-id"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pylsl

        rng = np.random.default_rng(0)
        start, pushed = pylsl.local_clock(), 0
        while not self._stop.wait(8 / 128.0):   # pacing, not synchronisation
            # As many samples as are due by the clock, so a busy machine does not lower the rate.
            due = int((pylsl.local_clock() - start) * 128.0)
            if due > pushed:
                chunk = rng.normal(scale=10.0, size=(due - pushed, 32)).astype(np.float32)
                self.outlet.push_chunk(chunk.tolist())
                pushed = due

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.mark.lsl
def test_sources_switch_live_and_a_lost_stream_shows(qtbot, open_window, tiny_checkpoint, lsl_config):
    import pylsl

    window = open_window(cli_args(eeg="demo", video="deap", checkpoint=str(tiny_checkpoint)))
    wait_for_predictions(qtbot, window)
    first_engine = window.engine
    assert window.replay_controls.replay is not None

    cap = LslCap("milmer-gui-cap")
    with cap:
        panel = window.sources
        panel.set_selection(SourceSelection(f"lsl:source_id={cap.source_id}", "none", str(tiny_checkpoint), demo=False))
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.engine is not None and window.engine is not first_engine, timeout=30000)
        wait_for_predictions(qtbot, window, 1, timeout=30000)
        assert window.replay_controls.replay is None                  # live source: replay controls off
        assert str(window.selection.eeg) == f"lsl:source_id={cap.source_id}"
        labels = window.status.stream_labels
        qtbot.waitUntil(lambda: any("milmer-gui-cap" in name for _, name in labels), timeout=5000)
        label = next(label for (_, name), label in labels.items() if "milmer-gui-cap" in name)
        qtbot.waitUntil(lambda: label.text().endswith("Hz"), timeout=5000)
        assert window.status.lost_streams() == []
        assert all("milmer-gui-cap" in name for _, name in labels)   # nothing left over from the demo engine
        # Time the loss from the last sample's arrival in the engine to the moment the window
        # handles the engine's report: both are stamped where they happen, not when the test polls.
        arrivals: list[float] = []
        shown: list[float] = []
        buffer = window.engine.eeg_source.buffer

        def arrived(chunk, timestamps) -> None:
            arrivals.append(pylsl.local_clock())

        def window_updated(*_) -> None:
            if not shown and "LOST" in label.text():
                shown.append(pylsl.local_clock())

        buffer.add_listener(arrived)
        window.bridge.event.connect(window_updated)          # connected after the window's own slots,
        window.bridge.status_ready.connect(window_updated)   # so the label is already updated here
        qtbot.waitUntil(lambda: len(arrivals) >= 2, timeout=5000)   # data flows through the listener
        cap.stop()
        qtbot.waitUntil(lambda: "LOST" in label.text(), timeout=10000)
        buffer.remove_listener(arrived)
        assert shown, "the LOST label was not set by the engine's report"
        shown_after = shown[0] - arrivals[-1]
        assert shown_after < 2.0, f"loss shown {shown_after:.2f} s after the last sample arrived"   # the limit
        assert window.status.lost_streams() == [label.text()]
    qtbot.mouseClick(window.sources.disconnect_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.status.state_label.text() == "disconnected", timeout=15000)
    assert window.engine is None and window.sources.connect_button.text() == "Connect"


def test_record_then_replay_the_recording(qtbot, open_window, tiny_checkpoint, tmp_path):
    window = open_window(cli_args(eeg="demo", video="deap", checkpoint=str(tiny_checkpoint)))
    wait_for_predictions(qtbot, window)
    controls = window.record_controls
    controls.set_folder(tmp_path / "recordings")
    qtbot.mouseClick(controls.record_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.engine.recording_status().active, timeout=5000)
    folder = controls.last_path
    wait_for_predictions(qtbot, window, 4, timeout=30000)             # a few seconds of EEG, frames, predictions
    qtbot.waitUntil(lambda: controls.elapsed_label.text().startswith("REC"), timeout=2000)
    qtbot.mouseClick(controls.record_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.engine.recording_status().active, timeout=10000)
    assert window.engine.recording_status().error is None
    assert folder.is_dir() and any(folder.iterdir())

    window.connect_to(SourceSelection(f"recording:{folder}", f"recording:{folder}", str(tiny_checkpoint), demo=False))
    wait_for_predictions(qtbot, window, 1, timeout=30000)
    assert window.replay_controls.replay is not None
    qtbot.waitUntil(lambda: window.face_view.frame.frame_time is not None and window.redraws > 0, timeout=5000)


def test_settings_persist_across_a_restart_and_a_saved_file_that_has_gone_is_marked(qtbot, open_window, settings,
                                                                                    tmp_path):
    missing = tmp_path / "no_such_model.safetensors"
    chosen = SourceSelection("brainflow:synthetic", "none", str(missing), "cpu", 0.5, demo=False)
    first = open_window(cli_args(eeg=str(chosen.eeg), video=str(chosen.video), checkpoint=chosen.checkpoint,
                                 device="cpu", hop=0.5))
    qtbot.waitUntil(lambda: first.last_error is not None, timeout=30000)
    assert "no_such_model" in first.last_error                  # shown, not raised
    assert "no_such_model" in first.sources.message.text()
    first.eeg_view.set_span(4.0)
    first.eeg_view.set_scale(None)
    first.eeg_view.set_filter_enabled(False)
    first.close()

    # No arguments: the last settings. Their checkpoint has gone, so the window opens without
    # connecting, with that one field marked and the reason shown: not a failed start.
    second = open_window(cli_args())
    assert second.selection == chosen and second.sources.selection() == chosen
    assert (second.eeg_view.span_s, second.eeg_view.scale_uv, second.eeg_view.filter_enabled) == (4.0, None, False)
    assert second.sources.marked == [second.sources.checkpoint_edit]
    assert "no_such_model" in second.sources.message.text() and "not there" in second.sources.message.text()
    assert second.last_error is None and second.engine is None and not second.connecting
    assert second.status.state_label.text() == "not connected"
    qtbot.mouseClick(second.sources.connect_button, QtCore.Qt.MouseButton.LeftButton)   # tried anyway: an error
    qtbot.waitUntil(lambda: second.last_error is not None, timeout=30000)
    assert second.sources.marked == []


def test_settings_written_from_one_folder_restore_from_another(qtbot, open_window, settings, tiny_checkpoint,
                                                               tmp_path, monkeypatch):
    import shutil

    from live_support import write_face_video

    first_folder, other_folder = tmp_path / "here", tmp_path / "elsewhere"
    (first_folder / "models").mkdir(parents=True)
    other_folder.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), first_folder / "models" / f"tiny{suffix}")
    write_face_video(first_folder / "face.avi", quadrant=0, seconds=30.0, seed=2)
    monkeypatch.chdir(first_folder)                               # paths typed relative to this folder
    first = open_window(cli_args(eeg="brainflow:synthetic", video="file:face.avi", checkpoint="models/tiny",
                                 device="cpu"))
    wait_for_predictions(qtbot, first)
    assert first.selection.checkpoint == str(first_folder / "models" / "tiny")
    assert first.selection.video.options.path == first_folder / "face.avi"
    first.close()

    monkeypatch.chdir(other_folder)                               # a desktop icon starts elsewhere
    second = open_window(cli_args())
    wait_for_predictions(qtbot, second)                           # the same sources and model, no error
    assert second.selection == first.selection and second.sources.marked == []
    assert second.engine.video_source.path == first_folder / "face.avi"


def test_first_launch_is_the_demo(settings):
    from milmer_app.gui.app import initial_selection

    assert initial_selection(cli_args(), settings) == SourceSelection.demo_selection()


def test_milmer_app_quit_after_closes_cleanly_and_saves_a_screenshot(tmp_path, tiny_checkpoint):
    shot = tmp_path / "window.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               MILMER_SCREENSHOT=str(shot))
    result = subprocess.run([sys.executable, "-m", "milmer_app.cli", "--eeg", "demo", "--video", "deap",
                             "--checkpoint", str(tiny_checkpoint), "--quit-after", "8"],
                            capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert (tmp_path / "config" / "milmer" / "milmer-app.ini").is_file()


def test_no_display_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "milmer_app.cli", "--demo"], capture_output=True, text=True,
                            timeout=60, env=env, cwd=ROOT)
    assert result.returncode == 2
    assert "no display" in result.stderr and "--headless" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.lsl
def test_a_camera_that_cannot_open_leaves_the_eeg_running_in_the_window(qtbot, open_window, tiny_checkpoint,
                                                                       tmp_path):
    cap = LslCap("milmer-gui-nocam")
    predictions, record = tmp_path / "p.jsonl", tmp_path / "rec"
    with cap:
        window = open_window(cli_args(eeg=f"lsl:source_id={cap.source_id}", video="webcam:99",
                                      checkpoint=str(tiny_checkpoint), hop=0.5, predictions=str(predictions),
                                      record=str(record), lsl_outlet="milmer-gui-nocam-emotion"))
        wait_for_predictions(qtbot, window, 2)                     # from EEG alone: no failed start
        assert window.last_error is None and window.status.state_label.text() == "running"
        # The output options work in the window as headless: a predictions file, a recording, an outlet.
        assert window.engine.recording_status().active and (record / "meta.json").is_file()
        qtbot.waitUntil(lambda: predictions.is_file() and predictions.read_text().count("\n") >= 1, timeout=5000)
        assert window.engine._outputs.outlet is not None
        face = window.face_view
        assert not face.problem.isHidden() and "webcam 99: cannot open the camera" in face.problem.text()
        assert not face.retry_button.isHidden() and "not connected" in window.sources.message.text()
        qtbot.waitUntil(lambda: any("not connected" in text for text in window.status.lost_streams()), timeout=5000)
        engine, inlet = window.engine, window.engine.eeg_source._inlet
        shown = window.emotion_view.predictions_shown
        qtbot.mouseClick(face.retry_button, QtCore.Qt.MouseButton.LeftButton)   # fails again: only the camera
        qtbot.waitUntil(lambda: face.retry_button.isEnabled() and face.retry_button.text() == "Retry video",
                        timeout=15000)
        assert "webcam 99" in face.problem.text() and window.engine is engine
        assert engine.eeg_source._inlet is inlet                   # the EEG stream was not reopened
        wait_for_predictions(qtbot, window, 1)
        assert window.emotion_view.predictions_shown > shown


def test_a_replay_across_trial_boundaries_keeps_truth_agreement_and_plane_together(qtbot, open_window,
                                                                                   tiny_checkpoint):
    window = open_window(cli_args(eeg="demo", video="deap", checkpoint=str(tiny_checkpoint), speed=4.0))
    wait_for_predictions(qtbot, window)
    view = window.emotion_view
    checks: list[tuple[str | None, bool]] = []

    def check(*_) -> None:   # after the window's own slots: what a drawn frame shows
        checks.append((view.item, view.consistent()))

    # Where each trial's EEG starts (LSL time), to check that every prediction carries the trial its window
    # was cut from, not the trial the replay had moved on to while the bag was assembled.
    source = window.engine.eeg_source
    segments: dict[float, str] = {}
    predictions = []

    def note_segment() -> None:
        label = source.segment_label
        if label is not None:
            segments[label[0]] = label[2]

    window.draw_timer.timeout.connect(note_segment)
    window.draw_timer.timeout.connect(check)
    window.slow_timer.timeout.connect(check)
    window.bridge.prediction_ready.connect(check)
    window.bridge.prediction_ready.connect(predictions.append)
    first_item = view.item
    qtbot.waitUntil(lambda: view.item != first_item and view.plane_truth is not None, timeout=60000)
    items = {item for item, _ in checks}
    assert len(items) >= 2, items                                    # a trial boundary was crossed
    assert all(ok for _, ok in checks), [c for c in checks if not c[1]][:3]
    starts = sorted(segments)
    for prediction in predictions:
        cut_from = [segments[t] for t in starts if t <= prediction.window_start + 1e-6]
        if cut_from:                                                 # windows of trials seen from their start
            assert prediction.source == cut_from[-1], (prediction.source, cut_from[-1])

    # Pause: the state says so, and the silence is neither a loss nor a gap.
    controls = window.replay_controls
    qtbot.mouseClick(controls.play_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.status.state_label.text() == "paused"
    qtbot.wait(2000)
    assert window.status.lost_streams() == []
    qtbot.mouseClick(controls.play_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.status.state_label.text() == "running"
    wait_for_predictions(qtbot, window, 2)
    texts = [label.text() for label in window.status.stream_labels.values()]
    assert texts and not any("gaps" in text for text in texts), texts


def widgets_past_right_edge(container: QtWidgets.QWidget, area: QtWidgets.QWidget) -> list[str]:
    """Visible widgets inside `container` whose right edge lies past `area`'s (both on screen)."""
    right = area.mapToGlobal(area.rect().topRight()).x()
    late = []
    for child in container.findChildren(QtWidgets.QWidget):
        if child.isVisible() and child.width() > 0:
            edge = child.mapToGlobal(child.rect().topRight()).x()
            if edge > right:
                late.append(f"{type(child).__name__}({child.objectName() or getattr(child, 'text', lambda: '')()!r})"
                            f" ends {edge - right} px past")
    return late


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)])
def test_the_window_fits_its_size_and_nothing_clips(qtbot, open_window, size):
    window = open_window(cli_args(demo=True))
    wait_for_predictions(qtbot, window, 2)
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(600)                                  # a status report and a slow redraw at this size
    scroll = window.sources_dock.widget()
    assert widgets_past_right_edge(window.sources, scroll.viewport()) == []
    assert widgets_past_right_edge(window.centralWidget(), window) == []
    assert widgets_past_right_edge(window.statusBar(), window) == []
    toolbar = window.findChild(QtWidgets.QToolBar)
    assert window.replay_controls.isVisible() and window.record_controls.isVisible()   # none in the overflow menu
    assert widgets_past_right_edge(toolbar, window) == []
    assert cut_labels(window) == []

    # Every section of the Sources dock lies inside its viewport, for every EEG page; at 1280x800
    # without scrolling (only 1024x700 may scroll, for the largest pages).
    panel = window.sources
    for kind in ("demo", "lsl", "brainflow", "deap", "file", "recording"):
        panel.eeg_kind.setCurrentIndex(panel.eeg_kind.findData(kind))
        qtbot.waitUntil(lambda kind=kind: panel.eeg_pages.currentWidget() is panel.pages["eeg"][kind], timeout=2000)
        qtbot.wait(50)
        if size == (1280, 800):
            assert scroll.verticalScrollBar().maximum() == 0, kind
            assert sections_below(panel, scroll.viewport()) == [], kind
    panel.eeg_kind.setCurrentIndex(panel.eeg_kind.findData("demo"))
    qtbot.wait(50)
    assert scroll.verticalScrollBar().maximum() == 0 and sections_below(panel, scroll.viewport()) == []


def sections_below(panel, viewport: QtWidgets.QWidget) -> list[str]:
    """The dock's sections (EEG, Video, Model, Connect/Disconnect) whose bottom lies below the viewport's."""
    bottom = viewport.mapToGlobal(viewport.rect().bottomLeft()).y()
    sections = [*panel.findChildren(QtWidgets.QGroupBox), panel.connect_button, panel.disconnect_button]
    return [f"{getattr(s, 'title', s.text)()} ends {s.mapToGlobal(s.rect().bottomLeft()).y() - bottom} px below"
            for s in sections if s.isVisible() and s.mapToGlobal(s.rect().bottomLeft()).y() > bottom]


def cut_labels(window: QtWidgets.QWidget) -> list[str]:
    """Visible labels whose text does not fit: a plain one-line label cut by its edge, or a shortened one
    (ElidedLabel, ClampedLabel) without the elision mark or without its whole text in the tooltip."""
    from milmer_app.gui.elided_label import ClampedLabel, ElidedLabel

    cut = []
    for label in window.findChildren(QtWidgets.QLabel):
        if not label.isVisible() or not label.text() or label.width() <= 0:
            continue
        if isinstance(label, ElidedLabel):
            if label.elided() and ("…" not in label.shown_text() or label.text() not in label.toolTip()):
                cut.append(f"{label.objectName() or label.text()!r}: shortened without a mark or tooltip")
        elif isinstance(label, ClampedLabel):
            if label.elided() and label.text() not in label.toolTip():
                cut.append(f"{label.text()!r}: clamped without its text in the tooltip")
        elif not label.wordWrap() and "<" not in label.text():   # plain text on one line
            needed = label.fontMetrics().horizontalAdvance(label.text())
            if needed > label.contentsRect().width() + 1:
                cut.append(f"{label.objectName() or label.text()!r}: {needed} px of text in "
                           f"{label.contentsRect().width()} px")
    return cut


@pytest.mark.lsl
def test_the_sources_table_lists_the_connected_stream_marked_and_follows_a_switch(qtbot, open_window,
                                                                                  tiny_checkpoint):
    import socket

    first, second = LslCap("milmer-gui-table-a"), LslCap("milmer-gui-table-b")
    with second, first:
        window = open_window(cli_args(eeg=f"lsl:source_id={first.source_id}", video="none",
                                      checkpoint=str(tiny_checkpoint)))
        wait_for_predictions(qtbot, window)
        page = window.sources.lsl_page
        assert page.connected_row() is not None                    # listed at once, no Refresh pressed
        qtbot.waitUntil(lambda: page.refresh_button.isEnabled() and len(page.entries) >= 2,
                        timeout=15000)                              # ...and the other outlet next to it

        def shown(row: int) -> list[str]:
            return [page.table.item(row, column).text() for column in range(page.table.columnCount())]

        row = page.connected_row()
        assert shown(row) == ["●", "milmer-gui-table-a", "EEG", "128", "32", socket.gethostname(), first.source_id]
        other = next(r for r in range(page.table.rowCount()) if r != row and shown(r)[1] == "milmer-gui-table-b")
        assert shown(other)[0] == ""

        page.table.selectRow(other)                                # pick the other stream in the table
        qtbot.mouseClick(window.sources.connect_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.engine is not None and window.engine.eeg_source.name.endswith("table-b"),
                        timeout=60000)
        qtbot.waitUntil(lambda: page.connected_row() is not None
                        and shown(page.connected_row())[1] == "milmer-gui-table-b", timeout=5000)
        assert sum(shown(r)[0] == "●" for r in range(page.table.rowCount())) == 1   # one marked, the new one

        # The LSL page with its table does not widen the dock, even at 1024x700.
        window.resize(1024, 700)
        qtbot.waitUntil(lambda: (window.width(), window.height()) == (1024, 700), timeout=5000)
        qtbot.wait(200)
        assert widgets_past_right_edge(window.sources, window.sources_dock.widget().viewport()) == []


@pytest.mark.lsl
def test_a_slow_connection_can_be_cancelled(qtbot, open_window, tiny_checkpoint):
    window = open_window(cli_args(eeg="lsl:name=NoSuchStream,timeout=3", video="none",
                                  checkpoint=str(tiny_checkpoint)))
    button = window.sources.connect_button
    assert window.connecting and button.text() == "Cancel" and button.isEnabled()
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    assert not window.connecting and window.status.state_label.text() == "not connected"
    assert button.text() == "Connect" and "cancelled" in window.sources.message.text()
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=60000)   # the search ends in the background...
    qtbot.wait(50)
    assert window.last_error is None and window.engine is None        # ...and its failure is not shown
    assert "cancelled" in window.sources.message.text()
