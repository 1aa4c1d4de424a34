"""The training configuration: defaults <- a TOML/JSON file <- command-line flags."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.config import PRESETS as MODEL_PRESETS
from models.config import MilmerConfig, preset_config
from models.errors import MilmerError
from training.protocols import PROTOCOLS

if TYPE_CHECKING:
    from models.pipeline.labels import LabelRule

PRESETS = tuple(MODEL_PRESETS)
AMP_MODES = ("auto", "bf16", "fp16", "off")
SELECT_METRICS = ("accuracy", "macro_f1", "loss")
# Channel dropout when the config leaves it unset and the model has a channel embedding.
DEFAULT_CHANNEL_DROPOUT = 0.25


class ConfigError(MilmerError):
    """A training configuration file or value that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; written to RUN_DIR/config.json.

    Defaults are the published ones (AdamW 1e-4, cosine decay to 0.1 x lr per
    epoch, batch 14, 100 epochs, seed 0). ``model`` holds `MilmerConfig` field
    overrides applied on top of the preset; ``label`` is a `LabelRule` as a dict.

    ``include_faceless``: face models also train and test on trials without face video (every
    frame masked); off by default, as published (DEAP's s23-s32 have no video).
    ``video_offset``: trial time (s, baseline included) of a video's first frame; it goes into the
    checkpoint's input contract, so prepare, training, evaluation and replay pair frames alike.
    ``channel_dropout``: probability that a training window loses each EEG channel (key-padding
    masked, as absent channels are live); None: DEFAULT_CHANNEL_DROPOUT with a channel embedding, else 0.
    ``freeze_backbone``: the face backbone keeps its initial (or backbone_weights) weights; its frame
    features are computed once and cached (`training.embeddings`) and only the layers after it train.
    A protocol variant, not the published model (which fine-tunes the backbone).
    """

    deap: str | None = None
    cache: str | None = None
    subjects: list[int] | None = None
    include_faceless: bool = False
    video_offset: float = 0.0
    protocol: str = "trial"
    folds: int = 5
    preset: str = "paper"
    model: dict[str, Any] = field(default_factory=dict)
    label: dict[str, Any] = field(default_factory=lambda: {"kind": "quadrant", "threshold": 5.0})
    backbone_weights: str | None = None
    epochs: int = 100
    batch_size: int = 14
    lr: float = 1e-4
    weight_decay: float = 0.01
    min_lr_ratio: float = 0.1
    channel_dropout: float | None = None
    seed: int = 0
    device: str = "auto"
    num_workers: int = -1
    prepare_workers: int = 1
    compile: bool = False
    freeze_backbone: bool = False
    amp: str = "auto"
    select_metric: str = "accuracy"
    tensorboard: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name, allowed in (("protocol", PROTOCOLS), ("preset", PRESETS), ("amp", AMP_MODES),
                              ("select_metric", SELECT_METRICS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name}={getattr(self, name)!r} (expected one of {', '.join(allowed)})")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            problems.append(f"device={self.device!r} (expected auto, cpu or cuda)")
        for name in ("folds", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.weight_decay < 0:
            problems.append("lr must be positive, min_lr_ratio in [0, 1], weight_decay >= 0")
        if self.channel_dropout is not None and not 0 <= self.channel_dropout < 1:
            problems.append(f"channel_dropout={self.channel_dropout} must lie in [0, 1)")
        if problems:
            raise ConfigError("invalid training configuration: " + "; ".join(problems))
        self.label_rule()
        self.model_config()

    def label_rule(self) -> LabelRule:
        # Imported here: models.pipeline.labels needs numpy, and the milmer-train parser imports this module.
        from models.pipeline.labels import LabelRule

        return LabelRule.from_dict(self.label)

    def model_config(self) -> MilmerConfig:
        """The preset with the ``model`` overrides and the label rule's class count applied."""
        base = preset_config(self.preset)
        known = {f.name for f in dataclasses.fields(MilmerConfig)}
        unknown = sorted(set(self.model) - known)
        if unknown:
            raise ConfigError(f"unknown model settings {unknown}", hint=f"known: {', '.join(sorted(known))}")
        changes = {**self.model, "num_classes": self.label_rule().num_classes}
        try:
            return base.replace(**changes)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid model settings: {exc}") from exc

    def channel_dropout_rate(self) -> float:
        if self.channel_dropout is not None:
            return self.channel_dropout
        model = self.model_config()
        return DEFAULT_CHANNEL_DROPOUT if model.channel_embedding and model.uses_eeg else 0.0

    @property
    def frozen_backbone(self) -> bool:
        """Whether the run freezes a face backbone (an EEG-only model has none to freeze)."""
        return self.freeze_backbone and self.model_config().uses_face

    @property
    def leaky(self) -> bool:
        """The paper protocol splits windows, not trials: its test figures are leaky."""
        return self.protocol == "paper"

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown settings {unknown}", hint=f"known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or JSON file: TrainConfig field names, ``[model]`` and ``[label]`` tables."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top level")
    return data


def resolve_config(file_values: dict[str, Any] | None, flag_values: dict[str, Any], source: str) -> TrainConfig:
    """Defaults, overridden by the file's values, overridden by flags that were given (not None).

    ``model`` and ``label`` tables merge key by key rather than replace each other.
    """
    merged: dict[str, Any] = TrainConfig().to_dict()
    for layer in (file_values or {}, {k: v for k, v in flag_values.items() if v is not None}):
        for key, value in layer.items():
            if key in ("model", "label") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return TrainConfig.from_dict(merged, source=source)
