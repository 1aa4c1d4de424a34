"""LSL streams as the app lists and tells them apart, without Qt (the Sources panel's table, the LSL sources).

pylsl is imported only by `discover_lsl_streams`, so listing helpers stay light.
"""

from __future__ import annotations

from dataclasses import dataclass

LSL_WAIT_S = 1.5     # how long a discovery listens for outlets


def same_stream(a, b) -> bool:
    """Whether `a` and `b` (anything with `source_id`, `name` and `hostname`) are the same outlet: by
    source_id where either has one, else by name and host (an outlet's uid changes whenever it restarts,
    so it cannot tell a restarted stream from another one)."""
    if a.source_id or b.source_id:
        return a.source_id == b.source_id
    return (a.name, a.hostname) == (b.name, b.hostname)


@dataclass(frozen=True)
class LslStreamEntry:
    """One stream as a discovery lists it."""

    name: str
    type: str
    nominal_rate: float
    channels: int
    source_id: str
    hostname: str

    @property
    def spec(self) -> str:
        return f"lsl:source_id={self.source_id}" if self.source_id else f"lsl:name={self.name}"

    def same_stream(self, other) -> bool:
        return same_stream(self, other)


def discover_lsl_streams(wait_time: float = LSL_WAIT_S) -> list[LslStreamEntry]:
    """Every LSL stream visible from here (blocking for `wait_time` seconds), EEG streams first."""
    import pylsl

    entries = [LslStreamEntry(info.name(), info.type(), info.nominal_srate(), info.channel_count(),
                              info.source_id(), info.hostname())
               for info in pylsl.resolve_streams(wait_time)]
    return sorted(entries, key=lambda e: (e.type != "EEG", e.name))
