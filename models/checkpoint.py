"""Checkpoints as NAME.safetensors (tensors) + NAME.json (config, input contract, provenance, digest).

Nothing here unpickles: tensors come from safetensors, metadata from JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.config import MilmerConfig
from models.console import package_version
from models.contract import InputContract
from models.device import resolve_device
from models.errors import CheckpointError
from models.milmer import Milmer

log = logging.getLogger(__name__)

FORMAT = "milmer-checkpoint"
FORMAT_VERSION = 1


@dataclass
class CheckpointMeta:
    """The JSON half of a checkpoint."""

    json_path: Path
    tensors_path: Path
    config: MilmerConfig
    contract: InputContract
    provenance: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


@dataclass
class LoadedCheckpoint:
    model: Milmer
    config: MilmerConfig
    contract: InputContract
    provenance: dict[str, Any]


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_safetensors_atomic(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                            metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file through PATH.tmp and a rename, so that PATH is never left half-written."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: Milmer, contract: InputContract,
                    provenance: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write NAME.safetensors + NAME.json (each via a temporary file and rename); returns both paths.

    provenance: free-form JSON-able facts (dataset, protocol, fold, metrics, ...); the code
    version is added.
    """
    contract.check_matches(model.config)
    tensors_path, json_path = checkpoint_paths(path)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    tmp_tensors = tensors_path.with_name(tensors_path.name + ".tmp")
    save_file(state, str(tmp_tensors), metadata={"format": FORMAT})
    digest = file_sha256(tmp_tensors)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "contract": contract.to_dict(),
        "provenance": {**(provenance or {}), "code_version": package_version()},
        "tensors": {"file": tensors_path.name, "sha256": digest},
    }
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp_tensors, tensors_path)
    os.replace(tmp_json, json_path)
    log.info("saved checkpoint %s (+ .json)", tensors_path)
    return tensors_path, json_path


def read_checkpoint_meta(path: str | os.PathLike) -> CheckpointMeta:
    """Read and validate the JSON half only (no tensors are touched)."""
    tensors_path, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint metadata file not found",
                              hint="a checkpoint is NAME.safetensors plus NAME.json side by side")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{json_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a milmer checkpoint (format field is not {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{json_path}: checkpoint format version {meta.get('format_version')!r} "
                              f"is not supported (expected {FORMAT_VERSION})")
    for key in ("config", "contract", "tensors"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"{json_path}: the '{key}' section is missing or not an object")
    if not isinstance(meta.get("provenance", {}), dict):
        raise CheckpointError(f"{json_path}: the 'provenance' section is not an object")
    try:
        config = MilmerConfig.from_dict(meta["config"])
        contract = InputContract.from_dict(meta["contract"])
        contract.check_matches(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{json_path}: {exc}", hint=exc.hint) from exc
    return CheckpointMeta(json_path=json_path, tensors_path=tensors_path, config=config, contract=contract,
                          provenance=dict(meta.get("provenance") or {}), sha256=str(meta["tensors"].get("sha256")))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Verify digest, keys and shapes, then build the model in eval mode on `device` ("auto", "cpu", "cuda")."""
    meta = read_checkpoint_meta(path)
    if not meta.tensors_path.is_file():
        raise CheckpointError(f"{meta.tensors_path}: checkpoint tensor file not found")
    if file_sha256(meta.tensors_path) != meta.sha256:
        raise CheckpointError(f"{meta.tensors_path}: contents do not match the digest in {meta.json_path.name} "
                              "(the file is truncated, corrupted or from another checkpoint)")
    try:
        state = load_file(str(meta.tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{meta.tensors_path}: unreadable safetensors file ({exc})") from exc
    try:
        model = Milmer(meta.config)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. backbone_kwargs values timm cannot use
        raise CheckpointError(f"{meta.json_path}: cannot build the model its config describes ({exc})") from exc
    load_state_checked(model, state, str(meta.tensors_path))
    model.to(resolve_device(device)).eval()
    return LoadedCheckpoint(model=model, config=meta.config, contract=meta.contract, provenance=meta.provenance)


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict with every missing, unexpected or misshapen key named in one CheckpointError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                 for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: tensors do not fit the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
