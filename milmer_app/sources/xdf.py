"""XDF files (LabRecorder) for the `file:` source: pick the EEG stream, keep its markers, find its breaks.

Loaded through pyxdf with its clock synchronisation, dejittering and clock-reset
handling, so every stream's time stamps are on one clock. Segment breaks (gaps)
and clock resets become breaks in the replayed data: no window spans them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from milmer_app.sources.eeg_file import EEGFile, in_memory, is_non_eeg_label
from milmer_app.sources.file_headers import check_rate
from models.errors import SourceError
from models.pipeline.units import MICROVOLTS_PER, judge_unit, parse_unit

log = logging.getLogger(__name__)

EEG_TYPES = {"eeg", ""}


def _first(info: dict, key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return default if value is None else str(value)


def stream_label(stream: dict) -> str:
    info = stream["info"]
    rate = _rate(info)
    return (f"'{_first(info, 'name')}' (type {_first(info, 'type') or '-'}, {_first(info, 'channel_count')} ch, "
            f"{rate:g} Hz)")


def _is_marker_stream(stream: dict) -> bool:
    info = stream["info"]
    return _first(info, "channel_format") == "string" or (_rate(info) == 0
                                                         and _first(info, "type").lower() in ("markers", "marker"))


def _rate(info: dict) -> float:
    try:
        return float(_first(info, "nominal_srate", "0") or 0)
    except ValueError:
        return float("nan")


def _is_signal_stream(stream: dict) -> bool:
    info = stream["info"]
    return (_first(info, "channel_format") != "string" and _rate(info) > 0
            and len(stream.get("time_stamps", [])) > 1)


def _why_unusable(stream: dict) -> str:
    info = stream["info"]
    count = len(stream.get("time_stamps", []))
    if _first(info, "channel_format") == "string":
        return "its samples are strings (a marker stream)"
    try:
        rate = float(_first(info, "nominal_srate", "0") or 0)
    except ValueError:
        return f"nominal_srate {_first(info, 'nominal_srate')!r} is not a number"
    if not rate > 0:
        return f"nominal_srate is {rate:g} Hz; an EEG stream needs a positive rate"
    return f"it holds {count} sample(s)"


def load_streams(path: Path) -> list[dict]:
    import pyxdf

    try:
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=True,
                                    handle_clock_resets=True, verbose=False)
    except Exception as exc:
        raise SourceError(f"{path}: pyxdf cannot read this XDF file ({type(exc).__name__}: {exc})") from None
    return streams


def pick_eeg_stream(streams: list[dict], wanted: str | None, path: Path) -> dict:
    """The EEG stream: the one named or typed `wanted`, else the only EEG-typed (or only signal) stream."""
    signals = [s for s in streams if _is_signal_stream(s)]
    listed = "; ".join(stream_label(s) for s in streams) or "none"
    if wanted is not None:
        key = wanted.strip().lower()
        found = [s for s in signals if _first(s["info"], "name").lower() == key]
        found = found or [s for s in signals if _first(s["info"], "type").lower() == key]
        if not found:
            raise SourceError(f"{path}: no signal stream named or typed '{wanted}' (streams: {listed})")
    else:
        found = [s for s in signals if _first(s["info"], "type").lower() == "eeg"] or signals
        if not found:
            unusable = [s for s in streams if _first(s["info"], "type").lower() == "eeg"]
            if unusable:   # name what is wrong with the EEG stream rather than say there is none
                raise SourceError(f"{path}: EEG stream {stream_label(unusable[0])}: {_why_unusable(unusable[0])}")
            raise SourceError(f"{path}: no EEG stream (streams: {listed})")
    if len(found) > 1:
        names = ", ".join(stream_label(s) for s in found)
        raise SourceError(f"{path}: {len(found)} streams could be the EEG: {names}",
                          hint=f"pick one with stream=NAME, e.g. --eeg file:{path},stream="
                               f"{_first(found[0]['info'], 'name')}")
    return found[0]


def _channels(stream: dict) -> list[dict]:
    desc = stream["info"].get("desc")
    try:
        return [{k: _first(c, k) for k in ("label", "type", "unit")}
                for c in desc[0]["channels"][0]["channel"]]
    except (TypeError, KeyError, IndexError):
        return []


def load_xdf_eeg(path: Path, stream: str | None = None, unit: str | None = None) -> EEGFile:
    streams = load_streams(path)
    eeg = pick_eeg_stream(streams, stream, path)
    info = eeg["info"]
    name = _first(info, "name")
    samples = np.asarray(eeg["time_series"], dtype=np.float64)
    stamps = np.asarray(eeg["time_stamps"], dtype=np.float64)
    count = samples.shape[1]
    channels = _channels(eeg)
    if len(channels) != count:
        log.warning("%s: stream '%s' has no channel descriptions; naming them ch1..ch%d", path.name, name, count)
        channels = [{"label": f"ch{i + 1}", "type": "", "unit": ""} for i in range(count)]
    keep, excluded, said = [], [], []
    for index, channel in enumerate(channels):
        label, kind = channel["label"] or f"ch{index + 1}", channel["type"].strip().lower()
        if kind not in EEG_TYPES or is_non_eeg_label(label):
            excluded.append(label)
            continue
        keep.append(index)
        said.append(channel["unit"].strip())
    if not keep:
        raise SourceError(f"{path}: stream '{name}' has no EEG channels (left out {', '.join(excluded)})")
    raw = samples[:, keep].T
    del samples
    units, origin = _units(raw, said, unit, f"{path}: stream '{name}'")
    srate = _rate(info)
    check_rate(path, srate, f"stream '{name}' (nominal_srate)")
    data = (raw * np.array([MICROVOLTS_PER[u] for u in units])[:, None]).astype(np.float32)
    del raw
    first = float(stamps[0])
    times, breaks, shift = _segments(stamps - first, info, srate, path)
    markers = []
    for other in streams:
        if other is eeg or not _is_marker_stream(other):
            continue
        label = _first(other["info"], "name")
        for stamp, value in zip(other["time_stamps"], other["time_series"], strict=False):
            text = " ".join(str(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value]))
            markers.append((float(stamp) - first, f"{label}: {text}"))
    if markers:
        moved = shift(np.array([t for t, _ in markers]))
        markers = [(float(t), text) for t, (_, text) in zip(moved, markers, strict=True) if np.isfinite(t) and t >= 0]
    loaded = EEGFile(path, [channels[i]["label"] or f"ch{i + 1}" for i in keep], srate, data.shape[1],
                     in_memory(data), times, sorted(markers), breaks, excluded, streams, first, shift=shift)
    loaded.unit, loaded.unit_origin = (units[0] if len(set(units)) == 1 else "mixed"), origin
    return loaded


def _units(raw: np.ndarray, said: list[str], forced: str | None, what: str) -> tuple[list[str], str]:
    """Each channel's unit and where it came from: unit= ("spec"), the stream's labels ("stream"), or,
    when the labels say nothing, the amplitude ("amplitude", an assumption the status shows)."""
    if forced is not None:
        return [parse_unit(forced)] * len(said), "spec"
    parsed = [parse_unit(text) for text in said]
    unknown = sorted({text for text, unit in zip(said, parsed, strict=True) if text and unit is None})
    if unknown:
        raise SourceError(f"{what}: unknown unit(s) {', '.join(repr(u) for u in unknown)}",
                          hint="give the unit with unit=uV|mV|V|nV")
    if all(parsed):
        return parsed, "stream"
    judged = judge_unit(raw)
    unit = judged.unit or "µV"
    log.warning("%s: no unit given; judged %s from the amplitude (%s)", what, unit, judged.describe())
    return [p or unit for p in parsed], "amplitude"


RATE_TOLERANCE = 0.2       # declared rate vs the stamps' (as for live streams: more than 20 % off stops)
MAX_SPAN_S = 1e8           # ~3 years: stamps further apart are corrupt, not a recording
MAX_GAP_S = 60.0          # a longer forward jump in the time stamps is shortened to this (and said)
MAX_BREAKS_PER_MINUTE = 6   # more breaks than this (and more than a few): the stamps cannot place samples


def _segments(times: np.ndarray, info: dict, srate: float,
              path: Path) -> tuple[np.ndarray, dict[int, str], Callable[[np.ndarray], np.ndarray]]:
    """Media times made ascending, the sample indices where a segment or a clock segment starts, and the
    map from stream time (seconds from the first sample) to media time. A forward jump longer than
    MAX_GAP_S is shortened to MAX_GAP_S (a replay would otherwise wait through it); stamps that break
    more often than MAX_BREAKS_PER_MINUTE are refused, not replayed as a stream of breaks."""
    name = path.name
    if not np.isfinite(times).all():
        raise SourceError(f"{path}: the EEG stream has {int((~np.isfinite(times)).sum())} time stamp(s) that are "
                          "not finite numbers")
    span = float(times.max() - times.min()) if len(times) else 0.0
    if span > MAX_SPAN_S:
        raise SourceError(f"{path}: the EEG stream's time stamps span {span:.3g} s; {len(times)} samples of one "
                          "recording cannot (a time stamp is corrupt)")
    breaks: dict[int, str] = {}
    for key, why in (("segments", "gap"), ("clock_segments", "clock reset")):
        for start, _ in info.get(key) or []:
            if 0 < int(start) < len(times):
                breaks[int(start)] = why
    step = np.diff(times)
    for index in np.flatnonzero((step <= 0) | (step > 2.0 / srate)) + 1:   # anything else that is not continuous
        breaks.setdefault(int(index), "gap")
    minutes = len(times) / srate / 60.0
    if len(breaks) > max(10, MAX_BREAKS_PER_MINUTE * minutes):
        backwards = int((step <= 0).sum())
        raise SourceError(f"{path}: the EEG stream's time stamps break {len(breaks)} times in {len(times)} samples "
                          f"({backwards} step(s) backwards or standing still): they cannot place the samples in time")
    steps = step[(step > 0) & (step <= 2.0 / srate)]
    if len(steps) >= 10:
        measured = 1.0 / float(np.median(steps))
        if abs(measured / srate - 1) > RATE_TOLERANCE:
            raise SourceError(f"{path}: the EEG stream declares {srate:g} Hz (nominal_srate) but its time stamps "
                              f"run at {measured:.1f} Hz")
    elif len(times) > 10:
        raise SourceError(f"{path}: the EEG stream's time stamps do not run at its declared {srate:g} Hz anywhere")
    original, times = times, times.copy()
    shifts: list[tuple[float, float]] = []      # (stream time where a shortening starts to apply, seconds removed)
    long_gaps = []
    for index in sorted(breaks):
        # A segment that starts before the previous one ended (a reset the synchronisation could not
        # undo) is moved to just after it, so that media time keeps running forwards.
        before = times[index - 1]
        if times[index] <= before:
            times[index:] += before + 1.0 / srate - times[index]
        elif times[index] - before > MAX_GAP_S:
            removed = times[index] - before - MAX_GAP_S
            long_gaps.append((before, removed))
            shifts.append((float(original[index]), removed))
            times[index:] -= removed
    if long_gaps:
        log.warning("%s: %d forward jump(s) in the time stamps longer than %g s shortened to %g s (the longest: "
                    "%.0f s at %.1f s); replay time runs on across them", name, len(long_gaps), MAX_GAP_S, MAX_GAP_S,
                    max(r for _, r in long_gaps) + MAX_GAP_S, long_gaps[0][0])
    if not np.all(np.diff(times) > 0):
        raise SourceError(f"{path}: the EEG stream's time stamps cannot be put in order (media time would not run "
                          "forwards)")
    described = {index: f"{why} in {name} at {times[index]:.2f} s: a new segment starts"
                 for index, why in breaks.items()}

    def shift(stream_times: np.ndarray) -> np.ndarray:
        given = np.asarray(stream_times, dtype=np.float64)
        moved = given.copy()
        for at, removed in shifts:
            moved[given >= at] -= removed
        return moved

    return times, described, shift


def frame_times(recording: EEGFile, stream_name: str) -> np.ndarray:
    """Media times (seconds from the EEG's start) of a video's frames, from an XDF stream of frame stamps.

    The stream's samples are the frame numbers when they are whole numbers counting up (as
    video-capture apps write them); otherwise sample k is frame k."""
    key = stream_name.strip().lower()
    found = [s for s in recording.streams if _first(s["info"], "name").lower() == key]
    if not found:
        listed = "; ".join(stream_label(s) for s in recording.streams)
        raise SourceError(f"{recording.path}: no stream named '{stream_name}' for the video's frame times "
                          f"(streams: {listed})")
    stream = found[0]
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64) - recording.origin
    if recording.shift is not None:
        stamps = recording.shift(stamps)
    if len(stamps) == 0:
        raise SourceError(f"{recording.path}: stream '{stream_name}' holds no frame time stamps")
    values = stream["time_series"]
    try:
        numbers = np.asarray(values, dtype=np.float64)[:, 0]
    except (TypeError, ValueError, IndexError):
        numbers = None
    if numbers is not None and np.all(np.diff(numbers) > 0) and np.allclose(numbers, np.round(numbers)) \
            and numbers[0] >= 0:
        times = np.full(int(numbers[-1]) + 1, np.nan)
        times[numbers.astype(np.int64)] = stamps
        known = ~np.isnan(times)
        # Frames without a stamp of their own (dropped by the writer): in between their neighbours.
        times = np.interp(np.arange(len(times)), np.flatnonzero(known), times[known])
        return times
    return stamps
