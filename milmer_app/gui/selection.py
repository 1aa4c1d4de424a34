"""What the user picked in the sources panel, as plain data (no Qt).

A `SourceSelection` becomes the same argument namespace the command line builds,
so the engine configuration always goes through `EngineConfig.from_args` and the
window never has its own idea of what `--demo` means.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path


def as_bool(raw: object) -> bool:
    """A stored flag as a bool: INI settings hand back strings such as "true" or "1"."""
    return raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class SourceSelection:
    demo: bool = True
    eeg: str = "none"            # engine EEG spec, e.g. "lsl:name=Cap", "brainflow:synthetic"
    video: str = "none"          # engine video spec, e.g. "webcam:0", "file:/x.avi", "deap"
    checkpoint: str = "demo"
    device: str = "auto"
    hop: float = 1.0
    speed: float = 1.0

    @classmethod
    def demo_selection(cls) -> SourceSelection:
        return cls()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SourceSelection | None:
        """The selection named on the command line, or None when it names no source."""
        named = bool(getattr(args, "demo", False)) or any(
            getattr(args, key, None) for key in ("eeg", "video", "checkpoint"))
        if not named:
            return None
        default = cls()
        return cls(
            demo=bool(getattr(args, "demo", False)),
            eeg=getattr(args, "eeg", None) or default.eeg,
            video=getattr(args, "video", None) or default.video,
            checkpoint=getattr(args, "checkpoint", None) or default.checkpoint,
            device=getattr(args, "device", None) or default.device,
            hop=float(getattr(args, "hop", None) or default.hop),
            speed=float(getattr(args, "speed", None) or default.speed),
        )

    def to_args(self, base: argparse.Namespace | None = None) -> argparse.Namespace:
        """The namespace `EngineConfig.from_args` expects. Every other option of `base`, the window's
        own command line, is carried over as it is (outputs such as --predictions, --record,
        --lsl-outlet and any added later), so the window's engine gets them as a headless one would."""
        values = dict(vars(base)) if base is not None else {
            "predictions": None, "record": None, "lsl_outlet": None}
        values.update({
            "demo": self.demo,
            "eeg": None if self.demo else self.eeg,
            "video": None if self.demo else self.video,
            "checkpoint": None if self.demo and self.checkpoint == "demo" else self.checkpoint,
            "device": self.device,
            "hop": self.hop,
            "speed": self.speed,
            "duration": None,
            "quit_after": None,
            "headless": False,
        })
        return argparse.Namespace(**values)

    def describe(self) -> str:
        if self.demo:
            return "demo"
        model = self.checkpoint if self.checkpoint == "demo" else Path(self.checkpoint).stem
        return f"EEG {self.eeg} · video {self.video} · model {model}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SourceSelection:
        """Rebuild from stored values, ignoring unknown keys and keeping defaults for bad ones."""
        selection = cls()
        changes: dict[str, object] = {}
        for field in fields(cls):
            if field.name not in values or values[field.name] is None:
                continue
            default = getattr(selection, field.name)
            raw = values[field.name]
            try:
                if isinstance(default, bool):
                    changes[field.name] = as_bool(raw)
                elif isinstance(default, float):
                    changes[field.name] = float(raw)
                else:
                    changes[field.name] = str(raw)
            except (TypeError, ValueError):
                continue
        return replace(selection, **changes)
