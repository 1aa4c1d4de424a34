"""An EEG recording ready to replay (`EEGFile`) and the rules for telling EEG channels from the rest:
what the MNE reader (`milmer_app.sources.file`) and the XDF reader (`milmer_app.sources.xdf`) share."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

XDF_SUFFIXES = (".xdf", ".xdfz")
# MNE channel types that are not EEG.
NON_EEG_TYPES = {"eog", "ecg", "emg", "stim", "misc", "resp", "bio", "chpi", "exci", "ias", "syst", "temperature",
                 "gsr", "ref_meg", "mag", "grad", "seeg", "dbs", "ecog", "fnirs_cw_amplitude", "whitened"}
# Labels of non-EEG channels, for files that give no channel types (EDF calls everything EEG).
_NON_EEG_LABEL = re.compile(r"^(eeg\s+)?(h?eog|v?eog|ecg|ekg|emg|status|sti|stim|trig|trigger|marker|event|acc|accel|"
                            r"gyro|mag|gsr|eda|resp|temp|plet|pulse|spo2|sao2|light|battery|counter|sample|"
                            r"x|y|z|ax|ay|az|[xyz]-?(axis|acc))([\s_.-]?\d*|[\s_-].*)?$", re.IGNORECASE)
# BioSemi's Status channel: bits 0-15 are triggers, the higher bits report the system (CMS, battery, ...).
TRIGGER_MASK = 0xFFFF


def is_non_eeg_label(label: str) -> bool:
    return bool(_NON_EEG_LABEL.match(label.strip()))


@dataclass
class EEGFile:
    """An EEG recording ready to replay: read in pieces (`read`), never whole, unless the format forces it (XDF)."""

    path: Path
    channel_names: list[str]
    srate: float
    samples: int                           # how many samples `read` serves
    read: Callable[[int, int], np.ndarray]   # (start, stop) -> (C, stop - start) float32 microvolts
    times: np.ndarray | None = None        # (samples,) seconds from the file's start, ascending; None: index / srate
    markers: list[tuple[float, str]] = field(default_factory=list)   # (seconds from start, text), sorted
    breaks: dict[int, str] = field(default_factory=dict)   # sample index -> why the data restart there
    excluded: list[str] = field(default_factory=list)      # channels left out (not EEG, or unusable)
    streams: list = field(default_factory=list)            # XDF: every stream, for a video's frame stamps
    origin: float = 0.0                    # XDF: the EEG stream's first time stamp (others are relative to it)
    unit: str = "V"                        # what the file's samples were in (converted to µV on loading)
    unit_origin: str = "source"            # "source" (the file says), "spec" (unit=), "amplitude" (judged)
    shift: Callable[[np.ndarray], np.ndarray] | None = None   # XDF: stream time -> media time (gaps shortened)
    # Trigger onsets (sample index, text) in [start, stop), found as the replay reads (no scan of the whole file)
    triggers: Callable[[int, int], list[tuple[int, str]]] | None = None

    @property
    def duration(self) -> float:
        if self.times is not None:
            return float(self.times[-1] + 1.0 / self.srate) if len(self.times) else 0.0
        return self.samples / self.srate

    def index_at(self, position: float, side: str = "left") -> int:
        """As np.searchsorted(times, position, side) (times implicit for files read in pieces)."""
        if self.times is not None:
            return int(np.searchsorted(self.times, position, side=side))
        scaled = position * self.srate
        index = math.ceil(scaled - 1e-9) if side == "left" else math.floor(scaled + 1e-9) + 1
        return min(max(index, 0), self.samples)

    def time_of(self, start: int, stop: int) -> np.ndarray:
        if self.times is not None:
            return self.times[start:stop]
        return np.arange(start, stop, dtype=np.float64) / self.srate


def in_memory(data: np.ndarray) -> Callable[[int, int], np.ndarray]:
    return lambda start, stop: data[:, start:stop]
