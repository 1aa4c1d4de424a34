"""The synthetic DEAP generator: layout, determinism, planted EEG and face information."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import signal

from models.contract import GENEVA_CHANNELS
from models.pipeline.faces import FaceCropper
from models.pipeline.labels import LabelRule
from training.deap import read_dat, read_ratings
from training.synth import (
    AROUSAL_HZ,
    VALENCE_HZ,
    TrialVideoComposer,
    cue_box,
    face_box,
    synth_trial_eeg,
    wandering_rhythm,
    write_synthetic_deap,
)

pytestmark = pytest.mark.opencv  # run again under OpenCV 5 by the test command


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return write_synthetic_deap(root, subjects=1, trials=4, seconds=3, fps=8, seed=3)


def test_layout_and_labels(synth):
    root = synth.root
    arrays = read_dat(root / "data_preprocessed_python" / "s01.dat")
    assert arrays.data.shape == (4, 40, 6 * 128)
    quadrants = LabelRule().apply_many(arrays.labels[:, 0], arrays.labels[:, 1])
    assert sorted(quadrants) == [0, 1, 2, 3]
    rows = read_ratings(root / "metadata_csv" / "participant_ratings.csv")
    assert [r.experiment_id for r in rows] != [r.trial for r in rows]
    for trial in synth.trials:
        assert trial.video == root / "face_video" / "s01" / f"s01_trial{trial.presentation_trial:02d}.avi"
        assert quadrants[trial.experiment_id - 1] == trial.quadrant
    # Pairing videos by presentation order would give every video another class.
    by_presentation = {t.presentation_trial: t.quadrant for t in synth.trials}
    assert all(quadrants[p - 1] != q for p, q in by_presentation.items())


def test_deterministic_for_a_seed(tmp_path):
    first = write_synthetic_deap(tmp_path / "a", subjects=1, trials=4, seconds=1, fps=2, seed=5)
    second = write_synthetic_deap(tmp_path / "b", subjects=1, trials=4, seconds=1, fps=2, seed=5)
    other = write_synthetic_deap(tmp_path / "c", subjects=1, trials=4, seconds=1, fps=2, seed=6)
    dat = Path("data_preprocessed_python/s01.dat")
    assert (first.root / dat).read_bytes() == (second.root / dat).read_bytes()
    assert (first.root / dat).read_bytes() != (other.root / dat).read_bytes()
    ratings = Path("metadata_csv/participant_ratings.csv")
    assert (first.root / ratings).read_text() == (second.root / ratings).read_text()


def _band_power(x: np.ndarray, freq: float) -> float:
    freqs, psd = signal.welch(x, fs=128, nperseg=256)
    return float(psd[(freqs > freq - 1) & (freqs < freq + 1)].mean())


@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_planted_eeg_rhythms(quadrant):
    eeg = synth_trial_eeg(quadrant, seconds=20, strength=1.0, rng=np.random.default_rng(quadrant))
    stimulus = eeg[:, 3 * 128:]
    control = stimulus[GENEVA_CHANNELS.index("C3")]  # no planted rhythm: the background's own spectrum

    def high_over_low(name: str, bands: dict) -> float:
        x = stimulus[GENEVA_CHANNELS.index(name)]
        return (_band_power(x, bands[True]) / _band_power(x, bands[False])) / (
            _band_power(control, bands[True]) / _band_power(control, bands[False]))

    high_valence, high_arousal = quadrant in (0, 1), quadrant in (0, 3)
    assert (high_over_low("F3", VALENCE_HZ) > 1.25) == high_valence
    assert (high_over_low("F3", VALENCE_HZ) < 0.8) == (not high_valence)
    assert (high_over_low("Pz", AROUSAL_HZ) > 1.25) == high_arousal
    assert (high_over_low("Pz", AROUSAL_HZ) < 0.8) == (not high_arousal)
    assert 5 < eeg[:32].std() < 60  # microvolt scale like DEAP


def test_planted_rhythm_is_not_phase_locked_to_windows():
    rhythm = wandering_rhythm(6.0, 128 * 60, np.random.default_rng(0))  # 6 Hz: whole cycles in 3 s
    windows = rhythm.reshape(20, 384)
    correlations = [abs(np.corrcoef(windows[i], windows[i + 1])[0, 1]) for i in range(19)]
    assert np.mean(correlations) < 0.5


@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_detector_finds_every_frame_and_cue_is_inside_the_box(quadrant):
    composer = TrialVideoComposer(quadrant, 1.0, (360, 288), np.random.default_rng(quadrant))
    cropper = FaceCropper(64)
    for t in np.arange(0, 6, 0.25):
        crop = cropper.crop(composer.frame(t))
        assert crop is not None, f"no face at t={t}"
        x, y, w, h = crop.box
        cx, cy, cw, ch = cue_box(composer.portrait_box(t))
        assert x <= cx and y <= cy and cx + cw <= x + w and cy + ch <= y + h, (crop.box, (cx, cy, cw, ch))
        fx, fy, fw, fh = face_box(composer.portrait_box(t))
        assert abs((x + w / 2) - (fx + fw / 2)) < 0.25 * fw


def test_written_videos_have_a_face_in_every_frame(synth):
    cropper = FaceCropper(32)
    frames = 0
    for trial in synth.trials:
        capture = cv2.VideoCapture(str(trial.video))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(8)
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (288, 360, 3)
            assert cropper.crop(frame) is not None
            frames += 1
        capture.release()
    assert frames == 4 * 6 * 8


def test_cli_writes_the_layout(tmp_path):
    from training.cli import main

    assert main(["synth", "--out", str(tmp_path), "--subjects", "2", "--trials", "4", "--seconds", "1",
                 "--fps", "2", "--mat", "--video-subjects", "1"]) == 0
    assert (tmp_path / "data_preprocessed_matlab" / "s02.mat").is_file()
    assert len(list((tmp_path / "face_video" / "s01").glob("*.avi"))) == 4
    assert not (tmp_path / "face_video" / "s02").exists()
    with (tmp_path / "metadata_csv" / "participant_ratings.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8


def test_planted_eeg_generalises_to_unseen_trials():
    """A simple band-power classifier trained on some trials labels the windows of other trials."""
    from training.synth import AROUSAL_ELECTRODES, VALENCE_ELECTRODES
    from training.windows import WindowSpec

    rng = np.random.default_rng(11)
    quadrants = np.arange(16) % 4
    spec = WindowSpec()
    frontal = [GENEVA_CHANNELS.index(n) for n in VALENCE_ELECTRODES]
    parietal = [GENEVA_CHANNELS.index(n) for n in AROUSAL_ELECTRODES]

    def features(window: np.ndarray) -> np.ndarray:
        freqs, psd = signal.welch(window, fs=128, nperseg=128)
        band = lambda rows, f: np.log(psd[rows][:, (freqs >= f - 1.5) & (freqs <= f + 1.5)].mean())  # noqa: E731
        return np.array([band(frontal, VALENCE_HZ[True]) - band(frontal, VALENCE_HZ[False]),
                         band(parietal, AROUSAL_HZ[True]) - band(parietal, AROUSAL_HZ[False])])

    windows = [(trial, q, features(w)) for trial, q in enumerate(quadrants)
               for w in spec.cut_eeg(synth_trial_eeg(int(q), 12, 1.0, rng))]
    train = [(q, f) for trial, q, f in windows if trial < 12]
    test = [(q, f) for trial, q, f in windows if trial >= 12]
    centroids = np.stack([np.mean([f for q, f in train if q == k], axis=0) for k in range(4)])
    predicted = [int(np.argmin(((centroids - f) ** 2).sum(axis=1))) for _, f in test]
    accuracy = np.mean([p == q for p, (q, _) in zip(predicted, test)])
    assert accuracy >= 0.9, accuracy
