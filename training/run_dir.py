"""The layout of a run directory and its per-epoch CSV log.

RUN_DIR/
  config.json                resolved TrainConfig (+ model config, label rule, versions)
  epochs.csv                 one row per fold and epoch, epochs numbered from 1 as in the log and metrics.json
                             (leaky_test_accuracy: paper protocol only)
  metrics.json               the result (written when all folds are done)
  fold_K/best.safetensors    best checkpoint of fold K (+ best.json), models.checkpoint format
  fold_K/confusion.png       test confusion matrix of fold K
  learning_curves.png        loss / accuracy / macro-F1 per epoch, all folds
  resume.safetensors + resume.json   state to continue an interrupted run (removed when done)
  tensorboard/               optional
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import strict_json
from models.atomic import atomic_open

EPOCH_COLUMNS = (
    "fold", "epoch", "lr",
    "train_loss", "train_accuracy", "train_macro_f1",
    "val_loss", "val_accuracy", "val_macro_f1",
    # Only the paper protocol evaluates the test split every epoch; its windows share trials with training.
    "leaky_test_accuracy", "seconds",
    # "face backbone frozen" / "face backbone fine-tuned" (empty for EEG-only models): which protocol variant.
    "face_backbone",
)
TEXT_COLUMNS = ("face_backbone",)


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically; an undefined metric (NaN, e.g. macro-F1 of an empty split) becomes null."""
    strict_json.write_atomic(path, data)


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def epochs_csv(self) -> Path:
        return self.root / "epochs.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def learning_curves(self) -> Path:
        return self.root / "learning_curves.png"

    @property
    def resume_stem(self) -> Path:
        return self.root / "resume"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def fold_dir(self, fold: int) -> Path:
        return self.root / f"fold_{fold}"

    def best_checkpoint(self, fold: int) -> Path:
        """Stem of the fold's best checkpoint (models.checkpoint adds .safetensors/.json)."""
        return self.fold_dir(fold) / "best"

    def confusion_plot(self, fold: int) -> Path:
        return self.fold_dir(fold) / "confusion.png"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)


class EpochLog:
    """Appends one CSV row per epoch; flushed per row so an interrupted run keeps its history."""

    def __init__(self, path: Path):
        self.path = path

    def start(self, keep_before: tuple[int, int] | None = None) -> None:
        """Begin the log; when resuming, keep only the rows of epochs run before ``keep_before`` = (fold, epochs
        done in that fold), i.e. rows whose 1-based epoch is at most the epochs done."""
        rows = self.read() if keep_before is not None and self.path.exists() else []
        if keep_before is not None:
            rows = [r for r in rows if (int(r["fold"]), int(r["epoch"]) - 1) < keep_before]
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as handle:  # history kept on a crash
            writer = csv.DictWriter(handle, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)

    def append(self, row: dict[str, Any]) -> None:
        formatted = {key: _format(row.get(key)) for key in EPOCH_COLUMNS}
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=EPOCH_COLUMNS).writerow(formatted)

    def read(self) -> list[dict[str, str]]:
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_epoch_rows(path: Path) -> list[dict[str, float]]:
    """The CSV log as numbers; empty cells become NaN."""
    rows = []
    for row in EpochLog(path).read():
        rows.append({key: float(value) if value != "" else math.nan for key, value in row.items()
                     if key not in TEXT_COLUMNS})
    return rows
