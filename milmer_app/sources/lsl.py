"""An EEG stream from Lab Streaming Layer, resolved by name, type and/or source_id.

Which stream: every stream matching all the spec's keys is looked for (the first
answer plus a short wait for the others). Several matches are an error listing
them, unless the spec says `pick=first`. Once connected, the source reconnects
only to the same stream: the same source_id, or, for a stream without one, the
same name on the same host (the uid changes whenever an outlet restarts, so it
cannot tell a restarted stream from another one).

Units: each channel's `unit` meta-data is read (`models.pipeline.units`); the
spec's `unit=` overrides it; where neither says, the first seconds of the stream
are judged from their amplitude and one warning says what was assumed. Samples
are pushed in microvolts.

Timestamps: liblsl synchronises them to this machine's LSL clock (proc_clocksync).
Its de-jittering and monotonising are left off on purpose: the de-jitter
regression smears a clock jump over tens of seconds and monotonising hides
backward runs, and `ClockGuard` (in the EEGSource base) must see both to report
them and re-anchor. The outlet's own stamps are sample-accurate within a chunk.
"""

from __future__ import annotations

import difflib
import logging
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError

from milmer_app.clock import local_clock
from milmer_app.sources.base import EEGSource, Source
from milmer_app.sources.lsl_streams import same_stream
from models.errors import SourceError
from models.pipeline.units import factor_to_microvolts, judge_unit, parse_unit

log = logging.getLogger(__name__)

_QUERY_KEYS = ("source_id", "name", "type")
SETTLE_S = 1.0        # after the first answer, how long to wait for other outlets that match too
MAX_LISTED = 8        # streams named when a query matches none
JUDGE_SECONDS = 2.0   # of signal, to judge the unit from its amplitude when the stream gives none


def _query(**keys: str | None) -> dict[str, str]:
    query = {key: keys[key] for key in _QUERY_KEYS if keys[key]}
    if not query:
        raise SourceError("LSL spec needs name=, type= or source_id=")
    return query


def describe(info: pylsl.StreamInfo) -> str:
    return (f"'{info.name()}' (type {info.type() or '-'}, source_id '{info.source_id()}', "
            f"host {info.hostname() or '-'}, {info.channel_count()} ch at {info.nominal_srate():g} Hz)")


@dataclass(frozen=True)
class StreamIdentity:
    """What makes a reopened stream the same stream."""

    name: str
    hostname: str
    source_id: str
    uid: str

    @classmethod
    def of(cls, info: pylsl.StreamInfo) -> StreamIdentity:
        return cls(info.name(), info.hostname(), info.source_id(), info.uid())

    def matches(self, info: pylsl.StreamInfo) -> bool:
        return same_stream(self, StreamIdentity.of(info))

    def describe(self) -> str:
        if self.source_id:
            return f"source_id '{self.source_id}'"
        return f"name '{self.name}' on host {self.hostname or '-'} (the stream has no source_id)"


