"""The window's widgets, each on its own, fed with plain numpy data (Qt offscreen)."""

from __future__ import annotations

import argparse
import types

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtGui

from milmer_app.gui import theme
from milmer_app.gui.controls import RecordControls, ReplayControls
from milmer_app.gui.eeg_view import EegTraceView
from milmer_app.gui.emotion_view import (
    QUADRANT_CENTRES,
    EmotionView,
    plane_position,
    quadrant_names,
)
from milmer_app.gui.face_view import CropStrip, FrameView
from milmer_app.gui.selection import SourceSelection
from milmer_app.gui.settings import load_selection, save_selection
from milmer_app.gui.signal_quality import FLAT, MISSING, NOISY, OK, assess_channels
from milmer_app.gui.sources_panel import SourcesPanel
from milmer_app.gui.spectra import display_filter, power_spectrum, relative_band_powers
from milmer_app.gui.spectrum_view import SpectrumView
from milmer_app.gui.status_bar import STALE_AFTER_S, EngineStatusBar
from milmer_app.replay import ReplayControl
from models.contract import QUADRANT_CLASSES
from models.errors import SourceError

pytestmark = pytest.mark.gui

SRATE = 128.0
NAMES = [f"E{i}" for i in range(32)]


def eeg(seconds: float = 12.0, channels: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise plus a 10 Hz rhythm, in microvolts, stamped from LSL time 1000."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SRATE)) / SRATE
    data = rng.normal(scale=5.0, size=(channels, t.size)) + 20 * np.sin(2 * np.pi * 10 * t)
    return data.astype(np.float32), 1000.0 + t


def colour_pixels(widget, colour: str) -> int:
    """How many pixels of the widget's rendering have exactly `colour`."""
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    pixels = pixels[:, : image.width() * 3].reshape(image.height(), image.width(), 3)
    target = QtGui.QColor(colour)
    return int(np.all(pixels == (target.red(), target.green(), target.blue()), axis=2).sum())


# -- numeric helpers ----------------------------------------------------------------------
def test_channel_flags_flat_noisy_missing_in_any_unit():
    data, _ = eeg(4.0, channels=6)
    data[1] = 3.0
    data[2] *= 20
    data[3, : data.shape[1] * 3 // 4] = np.nan
    expected = [OK, FLAT, NOISY, MISSING, OK, OK]
    assert assess_channels(data) == expected
    assert assess_channels(data * 1e-6) == expected   # a stream in volts gets the same flags


def test_band_power_finds_the_alpha_rhythm_and_filter_keeps_gaps():
    data, _ = eeg(4.0, channels=4)
    names, shares = relative_band_powers(*power_spectrum(data, SRATE))
    assert names[int(np.argmax(shares))] == "alpha"
    assert shares.sum() == pytest.approx(1.0, abs=1e-6)
    data[0, 100:140] = np.nan
    filtered = display_filter(data + 500.0, SRATE)      # a DC offset the band-pass removes
    assert np.isnan(filtered[0, 100:140]).all() and np.isfinite(filtered[1]).all()
    assert abs(float(np.nanmean(filtered[1, 256:]))) < 5.0


def test_selection_round_trips_through_args_and_settings(settings):
    args = argparse.Namespace(demo=False, eeg="brainflow:synthetic", video="webcam:1", checkpoint="m.safetensors",
                              device="cpu", hop=0.5, speed=2.0, predictions="p.jsonl", record=None, lsl_outlet=None)
    selection = SourceSelection.from_args(args)
    assert selection == SourceSelection("brainflow:synthetic", "webcam:1", "m.safetensors", "cpu", 0.5, 2.0, demo=False)
    config = selection.engine_config(args)
    assert (str(config.eeg), str(config.video), str(config.predictions)) == ("brainflow:synthetic", "webcam:1",
                                                                             "p.jsonl")
    assert config.eeg.options.board == "synthetic" and config.video.options.index == 1
    assert SourceSelection.from_args(argparse.Namespace(demo=False, eeg=None, video=None, checkpoint=None)) is None
    demo = SourceSelection.demo_selection().engine_config()
    assert (demo.eeg.kind, demo.video.kind, demo.checkpoint) == ("demo", "deap", "demo")
    assert load_selection(settings) is None
    save_selection(settings, selection)
    assert load_selection(settings) == selection


# -- EEG and spectrum ---------------------------------------------------------------------
def test_eeg_view_draws_every_channel_newest_at_zero(qtbot):
    view = EegTraceView()
    qtbot.addWidget(view)
    data, stamps = eeg()
    view.set_span(5.0)
    view.set_filter_enabled(False)
    view.draw(data, stamps, NAMES, SRATE)
    assert view.channel_names() == NAMES
    x, y = view.curve_data("E0")
    assert x[-1] == 0.0 and x[0] == pytest.approx(-5.0, abs=1.0 / SRATE)
    assert view.drawn_until == stamps[-1]
    lanes = [float(np.median(view.curve_data(name)[1])) for name in NAMES]
    assert lanes == sorted(lanes, reverse=True)          # first channel on top, one lane each
    assert lanes[0] == pytest.approx(31, abs=0.5) and lanes[-1] == pytest.approx(0, abs=0.5)


def test_eeg_view_scaling_and_filter_change_the_traces(qtbot):
    view = EegTraceView()
    qtbot.addWidget(view)
    data, stamps = eeg()
    view.set_filter_enabled(False)
    view.set_scale(200.0)
    view.draw(data, stamps, NAMES, SRATE)
    spread = np.ptp(view.curve_data("E5")[1])
    view.set_channel_gain("E5", 2.0)
    view.draw(data, stamps, NAMES, SRATE)
    assert np.ptp(view.curve_data("E5")[1]) == pytest.approx(2 * spread, rel=1e-3)
    assert np.ptp(view.curve_data("E6")[1]) == pytest.approx(spread, rel=0.3)
    view.set_scale(None)                                  # each channel scaled to its own spread
    data[7] *= 50
    view.draw(data, stamps, NAMES, SRATE)
    assert np.ptp(view.curve_data("E7")[1]) == pytest.approx(np.ptp(view.curve_data("E8")[1]), rel=0.3)
    offset = data + 300.0
    view.set_scale(100.0)
    view.draw(offset, stamps, NAMES, SRATE)
    assert abs(np.mean(view.curve_data("E0")[1]) - 31) > 1.0  # unfiltered offset pushes the trace off its lane
    view.set_filter_enabled(True)
    view.draw(offset, stamps, NAMES, SRATE)
    assert abs(np.mean(view.curve_data("E0")[1]) - 31) < 0.2


def test_eeg_view_flags_channels_on_labels_and_header(qtbot):
    view = EegTraceView()
    qtbot.addWidget(view)
    data, stamps = eeg(channels=4)
    view.draw(data, stamps, NAMES[:4], SRATE)
    view.set_flags({"E0": OK, "E1": FLAT, "E2": NOISY, "E3": MISSING})
    header = view.flag_label.text()
    assert "flat: E1" in header and "noisy: E2" in header and "missing: E3" in header
    labels = [text for _, text in view.axis._tickLevels[0]]
    assert labels == ["E0", "E1 [flat]", "E2 [noisy]", "E3 [missing]"]
    view.set_model_coverage(16, 32)
    assert view.flag_label.text().endswith("· model gets 16 of its 32 channels")
    view.set_model_coverage(32, 32)
    assert "model gets" not in view.flag_label.text()
    view.clear()
    assert view.channel_names() == [] and view.flag_label.text() == "" and view.flags() == {}


def test_spectrum_view_shows_band_shares(qtbot):
    view = SpectrumView()
    qtbot.addWidget(view)
    data, _ = eeg(4.0)
    view.draw(data, SRATE)
    assert max(view.shares, key=view.shares.get) == "alpha"
    x, y = view.psd_curve.getData()
    assert len(x) > 10 and np.all(np.isfinite(y))


# -- face ---------------------------------------------------------------------------------
def test_frame_view_paints_the_face_box(qtbot):
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(320, 240)
    frame = np.full((240, 320, 3), 40, np.uint8)
    view.set_frame(frame, 1.0, None)
    assert colour_pixels(view, theme.GOOD) == 0
    view.set_frame(frame, 2.0, (100, 60, 80, 100))
    assert view.face_box == (100, 60, 80, 100)
    assert colour_pixels(view, theme.GOOD) > 200


def test_frame_view_holds_the_face_box_between_face_searches(qtbot):
    view = FrameView(box_hold_s=1.5)
    qtbot.addWidget(view)
    frame = np.full((240, 320, 3), 40, np.uint8)
    box = (100, 60, 80, 100)
    view.set_frame(frame, 10.0, box)
    for later in (10.5, 11.2, 11.5):                    # frames without a box of their own
        view.set_frame(frame, later, None)
        assert view.face_box == box, later
    view.set_frame(frame, 11.6, None)                   # older than the hold: gone, not a stale box
    assert view.face_box is None
    view.set_frame(frame, 12.0, box)
    view.set_frame(frame, 4.0, None)                    # the replay jumped back: not this frame's face
    assert view.face_box is None


def test_crop_strip_highlights_the_heaviest_present_crops(qtbot):
    strip = CropStrip(highlight=3)
    qtbot.addWidget(strip)
    strip.resize(600, 90)
    crops = np.full((10, 32, 32, 3), 128, np.uint8)
    weights = [0.01, 0.3, 0.02, 0.2, 0.02, 0.25, 0.05, 0.05, 0.05, 0.05]
    mask = [True] * 10
    mask[1] = False                                     # the largest weight has no face: not "used"
    strip.set_bag(crops, weights, mask)
    assert strip.used_instances() == [3, 5, 6]
    assert colour_pixels(strip, theme.GOOD) > 100
    strip.set_bag(crops[:4], [0.0, 0.5, 0.5, 0.0], [True] * 4)
    assert strip.used_instances() == [1, 2]             # weightless crops are not "used", even in the top 3


def test_crop_strip_shows_each_crops_quality_and_why_one_was_masked(qtbot):
    strip = CropStrip()
    qtbot.addWidget(strip)
    strip.resize(400, 120)
    crops = np.full((3, 32, 32, 3), 128, np.uint8)
    quality = np.array([[120, 310.0, 0.92], [20, 14.0, 0.45], [np.nan] * 3], np.float32)
    strip.set_bag(crops, [0.6, 0.0, 0.0], [True, False, False], quality, [None, "face 20 px < 24", "no face"])
    lines = strip.toolTip().splitlines()
    assert lines == ["1: face 120 px, sharpness 310, score 0.92",
                     "2: face 20 px, sharpness 14, score 0.45 - masked: face 20 px < 24",
                     "3: no crop - masked: no face"]
    strip.set_bag(crops, [0.6, 0.2, 0.2], [True] * 3)   # no quality given (an older bag): no tooltip
    assert strip.toolTip() == ""


# -- emotion ------------------------------------------------------------------------------
def test_plane_position_and_quadrant_names():
    for index, name in enumerate(QUADRANT_CLASSES):
        one_hot = [0.0] * 4
        one_hot[index] = 1.0
        assert plane_position(one_hot, QUADRANT_CLASSES) == QUADRANT_CENTRES[name]
    assert plane_position([0.25] * 4, QUADRANT_CLASSES) == (5.0, 5.0)
    assert quadrant_names(["lalv", "hahv", "lahv", "halv"]) == ["LALV", "HAHV", "LAHV", "HALV"]
    assert quadrant_names(["low", "high"]) is None


def test_emotion_view_trail_history_truth_and_agreement(qtbot):
    view = EmotionView()
    qtbot.addWidget(view)
    view.set_truth(1, {"valence": 6.0, "arousal": 3.0})
    assert view.plane.truth_box.isVisible()
    predictions = [(0, [0.7, 0.1, 0.1, 0.1]), (1, [0.1, 0.7, 0.1, 0.1]), (1, [0.1, 0.6, 0.2, 0.1])]
    for step, (quadrant, probabilities) in enumerate(predictions):
        view.add_prediction(100.0 + step, quadrant, QUADRANT_CLASSES[quadrant], probabilities, truth=1)
    assert len(view.plane.trail) == 3
    x, y = view.history.curves[1].getData()
    assert list(x) == [-2.0, -1.0, 0.0] and list(y) == [0.1, 0.7, 0.6]   # seconds before the latest
    assert view.agreement.fraction == pytest.approx(2 / 3)
    assert "67%" in view.agreement_label.text() and "LAHV" in view.agreement_label.text()
    assert view.history.legend_names() == list(QUADRANT_CLASSES) and not view.history.empty.empty
    assert all(name in view.history.legend.text() for name in QUADRANT_CLASSES)
    view.reset()
    assert len(view.plane.trail) == 0 and view.agreement.total == 0
    assert view.history.empty.empty and not view.history.empty.isHidden()


def test_emotion_view_changes_truth_header_and_plane_together_at_an_item_boundary(qtbot):
    view = EmotionView()
    qtbot.addWidget(view)
    view.show_item("s01 trial 1", 0)
    view.add_prediction(10.0, 0, "HAHV", [0.7, 0.1, 0.1, 0.1], truth=0, item="s01 trial 1")
    assert view.consistent() and "truth HAHV" in view.agreement_label.text()
    view.show_item("s01 trial 2", 3)     # the replay moved on: truth, header and plane at once
    assert view.consistent() and len(view.plane.trail) == 0 and "truth HALV" in view.agreement_label.text()
    assert view.plane.shown_truth() == 3
    # A late prediction of trial 1 counts towards the agreement but is not drawn over trial 2's truth.
    assert not view.add_prediction(11.0, 1, "LAHV", [0.1, 0.7, 0.1, 0.1], truth=0, item="s01 trial 1")
    assert view.consistent() and len(view.plane.trail) == 0 and view.agreement.total == 2
    assert view.add_prediction(14.0, 3, "HALV", [0.1, 0.1, 0.1, 0.7], truth=3, item="s01 trial 2")
    assert view.consistent() and "agreement 67% (2/3)" in view.agreement_label.text()


def test_empty_plots_say_no_data_instead_of_showing_bare_axes(qtbot):
    spectrum = SpectrumView()
    qtbot.addWidget(spectrum)
    spectrum.resize(500, 200)
    spectrum.show()
    assert spectrum.psd_empty.isVisible() and not spectrum.psd_plot.getPlotItem().getAxis("bottom").isVisible()
    spectrum.draw(np.random.default_rng(0).normal(size=(4, 512)).astype(np.float32), 128.0)
    assert not spectrum.psd_empty.isVisible() and spectrum.psd_plot.getPlotItem().getAxis("bottom").isVisible()
    spectrum.clear()
    assert spectrum.psd_empty.isVisible() and spectrum.band_empty.isVisible()
    assert spectrum.psd_empty.geometry() == spectrum.psd_plot.rect()     # centred over the whole plot


# -- status bar and controls --------------------------------------------------------------
def stream(name="cap", role="eeg", lost=False, since=0.01):
    return types.SimpleNamespace(name=name, role=role, connected=True, lost=lost, nominal_rate=128.0,
                                 effective_rate=127.5, gaps=0, dropped=0, seconds_since_last=since)


def test_status_bar_shows_rates_loss_staleness_and_demo(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    bar.set_streams([stream(), stream("cam", "video")], now=10.0)
    assert bar.lost_streams() == []
    assert "127.5/128 Hz" in bar.stream_labels[("eeg", "cap")].text()
    bar.set_streams([stream(), stream("cam", "video", lost=True, since=1.2)], now=11.0)
    assert bar.lost_streams() == ["VIDEO cam: LOST (1.2 s)"]
    bar.check_stale(now=11.0 + STALE_AFTER_S + 0.1)
    assert len(bar.lost_streams()) == 2                # the engine stopped reporting at all
    bar.set_model("demo_model", "cpu", demo=True)
    assert not bar.demo_badge.isHidden() and bar.device_label.text() == "device CPU"
    for latency in (0.05, 0.07, 0.5):
        bar.add_latency(latency)
    assert bar.latency_label.text() == "latency 70 ms"
    bar.show()
    bar.show_event("warning", "stream lost: cam")
    assert bar.event_text() == "stream lost: cam" and bar.event_label.toolTip() == "stream lost: cam"
    assert bar.stream_labels[("video", "cam")].isVisible() and bar.state_label.isVisible()   # not hidden by it


def test_replay_controls_drive_a_replay_clock(qtbot):
    trials = []
    replay = ReplayControl(60.0, description="s01 trial 1", truth=2, next_item=lambda: trials.append(1) or True)
    controls = ReplayControls()
    qtbot.addWidget(controls)
    controls.bind(replay)
    width = controls.play_button.width()
    with qtbot.waitSignal(controls.paused_changed, timeout=1000) as paused:
        qtbot.mouseClick(controls.play_button, QtCore.Qt.MouseButton.LeftButton)
    assert replay.paused and controls.play_button.text() == "Play" and paused.args == [True]
    assert controls.play_button.width() == width       # Play and Pause take the same room
    controls.speed_box.setCurrentText("4x")
    assert replay.speed == 4.0
    controls.seek_slider.setValue(500)
    controls._seek_released()
    assert replay.position == pytest.approx(30.0, abs=0.1)
    with qtbot.waitSignal(controls.trial_changed, timeout=1000):
        qtbot.mouseClick(controls.next_button, QtCore.Qt.MouseButton.LeftButton)
    assert trials == [1]
    controls.bind(None)
    assert not controls.play_button.isEnabled()


def test_record_button_asks_for_a_new_folder(qtbot, tmp_path):
    controls = RecordControls(tmp_path)
    qtbot.addWidget(controls)
    assert controls.free_label.text().startswith("free ")
    with qtbot.waitSignal(controls.start_requested, timeout=1000) as started:
        qtbot.mouseClick(controls.record_button, QtCore.Qt.MouseButton.LeftButton)
    assert started.args[0].parent == tmp_path and started.args[0].name.startswith("recording-")
    status = types.SimpleNamespace(active=True, path=started.args[0], elapsed_s=65.0, free_bytes=5 * 1024**3,
                                   error=None)
    controls.refresh(status)
    assert controls.elapsed_label.text() == "REC 1:05" and controls.free_label.text() == "free 5.0 GB"
    with qtbot.waitSignal(controls.stop_requested, timeout=1000):
        qtbot.mouseClick(controls.record_button, QtCore.Qt.MouseButton.LeftButton)


# -- sources panel ------------------------------------------------------------------------
def test_sources_panel_builds_and_shows_selections(qtbot, tmp_path):
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    assert panel.selection() == SourceSelection.demo_selection()
    assert panel.video_kind.currentData() == "deap" and not panel.video_kind.isEnabled()   # the demo's own video
    chosen = [
        SourceSelection("brainflow:synthetic", "webcam:2", "demo", "cpu", 0.5, demo=False),
        SourceSelection("brainflow:board=0,serial_port=/dev/ttyUSB0", "none", demo=False),
        SourceSelection("lsl:name=Cap", f"file:{tmp_path / 'face.avi'}", demo=False),
        SourceSelection(f"recording:{tmp_path}", "recording:" + str(tmp_path), demo=False),
        SourceSelection("none", "webcam:0", demo=False),
    ]
    for selection in chosen:
        panel.set_selection(selection)
        assert panel.selection() == selection
    with qtbot.waitSignal(panel.connect_requested, timeout=1000) as requested:
        qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert requested.args[0] == chosen[-1]
    with pytest.raises(SourceError, match="file needs path"):   # not a valid video spec
        SourceSelection("lsl:name=Cap", "file:", demo=False)
    panel.pages["video"]["webcam"].editors["fps"].setText("-5")       # a value the registry refuses
    panel.video_kind.setCurrentIndex(panel.video_kind.findData("webcam"))
    qtbot.mouseClick(panel.connect_button, QtCore.Qt.MouseButton.LeftButton)
    assert "fps must be above 0" in panel.message.text()


@pytest.mark.lsl
def test_sources_panel_discovers_lsl_streams(qtbot, lsl_config):
    import pylsl

    info = pylsl.StreamInfo("milmer-gui-test", "EEG", 8, 128.0, pylsl.cf_float32, "milmer-gui-test-id")
    outlet = pylsl.StreamOutlet(info)
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    panel.eeg_kind.setCurrentIndex(panel.eeg_kind.findData("lsl"))
    page = panel.lsl_page
    qtbot.mouseClick(page.refresh_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.refresh_button.isEnabled(), timeout=10000)
    names = [page.table.item(row, 1).text() for row in range(page.table.rowCount())]
    assert "milmer-gui-test" in names
    row = names.index("milmer-gui-test")
    assert [page.table.item(row, c).text() for c in (0, 2, 3, 4, 6)] == ["", "EEG", "128", "8", "milmer-gui-test-id"]
    page.table.selectRow(row)
    assert panel.selection().eeg == "lsl:source_id=milmer-gui-test-id"
    del outlet


def test_sources_panel_browses_a_deap_folder(qtbot, tmp_path):
    from training.synth import write_synthetic_deap

    root = tmp_path / "deap"
    write_synthetic_deap(root, subjects=2, trials=3, seconds=3.0, video_size=(96, 80), fps=4.0,
                         missing_videos={2: [2]})
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    wanted = SourceSelection(f"deap:{root}:2:3", "deap", demo=False)
    panel.set_selection(wanted)                            # scans the folder off the GUI thread
    page = panel.deap_page
    qtbot.waitUntil(lambda: page.subject_box.count() == 2 and page.trial_table.rowCount() == 3, timeout=20000)
    assert page.subject_box.currentText() == "s02"
    assert panel.selection() == wanted
    rows = {page.trial_table.item(r, 0).text(): [page.trial_table.item(r, c).text() for c in range(6)]
            for r in range(3)}
    assert rows["2"][5] == "no" and rows["1"][5] == "yes"   # the missing video is shown as missing
    record = page.index.trial(2, presentation_trial=1)
    assert rows["1"][2:4] == [f"{record.valence:.1f}", f"{record.arousal:.1f}"]
    page.trial_table.selectRow(0)
    assert panel.selection().eeg == f"deap:{root}:2:{page.trials[0].presentation_trial}"


def test_long_texts_are_shortened_deliberately_with_the_whole_text_in_the_tooltip(qtbot):
    from milmer_app.gui.elided_label import ClampedLabel, ElidedLabel

    name = "s01 trial 12 (experiment 34): a long replayed item"
    label = ElidedLabel(name)
    qtbot.addWidget(label)
    label.resize(label.fontMetrics().horizontalAdvance(name) // 2, 20)
    label.show()
    shown = label.shown_text()
    assert label.elided() and label.toolTip() == name
    assert shown.startswith("s01") and shown.endswith("item") and "…" in shown   # cut in the middle
    label.resize(label.fontMetrics().horizontalAdvance(name) + 10, 20)
    assert not label.elided() and label.shown_text() == name

    help_text = " ".join(["the built-in demo replays a synthetic subject with its face video"] * 3)
    about = ClampedLabel(help_text, lines=2)
    qtbot.addWidget(about)
    about.resize(200, about.heightForWidth(200))
    about.show()
    lines = about.shown_lines()
    assert len(lines) == 2 and lines[-1].endswith("…") and about.elided() and about.toolTip() == help_text
    assert about.heightForWidth(200) <= 2 * about.fontMetrics().lineSpacing()
