"""Hostile and broken DEAP files: pickles numpy must never see, implausible arrays, broken ratings CSVs,
unreadable face videos and prepare workers that die."""

from __future__ import annotations

import csv
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.errors import DataError
from training.deap import load_numpy_pickle, read_dat, read_ratings_table, scan_deap
from training.prepare import FaceSpec, PrepareConfig, prepare_cache
from training.process_pool import ProcessPool
from training.synth import write_synthetic_deap
from training.windows import WindowSpec

CONFIG = PrepareConfig(face=FaceSpec(size=32), window=WindowSpec(num_instances=2))


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deap")
    write_synthetic_deap(root, subjects=2, trials=4, seconds=3, fps=4, seed=3)
    return root


@pytest.fixture
def copy(deap, tmp_path) -> Path:
    target = tmp_path / "deap"
    shutil.copytree(deap, target)
    return target


class _Call:
    def __init__(self, function, *args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


_RECONSTRUCT = np._core.multiarray._reconstruct


def _array_with_state(state) -> _Call:
    return _Call(_RECONSTRUCT, np.ndarray, (0,), b"b", state=state)


def _dat(path: Path, data, labels=None) -> Path:
    path.write_bytes(pickle.dumps({"data": data, "labels": np.full((4, 4), 5.0) if labels is None else labels},
                                  protocol=2))
    return path


_LOAD_IN_CHILD = """
import sys
from models.errors import DataError
from training.deap import load_numpy_pickle
try:
    load_numpy_pickle(sys.argv[1])
except DataError as exc:
    print("DataError:", exc)
"""


def test_object_array_with_a_short_item_list_is_refused_before_numpy_sees_it(tmp_path):
    # numpy 2.x dereferences past this 1-item list (a segfault); run in a child so a regression cannot crash pytest.
    path = _dat(tmp_path / "s01.dat", _array_with_state((1, (1000,), np.dtype("O"), False, [1])))
    child = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, str(path)], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 0, f"loader died: {child.returncode} {child.stderr[-500:]}"
    assert "DataError:" in child.stdout and "s01.dat: unsafe or corrupt pickle: refused dtype object" in child.stdout


@pytest.mark.parametrize("state, message", [
    ((1, (4,), np.dtype("f8"), False, b"\0" * 31), r"needs 32 bytes, the pickle holds 31"),
    ((1, (4,), np.dtype("f8"), False, [1.0, 2.0, 3.0, 4.0]), r"refused array data of type list"),
    ((1, (2, -2), np.dtype("f8"), False, b""), r"refused array shape"),
    ((1, ("a",), np.dtype("f8"), False, b""), r"refused array shape"),
    ((7, (1,), np.dtype("f8"), False, b"\0" * 8), r"refused array state version"),
    ((1, (1,), np.dtype("U4"), False, b"\0" * 16), r"refused dtype"),
    ("state", r"refused array state"),
])
def test_array_states_are_checked_against_each_other(tmp_path, state, message):
    path = _dat(tmp_path / "s01.dat", _array_with_state(state))
    with pytest.raises(DataError, match=r"s01\.dat: unsafe or corrupt pickle: .*" + message):
        load_numpy_pickle(path)


def test_dtype_state_cannot_smuggle_object_fields(tmp_path):
    # A void dtype whose state declares an object field behind "no objects" flags.
    fields = {"a": (np.dtype("O"), 0)}
    dtype = _Call(np.dtype, "V8", False, True, state=(3, "|", None, ("a",), fields, 8, 1, 0))
    path = _dat(tmp_path / "s01.dat", _array_with_state((1, (1,), dtype, False, b"\0" * 8)))
    with pytest.raises(DataError, match=r"refused dtype"):
        load_numpy_pickle(path)


def test_arrays_cannot_claim_more_memory_than_the_file(tmp_path):
    # One 64 KiB string shared by memo, built into 200 arrays: 12.8 MB out of a 66 KB file.
    raw = "\0" * 65536
    arrays = [_array_with_state((1, (8192,), np.dtype("f8"), False, raw)) for _ in range(200)]
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": arrays, "labels": 1}, protocol=2))
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"would exceed the file's"):
        load_numpy_pickle(path)


