"""A Lab Streaming Layer marker stream (strings, irregular rate): its samples become markers.

Found and reconnected with the EEG stream's rules (`StreamFinder`): name=, type=,
source_id=, timeout=; several matches are an error listing them (or pick=first);
after a loss only the same stream is reopened. liblsl's clock synchronisation
(proc_clocksync) applies the stream's clock offset, so every marker is stamped
in this machine's LSL clock, like the EEG samples it marks. A marker's text is
passed on unchanged (a numeric marker stream's values as their decimal text).
"""

from __future__ import annotations

import logging

import pylsl
from pylsl.util import LostError

from milmer_app.sources.lsl import FollowedStreamSource, StreamFinder, describe
from models.errors import SourceError

log = logging.getLogger(__name__)


class LSLMarkerSource(FollowedStreamSource):
    role = "markers"

    def __init__(self, *, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                 timeout: float = 5.0, pick_first: bool = False):
        finder = StreamFinder("marker", name=name, stype=stype, source_id=source_id, timeout=timeout,
                              pick_first=pick_first)
        super().__init__("LSL markers " + finder.query_text, finder)
        self._numeric = False
        self.count = 0          # markers received

    def _open(self) -> None:
        info = self._open_followed()
        self.name = f"LSL markers {info.name()}"
        assert self.finder.identity is not None
        log.info("%s: connected; reconnects only to %s", self.name, self.finder.identity.describe())

    def _open_inlet(self, info: pylsl.StreamInfo) -> None:
        if info.channel_count() < 1:
            raise SourceError(f"{self.name}: stream {describe(info)} has no channel")
        if info.nominal_srate() > 0:
            log.warning("%s: stream %s has a regular rate; every sample is taken as a marker",
                        self.name, describe(info))
        inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False, processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(timeout=self.finder.resolve_timeout)
        self._numeric = info.channel_format() != pylsl.cf_string
        self._inlet = inlet

    def _pull(self) -> bool:
        if self._inlet is None:
            return self._reopen()
        try:
            # The first marker as soon as it is there (pull_chunk would wait out its timeout), then the rest.
            first, stamp = self._inlet.pull_sample(timeout=0.1)
            samples, stamps = ([first], [stamp]) if first is not None else ([], [])
            if first is not None:
                more, more_stamps = self._inlet.pull_chunk(timeout=0.0)
                samples, stamps = samples + list(more), stamps + list(more_stamps)
        except LostError:
            self._drop_inlet()
            return True
        for sample, stamp in zip(samples, stamps, strict=True):
            value = sample[0] if sample else ""
            text = f"{value:g}" if self._numeric and isinstance(value, float) else str(value)
            self.count += 1
            self.emit_marker(text, float(stamp))
        return True

    def _report_loss(self, waiting_for: str) -> None:
        self.emit_event("warning", f"stream lost: {self.name}; waiting for {waiting_for}")
