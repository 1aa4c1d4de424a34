"""What a lab file's header promises, checked against what the file holds, before any data is read.

`check_header(path)` reads only the header (EDF/BDF: the fixed-width ASCII header; BrainVision:
the .vhdr text and the data file's size; EEGLAB: the .fdt file's size once MNE has the
dimensions; XDF: the file's size) and either returns the corrections it made as warnings
("the header says 1000 data records, the file holds 512: replaying 512") or raises a one-line
SourceError naming the file and the field. Whatever the header says, nothing here allocates
more than the header itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import SourceError

MAX_CHANNELS = 4096
MAX_EEG_RATE = 50_000.0          # Hz; EEG amplifiers sample at most a few tens of kHz
MIN_EEG_RATE = 1.0               # Hz; the model's band is checked once the model is known
XDF_MAX_BYTES = 400 * 1024**2    # pyxdf reads a file whole: this keeps a replay well under 2 GB
EMBEDDED_EEGLAB_MAX_BYTES = 400 * 1024**2   # a .set holding its data is read whole by MNE
EDF_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


def check_rate(path: Path, rate: float, what: str) -> None:
    """One line when `rate` (Hz) cannot be EEG: not a positive number, or outside MIN..MAX_EEG_RATE."""
    if not math.isfinite(rate) or rate <= 0:
        raise SourceError(f"{path}: {what} gives a sampling rate of {rate:g} Hz; a rate must be positive")
    if rate > MAX_EEG_RATE:
        raise SourceError(f"{path}: {what} gives {rate:g} Hz, implausible for EEG (at most {MAX_EEG_RATE:g} Hz)")
    if rate < MIN_EEG_RATE:
        raise SourceError(f"{path}: {what} gives {rate:g} Hz, too low for EEG (at least {MIN_EEG_RATE:g} Hz)")


def check_header(path: Path) -> list[str]:
    """Warnings for what was corrected; SourceError for a header the file cannot hold."""
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        return _check_edf(path)
    if suffix == ".vhdr":
        return _check_brainvision(path)
    if suffix in (".xdf", ".xdfz"):
        size = path.stat().st_size
        if size > XDF_MAX_BYTES:
            raise SourceError(f"{path}: {size / 1024**2:.0f} MB; XDF files are read whole (pyxdf), so replays take "
                              f"XDF files up to {XDF_MAX_BYTES // 1024**2} MB",
                              hint="convert the EEG stream to FIF or EDF (MNE reads those in pieces)")
        if suffix == ".xdf":
            _check_xdf_headers(path)
        return []
    return []


# -- XDF ------------------------------------------------------------------------------------------------------------
def _check_xdf_headers(path: Path) -> None:
    """Each stream header's channel count and rate, read by walking the chunks (their contents skipped)."""
    from xml.etree import ElementTree

    numeric: dict[int, tuple[str, int, int]] = {}     # stream id -> (name, channels, bytes per value)
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(4) != b"XDF:":
            raise SourceError(f"{path}: not an XDF file (it does not start with 'XDF:')")
        while True:
            width = handle.read(1)
            if not width:
                return
            if width[0] not in (1, 4, 8):
                return                                   # a damaged chunk: pyxdf says what it makes of it
            raw = handle.read(width[0])
            if len(raw) < width[0]:
                return
            length = int.from_bytes(raw, "little")
            if length < 2 or handle.tell() + length > size:
                return                                   # a chunk longer than the file: pyxdf reports it
            tag = int.from_bytes(handle.read(2), "little")
            if tag == 3 and length >= 7:
                _check_samples_chunk(path, handle, length - 2, numeric)
                continue
            if tag != 2:
                handle.seek(max(0, length - 2), 1)
                continue
            if length > 16 * 1024**2:
                raise SourceError(f"{path}: a stream header of {length / 1024**2:.0f} MB; XDF stream headers are a "
                                  "few kB of XML")
            content = handle.read(length - 2)
            try:
                info = ElementTree.fromstring(content[4:])
            except ElementTree.ParseError:
                continue
            name = info.findtext("name") or "?"
            text = (info.findtext("channel_count") or "").strip()
            try:
                count = int(text)
            except ValueError:
                raise SourceError(f"{path}: stream '{name}': channel_count {text!r} is not a whole number") from None
            kind = (info.findtext("channel_format") or "").strip().lower()
            if kind != "string" and not 1 <= count <= MAX_CHANNELS:
                raise SourceError(f"{path}: stream '{name}': channel_count is {count} (expected 1 to {MAX_CHANNELS})")
            if kind in _XDF_VALUE_BYTES and len(content) >= 4:
                numeric[int.from_bytes(content[:4], "little")] = (name, count, _XDF_VALUE_BYTES[kind])


