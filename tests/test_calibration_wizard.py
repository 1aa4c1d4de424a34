"""The calibration wizard on a real engine (BrainFlow's synthetic board) under offscreen Qt: preflight,
rest, trials with injected ratings, pause and redo, the recording's protocol markers; the result view
of a report and the switch to a calibrated model without reconnecting."""

from __future__ import annotations

import json

import pytest

from milmer_app.calibration.plan import QUADRANT_CLASSES, Timings, builtin_plan, folder_plan, read_targets
from milmer_app.calibration.preflight import calibration_problem
from milmer_app.recording import RecordingReader
from models.calibration_protocol import marker_texts, parse_marker, read_calibration
from models.errors import DataError

pytestmark = [pytest.mark.gui]


@pytest.fixture(scope="module")
def eeg_checkpoint(tmp_path_factory):
    """An untrained tiny model that uses EEG only (no camera needed), DEAP contract."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.config import MilmerConfig
    from models.contract import InputContract
    from models.milmer import Milmer

    torch.manual_seed(0)
    config = MilmerConfig.tiny().replace(modalities="eeg")
    folder = tmp_path_factory.mktemp("eegckpt")
    save_checkpoint(folder / "base", Milmer(config), InputContract.for_deap(config))
    torch.manual_seed(1)
    provenance = {"protocol": "calibration", "dataset": "calibration: calibration-x",
                  "calibration": {"created_utc": "2026-12-04T18:30:00+00:00", "decision": "calibrated"}}
    save_checkpoint(folder / "person-calibrated", Milmer(config), InputContract.for_deap(config), provenance)
    return folder


def test_builtin_plan_is_balanced_and_shuffled():
    plan = builtin_plan(20, seed=3)
    assert [t.trial for t in plan] == [f"t{i:02d}" for i in range(1, 21)]
    assert {q: sum(t.target == q for t in plan) for q in QUADRANT_CLASSES} == {q: 5 for q in QUADRANT_CLASSES}
    assert [t.target for t in plan] != [t.target for t in builtin_plan(20, seed=4)]
    assert all(len(t.stimulus.text) > 40 for t in plan)
    with pytest.raises(DataError, match="stimulus_s"):
        Timings(stimulus_s=-1)


def test_folder_plan_reads_targets_and_names_bad_rows(tmp_path):
    for name in ("a.png", "b.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    csv = tmp_path / "targets.csv"
    csv.write_text("file,quadrant\na.png,hahv\nb.mp4,LALV\n")
    plan = folder_plan(tmp_path, csv, trials=4, seed=0)
    assert len(plan) == 4 and {t.stimulus.path.name for t in plan} == {"a.png", "b.mp4"}
    assert {t.stimulus.path.name: (t.target, t.stimulus.kind) for t in plan} == {
        "a.png": ("HAHV", "image"), "b.mp4": ("LALV", "video")}
    csv.write_text("a.png,HAHV\nc.png,LALV\n")
    with pytest.raises(DataError, match=r"targets.csv row 2: 'c.png' is not an image or video"):
        read_targets(csv, {"a.png", "b.mp4"})
    csv.write_text("a.png,happy\n")
    with pytest.raises(DataError, match=r"row 1: quadrant 'happy' is not one of"):
        read_targets(csv, {"a.png"})


def test_preflight_refuses_with_the_reason(tiny_checkpoint, tmp_path):
    import queue
    import uuid

    import cv2
    import numpy as np

    from live_support import next_matching
    from milmer_app.engine import Engine, EngineConfig
    from milmer_app.lsl_player import LslPlayer
    from models.contract import GENEVA_CHANNELS

    assert calibration_problem(None).startswith("no stream")
    with Engine(EngineConfig(eeg="brainflow:synthetic", video="none", checkpoint=str(tiny_checkpoint),
                             device="cpu")) as engine:
        assert calibration_problem(engine) == "the model uses the face and no camera is connected"

    # A camera that sees no face, and EEG whose channels are all flat.
    video = tmp_path / "wall.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for _ in range(300):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    for flat, expected in ((False, "no face found in the camera image"), (True, "too few usable EEG channels")):
        data = np.zeros((32, 128 * 30), np.float32) if flat else \
            (np.random.default_rng(0).standard_normal((32, 128 * 30)) * 20).astype(np.float32)
        player = LslPlayer(data, 128.0, list(GENEVA_CHANNELS), name=f"Pre-{uuid.uuid4().hex[:6]}")
        engine = Engine(EngineConfig(eeg=f"lsl:name={player.name}", video=f"file:{video}",
                                     checkpoint=str(tiny_checkpoint), device="cpu", hop=0.5))
        predictions: queue.Queue = queue.Queue()
        statuses: queue.Queue = queue.Queue()
        engine.add_prediction_listener(predictions.put)
        engine.add_status_listener(statuses.put)
        with player, engine:
            if flat:
                next_matching(statuses, lambda s: s[0].problem, timeout=30)
                last = None
            else:
                last = next_matching(predictions, lambda p: True, timeout=30)
            assert calibration_problem(engine, last).startswith(expected)


@pytest.fixture
def eeg_outlet():
    """32 channels of the model's cap on a real LSL outlet, stamped at its nominal rate."""
    import uuid

    import numpy as np

    from milmer_app.lsl_player import LslPlayer
    from models.contract import GENEVA_CHANNELS

    data = (np.random.default_rng(0).standard_normal((32, 128 * 30)) * 20).astype(np.float32)
    player = LslPlayer(data, 128.0, list(GENEVA_CHANNELS), name=f"CalEEG-{uuid.uuid4().hex[:6]}")
    player.start()
    yield player
    player.stop()


