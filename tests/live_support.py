"""Shared by the live-engine tests: a tiny untrained checkpoint, a video file of a synthetic face, and a
wait on a queue of engine callbacks."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from milmer_app.clock import local_clock

if TYPE_CHECKING:
    from training.synth import TrialVideoComposer


def save_tiny_checkpoint(folder: Path) -> Path:
    """An untrained tiny-preset model with the DEAP contract, saved as `folder/tiny`."""
    # Imported here: modules that only wait on engine callbacks should not pay for torch.
    import torch

    from models.checkpoint import save_checkpoint
    from models.config import MilmerConfig
    from models.contract import InputContract
    from models.milmer import Milmer

    torch.manual_seed(0)
    config = MilmerConfig.tiny()
    path = folder / "tiny"
    save_checkpoint(path, Milmer(config), InputContract.for_deap(config))
    return path


def write_face_video(path: Path, quadrant: int, seconds: float, seed: int, fps: float = 10.0,
                     size: tuple[int, int] = (320, 240)) -> TrialVideoComposer:
    """An MJPG video of a synthetic face; returns the composer that drew it."""
    from training.synth import TrialVideoComposer, write_trial_video

    composer = TrialVideoComposer(quadrant=quadrant, strength=1.0, size=size, rng=np.random.default_rng(seed))
    write_trial_video(path, composer, seconds, fps)
    return composer


def next_matching(q: queue.Queue, predicate: Callable[[Any], Any], timeout: float) -> Any:
    """The next item put on `q` (by an engine callback) for which `predicate` holds; AssertionError after
    `timeout` s."""
    deadline = local_clock() + timeout
    while (remaining := deadline - local_clock()) > 0:
        try:
            item = q.get(timeout=remaining)
        except queue.Empty:
            break
        if predicate(item):
            return item
    raise AssertionError(f"nothing matching arrived within {timeout} s")
