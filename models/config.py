"""The Milmer hyper-parameters as one dataclass, with the published and a CPU-sized preset."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.errors import CheckpointError

MODALITIES = ("eeg,face", "eeg", "face")
# Face-frame selection. Published (the paper's ablation; published code name in brackets): first ("none"),
# global_weights ("softmax"), amil ("amil"), topk ("attention_topk"), weighted_topk ("attention_weighted_topk").
# Ours: mean (plain average of the frames' tokens), gated_amil (Ilse et al.'s gated attention pooling the
# frames' tokens, this project's former "amil").
MIL_MODES = ("first", "mean", "global_weights", "amil", "gated_amil", "topk", "weighted_topk")
PUBLISHED_MIL_MODES = ("first", "global_weights", "amil", "topk", "weighted_topk")
FUSION_MODES = ("cross_attention", "mlp", "none")
# What a checkpoint's provenance, a run's metrics and the app say of a model trained with its face backbone
# frozen (training --freeze-backbone): a protocol variant, not the published (fine-tuned) model.
FROZEN_BACKBONE_LABEL = "face backbone frozen"
# Swin shape arguments that a config may override. Anything else timm.create_model accepts
# (checkpoint_path, pretrained_cfg_overlay, an "hf-hub:" name, ...) would let a checkpoint's
# JSON make the loader read files or reach the network.
BACKBONE_ARGS = ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "patch_size", "drop_path_rate")
_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def field_type_problems(instance: Any) -> list[str]:
    """Fields of a dataclass (annotated int, float, str, bool or dict) whose value has another type.

    Configs come from JSON files; a value of the wrong type must be named, not fail later deep inside torch.
    """
    problems = []
    for f in dataclasses.fields(instance):
        expected = dict if str(f.type).startswith("dict") else _SCALAR_TYPES.get(str(f.type))
        if expected is None:
            continue
        value = getattr(instance, f.name)
        # bool is an int to isinstance(); JSON true is no layer count.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            problems.append(f"{f.name}={value!r} is not of type {f.type}")
    return problems


@dataclass(frozen=True)
class MilmerConfig:
    """Everything needed to build a `Milmer` network.

    The backbone is a timm Swin Transformer: `backbone` is a timm model name and
    `backbone_kwargs` overrides its constructor arguments (the tiny preset shrinks
    Swin-T this way). Its last-stage tokens are projected to `d_model` when their
    width differs (Swin-T: 768 = d_model, no projection).
    """

    preset: str = "paper"
    backbone: str = "swin_tiny_patch4_window7_224"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    num_instances: int = 10
    top_k: int = 3
    eeg_channels: int = 32
    eeg_samples: int = 384
    num_classes: int = 4
    d_model: int = 768
    num_queries: int = 147
    encoder_layers: int = 2
    num_heads: int = 12
    ff_dim: int = 2048
    dropout: float = 0.2
    cls_dropout: float = 0.1
    mil_hidden: int = 128
    mlp_hidden: int = 3072
    modalities: str = "eeg,face"
    mil: str = "weighted_topk"
    fusion: str = "cross_attention"
    channel_embedding: bool = False

    def __post_init__(self) -> None:
        problems = field_type_problems(self)
        if problems:
            raise ValueError("invalid MilmerConfig: " + "; ".join(problems))
        if not re.fullmatch(r"swin[a-z0-9_]*", str(self.backbone)):
            problems.append(f"backbone={self.backbone!r} (expected a timm Swin model name such as "
                            "'swin_tiny_patch4_window7_224')")
        unknown_args = sorted(set(self.backbone_kwargs) - set(BACKBONE_ARGS))
        if unknown_args:
            problems.append(f"backbone_kwargs {unknown_args} (allowed: {', '.join(BACKBONE_ARGS)})")
        if self.modalities not in MODALITIES:
            problems.append(f"modalities={self.modalities!r} (expected one of {MODALITIES})")
        if self.mil not in MIL_MODES:
            problems.append(f"mil={self.mil!r} (expected one of {MIL_MODES})")
        if self.fusion not in FUSION_MODES:
            problems.append(f"fusion={self.fusion!r} (expected one of {FUSION_MODES})")
        if not 1 <= self.top_k <= self.num_instances:
            problems.append(f"top_k={self.top_k} must lie in 1..num_instances={self.num_instances}")
        if self.d_model % self.num_heads:
            problems.append(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        for name in ("image_size", "num_instances", "eeg_channels", "eeg_samples", "num_classes",
                     "d_model", "num_queries", "encoder_layers", "ff_dim", "mil_hidden", "mlp_hidden"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        if problems:
            raise ValueError("invalid MilmerConfig: " + "; ".join(problems))

    @property
    def uses_eeg(self) -> bool:
        return "eeg" in self.modalities.split(",")

    @property
    def uses_face(self) -> bool:
        return "face" in self.modalities.split(",")

    @property
    def selected_instances(self) -> int:
        """How many instances' token sets leave the MIL step (amil leaves one pooled token, not a set)."""
        return self.top_k if self.mil in ("topk", "weighted_topk", "global_weights") else 1

    @classmethod
    def paper(cls) -> MilmerConfig:
        """The published hyper-parameters (Swin-T at 224 px, 10 instances, weighted top-3, 147 queries)."""
        return cls()

    @classmethod
    def tiny(cls) -> MilmerConfig:
        """A ~0.16 M parameter member of the same family for tests and the demo.

        Swin with 2 stages (embed 32, depths 1+1, window 8) at 64 px gives 8 x 8 = 64
        tokens of width 64 per frame; 4 instances per bag, weighted top-2, 16 queries.
        EEG format (32 x 384) and the 4 classes are DEAP's, as in the paper preset.
        """
        return cls(
            preset="tiny",
            backbone="swin_tiny_patch4_window7_224",
            backbone_kwargs={"embed_dim": 32, "depths": [1, 1], "num_heads": [2, 4], "window_size": 8,
                             "drop_path_rate": 0.0},
            image_size=64,
            num_instances=4,
            top_k=2,
            d_model=64,
            num_queries=16,
            encoder_layers=1,
            num_heads=4,
            ff_dim=128,
            dropout=0.1,
            cls_dropout=0.1,
            mil_hidden=32,
            mlp_hidden=256,
        )

    def replace(self, **changes: Any) -> MilmerConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MilmerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"model config has unknown fields {unknown}",
                                  hint="the checkpoint was written by a newer milmer version")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"model config is invalid: {exc}") from exc


PRESETS: dict[str, Callable[[], MilmerConfig]] = {"paper": MilmerConfig.paper, "tiny": MilmerConfig.tiny}


def preset_config(name: str) -> MilmerConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None
