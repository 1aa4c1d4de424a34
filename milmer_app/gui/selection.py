"""What the user picked in the sources panel, as plain typed data (no Qt).

The EEG and video choices are `SourceSpec`s: a registry kind with its typed
options, the same objects the command line parses into. A selection becomes
an `EngineConfig` directly (`engine_config`), and is stored in the settings as
the kind plus its option values (`to_dict`/`from_dict`), checked again on load.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path

from milmer_app.engine_config import EngineConfig, SessionChoice
from milmer_app.sources.registry import option_strings
from milmer_app.specs import SourceSpec, as_spec, spec_from_options, spec_from_strings
from models.errors import MilmerError

log = logging.getLogger(__name__)


def as_bool(raw: object) -> bool:
    """A stored flag as a bool: INI settings hand back strings such as "true" or "1"."""
    return raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class SourceSelection(SessionChoice):
    """The sources and model picked (`SessionChoice`), or the demo (`demo`: the demo subject and its
    video are run; the sources picked are kept for when the demo is switched off)."""

    demo: bool = True

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
        return cls(demo=bool(getattr(args, "demo", False)), **cls.values_from_args(args))

    def engine_config(self, command_line: argparse.Namespace | None = None) -> EngineConfig:
        """The EngineConfig for this selection. The outputs (predictions, record, LSL outlet) come
        from the window's own command line, if any (`EngineConfig.output_options`)."""
        eeg, video = (("demo", "deap") if self.demo else (self.eeg, self.video))
        outputs = EngineConfig.output_options(command_line) if command_line is not None else {}
        return EngineConfig(eeg=eeg, video=video, checkpoint=self.checkpoint, device=self.device, hop=self.hop,
                            speed=self.speed, **outputs)

    def absolute(self) -> SourceSelection:
        """Every path resolved against the current folder, so that the stored selection means the same
        when the window is next started from another folder or a desktop icon."""
        checkpoint = self.checkpoint
        if checkpoint != "demo":
            checkpoint = str(Path(checkpoint).expanduser().resolve())
        return replace(self, eeg=_absolute_spec(self.eeg), video=_absolute_spec(self.video), checkpoint=checkpoint)

    def problem(self) -> tuple[str, str] | None:
        """The first field ("eeg", "video", "checkpoint") naming a file or folder that is not there (or not
        of the right kind), with the reason; None when all are there."""
        from milmer_app.preflight import check_checkpoint, check_spec_paths

        checks = [] if self.demo else [("eeg", lambda: check_spec_paths(self.eeg, self.eeg)),
                                       ("video", lambda: check_spec_paths(self.video, self.eeg))]
        checks.append(("checkpoint", lambda: check_checkpoint(self.checkpoint)))
        for field, check in checks:
            try:
                check()
            except MilmerError as exc:
                return field, str(exc)
        return None

    def describe(self) -> str:
        if self.demo:
            return "demo"
        model = self.checkpoint if self.checkpoint == "demo" else Path(self.checkpoint).stem
        return f"EEG {self.eeg} · video {self.video} · model {model}"

    # -- settings ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        """Flat values for the settings: the kinds and their options as `eeg/NAME`, `video/NAME`."""
        values: dict[str, object] = {"demo": self.demo, "checkpoint": self.checkpoint, "device": self.device,
                                     "hop": self.hop, "speed": self.speed}
        for role, spec in (("eeg", self.eeg), ("video", self.video)):
            assert isinstance(spec, SourceSpec)
            values[f"{role}/kind"] = spec.kind
            for key, value in option_strings(spec.options).items():
                values[f"{role}/{key}"] = value
        return values

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SourceSelection:
        """Rebuild from stored values; unknown keys are ignored, bad values keep their defaults
        (with a warning naming what was wrong)."""
        selection = cls()
        changes: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ("eeg", "video"):
                spec = _stored_spec(f.name, values)
                if spec is not None:
                    changes[f.name] = spec
                continue
            if values.get(f.name) is None:
                continue
            default = getattr(selection, f.name)
            raw = values[f.name]
            try:
                if isinstance(default, bool):
                    changes[f.name] = as_bool(raw)
                elif isinstance(default, float):
                    changes[f.name] = float(raw)
                else:
                    changes[f.name] = str(raw)
                replace(selection, **{f.name: changes[f.name]})      # checked as the selection checks it
            except (TypeError, ValueError, MilmerError):
                changes.pop(f.name, None)
        return replace(selection, **changes)


def _absolute_spec(spec: SourceSpec) -> SourceSpec:
    """`spec` with every path option resolved to an absolute path."""
    options = spec.options
    if not is_dataclass(options):
        return spec
    paths = {f.name: Path(value).expanduser().resolve() for f in fields(options)
             if isinstance(value := getattr(options, f.name), Path) and not value.is_absolute()}
    return spec_from_options(spec.role, spec.kind, replace(options, **paths)) if paths else spec


def _stored_spec(role: str, values: dict[str, object]) -> SourceSpec | None:
    try:
        kind = values.get(f"{role}/kind")
        if kind is None:
            legacy = values.get(role)       # settings written before the registry: the spec text
            return as_spec(role, str(legacy)) if legacy else None
        prefix = f"{role}/"
        options = {key[len(prefix):]: str(value) for key, value in values.items()
                   if key.startswith(prefix) and key != f"{role}/kind" and value is not None}
        return spec_from_strings(role, str(kind), options)
    except MilmerError as exc:
        log.warning("stored %s source ignored: %s", role, exc)
        return None
