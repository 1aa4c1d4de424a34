"""The original-recording path: a BioSemi BDF written here, read through mne, cut into DEAP trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.contract import GENEVA_CHANNELS
from models.errors import DataError
from training.deap import load_subject, scan_deap
from training.deap.readers import BDF_VIDEO_START, RatingRow, read_bdf_trials

SRATE = 512


def _field(value: object, width: int) -> bytes:
    return str(value).ljust(width)[:width].encode("ascii")


def write_bdf(path: Path, signals: dict[str, np.ndarray], units: dict[str, str]) -> None:
    """A minimal 24-bit BioSemi Data Format file with 1 s records (enough for mne's reader)."""
    names = list(signals)
    seconds = len(next(iter(signals.values()))) // SRATE
    header = b"\xffBIOSEMI" + _field("X", 80) + _field("X", 80) + _field("01.01.24", 8) + _field("10.00.00", 8)
    header += _field(256 * (len(names) + 1), 8) + _field("24BIT", 44) + _field(seconds, 8) + _field(1, 8)
    header += _field(len(names), 4)
    physical = {n: (-262144, 262143) if units[n] == "uV" else (-8388608, 8388607) for n in names}
    for width, values in ((16, names), (80, [""] * len(names)), (8, [units[n] for n in names]),
                          (8, [physical[n][0] for n in names]), (8, [physical[n][1] for n in names]),
                          (8, [-8388608] * len(names)), (8, [8388607] * len(names)), (80, [""] * len(names)),
                          (8, [SRATE] * len(names)), (32, [""] * len(names))):
        header += b"".join(_field(v, width) for v in values)
    digital = []
    for name in names:
        low, high = physical[name]
        counts = np.round((signals[name] - low) / (high - low) * 16777215 - 8388608).astype(np.int64)
        digital.append(counts.reshape(seconds, SRATE))
    records = np.stack(digital, axis=1).reshape(-1) & 0xFFFFFF  # record-major, then signal
    raw = np.stack([records & 0xFF, (records >> 8) & 0xFF, (records >> 16) & 0xFF], axis=1).astype(np.uint8)
    path.write_bytes(header + raw.tobytes())


def make_recording(tmp_path: Path, system_bit_from_s: float | None = None) -> tuple[Path, list[RatingRow]]:
    """Three 4 s trials presented as experiments 3, 1, 2; optionally a BioSemi system bit (bit 16)
    switching on at ``system_bit_from_s`` while a trigger code is held."""
    trials, trial_s, gap_s = 3, 4.0, 5.0
    experiment_of_presentation = {1: 3, 2: 1, 3: 2}
    seconds = int(gap_s + trials * (trial_s + gap_s))
    t = np.arange(seconds * SRATE) / SRATE
    rng = np.random.default_rng(0)
    signals = {name: rng.normal(0, 2.0, t.size) for name in GENEVA_CHANNELS}
    status = np.zeros(t.size)
    for presentation in range(1, trials + 1):
        onset = gap_s + (presentation - 1) * (trial_s + gap_s)
        inside = (t >= onset) & (t < onset + trial_s)
        signals["Fp1"][inside] += 20.0 * experiment_of_presentation[presentation] * np.sin(2 * np.pi * 10 * t[inside])
        status[int(onset * SRATE):int(onset * SRATE) + SRATE] = BDF_VIDEO_START
    if system_bit_from_s is not None:
        status[int(system_bit_from_s * SRATE):] += 1 << 16
    signals["Status"] = status
    path = tmp_path / "data_original" / "s05.bdf"
    path.parent.mkdir()
    write_bdf(path, signals, {**{n: "uV" for n in GENEVA_CHANNELS}, "Status": "Boolean"})
    ratings = [RatingRow(5, p, e, float(e), 5.0, 5.0, 5.0) for p, e in experiment_of_presentation.items()]
    return path, ratings


@pytest.fixture
def recording(tmp_path) -> tuple[Path, list[RatingRow]]:
    return make_recording(tmp_path)


def test_bdf_trials_are_resampled_and_put_in_experiment_order(recording):
    path, ratings = recording
    arrays = read_bdf_trials(path, ratings, trial_s=4.0)
    assert arrays.data.shape == (3, 40, 7 * 128) and arrays.data.dtype == np.float32
    np.testing.assert_array_equal(arrays.labels[:, 0], [1, 2, 3])  # valence = experiment id here
    stimulus = arrays.data[:, 0, 3 * 128 + 32:-32]
    amplitude = stimulus.std(axis=1) * np.sqrt(2)
    np.testing.assert_allclose(amplitude / amplitude[0], [1, 2, 3], rtol=0.1)


def test_system_bits_of_the_status_channel_do_not_add_trials(tmp_path):
    # The CMS/battery bits (16-23) change independently of the trigger code; while the
    # first video-start code is held, such a change must not look like another video start.
    path, ratings = make_recording(tmp_path, system_bit_from_s=5.5)
    arrays = read_bdf_trials(path, ratings, trial_s=4.0)
    assert arrays.data.shape[0] == 3
    np.testing.assert_array_equal(arrays.labels[:, 0], [1, 2, 3])


def test_scan_finds_bdf_and_needs_ratings(recording):
    path, ratings = recording
    root = path.parent.parent
    with pytest.raises(DataError, match="needs the participant's rows"):
        load_subject(root, 5)
    (root / "participant_ratings.csv").write_text(
        "Participant_id,Trial,Experiment_id,Start_time,Valence,Arousal,Dominance,Liking,Familiarity\n"
        + "".join(f"5,{r.trial},{r.experiment_id},0,{r.valence},5,5,5,1\n" for r in ratings))
    index = scan_deap(root)
    assert index.eeg_files == {5: path}
    with pytest.raises(DataError, match="no complete trial found"):
        load_subject(index, 5)  # the default 60 s trials do not fit this short recording


def test_bdf_that_is_not_one(tmp_path):
    path = tmp_path / "s01.bdf"
    path.write_bytes(b"\xffBIOSEMI" + b"0" * 100)
    with pytest.raises(DataError, match=r"s01\.bdf"):
        read_bdf_trials(path, [])
