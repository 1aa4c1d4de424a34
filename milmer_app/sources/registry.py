"""The source registry: one descriptor per source kind, for EEG and for video.

A `SourceKind` says everything the app needs to know about a kind: its spec
grammar (`KIND:HEAD,KEY=VALUE,...`), its options as a frozen dataclass (checked
once, when built, whether from a command-line spec, the GUI or stored settings),
a builder, a preflight check, its help text and its GUI page. The command line,
`build_sources`, `--help`, README's spec list and the Sources panel all read this
registry. Each kind registers itself from its own module in
`milmer_app/sources/kinds/`, which `milmer_app.sources` imports once (see
"Adding a source kind" in docs/architecture.md); this module imports none of them.

Parsing stays light: this module imports nothing heavier than the standard
library; builders and GUI pages may be named as "module:attribute" and are
imported only when used.
"""

from __future__ import annotations

import difflib
import importlib
import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from models.errors import SourceError

ROLES = ("eeg", "video", "markers")
_ROLE_TITLE = {"eeg": "EEG", "video": "video", "markers": "marker"}


class OptionError(ValueError):
    """An option value that is not allowed; `key` names the option."""

    def __init__(self, key: str, message: str, hint: str | None = None):
        super().__init__(f"{key} {message}")
        self.key = key
        self.hint = hint


