"""An EEG stream from Lab Streaming Layer, resolved by name, type or source_id.

Timestamps come through liblsl's clock synchronisation and de-jittering, so
they are on this machine's LSL clock. When the outlet goes away the worker
keeps re-resolving the same query and reopens the stream when it is back.
"""

from __future__ import annotations

import logging

import numpy as np
import pylsl
from pylsl.util import LostError

from milmer_app.sources.base import EEGSource
from milmer_app.specs import SourceSpec
from models.errors import SourceError

log = logging.getLogger(__name__)

# Unit label -> factor to microvolts.
_UNIT_SCALE = {"v": 1e6, "volt": 1e6, "volts": 1e6, "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3,
               "uv": 1.0, "µv": 1.0, "μv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
               # MNE unit multipliers, as mne-lsl labels channels: "0" = volts.
               "0": 1e6, "-3": 1e3, "-6": 1.0, "-9": 1e-3}
_QUERY_KEYS = ("source_id", "name", "type")


def _first_query(options: dict[str, str]) -> tuple[str, str]:
    for key in _QUERY_KEYS:
        if key in options:
            return key, options[key]
    raise SourceError("LSL spec needs name=, type= or source_id=")


class LSLSource(EEGSource):
    def __init__(self, spec: SourceSpec, resolve_timeout: float = 5.0):
        self.query = _first_query(spec.options)
        super().__init__(f"LSL {self.query[0]}={self.query[1]}")
        self.spec = spec
        timeout = spec.number("timeout")
        self.resolve_timeout = resolve_timeout if timeout is None else timeout
        self.units: list[str] = []
        self.source_id = ""
        self._inlet: pylsl.StreamInlet | None = None
        self._scale: np.ndarray | None = None
        self._reconnecting = False
        self._new_segment = False
        self._resolver: pylsl.ContinuousResolver | None = None

    def _resolve(self, timeout: float) -> pylsl.StreamInfo | None:
        key, value = self.query
        found = pylsl.resolve_byprop(key, value, 1, timeout)
        return found[0] if found else None

    def _open_inlet(self, info: pylsl.StreamInfo) -> None:
        inlet = pylsl.StreamInlet(info, max_buflen=30, recover=False,
                                  processing_flags=pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize)
        full = inlet.info(timeout=self.resolve_timeout)
        if full.nominal_srate() <= 0:
            raise SourceError(f"{self.name}: stream '{full.name()}' has an irregular rate; "
                              "an EEG stream needs a nominal rate")
        if full.channel_format() == pylsl.cf_string:
            raise SourceError(f"{self.name}: stream '{full.name()}' carries strings, not EEG samples")
        count = full.channel_count()
        labels = full.get_channel_labels() or []
        units = full.get_channel_units() or []
        if len(labels) != count or not all(labels):
            log.warning("%s: stream has no channel labels; naming them ch1..ch%d", self.name, count)
            labels = [f"ch{i + 1}" for i in range(count)]
        units = [(u or "") for u in units] if len(units) == count else [""] * count
        if self.connected and (labels != self.channel_names or full.nominal_srate() != self.srate):
            inlet.close_stream()
            raise SourceError(f"{self.name}: stream came back with different channels or rate "
                              f"({count} ch at {full.nominal_srate()} Hz)")
        inlet.open_stream(timeout=self.resolve_timeout)
        self._inlet = inlet
        self.channel_names = list(labels)
        self.units = units
        self.srate = float(full.nominal_srate())
        self.source_id = full.source_id()
        # Show the stream's own name from now on, not the query that found it.
        self.name = f"LSL {full.name()}"
        self._scale = np.array([_UNIT_SCALE.get(u.strip().lower(), 1.0) for u in units], dtype=np.float32)[:, None]

    def _open(self) -> None:
        info = self._resolve(self.resolve_timeout)
        if info is None:
            raise SourceError(f"no LSL stream with {self.query[0]}={self.query[1]} "
                              f"found within {self.resolve_timeout:g} s",
                              hint="check that the stream is running on this machine or network (LSLAPICFG)")
        try:
            self._open_inlet(info)
        except (TimeoutError, LostError) as exc:
            raise SourceError(f"{self.name}: stream '{info.name()}' went away while it was being opened ({exc})",
                              hint="start again once the stream is steady") from exc
        # Keeps listening for the stream, so that it can be reopened quickly after a loss.
        self._resolver = pylsl.ContinuousResolver(prop=self.query[0], value=self.query[1], forget_after=1.0)
        log.info("%s: %d channels at %g Hz (source_id %r)", self.name, len(self.channel_names), self.srate,
                 self.source_id)

    def _pull(self) -> bool:
        if self._inlet is None:
            found = self._resolver.results() if self._resolver is not None else []
            if not found:
                self._stop.wait(0.1)
                return True
            try:
                self._open_inlet(found[0])
            except (TimeoutError, LostError):
                # The resolver still lists the outlet that went away; try again on the next round.
                self._stop.wait(0.1)
                return True
            self._reconnecting = False
            self._new_segment = True
            log.info("%s: stream reopened", self.name)
            return True
        try:
            # min_samples=1: return as soon as anything is there instead of waiting out the timeout.
            samples, stamps = self._inlet.pull_chunk(timeout=0.1, max_samples=1024, min_samples=1, as_numpy=True)
        except LostError:
            self._drop_inlet()
            return True
        if len(stamps):
            data = np.asarray(samples, dtype=np.float32).T
            times = np.asarray(stamps, dtype=np.float64)
            if self._new_segment:
                self.mark_discontinuity(float(times[0]))
                self._new_segment = False
            self.push(data * self._scale, times)
        return True

    def _drop_inlet(self) -> None:
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # the connection is already gone; nothing to close cleanly
                log.debug("%s: close after loss failed", self.name, exc_info=True)
            self._inlet = None
        if not self._reconnecting:
            self._reconnecting = True
            log.info("%s: connection lost; re-resolving", self.name)

    def _close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self._resolver = None
