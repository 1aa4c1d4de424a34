"""milmer-train calibrate on simulated people: the decision, the report, the checkpoint in the app, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.pipeline.labels import LabelRule
from training.calibration.inputs import CalibrationTrial
from training.calibration.judge import chance_trials_needed, decide, score
from training.calibration.split import split_trials
from training.recording_files import RecordingReader
from training.synth_person import SimulatedRecording, write_person_recording

CHECK_TORCH = ("import sys; from training.cli import main; code = main(sys.argv[1:]); "
               "print('torch imported:', 'torch' in sys.modules); sys.exit(code)")


def _calibrate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHECK_TORCH, "calibrate", *args], capture_output=True, text=True,
                          timeout=timeout)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("milmer-train: error:")]


# -- pure parts -------------------------------------------------------------------------------------
def test_chance_threshold_is_the_binomial_tail():
    assert chance_trials_needed(8, 4) == 5      # P(X >= 5 | 8, 1/4) = 0.027, P(X >= 4) = 0.114
    assert chance_trials_needed(8, 2) == 7      # P(X >= 7 | 8, 1/2) = 0.035, P(X >= 6) = 0.145
    assert chance_trials_needed(2, 4) == 3      # 1/16 = 0.0625 is not below 0.05: no count of 2 trials is
    assert chance_trials_needed(3, 2) == 4


def _trials(labels: list[int]) -> list[CalibrationTrial]:
    return [CalibrationTrial(0, f"t{i}", f"r/t{i}", float(i * 10), float(i * 10 + 5), 7.0, 7.0, label)
            for i, label in enumerate(labels)]


def test_split_holds_out_the_latest_two_per_class_and_never_a_class_only_trial():
    trials = _trials([0, 1, 2, 3] * 5)
    split = split_trials(trials, 8)
    assert [t.trial for t in split.test] == [f"t{i}" for i in range(12, 20)]
    assert split.note is None and len(split.train) == 12
    # A class rated once stays in training; fewer than 2 x 8 trials hold out only half.
    few = split_trials(_trials([0, 0, 0, 1, 1, 1, 2, 0, 1, 0]), 8)
    assert all(t.label != 2 for t in few.test) and len(few.test) == 5 and "5 test trial(s)" in few.note
    assert not set(id(t) for t in few.test) & set(id(t) for t in few.train)


def test_decision_needs_the_base_and_chance_beaten_by_trials():
    labels = np.repeat([0, 1, 2, 3, 0, 1, 2, 3], 3)
    trial_of = np.repeat(np.arange(8), 3)

    def model(right: int) -> np.ndarray:
        probabilities = np.full((24, 4), 0.1)
        for t in range(8):
            truth = labels[t * 3]
            probabilities[t * 3:(t + 1) * 3, truth if t < right else (truth + 1) % 4] = 0.7
        return probabilities

    truths = [int(v) for v in labels[::3]]
    names = LabelRule().class_names
    good = decide(score(model(2), labels, trial_of, 4), score(model(6), labels, trial_of, 4), truths, 4, names)
    assert good.decision == "calibrated" and good.chance_trials == 5
    lucky = decide(score(model(2), labels, trial_of, 4), score(model(4), labels, trial_of, 4), truths, 4, names)
    assert lucky.decision == "kept_base" and "needs 5/8" in lucky.reasons[0]
    worse = decide(score(model(7), labels, trial_of, 4), score(model(6), labels, trial_of, 4), truths, 4, names)
    assert worse.decision == "kept_base" and "not better than the base" in worse.reasons[-1]


# -- unusable input: exit 2, one line, before torch ---------------------------------------------------
def _no_ratings(folder: Path) -> None:
    write_person_recording(folder, trials=0, unrated=9, trial_seconds=3.0, rest_s=1.0, video=False)


def _two_rated(folder: Path) -> None:
    write_person_recording(folder, trials=2, trial_seconds=3.0, rest_s=1.0, video=False)


def _unmappable(folder: Path) -> None:
    write_person_recording(folder, trials=8, trial_seconds=3.0, rest_s=1.0, video=False)
    meta = json.loads((folder / "meta.json").read_text())
    meta["eeg"]["channels"] = [f"X{i}" for i in range(len(meta["eeg"]["channels"]))]
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("make, expected", [
    (_no_ratings, "no ratings"),
    (_two_rated, "2 usable rated trial(s), at least 8 needed"),
    (_unmappable, "only 0 of the model's 32 EEG channels found"),
])
def test_unusable_input_exits_2_with_one_line_before_torch(tmp_path, make, expected):
    make(tmp_path / "rec")
    result = _calibrate("--recording", str(tmp_path / "rec"), "--checkpoint", "demo", "--out", str(tmp_path / "cal"))
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and expected in errors[0] and str(tmp_path / "rec") in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "torch imported: False" in result.stdout
    assert list(tmp_path.glob("cal*")) == []


def test_missing_recording_and_checkpoint_are_named(tmp_path):
    result = _calibrate("--recording", str(tmp_path / "nope"), "--checkpoint", "demo", "--out", str(tmp_path / "c"))
    assert result.returncode == 2 and "nope: no such folder" in _error_lines(result)[0]
    _two_rated(tmp_path / "rec")
    result = _calibrate("--recording", str(tmp_path / "rec"), "--checkpoint", str(tmp_path / "base"),
                        "--out", str(tmp_path / "c"))
    assert result.returncode == 2 and "checkpoint not found" in _error_lines(result)[0]


# -- whole runs on simulated people ------------------------------------------------------------------
def _report(stem: Path) -> dict:
    return json.loads(stem.with_name(stem.name + ".report.json").read_text())


def _calibrate_on_demo(recording: Path, stem: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`milmer-train calibrate` of the demo model on `recording` into `stem`: the run (exit 0) and its report."""
    result = _calibrate("--recording", str(recording), "--checkpoint", "demo", "--out", str(stem), *options)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, _report(stem)


