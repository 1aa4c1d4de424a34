"""`--eeg lsl:...` and `--markers lsl:...`: a Lab Streaming Layer EEG or marker stream (the sources
themselves: `milmer_app.sources.lsl` and `milmer_app.sources.lsl_markers`)."""

from __future__ import annotations

from dataclasses import dataclass

from milmer_app.sources.channel_options import UNITS, ChannelOptions
from milmer_app.sources.registry import BuildContext, OptionError, Options, SourceKind, SourceSpec, option, register

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class LslStreamOptions(Options):
    """Which LSL stream: shared by the EEG and the marker stream."""

    name: str | None = option(None, "stream name")
    type: str | None = option(None, "stream type, e.g. EEG or Markers")
    source_id: str | None = option(None, "stream source_id (identifies a device across restarts)", metavar="ID")
    timeout: float | None = option(None, "seconds to wait for the stream [default 5]", above=0.0, high=3600.0,
                                   metavar="S")
    pick: str | None = option(None, "when several streams match: take the first instead of stopping with the "
                                    "list of them", choices=("first",))

    def check(self) -> None:
        if not (self.name or self.type or self.source_id):
            raise OptionError("stream", "needs name=, type= or source_id=")

    def finder_arguments(self) -> dict:
        """The keyword arguments of `milmer_app.sources.lsl.StreamFinder` these options stand for."""
        return {"name": self.name, "stype": self.type, "source_id": self.source_id,
                "timeout": DEFAULT_TIMEOUT if self.timeout is None else self.timeout,
                "pick_first": self.pick == "first"}


@dataclass(frozen=True, kw_only=True)
class LslOptions(LslStreamOptions, ChannelOptions):
    unit: str | None = option(None, "what the samples are in, overriding the stream's own unit labels "
                                    "(default: the labels, else judged from the amplitude)", choices=UNITS)


def build_lsl(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.lsl import LSLSource

    o: LslOptions = spec.options
    return LSLSource(unit=o.unit, **o.finder_arguments())


def build_lsl_markers(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.lsl_markers import LSLMarkerSource

    return LSLMarkerSource(**spec.options.finder_arguments())


register(SourceKind("lsl", "eeg", "LSL stream",
                    "a Lab Streaming Layer stream, found by name, type and/or source_id (a stream must match "
                    "all that are given)", LslOptions, build_lsl, "milmer_app.gui.source_pages:LslPage",
                    grammar="lsl:name=NAME|type=TYPE|source_id=ID[,OPTION=VALUE...]", example="lsl:type=EEG",
                    order=20))
register(SourceKind("lsl", "markers", "LSL marker stream",
                    "a Lab Streaming Layer marker stream (strings), found like an LSL EEG stream; its markers are "
                    "recorded with their text, stamped in the LSL clock, and drawn on the EEG traces",
                    LslStreamOptions, build_lsl_markers,
                    grammar="lsl:name=NAME|type=TYPE|source_id=ID[,OPTION=VALUE...]", example="lsl:type=Markers",
                    order=20))
