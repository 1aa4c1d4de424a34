"""milmer-app --export RECORDING FILE: a recording's EEG as FIF, EDF or BDF.

Samples are written back to back at the recording's rate, starting at the recording's
first sample (`meas_date`: meta.json's `created_utc` moved to the first sample's time
stamp). Markers become annotations with their text; gaps in the time stamps (a stream
that was lost) become `BAD_gap` annotations where they occurred; samples that are not
finite become `BAD_non_finite` spans (written as NaN/Inf in FIF, as the channel's
midpoint in EDF/BDF, which cannot hold them).

EDF and BDF need a header whose numbers fit 8 characters and data records of whole
samples. Each channel's unit (uV, mV or V) and physical range are chosen so that its
range fits the header, and its samples are kept to the format's resolution (16 bits in
EDF, 24 in BDF; a warning names EEG channels that EDF cannot keep to 0.1 uV). The data
record length is chosen so that the file holds exactly the recording's samples; where no
record length allows that, the last record is filled with the last sample's values and
the filler is marked `BAD_ACQ_SKIP` (a warning says how long it is).

Channel labels are sanitised for the format (printable ASCII; EDF/BDF: 16 characters,
FIF: 64), unique; when any label changed, the original labels are kept in the
FIF's description and, for EDF/BDF, in a sidecar `FILE.labels.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from milmer_app.recording import RecordingReader
from models import strict_json
from models.atomic import atomic_path
from models.errors import DataError

log = logging.getLogger(__name__)

FORMATS = {".fif": "fif", ".edf": "edf", ".bdf": "bdf"}
MARKER_TEXT_LIMIT = 512
EDF_LABEL_LIMIT = 16
FIF_LABEL_LIMIT = 64            # MNE writes longer names through a mapping; ASCII only
EEG_RESOLUTION_UV = 0.1        # an EEG channel coarser than this in EDF gets a warning
RECORD_SECONDS = (0.25, 10.0)  # data record lengths tried (shorter records: larger annotation overhead)
MAX_RECORD_SAMPLES = 60_000
# (unit, factor from microvolts): tried in this order for each EDF/BDF channel
UNITS = (("uV", 1.0), ("mV", 1e-3), ("V", 1e-6))


@dataclass
class Export:
    """What a recording's export holds, in the order it is written."""

    data: np.ndarray                # (C, n) float32 microvolts
    srate: float
    labels: list[str]               # as the recording has them
    meas_date: dt.datetime | None
    annotations: list[tuple[float, float, str]] = field(default_factory=list)   # onset s, duration s, text


# -- reading the recording ------------------------------------------------------------------------------------
def read_recording(folder: Path) -> Export:
    reader = RecordingReader(folder)       # refuses a malformed meta.json in one line
    if reader.meta.get("eeg") is None:
        raise DataError(f"{folder}: the recording holds no EEG (meta.json's 'eeg' is null)")
    data, stamps = reader.eeg(mapped=True)       # mapped: the EDF writer reads a channel at a time
    if data.shape[1] == 0:
        raise DataError(f"{folder}: the recording holds no EEG samples")
    srate = reader.srate
    annotations = _gap_annotations(stamps, srate) + _non_finite_annotations(data, srate)
    annotations += _marker_annotations(reader.markers(), stamps, srate, folder)
    annotations.sort(key=lambda a: a[0])
    return Export(data, srate, reader.channel_names, _meas_date(reader.meta, stamps, folder), annotations)


def _monotonic(stamps: np.ndarray) -> np.ndarray:
    """Time stamps made usable for look-ups: non-finite ones filled from their neighbours, never decreasing."""
    finite = np.isfinite(stamps)
    if not finite.any():
        return np.zeros_like(stamps)
    filled = np.where(finite, stamps, np.nan)
    index = np.flatnonzero(finite)
    filled = np.interp(np.arange(len(stamps)), index, stamps[index])
    return np.maximum.accumulate(filled)