def option(default: Any = MISSING, help: str = "", *, metavar: str | None = None,
           low: float | None = None, high: float | None = None, above: float | None = None,
           choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field of an options class with its help and its allowed values.

    `low`/`high`: inclusive bounds; `above`: exclusive lower bound; `choices`: allowed strings.
    Numbers are always finite.
    """
    metadata = {"help": help, "metavar": metavar, "low": low, "high": high, "above": above, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Options:
    """Base of every kind's options; checks each value against its field's limits once, when built."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _checked_value(f, hints[f.name], value))
        self.check()

    def check(self) -> None:
        """Checks between options (raise OptionError); none by default."""

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults: the kind's own first, then shared ones."""
        out = {}
        for f in own_fields_first(type(self)):
            value = getattr(self, f.name)
            if f.default is MISSING or value != f.default:
                out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class NoOptions(Options):
    pass


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need besides its options: replay speed, the label rule, the EEG source
    already built (a video kind that replays beside it shares its clock), the contract's video
    offset (trial time of a DEAP video's first frame)."""

    speed: float = 1.0
    label_rule: Any = None
    eeg: Any = None
    video_offset: float = 0.0


Builder = Callable[[Any, BuildContext], Any]


@dataclass(frozen=True)
class SourceKind:
    """One source kind. `build` and `page` are "module:attribute" (imported when used) or callables.

    `head`: the option filled by the text after `KIND:` up to the first comma (a path, an index,
    a board); `split`: a custom grammar (text after `KIND:` -> raw option strings) for kinds whose
    spec is not `HEAD,KEY=VALUE,...`; `unsplit` its inverse (options -> text after `KIND:`).
    A builder returns an unconnected Source (or None for `none`). A page is a QWidget class taking
    (runner, kind) with `options()` and `set_options(options)`; None gives a form made from the
    options' fields. `check(spec, eeg_spec)` (optional, light: no device library) looks at what can
    be known before anything heavy loads (files and folders named) and raises SourceError.
    `order`: kinds are listed by it, then in registration order.
    """

    name: str
    role: str
    title: str
    help: str
    options: type[Options] = NoOptions
    build: str | Builder | None = None
    page: str | type | None = None
    grammar: str = ""
    example: str = ""
    head: str | None = None
    split: Callable[[str], dict[str, str]] | None = None
    unsplit: Callable[[Options], str] | None = None
    replayed: bool = False          # driven by a replay clock (speed, seek, pause)
    check: str | Callable[[Any, Any], None] | None = None
    order: int = 50                 # where the GUI and the help list it among its role's kinds

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"source kind {self.name!r}: role must be one of {ROLES}")
        if self.head is not None and self.head not in {f.name for f in fields(self.options)}:
            raise ValueError(f"source kind {self.name!r}: head {self.head!r} is not an option")

    @property
    def usage(self) -> str:
        return self.grammar or self.name

    def option_fields(self) -> list[Field]:
        return list(fields(self.options))

    def builder(self) -> Builder | None:
        return _resolve(self.build)

    def page_class(self) -> type | None:
        return _resolve(self.page)

    def checker(self) -> Callable[[Any, Any], None] | None:
        return _resolve(self.check)


def _resolve(target):
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return target


# -- the registry ----------------------------------------------------------------------------
_KINDS: dict[str, dict[str, SourceKind]] = {role: {} for role in ROLES}


def register(kind: SourceKind, replace: bool = False) -> SourceKind:
    """Add a kind to the registry (a second kind of the same name and role needs `replace=True`)."""
    table = _KINDS[kind.role]
    if kind.name in table and not replace:
        raise ValueError(f"{kind.role} source kind {kind.name!r} is registered already")
    table[kind.name] = kind
    return kind


def unregister(role: str, name: str) -> None:
    _KINDS[role].pop(name, None)


def kinds(role: str) -> list[SourceKind]:
    """Registered kinds of `role` ("eeg", "video" or "markers"), by their `order`, then in registration order."""
    return sorted(_KINDS[role].values(), key=lambda kind: kind.order)


def kind_names(role: str) -> tuple[str, ...]:
    return tuple(k.name for k in kinds(role))


def get_kind(role: str, name: str, spec: str | None = None) -> SourceKind:
    table = _KINDS[role]
    key = name.strip().lower()
    if key in table:
        return table[key]
    what = f"unknown {_ROLE_TITLE[role]} source '{spec if spec is not None else name}'"
    raise SourceError(what + did_you_mean(key, table), hint=f"use one of: {', '.join(table)}")


def did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# -- specs -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SourceSpec:
    """A parsed source spec: its role, its kind's name and the kind's typed options. `text` is the
    spec as given (for messages). Two specs are equal when their kinds and options are; a spec also
    equals spec text that parses to the same."""

    role: str
    kind: str
    options: Options
    text: str = field(default="", compare=False)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = parse_spec(self.role, other)
            except SourceError:
                return False
        if not isinstance(other, SourceSpec):
            return NotImplemented
        return (self.role, self.kind, self.options) == (other.role, other.kind, other.options)

    def __hash__(self) -> int:
        return hash((self.role, self.kind, self.options))

    def __str__(self) -> str:
        return format_spec(self.role, self.kind, self.options)


def kind_of(spec: SourceSpec) -> SourceKind:
    """The registered kind a spec names."""
    return get_kind(spec.role, spec.kind)


def option_strings(options: Options) -> dict[str, str]:
    """The options that differ from their defaults, as the strings a spec or stored settings give them."""
    return {key: option_text(value) for key, value in options.given().items()}


def split_options(rest: str, head: str | None = None) -> dict[str, str]:
    """`HEAD,KEY=VALUE,...` -> raw strings; a part without '=' continues the head (a path with a comma).

    Raises OptionError for a part that is neither."""
    raw: dict[str, str] = {}
    parts = rest.split(",")
    if head is not None:
        taken = [parts.pop(0)]
        while parts and "=" not in parts[0]:
            taken.append(parts.pop(0))
        text = ",".join(taken).strip()
        if text and "=" in text.split(",")[0] and text.split("=", 1)[0].strip().isidentifier():
            parts.insert(0, text)       # no head given, only options
        elif text:
            raw[head] = text
    for part in filter(None, (p.strip() for p in parts)):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise OptionError(part, "is not KEY=VALUE")
        raw[key.strip().lower()] = value.strip()
    return raw


def join_options(values: dict[str, Any], head: str | None = None) -> str:
    parts = []
    if head is not None and head in values:
        parts.append(option_text(values[head]))
    parts += [f"{key}={option_text(value)}" for key, value in values.items() if key != head]
    return ",".join(parts)


def option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value == float(f"{value:g}") else repr(value)
    return str(value)


def parse_spec(role: str, text: str) -> SourceSpec:
    """`KIND[:REST]` -> SourceSpec; SourceError naming the spec and the option when it is wrong."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    name, _, rest = text.strip().partition(":")
    kind = get_kind(role, name, text)
    try:
        raw = kind.split(rest) if kind.split is not None else split_options(rest, kind.head)
    except OptionError as exc:
        raise SourceError(f"source spec '{text}': {exc}", hint=_example_hint(kind)) from None
    return spec_from_strings(role, kind.name, raw, text)


def spec_from_strings(role: str, name: str, raw: dict[str, str], text: str | None = None) -> SourceSpec:
    """A spec from option strings (the command line, stored settings, a GUI form)."""
    kind = get_kind(role, name)
    text = text if text is not None else f"{kind.name}:{join_options(raw, kind.head)}".rstrip(":")
    known = {f.name: f for f in fields(kind.options)}
    hints = _hints(kind.options)
    values: dict[str, Any] = {}
    where = f"source spec '{text}'"
    for key, value in raw.items():
        if key not in known:
            listed = ", ".join(known) or "none"
            raise SourceError(f"{where}: unknown option '{key}'{did_you_mean(key, known)}",
                              hint=f"{kind.name} takes: {listed}")
        try:
            values[key] = _convert(key, hints[key], value)
        except OptionError as exc:
            raise SourceError(f"{where}: {exc}", hint=_example_hint(kind)) from None
    missing = [f.name for f in known.values() if f.default is MISSING and f.default_factory is MISSING
               and f.name not in values]
    if missing:
        raise SourceError(f"{where}: {kind.name} needs {', '.join(missing)}", hint=_example_hint(kind))
    try:
        options = kind.options(**values)
    except OptionError as exc:
        raise SourceError(f"{where}: {exc}", hint=exc.hint or _example_hint(kind)) from None
    return SourceSpec(role, kind.name, options, text)


def spec_from_options(role: str, name: str, options: Options) -> SourceSpec:
    """A spec from typed options (the GUI); checked like a parsed one."""
    kind = get_kind(role, name)
    if not isinstance(options, kind.options):
        raise TypeError(f"{name}: expected {kind.options.__name__}, got {type(options).__name__}")
    return SourceSpec(role, kind.name, options, format_spec(role, name, options))


def format_spec(role: str, name: str, options: Options) -> str:
    """The spec text that parses back to `options`."""
    kind = get_kind(role, name)
    rest = kind.unsplit(options) if kind.unsplit is not None else join_options(options.given(), kind.head)
    return f"{kind.name}:{rest}" if rest else kind.name


def parse_eeg_spec(text: str) -> SourceSpec:
    return parse_spec("eeg", text)


def parse_video_spec(text: str) -> SourceSpec:
    return parse_spec("video", text)


def as_spec(role: str, value: SourceSpec | str) -> SourceSpec:
    if isinstance(value, SourceSpec):
        if value.role != role:
            raise SourceError(f"'{value.text}' is a {value.role} spec, not a {_ROLE_TITLE[role]} spec")
        return value
    return parse_spec(role, str(value))


def check_some_source(eeg: SourceSpec, video: SourceSpec) -> None:
    """SourceError when neither spec names a source."""
    if eeg.kind == "none" and video.kind == "none":
        raise SourceError("no source: both --eeg and --video are 'none'")


def build_source(spec: SourceSpec, context: BuildContext | None = None):
    """An unconnected source for `spec` (None for `none`)."""
    return kind_of(spec).builder()(spec, context or BuildContext())


def build_sources(eeg_spec: SourceSpec, video_spec: SourceSpec, speed: float = 1.0,
                  label_rule=None, video_offset: float = 0.0):
    """Unconnected (EEG source, video source) for the two specs, either None for `none`; a replayed
    EEG source and its video share one replay clock. ``video_offset``: the checkpoint contract's
    trial time of a DEAP video's first frame."""
    check_some_source(eeg_spec, video_spec)
    context = BuildContext(speed=speed, label_rule=label_rule, video_offset=video_offset)
    eeg = kind_of(eeg_spec).builder()(eeg_spec, context)
    context = BuildContext(speed=speed, label_rule=label_rule, eeg=eeg, video_offset=video_offset)
    video = kind_of(video_spec).builder()(video_spec, context)
    return eeg, video


def _example_hint(kind: SourceKind) -> str:
    return f"{kind.usage}" + (f", e.g. {kind.example}" if kind.example else "")


# -- values --------------------------------------------------------------------------------
_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _base_type(hint: Any) -> Any:
    """int | None -> int; Path -> Path."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return args[0]
    return hint


def _convert(key: str, hint: Any, raw: str) -> Any:
    kind = _base_type(hint)
    text = raw.strip()
    if not text:
        raise OptionError(key, "is empty")
    if kind is bool:
        lowered = text.lower()
        # Only the documented spellings (help: true|false): 'yes' or '1' read as a guess at the syntax.
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise OptionError(key, f"must be true or false, got '{raw}'")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise OptionError(key, f"must be a whole number, got '{raw}'") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise OptionError(key, f"must be a number, got '{raw}'") from None
    if kind is Path:
        return Path(text).expanduser()
    return text


def _checked_value(f: Field, hint: Any, value: Any) -> Any:
    meta = f.metadata
    kind = _base_type(hint)
    key = f.name
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(key, f"must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(key, f"must be a finite number, got {value}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise OptionError(key, f"must be a whole number, got {value!r}")
    elif kind is Path:
        value = Path(value).expanduser()
        if not str(value).strip() or str(value) == ".":
            raise OptionError(key, "is empty")
    elif kind is str:
        value = str(value).strip()
        if not value:
            raise OptionError(key, "is empty")
    if kind in (int, float):
        low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
        if above is not None and not value > above:
            raise OptionError(key, f"must be above {above:g}, got {value:g}")
        if low is not None and value < low:
            raise OptionError(key, f"must be at least {low:g}, got {value:g}")
        if high is not None and value > high:
            raise OptionError(key, f"must be at most {high:g}, got {value:g}")
    choices = meta.get("choices")
    if choices:
        match = next((c for c in choices if c.lower() == str(value).lower()), None)
        if match is None:
            close = did_you_mean(str(value).lower(), [c.lower() for c in choices])
            error = OptionError(key, "", hint=f"use one of: {', '.join(choices)}")
            error.args = (f"unknown {key} '{value}'{close}",)
            raise error
        value = match
    return value


@dataclass(frozen=True)
class NumberLimits:
    """What a numeric option allows: inclusive `low`/`high`, exclusive `above`, whole numbers only."""

    low: float | None
    high: float | None
    above: float | None
    integer: bool

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high) and (self.above is None or value > self.above)
                and (not self.integer or isinstance(value, int) or value.is_integer()))


def number_limits(options: type[Options]) -> dict[str, NumberLimits]:
    """The numeric options of an options class and their limits (the fuzzer reads them from here)."""
    hints = _hints(options)
    limits = {}
    for f in fields(options):
        kind = _base_type(hints[f.name])
        if kind in (int, float):
            meta = f.metadata
            limits[f.name] = NumberLimits(meta.get("low"), meta.get("high"), meta.get("above"), kind is int)
    return limits


# -- help -----------------------------------------------------------------------------------
def option_help(f: Field) -> str:
    meta = f.metadata
    text = meta.get("help", "")
    if f.default is not MISSING and f.default is not None:
        text += f" [default {option_text(f.default)}]"
    return text.strip()


def option_metavar(f: Field, hint: Any) -> str:
    meta = f.metadata
    if meta.get("metavar"):
        return meta["metavar"]
    if meta.get("choices"):
        return "|".join(meta["choices"])
    kind = _base_type(hint)
    return {int: "N", float: "X", Path: "PATH", bool: "true|false"}.get(kind, "TEXT")


def own_fields_first(cls: type[Options]) -> list[Field]:
    """The option fields of `cls`, those it declares itself before inherited (shared) ones."""
    own = set(cls.__dict__.get("__annotations__", {}))
    return sorted(fields(cls), key=lambda f: f.name not in own)


def describe_kinds(role: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """For help texts: (usage, help, [(option=METAVAR, help)]) per kind of `role`; options that the
    grammar already spells out (the head, a custom grammar's parts) are left out."""
    out = []
    for kind in kinds(role):
        hints = _hints(kind.options)
        opts = [(f"{f.name}={option_metavar(f, hints[f.name])}", option_help(f))
                for f in own_fields_first(kind.options) if f.name != kind.head and kind.split is None]
        out.append((kind.usage, kind.help, opts))
    return out


def help_text(role: str, width: int = 100) -> str:
    """Plain-text reference of every kind of `role` and its options (the CLI's --help)."""
    import textwrap

    lines = [f"{_ROLE_TITLE[role]} sources (--{role} SPEC):"]
    for usage, text, opts in describe_kinds(role):
        lines.append(f"  {usage}")
        lines += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
        for name, desc in opts:
            lines += textwrap.wrap(f"{name}: {desc}", width, initial_indent="      ",
                                   subsequent_indent="          ")
    return "\n".join(lines)


def markdown_reference() -> str:
    """README's list of source specs (a test checks that README holds exactly this)."""
    lines = []
    for role in ROLES:
        lines.append(f"{_ROLE_TITLE[role] if role == 'eeg' else _ROLE_TITLE[role].capitalize()} sources "
                     f"(`--{role}`):")
        lines.append("")
        for usage, text, opts in describe_kinds(role):
            lines.append(f"- `{usage}`: {text}")
            for name, desc in opts:
                lines.append(f"  - `{name}`: {desc}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


README_BEGIN = "<!-- source-kinds:begin (generated by `python -m milmer_app.sources README.md`) -->"
README_END = "<!-- source-kinds:end -->"


def with_reference(text: str) -> str:
    """`text` (README) with the block between the markers replaced by `markdown_reference()`."""
    head, begin, rest = text.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError("README has no source-kinds markers")
    return f"{head}{README_BEGIN}\n{markdown_reference()}{README_END}{tail}"
