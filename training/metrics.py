"""Classification metrics computed from a confusion matrix.

Everything is derived from the confusion matrix plus a loss sum, so metrics of a
data set sharded over several processes are exact after summing those two
across ranks (see ``training.distributed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of one pass over a split. ``confusion[t][p]`` counts target t predicted as p."""

    count: int
    loss: float
    accuracy: float
    macro_f1: float
    balanced_accuracy: float
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "balanced_accuracy": self.balanced_accuracy,
            "confusion": self.confusion,
        }


def metrics_from_confusion(confusion: np.ndarray, loss_sum: float = 0.0) -> ClassificationMetrics:
    """Accuracy, macro-F1 and balanced accuracy of a (K, K) confusion matrix.

    Macro-F1 averages over the classes that occur in the targets or the
    predictions (F1 is undefined for a class absent from both); balanced
    accuracy averages the recall of the classes present in the targets.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    count = int(confusion.sum())
    if count == 0:
        return ClassificationMetrics(0, float("nan"), float("nan"), float("nan"), float("nan"), confusion.tolist())
    true_positive = np.diag(confusion).astype(np.float64)
    per_target = confusion.sum(axis=1).astype(np.float64)
    per_prediction = confusion.sum(axis=0).astype(np.float64)
    denominator = per_target + per_prediction
    seen = denominator > 0
    f1 = 2.0 * true_positive[seen] / denominator[seen]
    present = per_target > 0
    recall = true_positive[present] / per_target[present]
    return ClassificationMetrics(
        count=count,
        loss=float(loss_sum) / count,
        accuracy=float(true_positive.sum()) / count,
        macro_f1=float(f1.mean()),
        balanced_accuracy=float(recall.mean()),
        confusion=confusion.tolist(),
    )


class MetricAccumulator:
    """Sums a confusion matrix and a loss over batches; reducible across processes."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor | float) -> None:
        """Add a batch: ``loss_sum`` is the summed (not averaged) loss of its samples."""
        predictions = logits.detach().argmax(dim=1).cpu()
        targets = targets.detach().cpu().long()
        flat = targets * self.num_classes + predictions
        self.confusion += torch.bincount(flat, minlength=self.num_classes**2).reshape(self.num_classes, -1)
        self.loss_sum += float(loss_sum)

    def result(self) -> ClassificationMetrics:
        return metrics_from_confusion(self.confusion.numpy(), float(self.loss_sum))
