"""Training-time augmentation: EEG channel dropout, so that channels masked live are in distribution."""

from __future__ import annotations

import torch


def drop_channels(eeg_mask: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C) bool mask with each present channel dropped (set False) with probability ``rate``.

    A window keeps its mask unchanged where dropping would leave it without any channel. Draws from
    ``generator`` (default: torch's global generator, which the trainer seeds per epoch).
    """
    if rate <= 0:
        return eeg_mask
    dropped = torch.rand(eeg_mask.shape, generator=generator) < rate
    kept = eeg_mask & ~dropped.to(eeg_mask.device)
    empty = ~kept.any(dim=1, keepdim=True)
    return torch.where(empty, eeg_mask, kept)