def test_self_referencing_containers_do_not_hang(tmp_path):
    loop: list = []
    loop.append(loop)
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": loop, "labels": (loop,)}, protocol=2))
    value = load_numpy_pickle(path)
    assert value["data"][0] is value["data"] and value["labels"][0] is value["data"]
    with pytest.raises(DataError, match="must be numpy arrays"):
        read_dat(path)


def test_fortran_and_big_endian_arrays_read_as_written(tmp_path):
    data = np.asfortranarray(np.arange(4 * 40 * 3, dtype=">f8").reshape(4, 40, 3))
    path = _dat(tmp_path / "s01.dat", data, np.full((4, 4), 5, dtype=">i4"))
    np.testing.assert_array_equal(read_dat(path).data, data.astype(np.float32))


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((0, 40, 10)), np.zeros((0, 4)), r"'data' holds no trials \(shape \(0, 40, 10\)\)"),
    (np.zeros((4, 40, 10), np.complex128), None, r"'data' holds complex numbers"),
    (np.full((4, 40, 10), 0.02), None, None),  # volts would be tiny but plausible numbers: accepted
    (np.pad(np.full((1, 1, 1), 2e4), ((3, 0), (4, 35), (0, 9))), None,
     r"EEG reaches 2e\+04 uV \(first beyond 10000 uV at row 4, channel 5\)"),
    (np.zeros((4, 40, 10)), np.full((4, 4), 42.0), r"rating 42 at row 1 lies outside the 1-9 scale"),
    (np.zeros((4, 40, 10)), np.full((4, 4), np.nan), r"'labels' hold NaN or Inf \(first at row 1\)"),
])
def test_implausible_arrays_are_refused_with_the_reason(tmp_path, data, labels, message):
    path = _dat(tmp_path / "s03.dat", data, labels)
    if message is None:
        assert read_dat(path).data.shape == data.shape
        return
    with pytest.raises(DataError, match=r"s03\.dat: " + message) as caught:
        read_dat(path)
    assert "unsafe" not in str(caught.value)


def _rewrite_csv(root: Path, change) -> Path:
    path = root / "metadata_csv" / "participant_ratings.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows = change(rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _row(rows, participant, trial):
    return next(r for r in rows[1:] if r[0] == str(participant) and r[1] == str(trial))


def test_broken_ratings_rows_are_named_and_their_trials_excluded(copy, tmp_path):
    def change(rows):
        _row(rows, 1, 1)[4] = "nan"  # Valence
        _row(rows, 1, 2)[5] = ""  # Arousal missing
        _row(rows, 2, 1)[2] = "9"  # Experiment_id outside s02.dat's 4 trials
        rows.append(list(_row(rows, 2, 3)))  # duplicate row
        return rows

    _rewrite_csv(copy, change)
    table = read_ratings_table(copy / "metadata_csv" / "participant_ratings.csv")
    assert sorted((p.participant, p.trial) for p in table.problems) == [(1, 1), (1, 2), (2, 3), (2, 3)]
    result = prepare_cache(copy, tmp_path / "cache", CONFIG, progress=False)
    summary = (result.cache / "summary.txt").read_text()
    assert "participant_ratings.csv:2: participant 1 trial 1: Valence 'nan' is not a rating" in summary
    assert "participant 1 trial 2: Arousal '' is not a number; trial excluded" in summary
    assert "participant 2 trial 3 appears 2 times; trial excluded" in summary
    assert "s02.dat: participant 2 trial 1: Experiment_id 9 is outside the file's 4 trial(s)" in summary
    from training.dataset import DeapWindowDataset

    meta = DeapWindowDataset(result.cache).meta
    used = {(int(s), int(p)) for s, p in zip(meta["subject"], meta["presentation_trial"])}
    assert used == {(1, 3), (1, 4), (2, 2), (2, 4)}  # the broken trials are gone, nothing relabelled
    assert all(p > 0 for p in meta["presentation_trial"])


