"""Source specifications as typed on the command line: `KIND[:HEAD][,KEY=VALUE...]`.

The kinds, their grammar and their options live in the source registry
(`milmer_app.sources.registry`, built-ins in `milmer_app/sources/kinds/`);
this module is the short name the rest of the app parses specs through.
`milmer-app --help` lists every kind and option.
"""

from __future__ import annotations

from milmer_app.sources.registry import (
    SourceSpec,
    as_spec,
    format_spec,
    kind_names,
    parse_eeg_spec,
    parse_spec,
    parse_video_spec,
    spec_from_options,
    spec_from_strings,
)

__all__ = ["SourceSpec", "as_spec", "eeg_kinds", "format_spec", "parse_eeg_spec", "parse_spec",
           "parse_video_spec", "spec_from_options", "spec_from_strings", "video_kinds"]


def eeg_kinds() -> tuple[str, ...]:
    return kind_names("eeg")


def video_kinds() -> tuple[str, ...]:
    return kind_names("video")