def _replay_agreement(session: SimulatedRecording, checkpoints: dict[str, str],
                     out: Path) -> dict[str, tuple[int, int]]:
    """For each named checkpoint: predictions of `milmer-app --headless` replaying the simulated
    `session` whose window lies inside a trial, and how many of them are the quadrant the person felt.
    The replays run side by side (each paced by the recording's clock). The app's own recording of
    each replay (--record) gives each replayed sample's LSL time, hence each window's place in the
    original."""
    recording = session.folder
    runs = {}
    for name, checkpoint in checkpoints.items():
        predictions, replayed = out / f"{name}.jsonl", out / f"{name}.rec"
        command = [sys.executable, "-m", "milmer_app.cli", "--headless", "--eeg", f"recording:{recording}",
                   "--video", f"recording:{recording}", "--checkpoint", checkpoint, "--speed", "2", "--hop", "2",
                   "--predictions", str(predictions), "--record", str(replayed)]
        log = out / f"{name}.log"   # a file, not a pipe: a replay never waits for its reader
        with log.open("w") as sink:
            runs[name] = (subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT), predictions, replayed, log)
    _, original_times = RecordingReader(recording).eeg()
    agreement = {}
    for name, (process, predictions, replayed, log) in runs.items():
        process.wait(timeout=300)
        stderr = log.read_text()
        assert process.returncode == 0, stderr[-2000:]
        _, replay_times = RecordingReader(replayed).eeg()
        right = count = 0
        for line in predictions.read_text().splitlines():
            prediction = json.loads(line)
            index = min(int(np.searchsorted(replay_times, prediction["window_end"])), len(original_times) - 1)
            end = original_times[index]
            felt = session.truth_at(end)
            if felt is not None and felt == session.truth_at(end - 3.0):
                count += 1
                right += prediction["quadrant"] == felt
        assert count >= 6, (name, count, stderr[-2000:])
        agreement[name] = (right, count)
    return agreement


