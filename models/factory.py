"""Build a Milmer from a config or a preset name."""

from __future__ import annotations

from collections.abc import Callable

from models.config import MilmerConfig
from models.milmer import Milmer

PRESETS: dict[str, Callable[[], MilmerConfig]] = {"paper": MilmerConfig.paper, "tiny": MilmerConfig.tiny}


def preset_config(name: str) -> MilmerConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None


def create_model(config: MilmerConfig | str) -> Milmer:
    """A freshly initialised Milmer (random weights; no download ever)."""
    return Milmer(preset_config(config) if isinstance(config, str) else config)
