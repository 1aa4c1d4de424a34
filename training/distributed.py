"""Data-parallel plumbing: process group set-up from ``torchrun``, batch sharding, metric reduction.

Launch several processes with ``torchrun --nproc_per_node N -m training.cli train ...``
(add ``--nnodes``/``--node_rank``/``--master_addr`` for several machines). Each
process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment;
CUDA processes use NCCL, CPU processes use gloo.

Sharding keeps a multi-process run equivalent to a single-process one: every
process draws the same global permutation, cuts it into the same global batches
of ``batch_size`` samples and takes its own slice of each; losses are weighted
by ``world_size / global_batch_size`` so that DDP's gradient average equals the
single-process batch mean. Evaluation splits the data in contiguous shards with
no padding and sums confusion matrices, so every sample counts exactly once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from training.metrics import MetricAccumulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistributedContext:
    """Join the process group described by torchrun's environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    log.info("process %d of %d (local rank %d, backend %s)", rank, world_size, local_rank, backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def shutdown_distributed(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def _communication_device(context: DistributedContext) -> torch.device:
    return torch.device("cuda", context.local_rank) if context.backend == "nccl" else torch.device("cpu")


def reduce_accumulator(accumulator: MetricAccumulator, context: DistributedContext) -> None:
    """Sum an accumulator's confusion matrix and loss over all processes, in place."""
    if not context.enabled:
        return
    device = _communication_device(context)
    confusion = accumulator.confusion.to(device)
    loss_sum = accumulator.loss_sum.to(device)
    dist.all_reduce(confusion, op=dist.ReduceOp.SUM)
    dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
    accumulator.confusion = confusion.cpu()
    accumulator.loss_sum = loss_sum.cpu()


@dataclass(frozen=True)
class LocalBatch:
    """This process's part of one global batch.

    ``weight`` scales the summed per-sample loss so that averaging gradients over
    processes gives the mean over the global batch. A process whose slice of a
    short last batch is empty gets one stand-in sample with ``weight`` 0, so that
    every process still takes part in the gradient all-reduce.
    """

    indices: list[int]
    weight: float


def plan_train_batches(
    size: int, batch_size: int, epoch_seed: int, context: DistributedContext, shuffle: bool = True
) -> list[LocalBatch]:
    """This process's batches for one epoch; identical global batches on every process."""
    if shuffle:
        generator = torch.Generator().manual_seed(epoch_seed)
        order = torch.randperm(size, generator=generator).tolist()
    else:
        order = list(range(size))
    plan = []
    for start in range(0, size, batch_size):
        global_batch = order[start : start + batch_size]
        local = global_batch[context.rank :: context.world_size]
        weight = context.world_size / len(global_batch)
        plan.append(LocalBatch(local, weight) if local else LocalBatch(global_batch[:1], 0.0))
    return plan


def shard_for_evaluation(size: int, context: DistributedContext) -> range:
    """A contiguous, unpadded shard of ``range(size)`` for this process."""
    per_rank, extra = divmod(size, context.world_size)
    start = context.rank * per_rank + min(context.rank, extra)
    return range(start, start + per_rank + (1 if context.rank < extra else 0))