class StreamFinder:
    """Finds the one LSL stream matching every key given (`name`, `stype`, `source_id`) within `timeout`
    seconds (several matches are an error, unless `pick_first`) and, once connected, only that same
    stream again. Shared by the EEG and the marker sources; `what` ("EEG", "marker") names their spec."""

    def __init__(self, what: str, *, name: str | None = None, stype: str | None = None,
                 source_id: str | None = None, timeout: float = 5.0, pick_first: bool = False):
        self.query = _query(source_id=source_id, name=name, type=stype)
        self.what = what
        self.resolve_timeout = float(timeout)
        self.pick_first = pick_first
        self.identity: StreamIdentity | None = None
        self._resolver: pylsl.ContinuousResolver | None = None
        self._ambiguous_warned = False

    @property
    def query_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.query.items())

    def _wanted(self, info: pylsl.StreamInfo) -> bool:
        values = {"source_id": info.source_id(), "name": info.name(), "type": info.type()}
        return all(values[key] == value for key, value in self.query.items())

    def matches(self, timeout: float) -> list[pylsl.StreamInfo]:
        """Every stream matching the query: the first answer within `timeout`, then SETTLE_S for the rest."""
        key, value = next(iter(self.query.items()))
        found = pylsl.resolve_byprop(key, value, 1, timeout)
        if not found:
            return []
        # A large minimum makes liblsl wait the whole settle time and return all it has heard.
        found += pylsl.resolve_byprop(key, value, 1 << 16, SETTLE_S)
        unique = {info.uid(): info for info in found if self._wanted(info)}
        return sorted(unique.values(), key=lambda i: (i.name(), i.source_id(), i.hostname(), i.uid()))

    def not_found(self, present: list[pylsl.StreamInfo]) -> SourceError:
        """The error for a query that matched nothing, listing the streams that are there (`present`), with
        the nearest name, type or source_id to what was asked."""
        query = ", ".join(f"{k}={v}" for k, v in self.query.items())
        unique = sorted({info.uid(): info for info in present}.values(),
                        key=lambda i: (i.name(), i.type(), i.source_id()))
        message = f"no LSL stream with {query} found within {self.resolve_timeout:g} s"
        if not unique:
            return SourceError(message + "; no LSL stream is visible at all",
                               hint="check that the sending program runs, on this machine or network (LSLAPICFG)")
        listed = "; ".join(f"'{i.name()}' (type {i.type() or '-'}, source_id '{i.source_id() or '-'}')"
                           for i in unique[:MAX_LISTED])
        more = f" and {len(unique) - MAX_LISTED} more" if len(unique) > MAX_LISTED else ""
        message += f"; streams there: {listed}{more}"
        for key, value in self.query.items():
            values = {{"name": i.name(), "type": i.type(), "source_id": i.source_id()}[key] for i in unique}
            close = difflib.get_close_matches(value, sorted(v for v in values if v), n=1, cutoff=0.6)
            if close and close[0] != value:
                message += f" (did you mean {key}={close[0]}?)"
                break
        return SourceError(message, hint=f"name the stream as listed in the {self.what} spec, or give its type= "
                                         "or source_id=")

    def choose(self, matches: list[pylsl.StreamInfo]) -> pylsl.StreamInfo:
        query = ", ".join(f"{k}={v}" for k, v in self.query.items())
        if not matches:
            raise self.not_found([])
        if len(matches) > 1:
            listed = "; ".join(f"{i + 1}) {describe(info)}" for i, info in enumerate(matches))
            if not self.pick_first:
                raise SourceError(f"{len(matches)} LSL streams match {query}: {listed}",
                                  hint=f"say which one with source_id=ID or name=NAME in the {self.what} spec, "
                                       "or add pick=first to take the first listed")
            log.warning("%d LSL streams match %s (pick=first takes the first): %s", len(matches), query, listed)
        return matches[0]

    def find(self) -> pylsl.StreamInfo:
        """The one stream the spec names (SourceError when none or, without pick=first, several match)."""
        # Listens to every stream meanwhile, so that a query that matches nothing can say what is there
        # without waiting any longer.
        everything = pylsl.ContinuousResolver(forget_after=max(self.resolve_timeout, 5.0))
        try:
            matches = self.matches(self.resolve_timeout)
            if not matches:
                raise self.not_found(everything.results())
        finally:
            del everything
        return self.choose(matches)

    def follow(self, info: pylsl.StreamInfo) -> None:
        """`info` is the stream from now on: keep listening for it, so that it can be reopened quickly."""
        self.identity = identity = StreamIdentity.of(info)
        prop, value = ("source_id", identity.source_id) if identity.source_id else ("name", identity.name)
        self._resolver = pylsl.ContinuousResolver(prop=prop, value=value, forget_after=1.0)

    def same_stream(self, warn: Callable[[str], None]) -> pylsl.StreamInfo | None:
        """The followed stream if it is back and unambiguous, else None (several candidates: `warn` once)."""
        identity = self.identity
        assert identity is not None
        found = [info for info in (self._resolver.results() if self._resolver is not None else [])
                 if identity.matches(info)]
        same = [info for info in found if info.uid() == identity.uid]
        candidates = same or found
        if len(candidates) > 1 and not self._ambiguous_warned:
            self._ambiguous_warned = True
            warn(f"{len(candidates)} streams now match {identity.describe()}; not reconnecting to any of them: "
                 + "; ".join(describe(i) for i in candidates))
        return candidates[0] if len(candidates) == 1 else None

    def reopened(self, info: pylsl.StreamInfo) -> None:
        self.identity = StreamIdentity.of(info)
        self._ambiguous_warned = False

    def close(self) -> None:
        self._resolver = None


