"""Learning-curve and confusion-matrix figures (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_learning_curves(rows: Sequence[dict[str, float]], path: Path, title: str = "") -> None:
    """Loss, accuracy and macro-F1 per epoch for train and val (and the paper protocol's leaky test
    accuracy where logged), one line per fold."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    folds = sorted({int(row["fold"]) for row in rows})
    colours = plt.get_cmap("tab10")
    for metric, axis in zip(("loss", "accuracy", "macro_f1"), axes):
        for position, fold in enumerate(folds):
            fold_rows = [row for row in rows if int(row["fold"]) == fold]
            epochs = [row["epoch"] for row in fold_rows]  # 1-based in the log
            colour = colours(position % 10)
            for split, style, name in (("train", "-", "train"), ("val", "--", "val"),
                                       ("leaky_test", ":", "test (leaky)")):
                values = [row.get(f"{split}_{metric}", math.nan) for row in fold_rows]
                if all(math.isnan(v) for v in values):
                    continue
                label = f"fold {fold} {name}" if len(folds) <= 5 else (name if position == 0 else None)
                axis.plot(epochs, values, style, color=colour, label=label)
        axis.set_xlabel("epoch")
        axis.set_title(metric.replace("_", "-"))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str = "") -> None:
    """Counts with row-normalised shading (rows: true class, columns: predicted class)."""
    matrix = np.asarray(confusion, dtype=np.int64)
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black")
    axis.set_xticks(range(len(class_names)), class_names)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
