"""milmer-train calibrate on simulated people: the decision, the report, the checkpoint in the app, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.pipeline.labels import LabelRule
from training.calibration.inputs import CalibrationTrial
from training.calibration.judge import chance_trials_needed, decide, score
from training.calibration.split import split_trials
from training.synth_person import write_person_recording

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
    import numpy as np

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
