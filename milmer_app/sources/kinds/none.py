"""`none`: no EEG (face only), no video (EEG only), no marker stream."""

from __future__ import annotations

from milmer_app.sources.registry import BuildContext, SourceKind, SourceSpec, register


def build_nothing(spec: SourceSpec, context: BuildContext) -> None:
    return None


register(SourceKind("none", "eeg", "None", "no EEG (face only)", build=build_nothing, order=90))
register(SourceKind("none", "video", "None", "no video (EEG only)", build=build_nothing, order=0))
register(SourceKind("none", "markers", "None", "no marker stream", build=build_nothing, order=0))
