"""Strict JSON out: a non-finite float becomes null, never a bare NaN/Infinity that other parsers reject."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from models import atomic


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN/Inf float (also inside dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def write_atomic(path: Path, value: Any) -> None:
    """Write `value` as strict JSON (indent 2) to `path` atomically and durably: a crash leaves the old
    file or the new one, never half of one."""
    atomic.write_text(path, dumps(value, indent=2) + "\n")