@pytest.fixture
def window(qtbot, open_window, tmp_path, eeg_checkpoint, eeg_outlet):
    """The app's window on the EEG outlet with the EEG-only base model, predicting."""
    from milmer_app.cli import build_parser

    window = open_window(build_parser().parse_args(["--eeg", f"lsl:name={eeg_outlet.name}", "--video", "none",
                                                    "--checkpoint", str(eeg_checkpoint / "base"), "--device", "cpu",
                                                    "--hop", "0.5"]))
    window.record_controls.folder = tmp_path / "recordings"
    qtbot.waitUntil(lambda: window.last_prediction is not None or window.last_error is not None, timeout=60000)
    assert window.last_error is None, window.last_error
    return window


def _rate(qtbot, wizard, valence: float | None, arousal: float | None) -> None:
    qtbot.waitUntil(lambda: wizard.phase == "rating", timeout=20000)
    assert not wizard.submit_button.isEnabled()          # nothing chosen yet
    if valence is None:
        wizard.unsure_box.setChecked(True)
    else:
        wizard.valence.set_value(valence)
        wizard.arousal.set_value(arousal)
    assert wizard.submit_button.isEnabled()
    wizard.submit_button.click()


@pytest.mark.slow
def test_wizard_session_records_the_protocol_with_pause_and_redo(qtbot, window):
    window.calibrate_action.trigger()                         # the toolbar's Calibrate…: default durations
    refused = window.wizard
    assert refused.isVisible() and refused.rest_box.value() == 60 and refused.trials_box.value() == 20
    refused.stimulus_box.setCurrentIndex(refused.stimulus_box.findData("external"))
    refused.start_button.click()
    assert "need the experiment's marker stream" in refused.setup_problem.text() and refused.phase == "setup"
    refused.stimulus_box.setCurrentIndex(refused.stimulus_box.findData("builtin"))
    wizard = window.open_calibration(Timings(rest_s=0.3, fixation_s=0.2, stimulus_s=0.6, washout_s=0.2))
    wizard.trials_box.setValue(4)
    wizard.start_button.click()
    assert wizard.setup_problem.text() == ""
    assert wizard.phase == "rest" and window.engine.recording_status().active
    targets = [t.target for t in wizard.plan]
    assert sorted(targets) == sorted(QUADRANT_CLASSES)            # one per quadrant for 4 trials

    _rate(qtbot, wizard, 7.5, 8.25)                                 # t01
    # t02: paused during its stimulus, then resumed: done again from its fixation
    qtbot.waitUntil(lambda: wizard.phase == "stimulus" and wizard.index == 1, timeout=20000)
    wizard.pause_button.click()
    assert wizard.paused and not wizard.timer.isActive() and wizard.pause_button.text() == "Resume"
    qtbot.wait(800)                                                 # longer than the stimulus: nothing moves
    assert wizard.phase == "stimulus" and wizard.index == 1
    wizard.pause_button.click()
    assert wizard.phase == "fixation" and wizard.index == 1
    _rate(qtbot, wizard, 2.0, 2.5)
    # t03: rated, then redone from the washout and rated again
    _rate(qtbot, wizard, 3.0, 7.0)
    assert wizard.phase == "washout"
    wizard.redo_button.click()
    assert wizard.phase == "fixation" and wizard.index == 2
    _rate(qtbot, wizard, 6.0, 3.5)
    _rate(qtbot, wizard, None, None)                                 # t04: unsure
    qtbot.waitUntil(lambda: wizard.phase == "done", timeout=20000)
    assert wizard.pages.currentWidget() is wizard.calibrate_page
    assert "rated 4 of 4" in wizard.progress_label.text() and "1 unsure" in wizard.progress_label.text()
    assert wizard.progress() == {"HAHV": 1, "LAHV": 1, "LALV": 1, "HALV": 0, "on the threshold": 0}
    assert not window.engine.recording_status().active
    folder = wizard.recording

    # A session whose recording stops under it (here: stopped by hand) stops too, and says so.
    again = window.open_calibration(Timings(rest_s=0.5, fixation_s=0.2, stimulus_s=0.6, washout_s=0.2))
    again.trials_box.setValue(4)
    again.start_button.click()
    assert again.phase == "rest"
    window.engine.stop_recording()
    qtbot.waitUntil(lambda: again.phase == "setup", timeout=10000)
    assert "session stopped: the recording was stopped" in again.setup_problem.text()
    assert again.pages.currentWidget() is again.setup_page
    window.close()                                                   # the recordings are read once it has closed

    records = RecordingReader(folder).markers()
    ours = [r for r in records if r.get("kind") == "marker"]
    assert ours and all(r["stream"] == "milmer calibration wizard" for r in ours)
    assert all(parse_marker(r["text"]) is not None for r in ours)        # nothing but protocol markers
    log = read_calibration(marker_texts(records))
    assert not log.problems
    assert [t.trial for t in log.trials] == ["t01", "t02", "t03", "t04"]
    ratings = {t.trial: (t.rating.valence, t.rating.arousal, t.rating.skip) for t in log.trials}
    assert ratings == {"t01": (7.5, 8.25, False), "t02": (2.0, 2.5, False), "t03": (6.0, 3.5, False),
                       "t04": (None, None, True)}
    for trial in log.trials:
        assert trial.end - trial.start == pytest.approx(0.6, abs=0.25)   # one uninterrupted stimulus period
    eeg, stamps = RecordingReader(folder).eeg()
    assert eeg.shape[1] and stamps[0] <= log.trials[0].start and stamps[-1] >= log.trials[-1].end
    starts = [json.loads(r["text"])["trial"] for r in ours if '"trial_start"' in r["text"]]
    assert starts == ["t01", "t02", "t02", "t03", "t03", "t04"]           # the pause and the redo started again