_XDF_VALUE_BYTES = {"float32": 4, "double64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8}


def _check_samples_chunk(path: Path, handle, size: int, numeric: dict[int, tuple[str, int, int]]) -> None:
    """A samples chunk of a numeric stream must fit its declared channel count: each sample is a time
    stamp flag (1 byte), maybe a stamp (8) and channels x value bytes."""
    start = handle.tell()
    head = handle.read(min(size, 13))
    handle.seek(start + size)
    if len(head) < 6:
        return
    stream = int.from_bytes(head[:4], "little")
    if stream not in numeric or head[4] not in (1, 4, 8) or len(head) < 5 + head[4]:
        return
    count = int.from_bytes(head[5:5 + head[4]], "little")
    rest = size - 5 - head[4]
    name, channels, width = numeric[stream]
    if count and not count * (1 + channels * width) <= rest <= count * (9 + channels * width):
        held = (rest / count - 9) / width
        raise SourceError(f"{path}: stream '{name}' declares {channels} channels, but its samples hold about "
                          f"{max(held, 0):.0f} ({count} samples in {rest} bytes): the channel count does not match")


# -- EDF / BDF --------------------------------------------------------------------------------------------------
@dataclass
class _EdfSignal:
    label: str
    samples: int                 # per data record


def _fields(raw: bytes, offset: int, width: int, count: int) -> list[str]:
    return [raw[offset + i * width: offset + (i + 1) * width].decode("latin-1").strip() for i in range(count)]


def _number(path: Path, text: str, field: str, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise SourceError(f"{path}: header field '{field}' is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise SourceError(f"{path}: header field '{field}' is {text!r}, not a finite number")
    return value


def _check_edf(path: Path) -> list[str]:
    size = path.stat().st_size
    bdf = path.suffix.lower() == ".bdf"
    with path.open("rb") as handle:
        fixed = handle.read(256)
        if len(fixed) < 256:
            raise SourceError(f"{path}: {len(fixed)} bytes, too short for an EDF/BDF header (256 bytes)")
        count = int(_number(path, fixed[252:256].decode("latin-1").strip(), "number of signals", True))
        if not 1 <= count <= MAX_CHANNELS:
            raise SourceError(f"{path}: header field 'number of signals' is {count} (expected 1 to {MAX_CHANNELS})")
        signals_raw = handle.read(256 * count)
    header_bytes = 256 * (count + 1)
    if len(signals_raw) < 256 * count:
        raise SourceError(f"{path}: the header is cut short ({size} bytes; {count} signals need {header_bytes})")
    said_header = int(_number(path, fixed[184:192].decode("latin-1").strip(), "bytes in header", True))
    if said_header != header_bytes:
        raise SourceError(f"{path}: header field 'bytes in header' is {said_header}, but {count} signals make "
                          f"{header_bytes}")
    records = int(_number(path, fixed[236:244].decode("latin-1").strip(), "number of data records", True))
    duration = _number(path, fixed[244:252].decode("latin-1").strip(), "duration of a data record", False)
    offset = 0
    labels = _fields(signals_raw, offset, 16, count)
    offset += 16 * count + 80 * count + 8 * count
    physical_min = _fields(signals_raw, offset, 8, count)
    physical_max = _fields(signals_raw, offset + 8 * count, 8, count)
    digital_min = _fields(signals_raw, offset + 16 * count, 8, count)
    digital_max = _fields(signals_raw, offset + 24 * count, 8, count)
    offset += 32 * count + 80 * count
    per_record = _fields(signals_raw, offset, 8, count)
    signals = []
    limit = (-(2**23), 2**23 - 1) if bdf else (-(2**15), 2**15 - 1)
    for index, label in enumerate(labels):
        name = f"signal {index + 1} ('{label}')"
        samples = int(_number(path, per_record[index], f"samples per record of {name}", True))
        if samples < 0 or samples > 10**7:
            raise SourceError(f"{path}: header field 'samples per record' of {name} is {samples}")
        signals.append(_EdfSignal(label, samples))
        if label in EDF_ANNOTATION_LABELS:
            continue
        low, high = (_number(path, t, f"physical {w} of {name}", False)
                     for t, w in ((physical_min[index], "minimum"), (physical_max[index], "maximum")))
        if low == high:
            raise SourceError(f"{path}: {name} has physical minimum = maximum ({low:g}): its samples cannot be "
                              "scaled")
        dlow, dhigh = (int(_number(path, t, f"digital {w} of {name}", True))
                       for t, w in ((digital_min[index], "minimum"), (digital_max[index], "maximum")))
        if not limit[0] <= dlow < dhigh <= limit[1]:
            raise SourceError(f"{path}: {name} has digital range {dlow}..{dhigh}; {'BDF' if bdf else 'EDF'} "
                              f"needs minimum < maximum within {limit[0]}..{limit[1]}")
    data_signals = [s for s in signals if s.label not in EDF_ANNOTATION_LABELS and s.samples > 0]
    if not data_signals:
        raise SourceError(f"{path}: the header describes no signal with samples (annotations only)")
    if duration <= 0:
        raise SourceError(f"{path}: header field 'duration of a data record' is {duration:g} s; it must be "
                          "positive (the sampling rate is samples per record / duration)")
    for signal in data_signals:
        check_rate(path, signal.samples / duration, f"'{signal.label}' ({signal.samples} samples per "
                                                   f"{duration:g} s record)")
    record_bytes = sum(s.samples for s in signals) * (3 if bdf else 2)
    held = (size - header_bytes) // record_bytes
    warnings = []
    if held < 1:
        raise SourceError(f"{path}: holds no complete data record ({size - header_bytes} bytes after the header, "
                          f"a record is {record_bytes})")
    if records == -1:
        warnings.append(f"{path.name}: the header does not give the number of data records; the file holds {held}")
    elif records <= 0:
        raise SourceError(f"{path}: header field 'number of data records' is {records}")
    elif records > held:
        warnings.append(f"{path.name}: the header says {records} data records, the file holds {held} (cut short?); "
                        f"replaying {held} ({held * duration:g} s)")
    elif records < held:
        warnings.append(f"{path.name}: the file holds {held} data records, the header says {records}; replaying "
                        f"the {records} it declares")
    return warnings


# -- BrainVision ------------------------------------------------------------------------------------------------
_BV_FORMATS = {"int_16": 2, "uint_16": 2, "int_32": 4, "ieee_float_32": 4, "ieee_float_64": 8}


def _ini(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("", {})
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), {})
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key.strip().lower()] = value.strip()
    return sections


def _beside(path: Path, name: str, key: str) -> Path:
    """A file named by the header, which must lie in the header's folder."""
    if not name:
        raise SourceError(f"{path}: header key '{key}' is empty")
    pure = Path(name.replace("\\", "/"))
    if pure.is_absolute() or len(pure.parts) != 1 or pure.name in ("..", "."):
        raise SourceError(f"{path}: header key '{key}' is {name!r}; it must name a file beside the header "
                          "(no folder, no absolute path)")
    target = path.parent / pure.name
    if not target.is_file():
        raise SourceError(f"{path}: {key} {pure.name} not found beside the header")
    return target


def _check_brainvision(path: Path) -> list[str]:
    size = path.stat().st_size
    if size > 16 * 1024**2:
        raise SourceError(f"{path}: {size} bytes, too large for a BrainVision header")
    sections = _ini(path.read_bytes().decode("utf-8", "replace"))
    common = sections.get("common infos", {})
    binary = sections.get("binary infos", {})
    data_file = _beside(path, common.get("datafile", ""), "DataFile")
    if common.get("markerfile"):
        _beside(path, common["markerfile"], "MarkerFile")
    channels = int(_number(path, common.get("numberofchannels", ""), "NumberOfChannels", True)) \
        if common.get("numberofchannels") else -1
    if not 1 <= channels <= MAX_CHANNELS:
        raise SourceError(f"{path}: header key 'NumberOfChannels' is {common.get('numberofchannels')!r} "
                          f"(expected 1 to {MAX_CHANNELS})")
    named = [key for key in sections.get("channel infos", {}) if re.fullmatch(r"ch\d+", key)]
    if named and len(named) != channels:
        raise SourceError(f"{path}: NumberOfChannels={channels} but [Channel Infos] names {len(named)} channels")
    interval = _number(path, common.get("samplinginterval", ""), "SamplingInterval", False)
    if interval <= 0:
        raise SourceError(f"{path}: header key 'SamplingInterval' is {interval:g} µs; it must be positive")
    check_rate(path, 1e6 / interval, f"SamplingInterval={interval:g} µs")
    data_format = common.get("dataformat", "BINARY")
    if data_format.lower() == "ascii":
        return []                                          # ASCII data: MNE checks it as it reads
    if data_format.lower() != "binary":
        raise SourceError(f"{path}: header key 'DataFormat' is {data_format!r} (expected BINARY or ASCII)")
    orientation = common.get("dataorientation", "MULTIPLEXED")
    if orientation.lower() not in ("multiplexed", "vectorized"):
        raise SourceError(f"{path}: header key 'DataOrientation' is {orientation!r} (expected MULTIPLEXED or "
                          "VECTORIZED)")
    kind = binary.get("binaryformat", "").lower()
    if kind not in _BV_FORMATS:
        raise SourceError(f"{path}: header key 'BinaryFormat' is {binary.get('binaryformat')!r} "
                          f"(expected one of {', '.join(k.upper() for k in _BV_FORMATS)})")
    frame = channels * _BV_FORMATS[kind]
    held = data_file.stat().st_size
    if held < 2 * frame:
        raise SourceError(f"{path}: {data_file.name} holds {held} bytes, not two samples of {channels} channels "
                          f"of {kind.upper()}")
    if held % frame:
        return [(f"{path.name}: {data_file.name} ({held} bytes) is not a whole number of {channels}-channel "
                 f"{kind.upper()} samples; the last {held % frame} bytes are left out")]
    return []


# -- after MNE has read the header ---------------------------------------------------------------------------------
def check_opened(path: Path, raw) -> None:
    """What MNE made of the header, checked before any sample is read: a plausible rate, and a data file
    (EEGLAB's .fdt) that holds the samples the header promises."""
    check_rate(path, float(raw.info["sfreq"]), "the file")
    if raw.n_times < 2:
        raise SourceError(f"{path}: holds {raw.n_times} sample(s)")
    if path.suffix.lower() == ".set":
        extras = raw._raw_extras[0] if raw._raw_extras else {}
        _check_eeglab_fields(path, raw)
        if extras.get("is_embedded", True):
            embedded = path.stat().st_size
            if embedded > EMBEDDED_EEGLAB_MAX_BYTES:
                raise SourceError(f"{path}: {embedded / 1024**2:.0f} MB with the data inside the .set; MNE reads such "
                                  "files whole", hint="save the data in a separate .fdt file (EEGLAB: pop_saveset)")
            return
        fdt = Path(raw.filenames[0])
        if fdt.resolve().parent != path.resolve().parent:
            raise SourceError(f"{path}: its data file {fdt} is not beside it; a .set's .fdt must lie in its folder")
        needed = len(raw.ch_names) * raw.n_times * 4
        if fdt.stat().st_size < needed:
            raise SourceError(f"{path}: declares {len(raw.ch_names)} channels x {raw.n_times} points "
                              f"({needed} bytes), but {fdt.name} holds {fdt.stat().st_size} bytes")


def _check_eeglab_fields(path: Path, raw) -> None:
    """A .set's nbchan and pnts (and its data's shape when the data are inside) against what MNE describes."""
    import scipy.io

    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
        fields = scipy.io.loadmat(path, variable_names=["nbchan", "pnts"], appendmat=False)
    except Exception:
        return
    values = {}
    for key in ("nbchan", "pnts"):
        value = fields.get(key)
        if value is None:
            return
        number = float(np.asarray(value, dtype=np.float64).ravel()[0]) if np.asarray(value).size else math.nan
        if not (math.isfinite(number) and number.is_integer() and number > 0):
            raise SourceError(f"{path}: field '{key}' is {number:g}; it must be a positive whole number")
        values[key] = int(number)
    if values["nbchan"] != len(raw.ch_names):
        raise SourceError(f"{path}: field 'nbchan' says {values['nbchan']} channels, the file describes "
                          f"{len(raw.ch_names)}")
    data = shapes.get("data")
    if data is not None and len(data) == 2 and data[0] * data[1] > 1 and tuple(data) != (values["nbchan"],
                                                                                       values["pnts"]):
        raise SourceError(f"{path}: declares {values['nbchan']} channels x {values['pnts']} points, but its data "
                          f"are {data[0]} x {data[1]}")
