"""Scoring the base and the calibrated model on the same held-out trials, and the decision.

Windows of one trial are not independent, so the unit of the decision is the trial: each
trial's prediction is the majority vote of its windows (ties go to the class with the higher
mean probability). The chance threshold is the fewest correct trials out of the test trials
that guessing among the rated classes reaches with p < 0.05 (binomial tail).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.metrics import metrics_from_confusion

ALPHA = 0.05


def chance_trials_needed(trials: int, classes: int, alpha: float = ALPHA) -> int:
    """Fewest correct trials of `trials` whose probability under guessing (1/classes each) is < alpha;
    trials + 1 when no count is that unlikely."""
    from scipy.stats import binom

    for k in range(trials + 1):
        if binom.sf(k - 1, trials, 1.0 / classes) < alpha:
            return k
    return trials + 1


def trial_votes(probabilities: np.ndarray, trial_of: np.ndarray, trials: list[int]) -> np.ndarray:
    """Each trial's majority-vote class over its windows' argmax (ties: higher mean probability)."""
    votes = []
    for trial in trials:
        mine = probabilities[trial_of == trial]
        counts = np.bincount(mine.argmax(axis=1), minlength=mine.shape[1]).astype(np.float64)
        votes.append(int(np.argmax(counts + mine.mean(axis=0) * 1e-3)))
    return np.asarray(votes, np.int64)


def _confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)


@dataclass
class HeldOutScore:
    windows: dict          # accuracy, balanced_accuracy, macro_f1, confusion, count (windows as units)
    trials: dict           # the same with trials as units (majority vote)
    trial_predictions: list[int]

    @property
    def trial_accuracy(self) -> float:
        return float(self.trials["accuracy"])

    @property
    def trials_correct(self) -> int:
        return int(np.trace(np.asarray(self.trials["confusion"])))

    def to_dict(self) -> dict:
        return {"accuracy": self.windows["accuracy"], "balanced_accuracy": self.windows["balanced_accuracy"],
                "macro_f1": self.windows["macro_f1"], "confusion": self.windows["confusion"],
                "windows": self.windows["count"], "trial_majority_vote_accuracy": self.trials["accuracy"],
                "trials_correct": self.trials_correct, "trial_count": self.trials["count"],
                "trial_balanced_accuracy": self.trials["balanced_accuracy"], "trial_macro_f1": self.trials["macro_f1"],
                "trial_confusion": self.trials["confusion"], "trial_predictions": self.trial_predictions}


def score(probabilities: np.ndarray, labels: np.ndarray, trial_of: np.ndarray, classes: int) -> HeldOutScore:
    """Window and trial (majority vote) metrics of one model on the held-out windows."""
    predicted = probabilities.argmax(axis=1)
    windows = metrics_from_confusion(_confusion(labels, predicted, classes)).to_dict()
    trials = sorted(set(trial_of.tolist()))
    truth = np.asarray([labels[trial_of == t][0] for t in trials], np.int64)
    votes = trial_votes(probabilities, trial_of, trials)
    per_trial = metrics_from_confusion(_confusion(truth, votes, classes)).to_dict()
    for part in (windows, per_trial):
        part.pop("loss", None)
    return HeldOutScore(windows, per_trial, votes.tolist())


@dataclass
class Decision:
    decision: str          # "calibrated" | "kept_base"
    reasons: list[str]
    chance_trials: int     # correct trials needed to beat chance at p < 0.05
    chance_classes: int
    majority_baseline: float


def decide(base: HeldOutScore, calibrated: HeldOutScore, test_labels: list[int], rated_classes: int,
           class_names: tuple[str, ...]) -> Decision:
    """"calibrated" only when the calibrated model's trial accuracy beats the base's and the chance threshold."""
    n = len(test_labels)
    needed = chance_trials_needed(n, rated_classes)
    counts = np.bincount(test_labels, minlength=len(class_names))
    majority = float(counts.max() / n) if n else float("nan")
    reasons: list[str] = []
    got, base_got = calibrated.trials_correct, base.trials_correct
    beats_base = got > base_got
    beats_chance = got >= needed
    if needed > n:
        reasons.append(f"{n} test trial(s) cannot show a result better than chance at p < {ALPHA} "
                       f"({rated_classes} rated classes): more calibration trials are needed")
    elif not beats_chance:
        reasons.append(f"calibrated model got {got}/{n} test trials right; beating chance at p < {ALPHA} "
                       f"({rated_classes} rated classes) needs {needed}/{n}")
    if not beats_base:
        reasons.append(f"calibrated model got {got}/{n} test trials right, the base model {base_got}/{n}: "
                       "not better than the base")
    if beats_base and beats_chance:
        reasons.append(f"calibrated model got {got}/{n} test trials right (majority vote over windows), the base "
                       f"model {base_got}/{n}; chance at p < {ALPHA} needs {needed}/{n} "
                       f"(majority-class baseline {majority:.2f})")
        return Decision("calibrated", reasons, needed, rated_classes, majority)
    return Decision("kept_base", reasons, needed, rated_classes, majority)
