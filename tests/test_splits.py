"""Splits: trial-wise and LOSO never share a trial or subject across train, validation and test."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import DataError
from training.prepare import META_DTYPE
from training.splits import make_splits, split_problems, trial_ids


def _meta(subjects: int = 4, trials: int = 10, windows: int = 20) -> np.ndarray:
    meta = np.zeros(subjects * trials * windows, META_DTYPE)
    s, e, w = np.meshgrid(np.arange(1, subjects + 1), np.arange(1, trials + 1), np.arange(windows), indexing="ij")
    meta["subject"], meta["experiment_id"], meta["window"] = s.ravel(), e.ravel(), w.ravel()
    return meta


def _check_partition(split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    assert all(len(p) for p in (parts if not split.leaky else [split.train, split.test])), split.name
    together = np.concatenate(parts)
    assert len(together) == len(np.unique(together)) == n  # disjoint, and nothing lost


def test_trial_folds_never_share_a_trial():
    meta = _meta()
    groups = trial_ids(meta)
    splits = make_splits(meta, "trial", folds=5, seed=3)
    assert len(splits) == 5 and not any(s.leaky for s in splits)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(meta)))  # each window tested exactly once
    for split in splits:
        _check_partition(split, len(meta))
        train, val, test = (set(groups[p]) for p in (split.train, split.val, split.test))
        assert not (train & val) and not (train & test) and not (val & test)
        for subject in np.unique(meta["subject"]):  # every subject's trials are spread over the folds
            assert (meta["subject"][split.test] == subject).sum() == 2 * 20


def test_loso_never_shares_a_subject():
    meta = _meta()
    splits = make_splits(meta, "loso", seed=1)
    assert [s.name for s in splits] == ["loso s01", "loso s02", "loso s03", "loso s04"]
    for split in splits:
        _check_partition(split, len(meta))
        train, val, test = (set(meta["subject"][p]) for p in (split.train, split.val, split.test))
        assert len(test) == 1 and len(val) == 1
        assert not (train & val) and not (train & test) and not (val & test)


def test_loso_with_two_subjects_carves_validation_by_trial():
    meta = _meta(subjects=2)
    groups = trial_ids(meta)
    for split in make_splits(meta, "loso", val_fraction=0.2):
        _check_partition(split, len(meta))
        assert not set(groups[split.train]) & set(groups[split.val])
        assert set(meta["subject"][split.val]) == set(meta["subject"][split.train])
        assert not set(meta["subject"][split.test]) & set(meta["subject"][split.train])


def test_paper_split_is_marked_leaky_and_is_per_subject():
    meta = _meta()
    (split,) = make_splits(meta, "paper", seed=0)
    assert split.leaky and "leaky" in split.name
    _check_partition(split, len(meta))
    groups = trial_ids(meta)
    assert set(groups[split.train]) & set(groups[split.test])  # the published protocol's leak
    for subject in range(1, 5):
        assert (meta["subject"][split.test] == subject).sum() == 40  # 20 % of each subject's 200 windows
        assert (meta["subject"][split.train] == subject).sum() == 160  # the whole 80 % trains, as published
    assert len(split.val) == 0 and len(split.train) == 0.8 * len(meta)


def test_split_problems_name_small_and_class_less_splits():
    meta = _meta(subjects=1, trials=10)
    labels = (meta["experiment_id"] % 4).astype(np.int64)
    splits = make_splits(meta, "trial", folds=5, seed=0)
    problems = [p for split in splits for p in split_problems(meta, labels, split, 4, ("A", "B", "C", "D"))]
    assert any("val split has 1 trial(s)" in p for p in problems)
    assert any("test split has 2 trial(s)" in p for p in problems)
    assert any("lacks class(es)" in p for p in problems)
    (paper,) = make_splits(_meta(), "paper")
    all_labels = (_meta()["experiment_id"] % 4).astype(np.int64)
    assert split_problems(_meta(), all_labels, paper, 4, ("A", "B", "C", "D")) == []  # no val by design


def test_deterministic_for_a_seed_and_bad_requests():
    meta = _meta()
    a, b = make_splits(meta, "trial", seed=7), make_splits(meta, "trial", seed=7)
    assert all((x.test == y.test).all() and (x.val == y.val).all() for x, y in zip(a, b))
    with pytest.raises(DataError, match="unknown protocol"):
        make_splits(meta, "random")
    with pytest.raises(DataError, match="at least 2 subjects"):
        make_splits(_meta(subjects=1), "loso")
    with pytest.raises(DataError, match="at least 5 trials"):
        make_splits(_meta(subjects=1, trials=3), "trial")
