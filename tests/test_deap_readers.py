"""DEAP readers on synthetic files: .dat/.mat, ratings CSV, video pairing, hostile and broken input."""

from __future__ import annotations

import io
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from models.errors import DataError
from training.deap import (
    get_trial,
    load_numpy_pickle,
    load_subject_eeg,
    read_dat,
    read_mat,
    read_ratings,
    scan_deap,
)
from training.synth import write_synthetic_deap


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deap")
    write_synthetic_deap(root, subjects=3, trials=4, seconds=3, fps=5, write_mat=True, video_subjects=2,
                         missing_videos={2: [3]})
    return root


def test_dat_and_mat_hold_the_same_arrays(deap):
    dat = read_dat(deap / "data_preprocessed_python" / "s01.dat")
    mat = read_mat(deap / "data_preprocessed_matlab" / "s01.mat")
    assert dat.data.shape == (4, 40, 6 * 128) and dat.data.dtype == np.float32
    assert dat.labels.shape == (4, 4)
    np.testing.assert_array_equal(dat.data, mat.data)
    np.testing.assert_array_equal(dat.labels, mat.labels)


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), the way DEAP's own .dat files hold array data."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def test_python2_pickle_reads(tmp_path):
    data = np.arange(2 * 40 * 5, dtype=np.float64).reshape(2, 40, 5)
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump({"data": data, "labels": np.ones((2, 4))})
    raw = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # numpy 1.x name
    assert b"_codecs" not in raw and b"numpy.core.multiarray" in raw
    path = tmp_path / "s01.dat"
    path.write_bytes(raw)
    np.testing.assert_array_equal(read_dat(path).data, data.astype(np.float32))


def test_ratings_pair_videos_through_experiment_id(deap):
    index = scan_deap(deap)
    rows = [r for r in read_ratings(deap / "metadata_csv" / "participant_ratings.csv") if r.participant == 1]
    assert [r.trial for r in rows] != [r.experiment_id for r in rows], "presentation order must be shuffled"
    labels = read_dat(deap / "data_preprocessed_python" / "s01.dat").labels
    for record in index.subject_trials(1):
        assert record.video.name == f"s01_trial{record.presentation_trial:02d}.avi"
        # The CSV's ratings for this presentation trial are the .dat row of its Experiment_id.
        np.testing.assert_allclose(labels[record.experiment_id - 1, :2], [record.valence, record.arousal], atol=1e-4)
    trial = get_trial(index, 1, presentation_trial=rows[0].trial)
    assert trial.record.experiment_id == rows[0].experiment_id
    np.testing.assert_array_equal(trial.eeg, load_subject_eeg(index, 1)[rows[0].experiment_id - 1])


def test_missing_videos_and_subjects_without_video_are_reported(deap):
    index = scan_deap(deap)
    assert index.missing_videos == {2: [3]}
    assert index.subjects_without_video == [3]
    assert index.trial(2, presentation_trial=3).video is None
    assert all(t.video is not None for t in index.subject_trials(2) if t.presentation_trial != 3)
    summary = index.summary()
    assert "s02: no video for presentation trial(s) 3" in summary and "s03" in summary