def _report(decision: str) -> dict:
    def figures(right: int, acc: float) -> dict:
        return {"trials_correct": right, "trial_majority_vote_accuracy": right / 8, "accuracy": acc,
                "balanced_accuracy": acc - 0.01, "macro_f1": acc - 0.02, "windows": 64,
                "confusion": [[4, 0, 0, 0]] * 4}

    return {"decision": decision, "reasons": ["calibrated model got 7/8 test trials right, base 2/8"],
            "held_out": {"base": figures(2, 0.3), "calibrated": figures(7, 0.8)},
            "chance": {"test_trials": 8, "rated_classes": 4, "trials_needed_p05": 5, "accuracy_needed_p05": 0.625,
                       "majority_class_baseline": 0.25},
            "checkpoint": ["person-calibrated.safetensors", "person-calibrated.json"] if decision == "calibrated"
            else []}


@pytest.mark.slow
def test_result_view_and_switch_to_the_calibrated_model(qtbot, window, eeg_checkpoint):
    engine, eeg_source = window.engine, window.engine.eeg_source
    page = window.open_calibration().calibrate_page
    page.show_report(_report("kept_base"), eeg_checkpoint / "person-calibrated")
    assert "keep the current model" in page.result.decision.text() and not page.use_button.isEnabled()
    page.show_report(_report("calibrated"), eeg_checkpoint / "person-calibrated")
    view = page.result
    assert "use the calibrated model" in view.decision.text()
    assert view.bar_heights() == [0.25, 0.875]
    assert view.chance_line.isVisible() and view.chance_line.value() == 0.625
    assert view.table.item(0, 0).text() == "2 of 8" and view.table.item(0, 1).text() == "7 of 8"
    assert view.table.item(2, 1).text() == "0.800"
    assert "needs 5 of them right" in view.chance_text.text()
    assert page.use_button.isEnabled()
    page.use_button.click()
    qtbot.waitUntil(lambda: engine.model_name == "person-calibrated", timeout=30000)
    qtbot.waitUntil(lambda: window.last_prediction.model == "person-calibrated", timeout=30000)
    assert window.engine is engine and engine.eeg_source is eeg_source and eeg_source.connected   # no reconnect
    qtbot.waitUntil(lambda: "calibrated 2026-12-04" in window.status.model_label.text(), timeout=5000)
    assert "person-calibrated" in window.status.model_label.text()


