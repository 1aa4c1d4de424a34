"""Checkpoints as NAME.safetensors (tensors) + NAME.json (config, input contract, provenance, digest).

Nothing here unpickles: tensors come from safetensors, metadata from JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from models import strict_json
from models.atomic import atomic_path
from models.config import MilmerConfig
from models.config_bounds import check_budget, check_config, check_contract
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
    """Write a safetensors file atomically and durably, so that PATH is never left half-written."""
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return Path(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: Milmer, contract: InputContract,
                    provenance: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write NAME.safetensors + NAME.json (each atomically and durably); returns both paths.

    provenance: free-form JSON-able facts (dataset, protocol, fold, metrics, ...); the code
    version is added.
    """
    contract.check_matches(model.config)
    tensors_path, json_path = checkpoint_paths(path)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    # The JSON, holding the tensors' digest, replaces the old one after the tensors do.
    with atomic_path(json_path) as tmp_json, atomic_path(tensors_path) as tmp_tensors:
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
        tmp_json.write_text(strict_json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    log.debug("saved checkpoint %s (+ .json)", tensors_path)
    return tensors_path, json_path


_TOP_LEVEL_KEYS = {"format", "format_version", "config", "contract", "provenance", "tensors"}
# Far above any real checkpoint's JSON (a few KB); a larger one is not read into memory.
MAX_JSON_BYTES = 4 * 2 ** 20
# The safetensors header and alignment on top of the tensors' own bytes.
TENSOR_FILE_SLACK = 16 * 2 ** 20


def read_checkpoint_meta(path: str | os.PathLike) -> CheckpointMeta:
    """Read and validate the JSON half only (no tensors are touched): bounds and size budget included."""
    tensors_path, json_path = checkpoint_paths(path)
    try:
        return _read_meta(tensors_path, json_path)
    except CheckpointError:
        raise
    except Exception as exc:  # whatever a hostile JSON provokes is still this file's fault, said in one line
        raise CheckpointError(f"{json_path}: unusable checkpoint metadata ({type(exc).__name__}: {exc})") from exc


def _read_meta(tensors_path: Path, json_path: Path) -> CheckpointMeta:
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint metadata file not found",
                              hint="a checkpoint is NAME.safetensors plus NAME.json side by side")
    if json_path.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{json_path}: {json_path.stat().st_size} bytes is far too large for checkpoint "
                              f"metadata (limit {MAX_JSON_BYTES})")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, over-long integers
        raise CheckpointError(f"{json_path}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise CheckpointError(f"{json_path}: not valid JSON (nested too deeply)") from None
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
    # Every stored field is used or refused: an unknown one would be silently ignored.
    unknown = (sorted(set(meta) - _TOP_LEVEL_KEYS)
               + sorted(f"tensors.{k}" for k in set(meta["tensors"]) - {"file", "sha256"}))
    if unknown:
        raise CheckpointError(f"{json_path}: unknown field(s) {', '.join(map(str, unknown))}",
                              hint="the checkpoint was written by another program or a newer milmer version")
    if not isinstance(meta["tensors"].get("sha256"), str):
        raise CheckpointError(f"{json_path}: tensors.sha256 is missing or not a string")
    if not isinstance(meta["tensors"].get("file", ""), str):
        raise CheckpointError(f"{json_path}: tensors.file is not a file name")
    if meta["tensors"].get("file", tensors_path.name) != tensors_path.name:
        # A renamed pair is fine (the digest binds the two files); say so rather than ignore the field.
        log.warning("%s: tensors.file is %r; using %s beside it (its digest is checked)", json_path,
                    meta["tensors"]["file"], tensors_path.name)
    try:
        _parsed("config", lambda: check_config(meta["config"]))
        config = _parsed("config", lambda: MilmerConfig.from_dict(meta["config"]))
        contract = _parsed("contract", lambda: InputContract.from_dict(meta["contract"]))
        check_contract(contract)
        contract.check_matches(config)
        check_budget(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{json_path}: {exc}", hint=exc.hint) from exc
    return CheckpointMeta(json_path=json_path, tensors_path=tensors_path, config=config, contract=contract,
                          provenance=dict(meta.get("provenance") or {}), sha256=meta["tensors"]["sha256"])


def _parsed(section: str, parse: Any) -> Any:
    try:
        return parse()
    except CheckpointError:
        raise
    except Exception as exc:  # e.g. a zero divisor or an unhashable value in the section
        raise CheckpointError(f"the '{section}' section is invalid ({type(exc).__name__}: {exc})") from exc


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Verify bounds, tensor layout, digest and values, then build the model in eval mode on `device`.

    Nothing large is allocated until the JSON has passed its bounds and budget and the
    safetensors header matches the model that JSON describes (built on the meta device).
    Every failure is one CheckpointError naming the file.
    """
    meta = read_checkpoint_meta(path)
    try:
        return _load(meta, device)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{meta.tensors_path}: cannot load ({type(exc).__name__}: {exc})") from exc


def _build(config: MilmerConfig, json_path: Path, device: str | torch.device | None = None) -> Milmer:
    try:
        if device is None:
            return Milmer(config)
        with torch.device(device):
            return Milmer(config)
    except Exception as exc:  # timm assertions, shape errors: backbone_kwargs values it cannot use
        raise CheckpointError(f"{json_path}: cannot build the model its config describes "
                              f"({type(exc).__name__}: {exc})") from exc


def _load(meta: CheckpointMeta, device: str | torch.device) -> LoadedCheckpoint:
    if not meta.tensors_path.is_file():
        raise CheckpointError(f"{meta.tensors_path}: checkpoint tensor file not found")
    expected = {name: (tuple(t.shape), t.dtype)
                for name, t in _build(meta.config, meta.json_path, "meta").state_dict().items()}
    expected_bytes = sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                         for shape, dtype in expected.values())
    size = meta.tensors_path.stat().st_size
    if size > expected_bytes + TENSOR_FILE_SLACK:
        raise CheckpointError(f"{meta.tensors_path}: {size} bytes, far more than the {expected_bytes} bytes of "
                              "tensors its config describes")
    if file_sha256(meta.tensors_path) != meta.sha256:
        raise CheckpointError(f"{meta.tensors_path}: contents do not match the digest in {meta.json_path.name} "
                              "(the file is truncated, corrupted or from another checkpoint)")
    try:
        with safe_open(str(meta.tensors_path), framework="pt") as handle:
            stored = {name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
                      for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{meta.tensors_path}: unreadable safetensors file ({exc})") from exc
    check_layout(stored, expected, str(meta.tensors_path))
    try:
        state = load_file(str(meta.tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{meta.tensors_path}: unreadable safetensors file ({exc})") from exc
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{meta.tensors_path}: tensor {name} holds NaN or Inf",
                                  hint="the weights are damaged (or training diverged); use another checkpoint")
    model = _build(meta.config, meta.json_path)
    load_state_checked(model, state, str(meta.tensors_path))
    model.to(resolve_device(device)).eval()
    return LoadedCheckpoint(model=model, config=meta.config, contract=meta.contract, provenance=meta.provenance)


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                       torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8"}


def check_layout(stored: dict[str, tuple[tuple[int, ...], str]],
                 expected: dict[str, tuple[tuple[int, ...], torch.dtype]], source: str) -> None:
    """Names, shapes and dtypes of a safetensors header against the model's, every mismatch named at once."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    misshapen = [f"{k} {stored[k][0]} != {expected[k][0]}"
                 for k in sorted(set(stored) & set(expected)) if stored[k][0] != expected[k][0]]
    wrong_type = [f"{k} {stored[k][1]} != {_SAFETENSORS_DTYPES.get(expected[k][1], expected[k][1])}"
                  for k in sorted(set(stored) & set(expected))
                  if stored[k][1] != _SAFETENSORS_DTYPES.get(expected[k][1], str(expected[k][1]))]
    _raise_problems(source, (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen),
                             ("wrong dtype", wrong_type)))


def _raise_problems(source: str, groups: tuple[tuple[str, list[str]], ...]) -> None:
    problems = []
    for label, keys in groups:
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: tensors do not fit the model: " + "; ".join(problems))


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict with every missing, unexpected or misshapen key named in one CheckpointError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                 for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    _raise_problems(source, (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)))
    module.load_state_dict(state, strict=True)
