"""What a training run will cost in wall time, from a few timed steps (the trainer measures them).

A run is folds x epochs x (training batches + evaluation of the validation windows, and the test
windows each epoch under the paper protocol + saving the checkpoint and the resume state), plus one
test evaluation and the model build per fold. `StepCosts` holds the measured unit costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.splits import Split


@dataclass(frozen=True)
class StepCosts:
    """Seconds per unit of work, measured on this machine with this run's model, batch and data."""

    train_batch: float  # one training step (forward, backward, optimizer) on a full batch
    eval_window: float  # one window evaluated (no gradient)
    epoch_saving: float  # the checkpoint and the resume state written after an epoch
    fold_setup: float  # building a fold's model, loading its best checkpoint back, plotting its confusion
    run_finish: float = 0.0  # the learning curves and metrics written at the end

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RunShape:
    """How much work a run is: its folds' window counts, epochs, batch size, protocol."""

    train: Sequence[int]  # training windows per fold
    val: Sequence[int]
    test: Sequence[int]
    epochs: int
    batch_size: int
    test_every_epoch: bool  # the paper protocol evaluates its (leaky) test split every epoch

    @classmethod
    def of(cls, splits: Sequence[Split], epochs: int, batch_size: int, test_every_epoch: bool) -> RunShape:
        return cls([len(s.train) for s in splits], [len(s.val) for s in splits], [len(s.test) for s in splits],
                   epochs, batch_size, test_every_epoch)

    def fold_seconds(self, fold: int, costs: StepCosts) -> float:
        batches = math.ceil(self.train[fold] / self.batch_size)
        evaluated = self.val[fold] + (self.test[fold] if self.test_every_epoch else 0)
        epoch = batches * costs.train_batch + evaluated * costs.eval_window + costs.epoch_saving
        return self.epochs * epoch + self.test[fold] * costs.eval_window + costs.fold_setup

    def epoch_seconds(self, fold: int, costs: StepCosts) -> float:
        return (self.fold_seconds(fold, costs) - self.test[fold] * costs.eval_window - costs.fold_setup) / self.epochs

    def seconds(self, costs: StepCosts, from_fold: int = 0, from_epoch: int = 0) -> float:
        """Wall time of the folds from ``from_fold`` on (that fold from epoch ``from_epoch``)."""
        total = costs.run_finish
        for fold in range(from_fold, len(self.train)):
            total += self.fold_seconds(fold, costs)
            if fold == from_fold and from_epoch:
                total -= from_epoch * self.epoch_seconds(fold, costs)
        return total

    def describe(self) -> str:
        folds = len(self.train)
        mean_train = round(sum(self.train) / max(1, folds))
        return (f"{folds} fold(s) x {self.epochs} epoch(s) x ~{mean_train} training windows "
                f"(batch {self.batch_size})")


def duration(seconds: float) -> str:
    """H:MM:SS (or M:SS under an hour); '?' for a time that is not known."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(max(0.0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours or days else f"{rest // 60}:{rest % 60:02d}"
    return f"{days} d {text}" if days else text


def estimate_record(shape: RunShape, costs: StepCosts, seconds: float, device: str) -> dict[str, Any]:
    """The estimate as metrics.json keeps it (beside the measured wall time)."""
    return {"estimated_seconds": seconds, "shape": shape.describe(), "device": device, "unit_costs": costs.to_dict()}