def _gap_annotations(stamps: np.ndarray, srate: float) -> list[tuple[float, float, str]]:
    steps = np.diff(stamps)
    out = []
    for i in np.flatnonzero(~(steps <= 3.0 / srate)):     # NaN steps count too
        step = steps[i]
        what = f"{step:.3f} s" if np.isfinite(step) else "unknown length (time stamp not finite)"
        if np.isfinite(step) and step <= 0:
            what = f"clock went back {-step:.3f} s"
        out.append(((i + 1) / srate, 0.0, f"BAD_gap {what}"))
    return out


def _non_finite_annotations(data: np.ndarray, srate: float) -> list[tuple[float, float, str]]:
    bad = np.zeros(data.shape[1], bool)
    for start in range(0, data.shape[1], 1 << 16):      # in pieces: no (C, n) boolean copy
        bad[start:start + (1 << 16)] = ~np.isfinite(data[:, start:start + (1 << 16)]).all(axis=0)
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    spans = list(zip(edges[::2], edges[1::2], strict=True))
    log.warning("%d sample(s) in %d span(s) are not finite (NaN/Inf); marked BAD_non_finite", int(bad.sum()),
                len(spans))
    return [(start / srate, (stop - start) / srate, "BAD_non_finite") for start, stop in spans]


def _marker_annotations(markers: list[dict], stamps: np.ndarray, srate: float,
                        folder: Path) -> list[tuple[float, float, str]]:
    ordered = _monotonic(stamps)
    out, skipped = [], 0
    for marker in markers:
        stamp = marker.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
            skipped += 1
            continue
        position = min(int(np.searchsorted(ordered, float(stamp))), len(stamps) - 1)
        out.append((position / srate, 0.0, clean_text(str(marker.get("text", "")))[:MARKER_TEXT_LIMIT]))
    if skipped:
        log.warning("%s: %d marker(s) without a usable time stamp left out", folder, skipped)
    return out


def _meas_date(meta: dict, stamps: np.ndarray, folder: Path) -> dt.datetime | None:
    """When the first sample was taken: meta.json's created_utc, moved by (first sample's LSL time -
    created_lsl) when both are there."""
    created = meta.get("created_utc")
    try:
        when = dt.datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        when = None
    if when is None:
        log.warning("%s: meta.json has no usable created_utc (%r); the export has no start time", folder, created)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    created_lsl = meta.get("created_lsl")
    first = float(stamps[0]) if len(stamps) else math.nan
    if isinstance(created_lsl, (int, float)) and not isinstance(created_lsl, bool) and math.isfinite(first) \
            and math.isfinite(created_lsl) and abs(first - created_lsl) < 86400.0:
        when += dt.timedelta(seconds=first - created_lsl)
    return when.astimezone(dt.UTC)


# -- labels ---------------------------------------------------------------------------------------------------
def clean_text(text: str) -> str:
    """`text` with control characters (newlines, NUL, EDF+'s separators) turned into spaces."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


def sanitise_labels(labels: list[str], ascii_only: bool, limit: int | None) -> list[str]:
    """Printable (ASCII) labels no longer than `limit`, unique, none empty."""
    out: list[str] = []
    seen: set[str] = set()
    for index, label in enumerate(labels, start=1):
        text = clean_text(label)
        if ascii_only:
            text = unicodedata.normalize("NFKD", text.replace("µ", "u")).encode("ascii", "ignore").decode()
        text = " ".join(text.split())[:limit] or f"ch{index}"
        base, number = text, 1
        while text.lower() in seen:
            number += 1
            suffix = f"~{number}"
            text = (base[:limit - len(suffix)] if limit else base) + suffix
        seen.add(text.lower())
        out.append(text)
    return out


# -- EDF / BDF ------------------------------------------------------------------------------------------------
def _header_number(value: float, up: bool) -> float | None:
    """The nearest number at or beyond `value` (above if `up`) that an EDF header's 8 characters hold."""
    if not math.isfinite(value):
        return None
    for decimals in range(7, -1, -1):
        factor = 10.0 ** decimals
        scaled = math.ceil(value * factor) if up else math.floor(value * factor)
        candidate = scaled / factor
        if (up and candidate < value) or (not up and candidate > value):
            candidate = (scaled + (1 if up else -1)) / factor
        text = _header_text(candidate)
        if len(text) <= 8 and "e" not in text:
            return candidate
    return None