@pytest.mark.slow
def test_calibrated_model_is_clearly_better_for_a_person_who_codes_emotion_differently(tmp_path):
    from models.checkpoint import file_sha256, read_checkpoint_meta
    from training.calibration.inputs import resolve_base

    recording = tmp_path / "session"
    write_person_recording(recording, "inverted", trials=20, trial_seconds=12.0, seed=1, skipped=1, ties=1, unrated=1)
    stem = tmp_path / "me"
    _, report = _calibrate_on_demo(recording, stem, "--seed", "0")
    assert report["decision"] == "calibrated", report["reasons"]
    held = report["held_out"]
    assert held["calibrated"]["trials_correct"] >= report["chance"]["trials_needed_p05"] == 5
    assert held["calibrated"]["trials_correct"] > held["base"]["trials_correct"]
    for model in ("base", "calibrated"):
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "trial_majority_vote_accuracy", "confusion"):
            assert key in held[model]
    trials = report["trials"]
    assert trials["excluded_counts"] == {"skipped": 1, "rated on the label threshold": 1, "unrated": 1}
    assert len(trials["test"]) == 8 and not set(trials["test"]) & set(trials["train"])
    assert report["refit_on_all_trials"] is False
    assert "# Calibration: calibrated" in stem.with_name("me.report.md").read_text()

    meta = read_checkpoint_meta(stem)
    calibration = meta.provenance["calibration"]
    demo = resolve_base("demo")
    assert calibration["base"]["name"] == "demo_model"
    assert calibration["base"]["sha256"] == file_sha256(demo.with_name("demo_model.safetensors"))
    assert calibration["recordings"] == ["session"] and calibration["trials"]["test"] == trials["test"]
    assert calibration["held_out"]["calibrated"]["trials_correct"] == held["calibrated"]["trials_correct"]
    assert calibration["method"]["trainable"]
    assert calibration["base"]["provenance"]["split"] == read_checkpoint_meta(demo).provenance["split"]

    # Fresh sessions of the same person replayed through the app: the calibrated model clearly wins.
    fresh = tmp_path / "fresh"
    session = write_person_recording(fresh, "inverted", trials=4, trial_seconds=12.0, seed=5, rest_s=1.0)
    agreement = _replay_agreement(session, {"base": "demo", "mine": str(stem)}, tmp_path)
    (base_right, base_count), (mine_right, mine_count) = agreement["base"], agreement["mine"]
    assert mine_right / mine_count >= 0.7 and base_right / base_count <= 0.25, \
        (base_right, base_count, mine_right, mine_count)


@pytest.mark.slow
def test_person_without_emotional_information_keeps_the_base_model(tmp_path):
    recording = tmp_path / "flat"
    write_person_recording(recording, "no_information", trials=16, trial_seconds=9.0, seed=2)
    stem = tmp_path / "flat_cal"
    result, report = _calibrate_on_demo(recording, stem)
    assert report["decision"] == "kept_base"
    assert any("chance" in reason or "not better than the base" in reason for reason in report["reasons"])
    assert "No checkpoint written" in stem.with_name("flat_cal.report.md").read_text()
    assert not stem.with_name("flat_cal.safetensors").exists() and not stem.with_name("flat_cal.json").exists()
    assert "decision: kept_base" in result.stdout


@pytest.mark.slow
def test_person_who_never_rated_one_quadrant(tmp_path):
    import torch

    from models.checkpoint import load_checkpoint
    from training.calibration.inputs import resolve_base

    recording = tmp_path / "three"
    write_person_recording(recording, "missing_quadrant", trials=18, trial_seconds=9.0, seed=3)
    stem = tmp_path / "three_cal"
    _, report = _calibrate_on_demo(recording, stem)
    assert report["never_rated"] == ["LALV"] and report["chance"]["rated_classes"] == 3
    assert "LALV never rated: nothing trains toward it" in stem.with_name("three_cal.report.md").read_text()
    assert "LALV" not in report["trials"]["test_labels"]
    assert report["decision"] == "calibrated", report["reasons"]
    # Only the head trained, and the calibrated model no longer answers LALV for this person.
    mine, base = load_checkpoint(stem).model, load_checkpoint(resolve_base("demo")).model
    changed = [name for name, tensor in mine.state_dict().items() if not torch.equal(tensor, base.state_dict()[name])]
    assert changed and all(name.startswith("head.") for name in changed)
    assert report["held_out"]["calibrated"]["trial_predictions"].count(2) == 0


