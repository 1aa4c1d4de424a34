"""EEG and video sources, built from specs through the source registry (`milmer_app.sources.registry`).

This package's own import is light (parsing a spec must not load pylsl, OpenCV
or MNE); the source classes are imported when a source is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from milmer_app.sources.base import EEGSource, Source, VideoSource
    from milmer_app.sources.registry import SourceSpec

__all__ = ["EEGSource", "Source", "VideoSource", "build_sources"]


def __getattr__(name: str) -> Any:
    if name in ("EEGSource", "Source", "VideoSource"):
        from milmer_app.sources import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_sources(eeg_spec: SourceSpec, video_spec: SourceSpec, speed: float = 1.0,
                  label_rule=None, video_offset: float = 0.0) -> tuple[EEGSource | None, VideoSource | None]:
    """Unconnected sources for the two specs; a replayed EEG source and its video share one replay clock.

    ``video_offset``: the checkpoint contract's trial time of a DEAP video's first frame.
    """
    from milmer_app.sources.registry import BuildContext
    from models.errors import SourceError

    context = BuildContext(speed=speed, label_rule=label_rule, video_offset=video_offset)
    eeg = eeg_spec.descriptor.builder()(eeg_spec, context)
    context = BuildContext(speed=speed, label_rule=label_rule, eeg=eeg, video_offset=video_offset)
    video = video_spec.descriptor.builder()(video_spec, context)
    if eeg is None and video is None:
        raise SourceError("no source: both --eeg and --video are 'none'")
    return eeg, video
