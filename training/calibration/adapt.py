"""Adapting the base model to one person on cached inputs.

The face backbone stays frozen: every face crop goes through it once (`embed_crops`, with
`training.embeddings`, the frozen-backbone cache's code) and the windows are trained through
`Milmer.forward_frame_features`; its projection to d_model stays the base's too. What trains is chosen by
`AdaptConfig.trainable` (parameter groups of `TRAINABLE`; "head" alone trains on the CLS outputs computed
once); the loss is cross-entropy weighted by inverse class frequency, plus an L2-SP penalty pulling the
trained weights toward the base's. A class the person never rated is never a target: it is either left
out of the loss or kept in the softmax only as a wrong answer (`AdaptConfig.absent`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from models.milmer import Milmer
from training.calibration.budget import TimeBudget
from training.embeddings import embed_frames
from training.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)

# Parameter-name prefixes per group; "backbone" never trains (its output is cached), nor "backbone_proj".
TRAINABLE = {
    "head": ("head.",),
    "eeg_head": ("eeg_tokens.", "head."),
    "eeg_fusion_head": ("eeg_tokens.", "encoder.", "head.", "token_type.", "cls_token"),
    "all_but_backbone": ("eeg_tokens.", "encoder.", "head.", "token_type.", "cls_token", "mil.", "balancer."),
}


@dataclass(frozen=True)
class AdaptConfig:
    trainable: str = "head"
    steps: int = 300                 # optimiser steps (whole epochs: at least this many)
    lr: float = 1e-3
    batch_size: int = 16
    l2sp: float = 0.01               # weight of sum((w - w_base)^2) over the trained weights
    class_weighting: bool = True     # inverse class frequency over the rated classes
    # A class the person never rated: "excluded" from the loss (its head row stays the base's) or "negative"
    # (in the softmax, only ever as a wrong answer: trained away from, never toward).
    absent: str = "negative"
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AdaptResult:
    model: Milmer
    epochs_run: int
    epochs: int
    stopped_early: str | None      # why training stopped before `epochs` (time budget), else None
    final_loss: float
    seconds: float
    trained_parameters: int


def embed_crops(model: Milmer, crops: np.ndarray, budget: TimeBudget | None = None) -> torch.Tensor:
    """(F, S, S, 3) RGB uint8 -> (F, L, width) float16 frozen-backbone features (`training.embeddings`),
    each crop once. `budget`: raises `BudgetError` when the rest cannot end in time."""
    if not model.config.uses_face or len(crops) == 0:
        return torch.zeros((0, 1, 1), dtype=torch.float16)
    clock = None if budget is None else \
        budget.stage(f"embedding {len(crops)} face crops with the frozen backbone", len(crops), "crops")
    # A channels-first view: each backbone call converts only its own chunk.
    return torch.from_numpy(embed_frames(model, crops.transpose(0, 3, 1, 2),
                                         progress=None if clock is None else clock.advance))


def batch_inputs(tokens: torch.Tensor, frame_ids: np.ndarray, eeg: np.ndarray, eeg_mask: np.ndarray,
                 positions: np.ndarray, uses_face: bool) -> tuple:
    """(eeg, frame_features, eeg_mask, face_mask) tensors for the windows at `positions`."""
    ids = torch.from_numpy(frame_ids[positions])
    face_mask = ids >= 0
    frame_tokens = None
    if uses_face:
        frame_tokens = tokens[ids.clamp_min(0)] * face_mask[:, :, None, None].to(tokens.dtype)
    return (torch.from_numpy(eeg[positions]), frame_tokens, torch.from_numpy(eeg_mask[positions]), face_mask)


@torch.no_grad()
def predict(model: Milmer, tokens: torch.Tensor, windows, positions: np.ndarray, batch: int = 64) -> np.ndarray:
    """Class probabilities (len(positions), K) of the windows at `positions`."""
    model.eval()
    out = []
    for start in range(0, len(positions), batch):
        chunk = positions[start:start + batch]
        eeg, frame_tokens, eeg_mask, face_mask = batch_inputs(tokens, windows.frame_ids, windows.eeg,
                                                              windows.eeg_mask, chunk, model.config.uses_face)
        logits = model.forward_frame_features(eeg, frame_tokens, eeg_mask, face_mask).logits
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes))


def _whole_model(model: Milmer, tokens: torch.Tensor, windows) -> Callable[[np.ndarray], torch.Tensor]:
    def logits_of(chunk: np.ndarray) -> torch.Tensor:
        eeg, features, eeg_mask, face_mask = batch_inputs(tokens, windows.frame_ids, windows.eeg, windows.eeg_mask,
                                                          chunk, model.config.uses_face)
        return model.forward_frame_features(eeg, features, eeg_mask, face_mask).logits
    return logits_of


def _head_on_cached_features(model: Milmer, tokens: torch.Tensor, windows,
                             positions: np.ndarray) -> Callable[[np.ndarray], torch.Tensor]:
    """Only the head trains: everything before it is computed once per window (the CLS output in eval
    mode), so an epoch costs a Linear layer, whatever the preset."""
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        predict(model, tokens, windows, positions)
    finally:
        hook.remove()
    features = torch.cat(captured)
    row = {int(position): i for i, position in enumerate(positions)}

    def logits_of(chunk: np.ndarray) -> torch.Tensor:
        return model.head(model.head_dropout(features[[row[int(p)] for p in chunk]]))
    return logits_of


def adapt(base: Milmer, tokens: torch.Tensor, windows, positions: np.ndarray, config: AdaptConfig,
          deadline: float | None = None, progress: Callable[[int, int, float], None] | None = None) -> AdaptResult:
    """A copy of `base` adapted on the windows at `positions` (labels from `windows.labels`)."""
    started = time.monotonic()
    seed_everything(derive_seed(config.seed, 0xCA1))
    model = copy.deepcopy(base)
    prefixes = TRAINABLE[config.trainable]
    trained: dict[str, nn.Parameter] = {}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(prefixes))
        if parameter.requires_grad:
            trained[name] = parameter
    anchors = {name: p.detach().clone() for name, p in trained.items()}
    labels_all = torch.from_numpy(windows.labels)
    rated = sorted({int(c) for c in windows.labels[positions]})
    remap = torch.full((model.config.num_classes,), -1, dtype=torch.long)
    remap[rated] = torch.arange(len(rated))
    counts = np.bincount(windows.labels[positions], minlength=model.config.num_classes)[rated].astype(np.float64)
    weights = torch.tensor(counts.sum() / (len(rated) * counts) if config.class_weighting else np.ones(len(rated)),
                           dtype=torch.float32)
    optimiser = torch.optim.AdamW(trained.values(), lr=config.lr, weight_decay=0.0)
    generator = np.random.default_rng(derive_seed(config.seed, 0xCA2))
    epochs = max(1, math.ceil(config.steps / math.ceil(len(positions) / config.batch_size)))
    epochs_run, stopped, loss_value = 0, None, float("nan")
    rated_index = torch.tensor(rated) if config.absent == "excluded" else torch.arange(model.config.num_classes)
    if config.absent != "excluded":
        remap = torch.arange(model.config.num_classes)
        full = torch.ones(model.config.num_classes)
        full[rated] = weights
        weights = full
    logits_of = _head_on_cached_features(model, tokens, windows, positions) if config.trainable == "head" else \
        _whole_model(model, tokens, windows)
    for epoch in range(epochs):
        if deadline is not None and time.monotonic() > deadline:
            stopped = (f"training stopped early: the time budget (--max-minutes) ran out after {epoch} of {epochs} "
                       "epochs")
            break
        model.train()
        order = generator.permutation(positions)
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            chunk = order[start:start + config.batch_size]
            logits = logits_of(chunk)
            target = remap[labels_all[chunk]].to(logits.device)
            loss = nn.functional.cross_entropy(logits[:, rated_index.to(logits.device)], target,
                                               weight=weights.to(logits.device))
            penalty = sum(((p - anchors[n]) ** 2).sum() for n, p in trained.items())
            optimiser.zero_grad(set_to_none=True)
            (loss + config.l2sp * penalty).backward()
            optimiser.step()
            total += loss.item() * len(chunk)
            seen += len(chunk)
        epochs_run = epoch + 1
        loss_value = total / max(1, seen)
        if progress:
            progress(epochs_run, epochs, loss_value)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return AdaptResult(model, epochs_run, epochs, stopped, loss_value, time.monotonic() - started,
                       sum(p.numel() for p in trained.values()))