@pytest.mark.slow
def test_wizard_recording_is_calibrated_in_the_background(qtbot, window, eeg_checkpoint):
    """8 trials long enough for a window each, then the real `milmer-train calibrate` in a QProcess: its
    progress, its report in the result view; a second run cancelled keeps nothing."""
    from training.calibration.inputs import check_inputs

    wizard = window.open_calibration(Timings(rest_s=0.2, fixation_s=0.1, stimulus_s=3.2, washout_s=0.1))
    wizard.trials_box.setValue(8)
    wizard.start_button.click()
    for index in range(8):
        high = index % 2 == 0
        _rate(qtbot, wizard, 7.0 if high else 2.5, 7.5 if high else 3.0)
    qtbot.waitUntil(lambda: wizard.phase == "done", timeout=20000)
    folder = wizard.recording
    inputs = check_inputs([str(folder)], str(eeg_checkpoint / "base"))      # what calibrate reads first
    assert len(inputs.usable) == 8 and not inputs.problems

    page = wizard.calibrate_page
    assert page.calibrate_button.isEnabled() and page.stem == folder.with_name(folder.name + "-calibrated")
    reports: list = []
    page.result_ready.connect(reports.append)
    page.failed.connect(lambda message: reports.append(message))
    page.calibrate_button.click()
    assert page.running and page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: bool(reports), timeout=240000)
    report = reports[0]
    assert isinstance(report, dict), report
    assert report["decision"] in ("calibrated", "kept_base") and report["reasons"]
    assert page.result.isVisible() or not page.isVisible()
    assert page.result.bar_heights() == [report["held_out"]["base"]["trial_majority_vote_accuracy"],
                                         report["held_out"]["calibrated"]["trial_majority_vote_accuracy"]]
    assert page.use_button.isEnabled() == (report["decision"] == "calibrated")
    assert "epoch" in page.log_view.toPlainText()

    # Cancelled at once: Ctrl-C, nothing kept, the page ready for another run.
    for path in folder.parent.glob(folder.name + "-calibrated*"):
        path.unlink()
    failures: list[str] = []
    page.failed.connect(failures.append)
    page.run()
    qtbot.waitUntil(lambda: "starting" in page.log_view.toPlainText() or page.log_view.blockCount() > 1,
                    timeout=60000)
    page.cancel()
    qtbot.waitUntil(lambda: not page.running, timeout=30000)
    assert failures and "cancelled" in failures[-1]
    assert not list(folder.parent.glob(folder.name + "-calibrated*.safetensors"))
    assert page.calibrate_button.isEnabled()


