"""Evaluate a model on a set of windows, exactly once per window even over several processes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from models.config import MilmerConfig
from training.batches import PlannedBatchSampler, make_loader, model_logits
from training.distributed import DistributedContext, reduce_accumulator, shard_for_evaluation
from training.metrics import ClassificationMetrics, MetricAccumulator


@torch.no_grad()
def evaluate_windows(
    model: nn.Module,
    config: MilmerConfig,
    dataset: Dataset,
    indices: Sequence[int],
    device: torch.device,
    batch_size: int,
    context: DistributedContext | None = None,
    num_workers: int = 0,
    amp: torch.dtype | None = None,
    loader: DataLoader | None = None,
) -> ClassificationMetrics:
    """Accuracy, macro-F1, balanced accuracy, confusion and mean cross-entropy over ``indices``.

    ``loader``, when given, is a `make_loader` loader over ``dataset`` whose `PlannedBatchSampler`
    gets this call's plan, so that one loader (and its worker processes) serves many evaluations;
    without it a loader is built for this call alone.
    """
    context = context or DistributedContext()
    shard = [int(indices[i]) for i in shard_for_evaluation(len(indices), context)]
    if loader is None:
        loader = make_loader(dataset, PlannedBatchSampler(), num_workers=num_workers,
                             pin_memory=device.type == "cuda")
    sampler = loader.batch_sampler
    if not isinstance(sampler, PlannedBatchSampler):
        raise TypeError("evaluate_windows needs a loader made by make_loader with a PlannedBatchSampler")
    sampler.plan = [shard[start : start + batch_size] for start in range(0, len(shard), batch_size)]
    accumulator = MetricAccumulator(config.num_classes)
    was_training = model.training
    model.eval()
    for batch in loader:
        logits = model_logits(model, config, batch, device, amp)
        labels = batch.labels.to(logits.device)
        loss_sum = nn.functional.cross_entropy(logits, labels, reduction="sum")
        accumulator.update(logits, labels, loss_sum.item())
    model.train(was_training)
    reduce_accumulator(accumulator, context)
    return accumulator.result()
