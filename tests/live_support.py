"""Shared by the live-engine tests: a tiny untrained checkpoint and a video file of a synthetic face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.checkpoint import save_checkpoint
from models.config import MilmerConfig
from models.contract import InputContract
from models.milmer import Milmer
from training.synth import TrialVideoComposer, write_trial_video


def save_tiny_checkpoint(folder: Path) -> Path:
    """An untrained tiny-preset model with the DEAP contract, saved as `folder/tiny`."""
    torch.manual_seed(0)
    config = MilmerConfig.tiny()
    path = folder / "tiny"
    save_checkpoint(path, Milmer(config), InputContract.for_deap(config))
    return path


def write_face_video(path: Path, quadrant: int, seconds: float, seed: int, fps: float = 10.0,
                     size: tuple[int, int] = (320, 240)) -> TrialVideoComposer:
    """An MJPG video of a synthetic face; returns the composer that drew it."""
    composer = TrialVideoComposer(quadrant=quadrant, strength=1.0, size=size, rng=np.random.default_rng(seed))
    write_trial_video(path, composer, seconds, fps)
    return composer
