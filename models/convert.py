"""Swin-T weights from Hugging Face transformers or timm files -> timm `SwinTransformer` key names.

Hugging Face Swin checkpoints come in two naming schemes: the classic one that published
checkpoints use (`attention.self.query`, `attention.output.dense`, `intermediate.dense`,
`output.dense`) and the newer one (`attention.q_proj`, `attention.o_proj`, `mlp.fc1`,
`mlp.fc2`). Both map onto timm: q/k/v are stacked into `attn.qkv`, and HF's
`encoder.layers.i.downsample` (end of stage i) becomes timm's `layers.{i+1}.downsample`
(start of stage i+1). transformers itself is never imported.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from models.checkpoint import load_state_checked, save_safetensors_atomic
from models.errors import CheckpointError

log = logging.getLogger(__name__)

HF_BLOCK = re.compile(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)\.(weight|bias|relative_position_bias_table)$")
HF_DOWNSAMPLE = re.compile(r"^encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)$")
HF_BLOCK_NAMES = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "attention.out_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
HF_QKV_NAMES = {
    "attention.self.query": 0, "attention.self.key": 1, "attention.self.value": 2,
    "attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
}
HF_FIXED = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "embeddings.norm.weight": "patch_embed.norm.weight",
    "embeddings.norm.bias": "patch_embed.norm.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.fc.weight",
    "classifier.bias": "head.fc.bias",
}
# Buffers that both libraries derive from the architecture; they carry no learned values.
DERIVED_BUFFERS = ("relative_position_index", "attn_mask")


@dataclass
class ConversionReport:
    """The converted timm state plus what did not map."""

    state: dict[str, torch.Tensor]
    source_format: str  # "hf-classic" | "hf-new" | "timm"
    swin_kwargs: dict[str, Any]
    num_classes: int
    unused: list[str] = field(default_factory=list)


def read_state(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Tensors (and the HF config.json, when there is one) from a folder or a weights file."""
    source = Path(source)
    hf_config = None
    if source.is_dir():
        config_path = source / "config.json"
        if config_path.is_file():
            try:
                hf_config = json.loads(config_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from exc
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (source / name).is_file():
                source = source / name
                break
        else:
            raise CheckpointError(f"{source}: no model.safetensors or pytorch_model.bin in this folder")
    if not source.is_file():
        raise CheckpointError(f"{source}: file not found")
    if source.suffix == ".safetensors":
        try:
            state = load_file(str(source))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{source}: unreadable safetensors file ({exc})") from exc
    else:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad or unsafe pickles
            raise CheckpointError(f"{source}: cannot read as a weights-only torch file ({exc})") from exc
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: does not hold a flat mapping of tensor names to tensors")
    return state, hf_config


def detect_format(state: dict[str, torch.Tensor], source: str | os.PathLike) -> str:
    keys = list(state)
    if any("embeddings.patch_embeddings" in k for k in keys):
        return "hf-new" if any(".q_proj." in k for k in keys) else "hf-classic"
    if any(k.endswith("patch_embed.proj.weight") for k in keys):
        return "timm"
    raise CheckpointError(f"{source}: no Swin patch embedding found: this is neither a Hugging Face "
                          "nor a timm Swin checkpoint")


def _strip_prefix(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def hf_to_timm(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename HF Swin keys (either scheme) to timm's; returns (mapped, unused source keys)."""
    mapped: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    unused = []
    for source_key, value in state.items():
        key = _strip_prefix(source_key, ("swin.", "model."))
        if key in HF_FIXED:
            mapped[HF_FIXED[key]] = value
            continue
        if key.endswith(DERIVED_BUFFERS):
            continue
        down = HF_DOWNSAMPLE.match(key)
        if down:
            stage, part, kind = down.groups()
            mapped[f"layers.{int(stage) + 1}.downsample.{part}.{kind}"] = value
            continue
        block = HF_BLOCK.match(key)
        if block:
            stage, index, name, kind = block.groups()
            prefix = f"layers.{stage}.blocks.{index}"
            if kind == "relative_position_bias_table" and name in ("attention.self", "attention"):
                mapped[f"{prefix}.attn.relative_position_bias_table"] = value
                continue
            if name in HF_BLOCK_NAMES:
                mapped[f"{prefix}.{HF_BLOCK_NAMES[name]}.{kind}"] = value
                continue
            if name in HF_QKV_NAMES:
                qkv.setdefault((f"{prefix}.attn.qkv", kind), {})[HF_QKV_NAMES[name]] = value
                continue
        unused.append(source_key)
    for (target, kind), parts in qkv.items():
        if sorted(parts) != [0, 1, 2]:
            missing = [("query", "key", "value")[i] for i in range(3) if i not in parts]
            raise CheckpointError(f"attention projection {target} lacks its {', '.join(missing)} {kind}")
        mapped[f"{target}.{kind}"] = torch.cat([parts[0], parts[1], parts[2]], dim=0)
    return mapped, unused


def timm_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A timm Swin state, tolerating 'module.' prefixes and derived buffers. The original Swin
    release (and timm before 0.9) keeps each downsample at the end of stage i and names the
    classifier `head`; current timm has it at the start of stage i+1 and names it `head.fc`."""
    stripped = {_strip_prefix(k, ("module.", "backbone.")): k for k in state}
    old_layout = any(k.startswith("layers.0.downsample.") for k in stripped)
    out, unused = {}, []
    for key, source_key in stripped.items():
        value = state[source_key]
        if key.endswith(DERIVED_BUFFERS):
            continue
        if key in ("head.weight", "head.bias"):
            key = "head.fc." + key.split(".")[1]
        if old_layout:
            key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", key)
        if re.match(r"^(patch_embed|layers|norm|head)\b", key):
            out[key] = value
        else:
            unused.append(source_key)
    return out, unused


def infer_swin_kwargs(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Swin hyper-parameters read off the weights (timm key names)."""
    try:
        proj = state["patch_embed.proj.weight"]
        depths, heads, windows = [], [], []
        stage = 0
        while f"layers.{stage}.blocks.0.norm1.weight" in state:
            blocks = 0
            while f"layers.{stage}.blocks.{blocks}.norm1.weight" in state:
                blocks += 1
            table = state[f"layers.{stage}.blocks.0.attn.relative_position_bias_table"]
            depths.append(blocks)
            heads.append(int(table.shape[1]))
            windows.append((int(round(table.shape[0] ** 0.5)) + 1) // 2)
            stage += 1
        fc1 = state["layers.0.blocks.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"cannot read the Swin architecture off the weights: {exc.args[0]} is missing") from exc
    if not depths or len(set(windows)) != 1:
        raise CheckpointError(f"unsupported Swin layout (stages {len(depths)}, window sizes {windows})")
    return {"patch_size": int(proj.shape[-1]), "embed_dim": int(proj.shape[0]), "depths": depths,
            "num_heads": heads, "window_size": windows[0], "mlp_ratio": fc1.shape[0] / fc1.shape[1],
            "in_chans": int(proj.shape[1])}


def _check_hf_config(hf_config: dict[str, Any], kwargs: dict[str, Any], source: str) -> None:
    pairs = {"embed_dim": "embed_dim", "depths": "depths", "num_heads": "num_heads",
             "window_size": "window_size", "patch_size": "patch_size"}
    wrong = [f"{ours}: weights {kwargs[ours]} vs config.json {hf_config[theirs]}" for ours, theirs in pairs.items()
             if theirs in hf_config and list(_as_list(hf_config[theirs])) != list(_as_list(kwargs[ours]))]
    if wrong:
        raise CheckpointError(f"{source}: config.json disagrees with the weights ({'; '.join(wrong)})")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _read_timm_state(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str], str,
                                                        dict[str, Any] | None]:
    """A HF or timm Swin checkpoint under timm key names: (mapped, unused keys, source format, HF config.json)."""
    state, hf_config = read_state(source)
    source_format = detect_format(state, source)
    mapped, unused = hf_to_timm(state) if source_format.startswith("hf") else timm_keys(state)
    return mapped, unused, source_format, hf_config


def convert_swin(source: str | os.PathLike, keep_head: bool = True) -> ConversionReport:
    """Read a HF (folder or file) or timm Swin checkpoint and return it under timm key names, shape-checked.

    Keys that do not map are returned in `unused` (and logged); keys the timm model needs that
    the source lacks raise CheckpointError naming them.
    """
    mapped, unused, source_format, hf_config = _read_timm_state(source)
    try:
        kwargs = infer_swin_kwargs(mapped)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc
    if hf_config is not None:
        _check_hf_config(hf_config, kwargs, str(source))
    image_size = int((hf_config or {}).get("image_size", 224))
    if not keep_head:
        mapped = {k: v for k, v in mapped.items() if not k.startswith("head.")}
    num_classes = int(mapped["head.fc.weight"].shape[0]) if "head.fc.weight" in mapped else 0
    reference = SwinTransformer(img_size=image_size, num_classes=num_classes, **kwargs)
    load_state_checked(reference, mapped, str(source))
    if unused:
        log.warning("%s: %d source tensors were not used: %s", source, len(unused), ", ".join(unused[:10]))
    return ConversionReport(state={k: v.contiguous() for k, v in mapped.items()}, source_format=source_format,
                            swin_kwargs={"img_size": image_size, **kwargs}, num_classes=num_classes, unused=unused)


def write_timm_safetensors(report: ConversionReport, out: str | os.PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "timm-swin", "source_format": report.source_format,
                "swin_kwargs": json.dumps(report.swin_kwargs), "num_classes": str(report.num_classes)}
    return save_safetensors_atomic(report.state, out, metadata=metadata)


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> int:
    """Load Swin weights into `model.backbone` (a Milmer); the file may be the converter's output,
    a timm checkpoint or a HF Swin folder/file. Any `head.*` tensors are ignored. Returns tensors loaded."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise CheckpointError(f"{path}: this model has no face backbone to load weights into")
    mapped, unused, source_format, _ = _read_timm_state(path)
    mapped = {k: v for k, v in mapped.items() if not k.startswith("head.")}
    if unused:
        log.warning("%s: %d tensors are not Swin backbone weights and were ignored: %s",
                    path, len(unused), ", ".join(unused[:10]))
    load_state_checked(backbone, mapped, str(path))
    log.info("loaded %d backbone tensors from %s (%s)", len(mapped), path, source_format)
    return len(mapped)

