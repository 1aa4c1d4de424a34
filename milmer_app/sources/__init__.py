"""EEG and video sources, built from specs through the source registry (`milmer_app.sources.registry`).

Importing this package registers the built-in kinds: every module in `milmer_app/sources/kinds/`,
once. It stays light (parsing a spec must not load pylsl, OpenCV or MNE); the source classes are
imported when a source is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from milmer_app.sources import kinds
from milmer_app.sources.registry import build_sources

if TYPE_CHECKING:
    from milmer_app.sources.base import EEGSource, Source, VideoSource

__all__ = ["EEGSource", "Source", "VideoSource", "build_sources"]

for _module in sorted(info.name for info in pkgutil.iter_modules(kinds.__path__)):
    importlib.import_module(f"{kinds.__name__}.{_module}")


def __getattr__(name: str) -> Any:
    if name in ("EEGSource", "Source", "VideoSource"):
        from milmer_app.sources import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