class FollowedStreamSource(Source):
    """A source reading the one LSL stream its `finder` (a `StreamFinder`) finds, through an inlet that,
    once the stream is lost, is reopened only on the same stream. Shared by the EEG and the marker
    sources: each opens its inlet (`_open_inlet`, which sets `_inlet`), may act on a reconnection
    (`_reconnected`) and says how it reports the loss (`_report_loss`)."""

    def __init__(self, name: str, finder: StreamFinder):
        super().__init__(name)
        self.finder = finder
        self._inlet: pylsl.StreamInlet | None = None
        self._lost = False          # the loss is reported; nothing reopened since

    @abstractmethod
    def _open_inlet(self, info: pylsl.StreamInfo) -> None: ...

    @abstractmethod
    def _report_loss(self, waiting_for: str) -> None:
        """Once a loss: say that the stream is gone and that `waiting_for` is awaited."""

    def _reconnected(self) -> None:
        """The same stream is open again (after `finder.reopened`)."""

    def _open_followed(self) -> pylsl.StreamInfo:
        """Find the stream the spec names, open it and follow it (SourceError when that fails)."""
        log.info("%s: resolving the stream (up to %g s)", self.name, self.finder.resolve_timeout)
        info = self.finder.find()
        try:
            self._open_inlet(info)
        except (TimeoutError, LostError) as exc:
            raise SourceError(f"{self.name}: stream '{info.name()}' went away while it was being opened ({exc})",
                              hint="start again once the stream is steady") from exc
        self.finder.follow(info)
        return info

    def _reopen(self) -> bool:
        """One round of looking for the same stream (never another match) and reopening it."""
        info = self.finder.same_stream(lambda message: self.emit_event("warning", f"{self.name}: {message}"))
        if info is None:
            self._stop.wait(0.1)
            return True
        try:
            self._open_inlet(info)
        except (TimeoutError, LostError):
            # The resolver still lists the outlet that went away; try again on the next round.
            self._stop.wait(0.1)
            return True
        self.finder.reopened(info)
        self._lost = False
        self._reconnected()
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
            self._report_loss(identity.describe() if identity else "the stream")

    def _close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self.finder.close()


