"""Train/validation/test splits of windows: ``paper`` (leaky), ``trial`` (k-fold by trial), ``loso``.

All protocols split by group ids (a trial = (subject, experiment_id); a subject), except
``paper``, which reproduces the published random 80/20 split of windows per subject and
is therefore marked ``leaky``: windows of one trial land in both train and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.errors import DataError
from training.protocols import PAPER_LEAKY_LABEL, PROTOCOLS


@dataclass(frozen=True)
class Split:
    name: str
    train: np.ndarray  # positions into the meta table
    val: np.ndarray
    test: np.ndarray
    leaky: bool = False


def trial_ids(meta: np.ndarray) -> np.ndarray:
    """One integer id per (subject, experiment_id)."""
    return meta["subject"].astype(np.int64) * 1000 + meta["experiment_id"].astype(np.int64)


def _positions(groups: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(groups, chosen))


def _carve_val(candidates: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ids into (train, val) with at least one id in val when there are two or more."""
    shuffled = rng.permutation(candidates)
    count = int(round(fraction * len(shuffled)))
    count = min(max(count, 1 if len(shuffled) > 1 and fraction > 0 else 0), len(shuffled) - 1) if len(shuffled) else 0
    return np.sort(shuffled[count:]), np.sort(shuffled[:count])


def paper_split(meta: np.ndarray, seed: int = 0, test_fraction: float = 0.2) -> list[Split]:
    """The published protocol: per subject, a random 80/20 of windows (LEAKY), training on all of the 80 %.

    There is no validation split, as published: the model of the last epoch is kept.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for subject in np.unique(meta["subject"]):
        positions = rng.permutation(np.flatnonzero(meta["subject"] == subject))
        n_test = int(round(test_fraction * len(positions)))
        train.append(positions[n_test:])
        test.append(positions[:n_test])
    return [Split(PAPER_LEAKY_LABEL, np.sort(np.concatenate(train)), np.zeros(0, np.int64),
                  np.sort(np.concatenate(test)), leaky=True)]


def trial_folds(meta: np.ndarray, folds: int = 5, seed: int = 0, val_fraction: float = 0.1) -> list[Split]:
    """k-fold over trials: every window of a trial is in one fold; each subject's trials spread over folds."""
    rng = np.random.default_rng(seed)
    groups = trial_ids(meta)
    fold_of: dict[int, int] = {}
    offset = 0
    for subject in np.unique(meta["subject"]):
        subject_trials = rng.permutation(np.unique(groups[meta["subject"] == subject]))
        for i, trial in enumerate(subject_trials):
            fold_of[int(trial)] = (i + offset) % folds
        offset += len(subject_trials)
    all_trials = np.asarray(sorted(fold_of))
    if len(all_trials) < folds:
        raise DataError(f"trial-wise {folds}-fold needs at least {folds} trials, the data has {len(all_trials)}")
    splits = []
    for fold in range(folds):
        test_trials = np.asarray([t for t in all_trials if fold_of[int(t)] == fold])
        rest = np.setdiff1d(all_trials, test_trials)
        train_trials, val_trials = _carve_val(rest, val_fraction, rng)
        splits.append(Split(f"trial fold {fold + 1}/{folds}", _positions(groups, train_trials),
                            _positions(groups, val_trials), _positions(groups, test_trials)))
    return splits


def loso_splits(meta: np.ndarray, seed: int = 0, val_fraction: float = 0.1) -> list[Split]:
    """Leave one subject out. Validation: another whole subject when there are 3+, else trials of the other."""
    rng = np.random.default_rng(seed)
    subjects = np.unique(meta["subject"])
    if len(subjects) < 2:
        raise DataError(f"leave-one-subject-out needs at least 2 subjects, the data has {len(subjects)}")
    groups = trial_ids(meta)
    rotation = rng.permutation(subjects)
    splits = []
    for i, subject in enumerate(rotation):
        others = np.setdiff1d(subjects, [subject])
        if len(subjects) >= 3:
            val_subject = rotation[(i + 1) % len(rotation)]
            train = np.flatnonzero(np.isin(meta["subject"], np.setdiff1d(others, [val_subject])))
            val = np.flatnonzero(meta["subject"] == val_subject)
        else:
            candidates = np.unique(groups[np.isin(meta["subject"], others)])
            train_trials, val_trials = _carve_val(candidates, val_fraction, rng)
            train, val = _positions(groups, train_trials), _positions(groups, val_trials)
        test = np.flatnonzero(meta["subject"] == subject)
        splits.append(Split(f"loso s{int(subject):02d}", train, val, test))
    return sorted(splits, key=lambda s: s.name)


def make_splits(meta: np.ndarray, protocol: str, folds: int = 5, seed: int = 0,
                val_fraction: float = 0.1) -> list[Split]:
    """Splits of the windows listed in ``meta`` (fields subject, experiment_id) under a protocol."""
    if protocol == "paper":
        return paper_split(meta, seed)
    if protocol == "trial":
        return trial_folds(meta, folds, seed, val_fraction)
    if protocol == "loso":
        return loso_splits(meta, seed, val_fraction)
    raise DataError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


MIN_TRIALS_PER_SPLIT = 3


def split_problems(meta: np.ndarray, labels: np.ndarray, split: Split, num_classes: int,
                   class_names: tuple[str, ...] | list[str]) -> list[str]:
    """What makes a fold's validation or test figure shaky: fewer than 3 trials, or a class missing.

    An empty validation split (the paper protocol's) is not a problem: it has none by design.
    """
    problems = []
    groups = trial_ids(meta)
    for part in ("val", "test"):
        positions = getattr(split, part)
        if part == "val" and len(positions) == 0:
            continue
        trials = len(np.unique(groups[positions]))
        if trials < MIN_TRIALS_PER_SPLIT:
            problems.append(f"{split.name}: {part} split has {trials} trial(s) (fewer than {MIN_TRIALS_PER_SPLIT}); "
                            f"its accuracy moves in steps of whole trials")
        missing = sorted(set(range(num_classes)) - {int(c) for c in labels[positions]})
        if missing:
            problems.append(f"{split.name}: {part} split lacks class(es) "
                            f"{', '.join(class_names[c] for c in missing)}")
    return problems