def test_dat_with_fewer_trials_than_the_csv_lists(copy, tmp_path):
    path = copy / "data_preprocessed_python" / "s01.dat"
    content = pickle.loads(path.read_bytes())
    _dat(path, content["data"][:3], content["labels"][:3])
    result = prepare_cache(copy, tmp_path / "cache", PrepareConfig(face=CONFIG.face, window=CONFIG.window,
                                                                   subjects=(1,)), progress=False)
    lines = result.summary["excluded_trials"]
    assert "s01.dat holds 3 trial(s) but participant_ratings.csv lists 4 for participant 1" in lines
    assert any("Experiment_id 4 is outside the file's 3 trial(s)" in line for line in lines)
    assert result.summary["trials"] == 3


def test_unreadable_face_videos_are_reported_per_file(copy):
    folder = copy / "face_video" / "s01"
    (folder / "s01_trial01.avi").unlink()
    (folder / "s01_trial01.avi").symlink_to("s01_trial01.avi")  # a loop
    (folder / "s01_trial02.avi").unlink()
    (folder / "s01_trial02.avi").mkdir()  # a folder where a file is expected
    (folder / "s01_trial03.avi").unlink()
    os.mkfifo(folder / "s01_trial03.avi")  # opening it would block for ever
    os.symlink(copy / "nowhere", copy / "face_video" / "s02_link")
    index = scan_deap(copy)
    text = "\n".join(index.problems)
    assert "s01_trial01.avi: cannot read (Too many levels of symbolic links); presentation trial 1" in text
    assert "s01_trial02.avi: not a regular file (a folder)" in text
    assert "s01_trial03.avi: not a regular file; presentation trial 3 of s01 has no face video" in text
    assert index.missing_videos[1] == [1, 2, 3]


def test_eeg_file_that_is_a_symlink_loop(copy):
    path = copy / "data_preprocessed_python" / "s02.dat"
    path.unlink()
    path.symlink_to("s02.dat")
    index = scan_deap(copy)
    assert index.subjects == [1]
    assert any("s02.dat: cannot read (Too many levels of symbolic links)" in p for p in index.problems)


def test_pool_reports_the_task_whose_worker_died_and_goes_on():
    from crash_helpers import die_on

    payloads = [(1, 0), (2, signal.SIGSEGV), (3, 0), (4, signal.SIGKILL), (5, 0), (6, 0)]
    with ProcessPool(2) as pool:
        outcomes = {o.payload: o for o in pool.imap_unordered(die_on, payloads)}
    assert {p: o.result for p, o in outcomes.items() if o.death is None} == {
        (1, 0): 1, (3, 0): 9, (5, 0): 25, (6, 0): 36}
    assert outcomes[(2, signal.SIGSEGV)].death == "killed by SIGSEGV"
    assert outcomes[(4, signal.SIGKILL)].death == "killed by SIGKILL"


def test_prepare_names_the_subject_whose_worker_died(deap, tmp_path, monkeypatch):
    import crash_helpers
    import training.prepare

    monkeypatch.setattr(training.prepare, "_eeg_worker", crash_helpers.eeg_worker_that_segfaults_on_subject_2)
    config = PrepareConfig(face=CONFIG.face, window=CONFIG.window, workers=2)
    result = prepare_cache(deap, tmp_path / "cache", config, progress=False)
    assert result.summary["subjects"] == [1]
    assert result.summary["failed_subjects"]["s02"].endswith("s02.dat: the worker reading it killed by SIGSEGV")
    strict = PrepareConfig(face=CONFIG.face, window=CONFIG.window, workers=2, strict=True)
    with pytest.raises(DataError, match=r"s02\.dat: the worker reading it killed by SIGSEGV"):
        prepare_cache(deap, tmp_path / "cache2", strict, progress=False)


def test_pool_kills_a_task_that_runs_past_its_timeout():
    from crash_helpers import sleep_for

    with ProcessPool(1, isolate=True, task_timeout=3.0) as pool:
        outcomes = {o.payload: o for o in pool.imap_unordered(sleep_for, [0.0, 600.0, 0.1])}
    assert outcomes[600.0].death == "timed out after 3 s"
    assert outcomes[0.0].result == 0.0 and outcomes[0.1].result == 0.1
