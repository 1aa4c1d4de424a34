"""Held-out test trials: the last ones in time (recordings ordered by when they were made), spread over
the rated classes where possible.

Whole trials go to one side (windows of one trial are not independent). The test trials never
reach training or model selection.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.calibration.inputs import CalibrationTrial


@dataclass
class TrialSplit:
    train: list[CalibrationTrial]
    test: list[CalibrationTrial]
    requested: int
    note: str | None = None     # said when fewer than requested were held out


def split_trials(usable: list[CalibrationTrial], requested: int = 8) -> TrialSplit:
    """Hold out up to `requested` trials, latest first, at most requested // classes per rated class
    (two each of four quadrants by default), then the latest of the rest; never a class's only trials,
    and never more than half of all trials."""
    ordered = sorted(usable, key=lambda t: t.when)
    classes = sorted({t.label for t in ordered})
    total = {c: sum(t.label == c for t in ordered) for c in classes}
    wanted = min(requested, len(ordered) // 2)
    per_class = max(1, requested // len(classes))
    test: list[CalibrationTrial] = []
    taken = dict.fromkeys(classes, 0)

    def take(limit: int) -> None:
        for trial in reversed(ordered):
            if len(test) >= wanted:
                return
            if trial in test or taken[trial.label] >= limit or taken[trial.label] + 1 >= total[trial.label]:
                continue
            test.append(trial)
            taken[trial.label] += 1

    take(per_class)
    take(len(ordered))
    test.sort(key=lambda t: t.when)
    train = [t for t in ordered if t not in test]
    note = None
    if len(test) < requested:
        note = (f"{len(test)} test trial(s) held out instead of {requested}: {len(ordered)} usable rated trial(s), "
                "of which at least half and one per rated class stay for training")
    return TrialSplit(train, test, requested, note)
