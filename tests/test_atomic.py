"""models.atomic: a failed write leaves the old file intact and no temporary behind."""

from __future__ import annotations

import numpy as np
import pytest

from models import atomic, strict_json


def test_write_text_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    atomic.write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failure_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "bag.npz"
    target.write_bytes(b"old bag")
    with pytest.raises(RuntimeError, match="disk gone"), atomic.atomic_open(target) as handle:
        handle.write(b"half a n")
        handle.flush()
        assert len(list(tmp_path.iterdir())) == 2  # the temporary lies beside the target
        raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old bag"
    assert [p.name for p in tmp_path.iterdir()] == ["bag.npz"]


def test_failure_of_a_writer_that_wants_a_name_leaves_no_file(tmp_path):
    target = tmp_path / "array.npy"
    with pytest.raises(ValueError), atomic.atomic_path(target) as temporary:
        with temporary.open("wb") as handle:
            np.save(handle, np.arange(3))
        raise ValueError("checksum mismatch")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_removes_the_temporary(tmp_path):
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "inside").write_text("x")  # a file cannot replace a non-empty folder
    with pytest.raises(OSError):
        atomic.write_text(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
    assert (target / "inside").read_text() == "x"


def test_atomic_open_refuses_modes_that_do_not_write_a_new_file(tmp_path):
    with pytest.raises(ValueError, match="'a'"), atomic.atomic_open(tmp_path / "log.csv", "a"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_strict_json_writer_goes_through_it(tmp_path):
    target = tmp_path / "meta.json"
    strict_json.write_atomic(target, {"score": float("nan"), "n": 2})
    assert target.read_text() == '{\n  "score": null,\n  "n": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_atomic_directory_publishes_whole_or_not_at_all(tmp_path):
    target = tmp_path / "subject"
    with atomic.atomic_directory(target) as staging:
        (staging / "a.dat").write_bytes(b"1")
        assert not target.exists()
    assert (target / "a.dat").read_bytes() == b"1"

    other = tmp_path / "other"
    with pytest.raises(RuntimeError), atomic.atomic_directory(other) as staging:
        (staging / "a.dat").write_bytes(b"1")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subject"]
