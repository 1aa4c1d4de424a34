"""What the window's status bar and the headless summary show of each stream (`StreamStatus`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamStatus:
    name: str
    role: str                     # "eeg" | "video"
    connected: bool
    lost: bool
    nominal_rate: float
    effective_rate: float
    gaps: int
    dropped: int
    seconds_since_last: float
    ended: bool = False            # a replay or a video file that has played to its end
    late: int = 0                  # chunks that arrived more than 1 s after their timestamp
    masked: dict[str, str] = field(default_factory=dict)   # EEG: channels masked for their signal, and why
    problem: str = ""              # EEG: why no prediction can be made now ("no usable EEG: ..."), else ""
    delay: float = 0.0             # EEG: the pipeline's delay (window end before the newest sample), seconds
    unit: str = ""                 # EEG: the unit the device's samples arrived in, e.g. "µV", "V (assumed)"
    rate_off: bool = False         # the measured rate is more than 5 % off the nominal one
    paused: bool = False           # a replay on pause (its silence is not a loss)
    error: str | None = None       # why the source could not connect or stopped (connected is then False)

    @classmethod
    def of(cls, source, report, ended: bool, paused: bool) -> StreamStatus:
        """A source's status from its monitor's `report`; `ended`: it has played to its end."""
        working = source.error is None
        status = cls(source.name, source.role, source.connected and working, report.lost and not paused,
                     report.nominal_rate, report.effective_rate, report.gaps, report.dropped,
                     report.seconds_since_last, ended and working, report.late, rate_off=report.rate_off,
                     paused=paused, error=source.error)
        if source.role == "eeg":
            status.unit = source.unit_text()
        return status


def ends_the_run(source, sources: list) -> bool:
    """Whether `source` having finished ends the run: a replay or a video file played to its end does; a
    failed source only when no other source of `sources` is still delivering (EEG and video fail
    independently)."""
    if source.error is None:
        return source.replay is not None or source.role == "video"
    return not any(s is not source and s.connected and s.error is None and not s.finished.is_set()
                   for s in sources)