class LSLSource(FollowedStreamSource, EEGSource):
    """The EEG stream `StreamFinder` finds (`name`, `stype`, `source_id`, `timeout`, `pick_first`); `unit`:
    what its samples are in, overriding the stream's unit labels."""

    def __init__(self, *, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                 timeout: float = 5.0, unit: str | None = None, pick_first: bool = False):
        finder = StreamFinder("EEG", name=name, stype=stype, source_id=source_id, timeout=timeout,
                              pick_first=pick_first)
        super().__init__("LSL " + finder.query_text, finder)
        self.forced_unit = parse_unit(unit) if unit is not None else None
        self.units: list[str] = []          # the unit labels as the stream gives them
        self.source_id = ""
        self._scale: np.ndarray | None = None
        self._held: list[tuple[np.ndarray, np.ndarray]] = []   # raw chunks read while judging the unit
        self._new_segment = False

    def _open(self) -> None:
        self._open_followed()
        identity = self.identity
        assert identity is not None
        log.info("%s: %d channels at %g Hz, %s; reconnects only to %s", self.name, len(self.channel_names),
                 self.srate, self.unit_text(), identity.describe())

    # -- opening ---------------------------------------------------------------------------
    def _open_inlet(self, info: pylsl.StreamInfo) -> None:
        inlet = pylsl.StreamInlet(info, max_buflen=30, recover=False, processing_flags=pylsl.proc_clocksync)
        full = inlet.info(timeout=self.finder.resolve_timeout)
        if full.nominal_srate() <= 0:
            raise SourceError(f"{self.name}: stream '{full.name()}' has an irregular rate; "
                              "an EEG stream needs a nominal rate")
        if full.channel_format() == pylsl.cf_string:
            raise SourceError(f"{self.name}: stream '{full.name()}' carries strings, not EEG samples")
        count = full.channel_count()
        labels = full.get_channel_labels() or []
        units = full.get_channel_units() or []
        types = full.get_channel_types() or []
        if len(labels) != count or not all(labels):
            log.warning("%s: stream has no channel labels; naming them ch1..ch%d", self.name, count)
            labels = [f"ch{i + 1}" for i in range(count)]
        units = [(u or "") for u in units] if len(units) == count else [""] * count
        types = [(t or "") for t in types] if len(types) == count else [""] * count
        if self.connected and (labels != self.channel_names or full.nominal_srate() != self.srate):
            inlet.close_stream()
            raise SourceError(f"{self.name}: stream came back with different channels or rate "
                              f"({count} ch at {full.nominal_srate()} Hz)")
        if self.connected and units != self.units:
            inlet.close_stream()
            raise SourceError(f"{self.name}: stream came back with different units "
                              f"({', '.join(sorted(set(units))) or 'none'} instead of "
                              f"{', '.join(sorted(set(self.units))) or 'none'})")
        inlet.open_stream(timeout=self.finder.resolve_timeout)
        self._inlet = inlet
        self.srate = float(full.nominal_srate())
        self.source_id = full.source_id()
        if self.connected:
            return        # the same stream again: channels, units and scale are known
        self.channel_names = list(labels)
        self.units = units
        # Show the stream's own name from now on, not the query that found it.
        self.name = f"LSL {full.name()}"
        self._scale = self._unit_scale(units, types)[:, None]

    # -- units -----------------------------------------------------------------------------
    def _unit_scale(self, units: list[str], types: list[str]) -> np.ndarray:
        """Per-channel factor to microvolts; sets `unit` and `unit_origin`, warns once where it assumes."""
        count = len(units)
        eeg = [t.strip().lower() in ("", "eeg") for t in types]
        if not any(eeg):
            eeg = [True] * count
        parsed = [parse_unit(u) for u in units]
        forced = self.forced_unit
        if forced is not None:
            said = sorted({u for u, e in zip(units, eeg, strict=True) if e and u})
            if said and {p for p, e in zip(parsed, eeg, strict=True) if e} != {forced}:
                log.warning("%s: unit=%s set by the spec, although the stream says %s", self.name, forced,
                            ", ".join(said))
            self.unit, self.unit_origin = forced, "spec"
            return np.full(count, factor_to_microvolts(forced), np.float32)
        known = [p for p, e in zip(parsed, eeg, strict=True) if p is not None and e]
        missing = [i for i in range(count) if parsed[i] is None and eeg[i]]
        if known:
            unit = Counter(known).most_common(1)[0][0]
            self.unit, self.unit_origin = unit, "stream"
            if len(set(known)) > 1:
                self.unit = "mixed " + "/".join(sorted(set(known)))
                log.info("%s: channels in different units (%s): each is converted to µV", self.name,
                         ", ".join(sorted(set(known))))
            if missing:
                self.emit_event("warning", f"{self.name}: {len(missing)} channel(s) without a unit "
                                           f"({self._names(missing, units)}) taken to be in {unit} "
                                           "like the rest; add unit=uV|mV|V to the EEG spec to set it")
            return np.array([factor_to_microvolts(p or unit) for p in parsed], np.float32)
        # Nothing usable on the EEG channels: judge from the first seconds of signal.
        data, _ = self._read_for_judgement()
        judged = judge_unit(data[missing]) if data.shape[1] else judge_unit(np.zeros((0, 0)))
        unit = judged.unit or "µV"
        self.unit, self.unit_origin = unit, "amplitude"
        said = sorted({u for i, u in enumerate(units) if i in missing and u})
        what = f"unknown unit(s) {', '.join(repr(u) for u in said)}" if said else "no unit"
        seconds = data.shape[1] / self.srate
        basis = (f"judged from the amplitude over {seconds:.1f} s ({judged.describe()})" if judged.unit
                 else f"could not be judged from the amplitude ({judged.describe()} in {seconds:.1f} s)")
        self.emit_event("warning", f"{self.name}: the stream gives {what} for its EEG channels; {basis}: "
                                   f"assuming {'volts' if unit == 'V' else 'microvolts'}; "
                                   "add unit=uV|mV|V to the EEG spec to set it")
        return np.array([factor_to_microvolts(p or unit) for p in parsed], np.float32)

    def _names(self, indices: list[int], units: list[str]) -> str:
        names = self.channel_names or [f"ch{i + 1}" for i in range(len(units))]
        shown = ", ".join(names[i] for i in indices[:8])
        return shown + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")

    def _read_for_judgement(self) -> tuple[np.ndarray, np.ndarray]:
        """The first JUDGE_SECONDS of signal (raw), held back to be pushed by the worker."""
        assert self._inlet is not None
        wanted = int(JUDGE_SECONDS * self.srate)
        deadline = local_clock() + JUDGE_SECONDS + self.finder.resolve_timeout
        held, total = [], 0
        while total < wanted and local_clock() < deadline:
            samples, stamps = self._inlet.pull_chunk(timeout=0.1, max_samples=4096, min_samples=1, as_numpy=True)
            if len(stamps):
                held.append((np.asarray(samples, dtype=np.float32).T, np.asarray(stamps, dtype=np.float64)))
                total += len(stamps)
        self._held = held
        if not held:
            return np.zeros((len(self.channel_names), 0), np.float32), np.zeros(0)
        return np.concatenate([d for d, _ in held], axis=1), np.concatenate([t for _, t in held])

    # -- reading ---------------------------------------------------------------------------
    def _pull(self) -> bool:
        if self._held:
            held, self._held = self._held, []
            for data, times in held:
                self.push(data * self._scale, times)
            return True
        if self._inlet is None:
            return self._reopen()
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

    @property
    def identity(self) -> StreamIdentity | None:
        return self.finder.identity

    def _reconnected(self) -> None:
        if self.clock is not None:
            self.clock.reset_offset()
        self._new_segment = True

    def _report_loss(self, waiting_for: str) -> None:
        log.info("%s: connection lost; waiting for %s", self.name, waiting_for)

    def _close(self) -> None:
        self._held = []
        super()._close()