def test_stray_files_and_other_ratings_locations(deap, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(deap, root)
    (root / "face_video" / "s01" / "notes.txt").write_text("x")
    (root / "face_video" / "s01" / "s01_trial99.avi").write_bytes(b"not in the CSV")
    (root / "metadata_csv").rename(root / "Metadata")
    index = scan_deap(root)
    assert index.ratings_file == root / "Metadata" / "participant_ratings.csv"
    stray = {p.name for p in index.stray_files}
    assert {"notes.txt", "s01_trial99.avi"} <= stray
    assert len([t for t in index.subject_trials(1) if t.video is not None]) == 4


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": np.ones((1, 4))}, protocol=2))
    with pytest.raises(DataError, match=r"s01\.dat.*refused global (__builtin__|builtins)\.exec"):
        read_dat(path)
    assert not marker.exists()
    # The unpickler refuses the call before looking anything up, whatever the module.
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(DataError, match="refused global os.system"):
        load_numpy_pickle(path)
    assert not marker.exists()


class _Call:
    """Pickles as a call of ``function(*args)``: how a hostile file asks the unpickler to run something."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("payload, message", [
    # 1 GiB that Linux would hand out lazily: a 100-byte file must not claim it.
    (_Call(np.ndarray, (2 ** 27,), np.dtype("f8")), r"refused a direct numpy\.ndarray"),
    (_Call(np.core.multiarray._reconstruct, np.ndarray, (2 ** 27,), np.dtype("f8")),
     r"refused an array without its data"),
    (_Call(np.core.multiarray._reconstruct, np.dtype, (1,), np.dtype("f8")), "refused array subtype"),
    (_Call(np.core.multiarray.scalar, np.dtype("O"), b"\0" * 8), "refused dtype object"),
])
def test_pickles_that_claim_memory_or_objects_are_refused(tmp_path, payload, message):
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": payload, "labels": np.ones((1, 4))}, protocol=2))
    with pytest.raises(DataError, match=r"s01\.dat: unsafe or corrupt pickle: " + message):
        load_numpy_pickle(path)


def test_deeply_nested_pickle_is_a_clear_error(tmp_path):
    depth = 100_000
    path = tmp_path / "s01.dat"
    path.write_bytes(b"\x80\x02}X\x04\x00\x00\x00data" + b"]" * depth + b"a" * (depth - 1) + b"s.")
    with pytest.raises(DataError, match=r"s01\.dat: missing labels"):
        read_dat(path)


def test_truncated_pickle(tmp_path, deap):
    raw = (deap / "data_preprocessed_python" / "s01.dat").read_bytes()
    path = tmp_path / "s01.dat"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"s01\.dat.*(truncated|corrupt)"):
        read_dat(path)


def test_corrupt_mat(tmp_path):
    path = tmp_path / "s01.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(200))
    with pytest.raises(DataError, match=r"s01\.mat"):
        read_mat(path)


@pytest.mark.parametrize("keep", [0, 24, 0.5])  # scipy fails differently at each length
def test_truncated_mat(tmp_path, deap, keep):
    raw = (deap / "data_preprocessed_matlab" / "s01.mat").read_bytes()
    path = tmp_path / "s01.mat"
    path.write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(DataError, match=r"s01\.mat: cannot read MATLAB file"):
        read_mat(path)


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 32, 10)), np.ones((2, 4)), r"'data' has shape \(2, 32, 10\)"),
    (np.zeros((2, 40, 10)), np.ones((3, 4)), r"'labels' has shape \(3, 4\)"),
    (np.zeros((2, 40, 10)), "labels", "must be numpy arrays"),
])
def test_wrong_shapes(tmp_path, data, labels, message):
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=2))
    with pytest.raises(DataError, match=message):
        read_dat(path)


def test_nan_in_eeg(tmp_path):
    data = np.zeros((2, 40, 10))
    data[1, 5, 3] = np.nan
    path = tmp_path / "s07.dat"
    path.write_bytes(pickle.dumps({"data": data, "labels": np.ones((2, 4))}, protocol=2))
    with pytest.raises(DataError, match=r"s07\.dat: EEG holds NaN or Inf \(first at row 2, channel 6\)"):
        read_dat(path)


def test_ratings_csv_missing_columns(tmp_path):
    path = tmp_path / "participant_ratings.csv"
    path.write_text("Participant_id,Trial,Valence,Arousal\n1,1,5,5\n")
    with pytest.raises(DataError, match=r"participant_ratings\.csv: ratings CSV lacks column\(s\) Experiment_id"):
        read_ratings(path)


@pytest.mark.parametrize("rows, message", [
    ("1,1,3,5,5,5,5\n1,1,4,5,5,5,5\n", "participant 1 trial 1 appears 2 times"),
    ("1,1,3,5,5,5,5\n1,2,3,5,5,5,5\n", "participant 1 has Experiment_id 3 2 times"),
])
def test_ratings_csv_with_an_ambiguous_pairing(tmp_path, rows, message):
    path = tmp_path / "participant_ratings.csv"
    path.write_text("Participant_id,Trial,Experiment_id,Valence,Arousal,Dominance,Liking\n" + rows)
    with pytest.raises(DataError, match=r"participant_ratings\.csv:2: " + message):
        read_ratings(path)


def test_ratings_csv_that_is_not_text(tmp_path):
    path = tmp_path / "participant_ratings.csv"
    path.write_bytes(b"Participant_id,Trial,Experiment_id,Valence,Arousal,Dominance,Liking\n1,1,1,5,5,5,\xff\xfe\n")
    with pytest.raises(DataError, match=r"participant_ratings\.csv: not a readable CSV text file"):
        read_ratings(path)


def test_folder_without_eeg(tmp_path):
    with pytest.raises(DataError, match="no sXX.dat"):
        scan_deap(tmp_path)
