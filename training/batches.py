"""Batching windows for the model: collation, loaders, device transfer, one forward pass."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from models.config import MilmerConfig
from models.device import autocast, autocast_dtype


@dataclass
class WindowBatch:
    eeg: torch.Tensor  # (B, C, T) float32
    faces: torch.Tensor  # (B, N, 3, S, S) uint8
    eeg_mask: torch.Tensor  # (B, C) bool
    face_mask: torch.Tensor  # (B, N) bool
    labels: torch.Tensor  # (B,) int64

    def pin_memory(self) -> WindowBatch:
        return WindowBatch(*(tensor.pin_memory() for tensor in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.eeg, self.faces, self.eeg_mask, self.face_mask, self.labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def collate_windows(items: Sequence[tuple[Any, ...]]) -> WindowBatch:
    """Stack dataset items ``(eeg, faces, eeg_mask, face_mask, label, meta)``; meta is dropped."""
    eeg, faces, eeg_mask, face_mask, labels = (list(column) for column in zip(*(item[:5] for item in items)))
    return WindowBatch(
        eeg=torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in eeg]),
        faces=torch.stack([torch.as_tensor(x) for x in faces]),
        eeg_mask=torch.stack([torch.as_tensor(x, dtype=torch.bool) for x in eeg_mask]),
        face_mask=torch.stack([torch.as_tensor(x, dtype=torch.bool) for x in face_mask]),
        labels=torch.as_tensor([int(y) for y in labels], dtype=torch.int64),
    )


class PlannedBatchSampler(Sampler[list[int]]):
    """Yields whatever batches were planned for the current epoch (set ``plan`` before iterating).

    A persistent loader keeps its worker processes across epochs while the plan changes.
    """

    def __init__(self) -> None:
        self.plan: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.plan))

    def __len__(self) -> int:
        return len(self.plan)


def make_loader(dataset: Dataset, sampler: PlannedBatchSampler, num_workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_windows,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def resolve_num_workers(requested: int, device: torch.device) -> int:
    """-1 means: none on the CPU (the cores train), a few on a GPU machine (the cores feed the GPU)."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 0
    return min(8, max(1, (torch.multiprocessing.cpu_count() or 2) // 2))


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a TrainConfig.amp mode; mixed precision is a CUDA feature here."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    return autocast_dtype(device)


def model_logits(model: nn.Module, config: MilmerConfig, batch: WindowBatch, device: torch.device,
                 dtype: torch.dtype | None) -> torch.Tensor:
    """Logits (float32) of one batch; tensors of an unused modality never leave the host."""
    non_blocking = device.type == "cuda"
    eeg = batch.eeg.to(device, non_blocking=non_blocking) if config.uses_eeg else None
    eeg_mask = batch.eeg_mask.to(device, non_blocking=non_blocking) if config.uses_eeg else None
    faces = batch.faces.to(device, non_blocking=non_blocking) if config.uses_face else None
    face_mask = batch.face_mask.to(device, non_blocking=non_blocking) if config.uses_face else None
    with autocast(device, dtype):
        output = model(eeg, faces, eeg_mask, face_mask)
    return output.logits.float()