@pytest.mark.slow
def test_wizard_shows_own_images_and_videos_and_counts_external_ratings(qtbot, window, tmp_path):
    """A folder session shows each picture and video; an external session opens the experiment's marker
    stream named in its form, records its markers and ends when every planned trial is rated."""
    import uuid

    import cv2
    import numpy as np
    import pylsl

    from live_support import write_face_video

    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    cv2.imwrite(str(stimuli / "beach.png"), np.full((60, 80, 3), 200, np.uint8))
    write_face_video(stimuli / "clip.avi", quadrant=0, seconds=2.0, seed=0)
    (stimuli / "targets.csv").write_text("beach.png,LAHV\nclip.avi,HAHV\n")
    name = f"Experiment-{uuid.uuid4().hex[:6]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0, "string", name))
    wizard = window.open_calibration(Timings(rest_s=0.1, fixation_s=0.1, stimulus_s=1.0, washout_s=0.1))
    wizard.stimulus_box.setCurrentIndex(wizard.stimulus_box.findData("folder"))
    wizard.folder_edit.setText(str(stimuli))
    wizard.csv_edit.setText(str(stimuli / "targets.csv"))
    wizard.trials_box.setValue(2)
    wizard.start_button.click()
    assert {t.stimulus.path.name: t.target for t in wizard.plan} == {"beach.png": "LAHV", "clip.avi": "HAHV"}
    shown = set()
    for _ in range(2):
        qtbot.waitUntil(lambda: wizard.phase == "stimulus" and wizard.stimulus_view.pixmap() is not None
                        and not wizard.stimulus_view.pixmap().isNull(), timeout=20000)
        shown.add(wizard.current.stimulus.kind)
        _rate(qtbot, wizard, 6.5, 6.5)
    assert shown == {"image", "video"}
    qtbot.waitUntil(lambda: wizard.phase == "done", timeout=20000)
    wizard.close()

    external = window.open_calibration(Timings(rest_s=0.1, fixation_s=0.1, stimulus_s=1.0, washout_s=0.1))
    assert external is not wizard
    external.stimulus_box.setCurrentIndex(external.stimulus_box.findData("external"))
    external.trials_box.setValue(2)
    assert window.engine.marker_source is None and external.markers_edit.isEnabled()
    external.markers_edit.setText(f"lsl:name={name}")
    external.start_button.click()
    qtbot.waitUntil(lambda: external.phase == "external", timeout=10000)
    for trial, (valence, arousal) in (("a", (8.0, 8.0)), ("b", (2.0, 2.0))):
        for text in (f'{{"calibration": "trial_start", "trial": "{trial}"}}',
                     f'{{"calibration": "trial_end", "trial": "{trial}"}}',
                     f'{{"calibration": "rating", "trial": "{trial}", "valence": {valence}, '
                     f'"arousal": {arousal}}}'):
            outlet.push_sample([text])
    qtbot.waitUntil(lambda: external.phase == "done", timeout=20000)
    assert window.engine.marker_source.name == f"LSL markers {name}"
    assert external.progress()["HAHV"] == 1 and external.progress()["LALV"] == 1
    folder = external.recording
    window.close()
    del outlet
    log = read_calibration(marker_texts(RecordingReader(folder).markers()))
    assert [(t.trial, t.rating.valence) for t in log.trials] == [("a", 8.0), ("b", 2.0)] and not log.problems