def _header_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class ChannelScale:
    unit: str
    factor: float              # unit per microvolt
    physical: tuple[float, float]
    resolution_uv: float


def channel_scale(low_uv: float, high_uv: float, levels: int) -> ChannelScale | None:
    """The first unit in which the channel's range fits the header (None: not even in volts)."""
    for unit, factor in UNITS:
        low, high = _header_number(low_uv * factor, up=False), _header_number(high_uv * factor, up=True)
        if low is None or high is None:
            continue
        if high <= low:
            high = _header_number(low + max(abs(low) * 1e-6, 1.0), up=True)
            if high is None:
                continue
        return ChannelScale(unit, factor, (low, high), (high - low) / (levels - 1) / factor)
    return None


def record_layout(samples: int, srate: float) -> tuple[int, float, int]:
    """(samples per record, record duration as the header writes it, samples of filler) for `samples`
    samples: the least filler (none where possible), then the longest record."""
    best: tuple[int, int, float] | None = None    # (filler, -spr, duration)
    shortest = max(1, min(samples, math.ceil(RECORD_SECONDS[0] * srate)))
    longest = max(shortest, min(int(RECORD_SECONDS[1] * srate), max(samples, 1) + int(srate), MAX_RECORD_SAMPLES))
    for spr in range(shortest, longest + 1):
        duration = float(_header_text(round(spr / srate, 7)))
        if len(_header_text(duration)) > 8 or duration <= 0 or abs(spr / duration - srate) > 1e-9 * srate:
            continue
        filler = (-samples) % spr
        key = (filler, -spr, duration)
        if best is None or key < best:
            best = key
            if filler == 0 and spr >= samples:
                break
    if best is None:   # a rate no 8-character duration carries exactly: one-second records, the rate rounded
        spr = max(1, round(srate))
        return spr, 1.0, (-samples) % spr
    return -best[1], best[2], best[0]


def _write_edf_family(export: Export, target: Path, fmt: str) -> None:
    from edfio import Bdf, BdfSignal, Edf, EdfAnnotation, EdfSignal, Patient, Recording

    signal_class, writer_class = (EdfSignal, Edf) if fmt == "edf" else (BdfSignal, Bdf)
    digital_min, digital_max = signal_class._default_digital_range
    levels = digital_max - digital_min + 1
    labels = sanitise_labels(export.labels, ascii_only=True, limit=EDF_LABEL_LIMIT)
    channels, samples = export.data.shape
    spr, duration, filler = record_layout(samples, export.srate)
    annotations = list(export.annotations)
    if filler:
        annotations.append((samples / export.srate, filler / export.srate, "BAD_ACQ_SKIP"))
        log.warning("%s: %s needs whole data records: %d sample(s) (%.4f s) of the last values appended and "
                    "marked BAD_ACQ_SKIP", target.name, fmt.upper(), filler, filler / export.srate)
    rate = spr / duration
    if abs(rate - export.srate) > 1e-9 * export.srate:
        log.warning("%s: %s's header cannot carry %g Hz exactly; written as %.6f Hz", target.name, fmt.upper(),
                    export.srate, rate)
    signals, coarse, clipped = [], [], []
    for index in range(channels):
        values = export.data[index].astype(np.float64)
        finite = np.isfinite(values)
        low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
        scale = channel_scale(low, high, levels)
        if scale is None:   # beyond what 8 characters of volts hold: the extremes are clipped, and said
            clipped.append(labels[index])
            limit = 9_999_999.0 / 1e-6
            values = np.clip(values, -limit, limit)
            low, high = max(low, -limit), min(high, limit)
            scale = channel_scale(low, high, levels)
            assert scale is not None
        middle = (low + high) / 2
        values[~finite] = middle
        physical_low, physical_high = scale.physical
        gain = (physical_high - physical_low) / (levels - 1)
        digital = np.rint((values * scale.factor - physical_low) / gain) + digital_min
        digital = np.clip(digital, digital_min, digital_max)
        if filler:
            digital = np.concatenate([digital, np.full(filler, digital[-1])])
        if scale.resolution_uv > EEG_RESOLUTION_UV:
            coarse.append(f"{labels[index]} ({scale.resolution_uv:.3g} uV)")
        signals.append(signal_class.from_digital(
            digital.astype(signal_class._digital_dtype), rate, label=labels[index], physical_dimension=scale.unit,
            physical_range=scale.physical, digital_range=(digital_min, digital_max)))
    if coarse:
        log.warning("%s: %d channel(s) span more than %s's %d bits keep to %g uV: %s; export to .bdf or .fif to "
                    "keep them exact", target.name, len(coarse), fmt.upper(), 16 if fmt == "edf" else 24,
                    EEG_RESOLUTION_UV, ", ".join(coarse[:8]) + (" ..." if len(coarse) > 8 else ""))
    if clipped:
        log.warning("%s: channel(s) %s exceed +-9999999 V and were clipped there", target.name, ", ".join(clipped))
    meas = export.meas_date
    recording = Recording(startdate=meas.date()) if meas is not None and meas.year >= 1985 else Recording()
    start = meas.time() if meas is not None and meas.year >= 1985 else dt.time(0, 0, 0)
    writer = writer_class(signals, patient=Patient(), recording=recording, starttime=start,
                          data_record_duration=duration,
                          annotations=[EdfAnnotation(onset, duration_ or None, text)
                                       for onset, duration_, text in annotations])
    _write_atomically(target, writer.write)
    if labels != list(export.labels):
        sidecar = target.with_name(target.name + ".labels.json")
        strict_json.write_atomic(sidecar, {"file": target.name, "labels": list(export.labels),
                                           "written_as": labels})
        log.info("%s: channel labels changed to fit %s; the original labels are in %s", target.name, fmt.upper(),
                 sidecar.name)


