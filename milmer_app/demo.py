"""The built-in demo: a synthetic subject replayed with its face video, and the demo model.

The subject is written once with `training.synth.write_synthetic_deap`, with a
seed the demo model never saw in training, into a user cache folder
(`$XDG_CACHE_HOME/milmer/demo-<hash>`, default `~/.cache/milmer/...`), built in
a temporary folder and renamed into place so that a crash never leaves half a
dataset behind. The demo model is `resources/demo/demo_model.{safetensors,json}`:
the tiny preset trained on synthetic data. Its outputs say nothing about a
person, and every output of the app says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import resources
from models.atomic import atomic_directory
from models.console import package_version
from models.errors import CheckpointError

log = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(resources.__file__).resolve().parent / "demo" / "demo_model"
DEMO_SUBJECT = 1
# Settings of the demo subject; the seed differs from the demo model's training data.
DEMO_DATA = {"subjects": 1, "trials": 8, "seconds": 12.0, "strength": 1.0, "seed": 20260,
             "video_size": [360, 288], "fps": 10.0}
DEMO_NOTICE = "DEMO model (tiny preset trained on synthetic data): its predictions say nothing about a real person"


def demo_checkpoint() -> Path:
    """The demo checkpoint's path (NAME, without suffix); CheckpointError if it is not there."""
    if not DEMO_CHECKPOINT.with_suffix(".json").is_file() or not DEMO_CHECKPOINT.with_suffix(".safetensors").is_file():
        raise CheckpointError(f"the demo model {DEMO_CHECKPOINT}.safetensors/.json is missing",
                              hint="build it with the command in README.md "
                                   "(milmer-train train --preset tiny on synthetic data)")
    return DEMO_CHECKPOINT


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "milmer"


def demo_data_dir(root: Path | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """The demo subject's DEAP-layout folder, written on first use (`progress(trials done, trials)` meanwhile)."""
    from training.synth import write_synthetic_deap

    key = json.dumps({**DEMO_DATA, "code": package_version()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    base = root or cache_root()
    target = base / f"demo-{digest}"
    if (target / "data_preprocessed_python").is_dir():
        return target
    base.mkdir(parents=True, exist_ok=True)
    log.info("writing the demo subject to %s (once)", target)
    params = dict(DEMO_DATA)
    params["video_size"] = tuple(params["video_size"])
    try:
        with atomic_directory(target) as staging:
            write_synthetic_deap(staging, **params, progress=progress)
    except OSError:
        if not (target / "data_preprocessed_python").is_dir():
            raise
        # Another process finished the same folder first; theirs is identical.
    return target
