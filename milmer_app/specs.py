"""Source specifications as typed on the command line.

EEG:   demo (the built-in demo subject) | lsl:name=NAME | lsl:type=EEG | lsl:source_id=ID | brainflow:synthetic |
       brainflow:board=ID,serial_port=PORT,... | deap:DIR:SUBJECT:TRIAL | recording:DIR | none
Video: webcam:INDEX[,width=W,height=H,fps=F] | file:PATH | deap | recording:DIR | none

LSL and BrainFlow specs also take `map=position` (feed the model's channels in
the device's order instead of matching labels), `min_channels=FRACTION`,
`unit=uV|mV|V|nV` (what the samples are in, whatever the stream says) and
`montage=biosemi32|biosemi64` (read BioSemi position codes A1.., B1.. as the
cap's 10-20 names). LSL specs also take `pick=first` (take the first of several
matching streams instead of stopping with the list of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models.errors import SourceError
from models.pipeline.channels import MONTAGES
from models.pipeline.units import SPEC_UNITS, parse_unit

EEG_KINDS = ("lsl", "brainflow", "deap", "recording", "demo", "none")
VIDEO_KINDS = ("webcam", "file", "deap", "recording", "none")
PICKS = ("first",)


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    text: str                                   # the spec as given, for messages
    options: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    subject: int | None = None                  # deap
    trial: int | None = None                    # deap: presentation trial (1-based)

    @property
    def by_position(self) -> bool:
        return self.options.get("map", "label") == "position"

    @property
    def unit(self) -> str | None:
        """The unit forced by `unit=` ("V", "mV", "µV", "nV"), or None to go by the stream."""
        value = self.options.get("unit")
        return parse_unit(value) if value is not None else None

    @property
    def montage(self) -> str | None:
        value = self.options.get("montage")
        return value.lower() if value is not None else None

    @property
    def pick_first(self) -> bool:
        return self.options.get("pick", "").lower() == "first"

    @property
    def min_fraction(self) -> float | None:
        return self.number("min_channels")

    def number(self, key: str, kind: type[int] | type[float] = float) -> float | None:
        """Option `key` as a number (None when absent); SourceError naming the spec when it is not one."""
        value = self.options.get(key)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise SourceError(f"source spec '{self.text}': {key} must be a number, got '{value}'") from None


def _options(text: str, spec: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SourceError(f"source spec '{spec}': expected KEY=VALUE, got '{part}'")
        options[key.strip().lower()] = value.strip()
    return options


def _int(value: str, what: str, spec: str) -> int:
    try:
        return int(value.lower().lstrip("s"))
    except ValueError:
        raise SourceError(f"source spec '{spec}': {what} must be a number, got '{value}'") from None


def _checked(spec: SourceSpec) -> SourceSpec:
    """The spec, once its numeric options are known to be numbers (so a typo fails before any model loads)."""
    for key in ("timeout", "width", "height", "fps"):
        spec.number(key)
    fraction = spec.min_fraction
    if fraction is not None and not 0 < fraction <= 1:
        raise SourceError(f"source spec '{spec.text}': min_channels must be a fraction in (0, 1], got {fraction:g}")
    _check_choice(spec, "unit", SPEC_UNITS, valid=lambda value: parse_unit(value) is not None)
    _check_choice(spec, "montage", MONTAGES)
    _check_choice(spec, "pick", PICKS)
    return spec


def _check_choice(spec: SourceSpec, key: str, allowed: tuple[str, ...], valid=None) -> None:
    value = spec.options.get(key)
    if value is None:
        return
    ok = valid(value) if valid is not None else value.lower() in allowed
    if not ok:
        raise SourceError(f"source spec '{spec.text}': unknown {key} '{value}'", hint=f"use one of: {', '.join(allowed)}")


def parse_eeg_spec(spec: str) -> SourceSpec:
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("none", "demo"):
        return SourceSpec(kind, spec)
    if kind == "lsl":
        options = _options(rest, spec)
        if not {"name", "type", "source_id"} & options.keys():
            raise SourceError(f"EEG spec '{spec}': LSL needs name=, type= or source_id=",
                              hint="e.g. --eeg lsl:type=EEG")
        return _checked(SourceSpec("lsl", spec, options))
    if kind == "brainflow":
        board, _, more = rest.partition(",")
        if board.strip().lower() == "synthetic":
            options = {"board": "synthetic", **_options(more, spec)}
        else:
            options = _options(rest, spec)
        if "board" not in options:
            raise SourceError(f"EEG spec '{spec}': BrainFlow needs 'synthetic' or board=ID",
                              hint="e.g. --eeg brainflow:synthetic or brainflow:board=0,serial_port=/dev/ttyUSB0")
        return _checked(SourceSpec("brainflow", spec, options))
    if kind == "deap":
        parts = rest.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise SourceError(f"EEG spec '{spec}': expected deap:DIR:SUBJECT:TRIAL",
                              hint="e.g. --eeg deap:/data/deap:1:3 (subject 1, presentation trial 3)")
        return SourceSpec("deap", spec, path=Path(parts[0]).expanduser(),
                          subject=_int(parts[1], "SUBJECT", spec), trial=_int(parts[2], "TRIAL", spec))
    if kind == "recording":
        if not rest:
            raise SourceError(f"EEG spec '{spec}': expected recording:DIR")
        return SourceSpec("recording", spec, path=Path(rest).expanduser())
    raise SourceError(f"unknown EEG source '{spec}'", hint=f"use one of: {', '.join(EEG_KINDS)}")


def parse_video_spec(spec: str) -> SourceSpec:
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("none", "deap"):
        return SourceSpec(kind, spec)
    if kind == "webcam":
        index, _, more = rest.partition(",")
        options = _options(more, spec)
        options["index"] = str(_int(index or "0", "webcam index", spec))
        return _checked(SourceSpec("webcam", spec, options))
    if kind in ("file", "recording"):
        if not rest:
            raise SourceError(f"video spec '{spec}': expected {kind}:PATH")
        return SourceSpec(kind, spec, path=Path(rest).expanduser())
    raise SourceError(f"unknown video source '{spec}'", hint=f"use one of: {', '.join(VIDEO_KINDS)}")
