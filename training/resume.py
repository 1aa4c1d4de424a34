"""Resumable training state as safetensors (tensors) + JSON (everything else); no pickles.

The state is written at every epoch boundary, so Ctrl-C (or a crash) loses at
most the epoch in progress; resuming re-runs that epoch from its start. Ctrl-C
during the writing is held back until the files are complete (`interrupts_deferred`). Random
streams need no saving: the trainer reseeds every generator at the start of each
epoch from (seed, fold, epoch, rank), so the epoch number fixes them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from models import atomic
from models.checkpoint import checkpoint_paths, save_safetensors_atomic
from models.errors import CheckpointError

FORMAT = "milmer-resume/1"


@dataclass
class ResumeState:
    """Where a run stands: the next (fold, epoch) to run, with the weights and optimiser to run it with."""

    fold: int
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] = field(default_factory=dict)  # fp16 loss scaling (empty when unused)
    fold_progress: dict[str, Any] = field(default_factory=dict)
    completed_folds: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while files that belong together are written; it takes effect right after.

    A KeyboardInterrupt between writing a checkpoint's tensors and its JSON would leave a pair that
    cannot be loaded. Python runs signal handlers in the main thread only, so swapping the handler
    there covers a signal delivered to any thread (data-loader and BLAS threads included).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, None)
    elif received and previous == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


def resume_exists(stem: Path) -> bool:
    return all(path.exists() for path in checkpoint_paths(stem))


def save_resume_state(stem: Path, state: ResumeState) -> None:
    """Write both files through temporaries; the JSON, written last, names the tensors file it belongs to."""
    tensor_path, json_path = checkpoint_paths(stem)
    state_id = uuid.uuid4().hex
    tensors = {f"model/{name}": value.detach().cpu().contiguous().clone() for name, value in state.model.items()}
    optimizer_state: dict[str, dict[str, Any]] = {}
    for param_id, entries in state.optimizer["state"].items():
        plain = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer/{param_id}/{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain[key] = value
        optimizer_state[str(param_id)] = plain
    save_safetensors_atomic(tensors, tensor_path, metadata={"format": FORMAT, "state_id": state_id})
    document = {
        "format": FORMAT,
        "state_id": state_id,
        "fold": state.fold,
        "epoch": state.epoch,
        "optimizer": {"param_groups": state.optimizer["param_groups"], "state": optimizer_state},
        "scheduler": state.scheduler,
        "scaler": state.scaler,
        "fold_progress": state.fold_progress,
        "completed_folds": state.completed_folds,
    }
    # Plain json, not strict_json: the state must come back exactly, an infinite or NaN score included.
    atomic.write_text(json_path, json.dumps(document, indent=1))


def load_resume_state(stem: Path) -> ResumeState:
    tensor_path, json_path = checkpoint_paths(stem)
    if not resume_exists(stem):
        raise CheckpointError(f"{json_path.parent}: no resumable state (resume.json + resume.safetensors)",
                              hint="the run finished already, or was never started in this directory")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
        with safe_open(str(tensor_path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"{tensor_path}: unreadable resume state: {exc}") from exc
    if document.get("format") != FORMAT or metadata.get("state_id") != document.get("state_id"):
        raise CheckpointError(f"{json_path}: resume files do not belong together or have an unknown format",
                              hint="the run was interrupted while saving; start it again")
    model = {name[len("model/"):]: value for name, value in tensors.items() if name.startswith("model/")}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for param_id, plain in document["optimizer"]["state"].items():
        optimizer_state[int(param_id)] = dict(plain)
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, param_id, key = name.split("/", 2)
            optimizer_state.setdefault(int(param_id), {})[key] = value
    return ResumeState(
        fold=int(document["fold"]),
        epoch=int(document["epoch"]),
        model=model,
        optimizer={"state": optimizer_state, "param_groups": document["optimizer"]["param_groups"]},
        scheduler=document["scheduler"],
        scaler=document.get("scaler", {}),
        fold_progress=document.get("fold_progress", {}),
        completed_folds=document.get("completed_folds", []),
    )


def remove_resume_state(stem: Path) -> None:
    for path in checkpoint_paths(stem):
        path.unlink(missing_ok=True)