# -- FIF ------------------------------------------------------------------------------------------------------
def _write_fif(export: Export, target: Path) -> None:
    import mne

    labels = sanitise_labels(export.labels, ascii_only=True, limit=FIF_LABEL_LIMIT)
    info = mne.create_info(labels, export.srate, ch_types="eeg")
    raw = mne.io.RawArray(export.data.astype(np.float64) * 1e-6, info, verbose="error")
    if labels != list(export.labels):
        raw.info["description"] = "original channel labels: " + json.dumps(list(export.labels))
        log.info("%s: channel labels changed to fit FIF; the original labels are in the file's description",
                 target.name)
    raw.set_meas_date(export.meas_date)
    if export.annotations:
        onsets, durations, texts = zip(*export.annotations, strict=True)
        raw.set_annotations(mne.Annotations(onsets, durations, texts, orig_time=export.meas_date))

    # Straight to the target: a FIF over 2 GB is split into parts that name each other.
    try:
        raw.save(target, overwrite=True, verbose="error")
    except OSError as exc:
        raise DataError(f"{target}: cannot write ({exc.strerror or exc})") from None


def _write_atomically(target: Path, write) -> None:
    try:
        with atomic_path(target) as temporary:
            write(temporary)
    except OSError as exc:
        raise DataError(f"{target}: cannot write ({exc.strerror or exc})") from None


# -- the command ----------------------------------------------------------------------------------------------
def check_target(target: Path) -> str:
    """The export format of `target`, or a one-line DataError (a folder, an unknown suffix, no way to write)."""
    name = target.name.lower()
    fmt = "fif" if name.endswith(".fif.gz") else FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise DataError(f"{target}: unknown export format '{target.suffix}'", hint="use a .fif, .edf or .bdf file name")
    if target.is_dir():
        raise DataError(f"{target}: is a folder; give a file name ending in .{fmt}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{target.parent}: cannot create the folder for the export ({exc.strerror or exc})") from None
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise DataError(f"{target}: not writable")
    return fmt


def export_recording(folder: Path, target: Path) -> Path:
    fmt = check_target(target)
    export = read_recording(folder)
    if fmt == "fif":
        _write_fif(export, target)
    else:
        _write_edf_family(export, target, fmt)
    log.info("exported %d channels x %.2f s to %s", len(export.labels), export.data.shape[1] / export.srate, target)
    return target


def run(args: argparse.Namespace) -> int:
    recording, target = args.export
    export_recording(Path(recording), Path(target))
    return 0
