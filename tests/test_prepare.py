"""prepare: pairing through Experiment_id, masked missing faces, cache keys, resume, strict mode."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.faces import FaceCropper
from training.dataset import DeapWindowDataset
from training.prepare import FaceSpec, PrepareConfig, prepare_cache
from training.synth import TrialVideoComposer, write_synthetic_deap
from training.windows import WindowSpec

pytestmark = pytest.mark.opencv  # run again under OpenCV 5 by the test command

FACE = 48
CONFIG = PrepareConfig(face=FaceSpec(size=FACE), window=WindowSpec(num_instances=4))


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deap")
    write_synthetic_deap(root, subjects=2, trials=4, seconds=6, fps=6, seed=1, missing_videos={1: [2]})
    return root


@pytest.fixture(scope="module")
def prepared(deap, tmp_path_factory):
    return prepare_cache(deap, tmp_path_factory.mktemp("cache"), CONFIG, progress=False)


def _cue_signature(image_rgb: np.ndarray) -> np.ndarray:
    """Mean chroma over the cheek band of a face crop."""
    ycrcb = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2YCrCb).astype(np.float64)
    s = image_rgb.shape[0]
    return ycrcb[int(0.55 * s):int(0.8 * s), int(0.15 * s):int(0.85 * s), 1:].reshape(-1, 2).mean(axis=0)


def _cue_class(faces: np.ndarray, mask: np.ndarray) -> int:
    cropper = FaceCropper(FACE)
    references = np.stack([
        _cue_signature(cropper.crop(TrialVideoComposer(q, 1.0, (360, 288), np.random.default_rng(0)).frame(0)).image)
        for q in range(4)])
    signature = np.mean([_cue_signature(f.transpose(1, 2, 0)) for f in faces[mask]], axis=0)
    return int(np.argmin(((references - signature) ** 2).sum(axis=1)))


def test_faces_are_paired_through_experiment_id(prepared):
    dataset = DeapWindowDataset(prepared.cache)
    wrong_pairing_agrees = 0
    checked = 0
    labels_by_row = {(int(m["subject"]), int(m["experiment_id"])): int(lbl)
                     for m, lbl in zip(dataset.meta, dataset.labels)}
    for i in range(len(dataset)):
        _, faces, _, face_mask, label, meta = dataset[i]
        if not face_mask.any():
            continue
        cue = _cue_class(faces.numpy(), face_mask.numpy())
        assert cue == int(label), meta
        # Pairing this video with row "presentation trial" instead would give another label.
        wrong_pairing_agrees += labels_by_row[(meta["subject"], meta["presentation_trial"])] == int(label)
        checked += 1
    assert checked == 2 * 4 * 2 - 2  # s01's presentation trial 2 has no video (2 windows)
    assert wrong_pairing_agrees == 0


def test_missing_video_is_masked_and_summarised(prepared):
    dataset = DeapWindowDataset(prepared.cache)
    no_video = dataset.meta["has_video"] == False  # noqa: E712
    assert set(dataset.meta["presentation_trial"][no_video]) == {2}
    assert set(dataset.meta["subject"][no_video]) == {1}
    for i in np.flatnonzero(no_video):
        _, faces, _, face_mask, _, _ = dataset[i]
        assert not face_mask.any() and not faces.any()
    summary = prepared.summary
    assert summary["windows"] == 16 and summary["trials"] == 8
    assert summary["faces_found"] == summary["face_frames_requested"] == 14 * 4
    assert summary["label_counts"]["quadrant"] == {"HAHV": 4, "LAHV": 4, "LALV": 4, "HALV": 4}
    text = (prepared.cache / "summary.txt").read_text()
    assert "s01: missing video for presentation trial(s) 2" in text
    assert json.loads((prepared.cache / "summary.json").read_text())["windows"] == 16


def test_eeg_windows_are_electrode_by_time(prepared, deap):
    from training.deap import load_subject_eeg

    dataset = DeapWindowDataset(prepared.cache)
    data = load_subject_eeg(deap, 2)
    for i in np.flatnonzero(dataset.meta["subject"] == 2)[:3]:
        eeg, *_, meta = dataset[i]
        first = int(round(meta["start_s"] * 128))
        np.testing.assert_array_equal(eeg.numpy(), data[meta["experiment_id"] - 1, :32, first:first + 384])


def test_same_parameters_reuse_and_any_change_makes_a_new_cache(deap, prepared, caplog):
    root = prepared.cache.parent
    with caplog.at_level(logging.INFO, logger="training.prepare"):
        again = prepare_cache(deap, root, CONFIG, progress=False)
    assert again.cache == prepared.cache
    assert "2 subject(s) already complete" in caplog.text
    keys = {prepared.key}
    for change in (PrepareConfig(face=FaceSpec(size=FACE + 8), window=CONFIG.window),
                   PrepareConfig(face=FaceSpec(size=FACE, expand=0.2), window=CONFIG.window),
                   PrepareConfig(face=CONFIG.face, window=WindowSpec(num_instances=5)),
                   PrepareConfig(face=CONFIG.face, window=WindowSpec(num_instances=4, hop_s=1.5)),
                   PrepareConfig(face=CONFIG.face, window=WindowSpec(num_instances=4, channels=("Fp1", "Fz")))):
        from training.deap import scan_deap
        from training.prepare import cache_key, data_identity

        keys.add(cache_key(change, data_identity(scan_deap(deap))))
    assert len(keys) == 6


def test_another_opencv_makes_a_new_cache(deap, monkeypatch):
    from training.deap import scan_deap
    from training.prepare import cache_key, data_identity

    identity = data_identity(scan_deap(deap))
    key = cache_key(CONFIG, identity)
    monkeypatch.setattr(cv2, "__version__", cv2.__version__ + ".other")
    assert cache_key(CONFIG, identity) != key


def test_changed_data_file_makes_a_new_cache(deap, tmp_path):
    copy = tmp_path / "deap"
    shutil.copytree(deap, copy)
    shutil.rmtree(copy / "face_video")
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window, subjects=(2,))
    first = prepare_cache(copy, tmp_path / "cache", config, progress=False)
    dat = copy / "data_preprocessed_python" / "s02.dat"
    dat.write_bytes(dat.read_bytes())  # same bytes, new modification time
    second = prepare_cache(copy, tmp_path / "cache", config, progress=False)
    assert second.key != first.key


def test_interrupted_subject_is_redone_and_others_skipped(deap, tmp_path, caplog):
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window)
    first = prepare_cache(deap, tmp_path, config, progress=False)
    (first.cache / "s02" / "meta.npy").unlink()  # as if killed before s02 was published
    (first.cache / "s02" / "eeg.npy").rename(first.cache / "s02" / "eeg.tmp.npy")
    mtime = (first.cache / "s01" / "eeg.npy").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="training.prepare"):
        second = prepare_cache(deap, tmp_path, config, progress=False)
    assert "1 subject(s) already complete" in caplog.text
    assert (second.cache / "s01" / "eeg.npy").stat().st_mtime_ns == mtime
    assert second.summary["windows"] == 16 and len(DeapWindowDataset(second.cache)) == 16


def test_bad_subject_is_skipped_unless_strict(deap, tmp_path):
    copy = tmp_path / "deap"
    shutil.copytree(deap, copy)
    data = np.zeros((4, 40, 9 * 128))
    data[0, 0, 0] = np.inf
    (copy / "data_preprocessed_python" / "s01.dat").write_bytes(
        pickle.dumps({"data": data, "labels": np.ones((4, 4))}, protocol=2))
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window)
    result = prepare_cache(copy, tmp_path / "cache", config, progress=False)
    assert result.summary["subjects"] == [2]
    assert "NaN or Inf" in result.summary["failed_subjects"]["s01"]
    assert "FAILED s01" in (result.cache / "summary.txt").read_text()
    strict = PrepareConfig(face=CONFIG.face, window=CONFIG.window, strict=True)
    with pytest.raises(DataError, match=r"s01\.dat: EEG holds NaN or Inf"):
        prepare_cache(copy, tmp_path / "cache2", strict, progress=False)


def test_unreadable_video_drops_only_that_trial(deap, tmp_path):
    copy = tmp_path / "deap"
    shutil.copytree(deap, copy)
    (copy / "face_video" / "s02" / "s02_trial01.avi").write_bytes(b"\x00" * 4096)
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window, subjects=(2,))
    result = prepare_cache(copy, tmp_path / "cache", config, progress=False)
    dataset = DeapWindowDataset(result.cache)
    broken = dataset.meta["presentation_trial"] == 1
    assert broken.sum() == 2
    assert result.summary["faces_found"] == 6 * 4
    assert result.summary["face_frames"] == {"frames_requested": 8 * 4, "faces": 6 * 4, "no_face": 0, "low_quality": 0,
                                             "outside_video": 0, "unreadable": 2 * 4}
    assert "unusable video" in (result.cache / "summary.txt").read_text()


@pytest.mark.slow
def test_cli_with_two_workers(deap, tmp_path, capsys):
    from training.cli import main

    assert main(["prepare", "--deap", str(deap), "--cache", str(tmp_path), "--workers", "2", "--face-size", "32",
                 "--instances", "2", "--channels", "Fp1,Fz,Pz"]) == 0
    cache = Path(capsys.readouterr().out.strip())
    dataset = DeapWindowDataset(cache)
    eeg, faces, eeg_mask, face_mask, *_ = dataset[0]
    assert eeg.shape == (3, 384) and faces.shape == (2, 3, 32, 32) and eeg_mask.shape == (3,)
    assert dataset.meta["has_video"].sum() == 14


def test_short_and_faceless_videos_are_masked_and_counted(deap, tmp_path):
    from training.synth import write_trial_video

    class Blank:
        size = (360, 288)

        def frame(self, t: float) -> np.ndarray:
            return np.full((288, 360, 3), 90, np.uint8)

    copy = tmp_path / "deap"
    shutil.copytree(deap, copy)
    videos = copy / "face_video" / "s02"
    write_trial_video(videos / "s02_trial01.avi", Blank(), 12.0, 6.0)  # a whole trial without a face
    composer = TrialVideoComposer(0, 1.0, (360, 288), np.random.default_rng(0))
    write_trial_video(videos / "s02_trial02.avi", composer, 7.5, 6.0)  # stops 1.5 s before the trial ends
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window, subjects=(2,))
    result = prepare_cache(copy, tmp_path / "cache", config, progress=False)
    frames = result.summary["face_frames"]
    assert frames["no_face"] == 2 * 4
    assert frames["outside_video"] == 2  # the last 2 of window 2's 4 frames (at 7.875 and 8.625 s)
    dataset = DeapWindowDataset(result.cache)
    short = np.flatnonzero((dataset.meta["presentation_trial"] == 2) & (dataset.meta["window"] == 1))[0]
    assert dataset[short][3].tolist() == [True, True, False, False]
    assert "2 outside the video's length" in (result.cache / "summary.txt").read_text()
