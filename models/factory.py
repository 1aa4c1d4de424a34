"""Build a Milmer from a config or a preset name."""

from __future__ import annotations

from models.config import PRESETS, MilmerConfig, preset_config
from models.milmer import Milmer

__all__ = ["PRESETS", "create_model", "preset_config"]


def create_model(config: MilmerConfig | str) -> Milmer:
    """A freshly initialised Milmer (random weights; no download ever)."""
    return Milmer(preset_config(config) if isinstance(config, str) else config)
