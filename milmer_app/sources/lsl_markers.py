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

from milmer_app.sources.base import Source
from milmer_app.sources.lsl import StreamFinder, describe
from models.errors import SourceError

log = logging.getLogger(__name__)


class LSLMarkerSource(Source):
    role = "markers"

    def __init__(self, *, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                 timeout: float = 5.0, pick_first: bool = False):
        self.finder = StreamFinder("marker", name=name, stype=stype, source_id=source_id, timeout=timeout,
                                   pick_first=pick_first)
        super().__init__("LSL markers " + self.finder.query_text)
        self._inlet: pylsl.StreamInlet | None = None
        self._numeric = False
        self._lost = False
        self.count = 0          # markers received

    def _open(self) -> None:
        finder = self.finder
        log.info("%s: resolving the stream (up to %g s)", self.name, finder.resolve_timeout)
        info = finder.find()
        try:
            self._open_inlet(info)
        except (TimeoutError, LostError) as exc:
            raise SourceError(f"{self.name}: stream '{info.name()}' went away while it was being opened ({exc})",
                              hint="start again once the stream is steady") from exc
        finder.follow(info)
        self.name = f"LSL markers {info.name()}"
        assert finder.identity is not None
        log.info("%s: connected; reconnects only to %s", self.name, finder.identity.describe())

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

    def _reopen(self) -> bool:
        info = self.finder.same_stream(lambda message: self.emit_event("warning", f"{self.name}: {message}"))
        if info is None:
            self._stop.wait(0.1)
            return True
        try:
            self._open_inlet(info)
        except (TimeoutError, LostError):
            self._stop.wait(0.1)
            return True
        self.finder.reopened(info)
        self._lost = False
        self.emit_event("info", f"{self.name}: reconnected to the same stream {describe(info)}")
        return True

    def _drop_inlet(self) -> None:
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # the connection is already gone; nothing to close cleanly
                log.debug("%s: close after loss failed", self.name, exc_info=True)
            self._inlet = None
        if not self._lost:
            self._lost = True
            identity = self.finder.identity
            self.emit_event("warning", f"stream lost: {self.name}; waiting for "
                                       f"{identity.describe() if identity else 'the stream'}")

    def _close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self.finder.close()