def test_ctrl_c_stops_cleanly_with_nothing_written(tmp_path):
    import signal

    write_person_recording(tmp_path / "rec", trials=8, trial_seconds=6.0, rest_s=1.0, seed=4)
    stem = tmp_path / "cal"
    process = subprocess.Popen([sys.executable, "-m", "training.cli", "calibrate", "--recording", str(tmp_path / "rec"),
                                "--checkpoint", "demo", "--out", str(stem)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:   # progress: interrupt once the work on the recording has begun
        if "finding faces" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    assert "milmer-train: interrupted" in rest and "Traceback" not in rest
    assert list(tmp_path.glob("cal*")) == []


def test_windows_equal_the_live_pipeline_and_mask_bad_channels(tmp_path):
    from models.pipeline.streaming import SignalChecks, StreamingEEG
    from training.calibration.inputs import check_inputs
    from training.calibration.windows import _RecordingEEG

    folder = tmp_path / "rec"
    write_person_recording(folder, trials=8, trial_seconds=6.0, rest_s=1.0, seed=6, video=False)
    meta = json.loads((folder / "meta.json").read_text())
    channels = meta["eeg"]["channels"]
    data = np.fromfile(folder / "eeg.f32", "<f4").reshape(-1, len(channels))
    data[1000:1010, channels.index("Cz")] = np.nan      # NaN for 80 ms at 1007.8 s
    data[:, channels.index("O2")] = 5.0                 # a flat channel (an offset only)
    data.tofile(folder / "eeg.f32")
    inputs = check_inputs([str(folder)], "demo")
    recording = inputs.recordings[0]
    signal = _RecordingEEG(recording, inputs)
    live = StreamingEEG(inputs.contract, recording.channels, recording.reader.srate)
    raw, stamps = recording.reader.eeg()
    names = list(inputs.contract.eeg_channels)
    compared = 0
    for stop in range(2000, raw.shape[1], 700):          # the live window after every 700 samples
        live.feed(raw[:, stop - 700 if stop > 2000 else 0:stop], stamps[stop - 700 if stop > 2000 else 0:stop])
        window = live.window()
        mine = signal.window(window.start, inputs.contract.window_samples, SignalChecks())
        assert mine is not None
        np.testing.assert_array_equal(mine[1], window.mask)
        np.testing.assert_allclose(mine[0], window.eeg, atol=1e-3)
        compared += 1
    assert compared > 10
    first = signal.window(1006.0, inputs.contract.window_samples, SignalChecks())
    assert first is not None and not first[1][names.index("Cz")] and not first[1][names.index("O2")]
    later = signal.window(1030.0, inputs.contract.window_samples, SignalChecks())
    assert later is not None and later[1][names.index("Cz")] and not later[1][names.index("O2")]


@pytest.mark.slow
def test_refit_trains_the_written_model_on_all_trials_and_says_so(tmp_path):
    from models.checkpoint import read_checkpoint_meta

    write_person_recording(tmp_path / "rec", "inverted", trials=16, trial_seconds=9.0, seed=1)
    stem = tmp_path / "refit"
    result, report = _calibrate_on_demo(tmp_path / "rec", stem, "--refit")
    assert report["decision"] == "calibrated", report["reasons"]
    assert report["refit_on_all_trials"] is True and "refitting on all usable trials" in result.stderr
    assert "refit on all trials after the decision: yes" in stem.with_name("refit.report.md").read_text()
    assert read_checkpoint_meta(stem).provenance["calibration"]["refit_on_all_trials"] is True


def _frame_code(index: int) -> int:
    """The blue level planted in recorded frame `index` (ten levels, 24 apart: neighbouring frames differ)."""
    return 20 + 24 * (index % 10)


def test_face_crops_land_on_their_own_frames_when_a_frame_does_not_decode(tmp_path):
    from training.calibration.inputs import check_inputs
    from training.calibration.windows import _frame_rows, cut_windows

    folder = tmp_path / "rec"
    write_person_recording(folder, trials=8, trial_seconds=4.0, rest_s=1.0, seed=6)
    # Plant each frame's identity in its colour (the face stays), then make one frame the windows use undecodable.
    reader = RecordingReader(folder)
    index = reader.frame_index()
    blobs = []
    for i, (_, image) in enumerate(reader.read_frames(index)):
        image[:, :, 0] = _frame_code(i)
        blobs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    assert len(blobs) == len(index)
    offsets = np.cumsum([0] + [len(b) for b in blobs[:-1]])
    (folder / "frames.mjpg").write_bytes(b"".join(blobs))
    np.column_stack([index[:, 0], offsets, [len(b) for b in blobs]]).astype("<f8").tofile(folder / "frames.idx")

    inputs = check_inputs([str(folder)], "demo")
    contract = inputs.contract
    n, hop = contract.num_instances, 1.5
    starts, trial_of = [], []
    for position, trial in enumerate(inputs.usable):
        start = trial.start
        while start + contract.window_seconds <= trial.end + 1e-6:
            starts.append(start)
            trial_of.append(position)
            start += hop
    expected_rows = np.array([_frame_rows(index, start, contract.window_seconds, n) for start in starts])
    broken = int(expected_rows[len(starts) // 2, 1])     # a frame in the middle of the frames read
    with (folder / "frames.mjpg").open("r+b") as handle:
        handle.seek(int(offsets[broken]))
        handle.write(bytes(len(blobs[broken])))
    assert cv2.imdecode(np.frombuffer(bytes(len(blobs[broken])), np.uint8), cv2.IMREAD_COLOR) is None

    windows = cut_windows(inputs, hop)
    assert windows.trial_of.tolist() == trial_of        # every window kept: the rows above are the windows'
    assert (expected_rows >= 0).all()
    masked = expected_rows == broken
    assert masked.sum() == 1 and (windows.frame_ids[masked] == -1).all()
    cropped = windows.frame_ids >= 0
    assert cropped.sum() >= 0.9 * (~masked).sum()       # the planted face is found in (nearly) every other frame
    for w, k in zip(*np.nonzero(cropped)):
        blue = windows.crops[windows.frame_ids[w, k], :, :, 2].mean()
        assert abs(blue - _frame_code(int(expected_rows[w, k]))) < 6, (w, k, expected_rows[w, k], blue)


def test_evaluate_scores_a_calibrated_checkpoint_on_its_bases_deap_test_split(tmp_path, tiny_checkpoint, capsys):
    from models.checkpoint import load_checkpoint, save_checkpoint
    from training import cli
    from training.calibration.lineage import base_lineage

    data = tmp_path / "deap"
    assert cli.main(["-q", "synth", "--out", str(data), "--subjects", "1", "--trials", "4", "--seconds", "6",
                     "--video-size", "160x128", "--fps", "5"]) == 0
    tiny = load_checkpoint(tiny_checkpoint)
    split = {"unit": "trials", "leaky": False, "test": [[1, 2], [1, 4]]}
    trained = {"dataset": "synthetic", "protocol": "trial", "fold_name": "trial fold 1/2", "leaky": False,
               "split": split, "seed": 0}
    save_checkpoint(tmp_path / "base", tiny.model, tiny.contract, trained)

    def calibrate_from(base: str, stem: str) -> None:
        """A checkpoint whose provenance is built as `calibrate` builds it (the weights do not matter here)."""
        provenance = load_checkpoint(tmp_path / base).provenance
        calibration = {"base": {"checkpoint": base, "name": base, "provenance": base_lineage(provenance)},
                       "recordings": ["session"], "decision": "calibrated"}
        save_checkpoint(tmp_path / stem, tiny.model, tiny.contract, {"protocol": "calibration",
                                                                     "calibration": calibration})

    calibrate_from("base", "me")
    calibrate_from("me", "me_again")     # calibrated from a calibrated checkpoint: the first base's split
    common = ["--deap", str(data), "--cache", str(tmp_path / "cache"), "--device", "cpu", "--batch-size", "8"]
    for stem, base in (("me", "base"), ("me_again", "me")):
        out = tmp_path / f"{stem}.evaluation.json"
        assert cli.main(["-q", "evaluate", "--checkpoint", str(tmp_path / stem), *common, "--out", str(out)]) == 0
        evaluation = json.loads(out.read_text())
        assert evaluation["trials"] == split["test"] and evaluation["calibrated_from"] == base
        assert f"test trials of trial fold 1/2 of its base checkpoint {base}; a calibrated" in capsys.readouterr().out

    # A base that recorded no test split: the error says what the checkpoint is and where its figures are.
    save_checkpoint(tmp_path / "untested", tiny.model, tiny.contract, {"dataset": "synthetic"})
    calibrate_from("untested", "blind")
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "blind"), *common]) == 2
    error = capsys.readouterr().err
    assert "blind: a calibrated checkpoint (base untested, calibrated on session)" in error
    assert "blind.report.json" in error and "--all-windows scores it on every window" in error
    out = tmp_path / "blind.evaluation.json"
    assert cli.main(["-q", "evaluate", "--checkpoint", str(tmp_path / "blind"), *common, "--all-windows",
                     "--out", str(out)]) == 0
    assert json.loads(out.read_text())["trials"] == [[1, t] for t in range(1, 5)]


def test_max_minutes_stops_face_detection_that_cannot_end_in_time(tmp_path):
    from training.calibration.budget import BudgetError, TimeBudget
    from training.calibration.inputs import check_inputs
    from training.calibration.windows import cut_windows

    folder = tmp_path / "rec"
    write_person_recording(folder, trials=8, trial_seconds=4.0, rest_s=1.0, seed=6)   # 32 frames to search
    inputs = check_inputs([str(folder)], "demo")

    def ticking() -> Callable[[], float]:
        """A clock on which each reading is one second after the last: every frame takes 1 s."""
        readings = iter(range(10**6))
        return lambda: float(next(readings))

    # 30 s: after 4 frames in 4 s the other 28 would need 28 s, 25 are left.
    with pytest.raises(BudgetError) as stopped:
        cut_windows(inputs, 1.5, budget=TimeBudget(0.5, 0.0, ticking()))
    assert str(stopped.value) == ("--max-minutes 0.5: rec: finding faces would need about 28 s more for 28 of its 32 "
                                  "frames (1 s each), 25 s of the budget left; stopped before training, nothing "
                                  "written (raise --max-minutes to more than 0.6)")
    assert cut_windows(check_inputs([str(folder)], "demo"), 1.5,
                       budget=TimeBudget(0.6, 0.0, ticking())).frames_searched == 32


def test_max_minutes_bounds_the_whole_run_exit_2_nothing_written(tmp_path):
    write_person_recording(tmp_path / "rec", trials=8, trial_seconds=4.0, rest_s=1.0, seed=6, video=False)
    result = _calibrate("--recording", str(tmp_path / "rec"), "--checkpoint", "demo", "--out", str(tmp_path / "cal"),
                        "--max-minutes", "0.001")
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and "--max-minutes 0.001: the time budget was spent (" in errors[0], result.stderr
    assert ") before rec: EEG through the contract's transform; stopped before training, nothing written" in errors[0]
    assert "Traceback" not in result.stderr and list(tmp_path.glob("cal*")) == []
