"""What the engine runs, as plain typed data: light (no torch, no Qt, no device library).

`SessionChoice` is the sources and the model: what milmer-app's command line names and what
the window's Sources panel picks (`milmer_app.gui.selection.SourceSelection` builds on it).
`EngineConfig` adds the outputs and the engine's own settings.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from milmer_app.specs import SourceSpec, as_spec
from models.errors import MilmerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionChoice:
    """The sources (typed specs from the registry) and the model.

    `eeg` and `video` accept spec text ("lsl:type=EEG") or a parsed `SourceSpec`; text is parsed
    here, so a bad spec fails (SourceError) before any model loads.
    """

    eeg: SourceSpec | str = "none"          # see `milmer-app --help` for every kind and option
    video: SourceSpec | str = "none"
    checkpoint: str = "demo"                # path to NAME(.safetensors|.json) or "demo"
    device: str = "auto"
    hop: float = 1.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hop", "speed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise MilmerError(f"--{name} must be positive, got {value}")
        object.__setattr__(self, "eeg", as_spec("eeg", self.eeg))
        object.__setattr__(self, "video", as_spec("video", self.video))

    @property
    def eeg_spec(self) -> SourceSpec:
        assert isinstance(self.eeg, SourceSpec)
        return self.eeg

    @property
    def video_spec(self) -> SourceSpec:
        assert isinstance(self.video, SourceSpec)
        return self.video

    @staticmethod
    def values_from_args(args: argparse.Namespace) -> dict[str, Any]:
        """The choice's fields as milmer-app's command line gives them (unnamed ones at their defaults)."""
        given = {name: getattr(args, name, None) for name in ("eeg", "video", "checkpoint", "device", "hop", "speed")}
        return {"eeg": given["eeg"] or "none", "video": given["video"] or "none",
                "checkpoint": given["checkpoint"] or "demo", "device": given["device"] or "auto",
                "hop": 1.0 if given["hop"] is None else given["hop"],
                "speed": 1.0 if given["speed"] is None else given["speed"]}


@dataclass(frozen=True)
class EngineConfig(SessionChoice):
    """A session choice with its outputs. The GUI builds it from the Sources panel
    (`SourceSelection.engine_config`); the command line through `from_args`."""

    markers: SourceSpec | str = "none"      # a marker stream (recorded and shown beside the EEG)
    predictions: Path | None = None
    record: Path | None = None
    lsl_outlet: str | None = None
    min_channels: float = 0.25    # fraction of the model's EEG channels that must be found by label and usable
    embedding_cache: bool = True
    dump_bags: Path | None = None  # write every bag fed to the model as DIR/bag-NNNNNN.npz

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "markers", as_spec("markers", self.markers))
        if not 0 < self.min_channels <= 1:
            raise MilmerError(f"min_channels must be a fraction in (0, 1], got {self.min_channels}")
        for name in ("predictions", "record", "dump_bags"):
            value = getattr(self, name)
            object.__setattr__(self, name, Path(value) if value else None)

    @staticmethod
    def output_options(args: argparse.Namespace) -> dict[str, Any]:
        """The output settings of milmer-app's command line (the window keeps them across reconnects)."""
        return {"markers": getattr(args, "markers", None) or "none",
                "predictions": getattr(args, "predictions", None), "record": getattr(args, "record", None),
                "lsl_outlet": getattr(args, "lsl_outlet", None), "dump_bags": getattr(args, "dump_bags", None)}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineConfig:
        """From milmer-app's options; `--demo` fills in the demo subject, its video and the demo model."""
        values = cls.values_from_args(args)
        if args.demo:
            values.update(eeg=args.eeg or "demo", video=args.video or "deap")
        elif not args.eeg and not args.video:
            raise MilmerError("no source given", hint="use --eeg SPEC and/or --video SPEC, or --demo")
        elif not args.checkpoint:
            log.warning("no --checkpoint given: using the DEMO model")
        return cls(**values, **cls.output_options(args))
