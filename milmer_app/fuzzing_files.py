"""Lab-file cases for the fuzz campaign (milmer_app.fuzzing): EDF/BDF header fields, BrainVision header keys,
EEGLAB dimensions, XDF chunks and recording folders (for --export), each a valid seed mutated, and how a
worker runs one.

A case's data is a dict {file name: bytes} written into a scratch folder; the first name is what is opened.
The file targets run the `file:` loader (`load_eeg_file`) and then read the whole file in pieces as a replay
would (a lie past the header fails there, not quietly); the recording target exports to EDF and FIF.
"""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from milmer_app.xdf_chunks import clock_offset_chunk, file_header_chunk, sample_chunks, stream_chunk

FILE_TARGETS = ("edf", "brainvision", "eeglab", "xdf", "recording")
RATE = 128
CHANNELS = ["Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7"]
NUMBERS = ["0", "-1", "1", "2", "1e7", "1e-4", "0.0001", "-128", "nan", "inf", "-inf", "", "x", "99999999",
           "2147483648", "1.5", "3", "12", "-0", "1e308"]


def _rng_data(rng: random.Random, channels: int = len(CHANNELS), seconds: int = 4) -> np.ndarray:
    return np.random.default_rng(rng.randrange(2**32)).normal(0, 20, (channels, seconds * RATE))


def _bytes_mutation(rng: random.Random, raw: bytes, limit: int | None = None) -> tuple[str, bytes]:
    data = bytearray(raw)
    span = min(len(data), limit or len(data))
    kind = rng.choice(("flip", "truncate", "zero run", "boundary byte"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(span)] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "zero run":
        at = rng.randrange(span)
        data[at:at + rng.randint(1, 64)] = b"\0" * len(data[at:at + rng.randint(1, 64)])
    else:
        data[rng.randrange(span)] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
    return kind, bytes(data)


# -- EDF / BDF ----------------------------------------------------------------------------------------------------
EDF_FIELDS = {"header_bytes": (184, 8), "records": (236, 8), "duration": (244, 8), "signals": (252, 4)}
EDF_SIGNAL_FIELDS = {"physical_min": (8, 104), "physical_max": (8, 112), "digital_min": (8, 120),
                     "digital_max": (8, 128), "per_record": (8, 216)}   # width, offset in units of ns


def edf_bytes(data_uv: np.ndarray, bdf: bool = False) -> bytes:
    """A valid EDF (16 bit) or BDF (24 bit) of one-second records, labels CHANNELS."""
    channels, samples = data_uv.shape
    records = samples // RATE

    def text(value: object, width: int) -> bytes:
        return str(value).ljust(width)[:width].encode("ascii")

    dmin, dmax = (-(2**23), 2**23 - 1) if bdf else (-(2**15), 2**15 - 1)
    head = ((b"\xffBIOSEMI" if bdf else text("0", 8)) + text("X X X X", 80) + text("Startdate X X X X", 80)
            + text("01.01.20", 8) + text("00.00.00", 8) + text(256 * (channels + 1), 8)
            + text("24BIT" if bdf else "", 44) + text(records, 8) + text(1, 8) + text(channels, 4))
    for values, width in ((CHANNELS[:channels], 16), (["AgAgCl"] * channels, 80), (["uV"] * channels, 8),
                          ([-3200] * channels, 8), ([3200] * channels, 8), ([dmin] * channels, 8),
                          ([dmax] * channels, 8), ([""] * channels, 80), ([RATE] * channels, 8), ([""] * channels, 32)):
        head += b"".join(text(v, width) for v in values)
    digital = np.clip(np.round((data_uv + 3200) * (dmax - dmin) / 6400 + dmin), dmin, dmax).astype(np.int64)
    digital = digital[:, :records * RATE].reshape(channels, records, RATE).transpose(1, 0, 2).reshape(-1)
    if bdf:
        word = digital & 0xFFFFFF
        body = np.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], axis=1).astype(np.uint8).tobytes()
    else:
        body = digital.astype("<i2").tobytes()
    return head + body


def _set_field(raw: bytes, offset: int, width: int, value: str) -> bytes:
    return raw[:offset] + value.ljust(width)[:width].encode("latin-1") + raw[offset + width:]


def _edf_invalid(name: str, value: str) -> bool | None:
    try:
        number = float(value)
    except ValueError:
        return True
    if not math.isfinite(number):
        return True
    if name == "duration":
        rate = RATE / number if number else math.inf
        return True if not (number > 0 and 1.0 <= rate <= 50_000) else None
    if name == "signals" or name == "header_bytes":
        return True
    if name == "records":
        return True if number == 0 or (number < 0 and number != -1) or not number.is_integer() else None
    if name == "per_record":
        return True if number < 0 or not number.is_integer() else None
    return None


def edf_case(rng: random.Random) -> tuple[str, dict[str, bytes], bool | None]:
    bdf = rng.random() < 0.3
    name = "rec.bdf" if bdf else "rec.edf"
    raw = edf_bytes(_rng_data(rng), bdf)
    channels = len(CHANNELS)
    choice = rng.random()
    if choice < 0.25:
        kind, data = _bytes_mutation(rng, raw, limit=256 * (channels + 1))
        return f"{name} header bytes:{kind}", {name: data}, None
    if choice < 0.5:
        field = rng.choice(tuple(EDF_FIELDS))
        offset, width = EDF_FIELDS[field]
        value = rng.choice(NUMBERS)
        return f"{name} {field}={value!r}", {name: _set_field(raw, offset, width, value)}, _edf_invalid(field, value)
    if choice < 0.8:
        field = rng.choice(tuple(EDF_SIGNAL_FIELDS))
        width, unit = EDF_SIGNAL_FIELDS[field]
        index = rng.randrange(channels)
        value = rng.choice(NUMBERS)
        offset = 256 + unit * channels + index * width
        invalid = None
        try:
            number = float(value)
            if not math.isfinite(number):
                invalid = True
        except ValueError:
            invalid = True
        return (f"{name} signal {index + 1} {field}={value!r}", {name: _set_field(raw, offset, width, value)},
                invalid)
    variants = [("data cut", raw[:256 * (channels + 1) + rng.randrange(len(raw) - 256 * (channels + 1))], None),
                ("header only", raw[:256 * (channels + 1)], True),
                ("extra bytes", raw + bytes(rng.randrange(1, 5000)), None),
                ("records -1", _set_field(raw, 236, 8, "-1"), None)]
    label, data, invalid = rng.choice(variants)
    return f"{name} {label}", {name: data}, invalid


# -- BrainVision --------------------------------------------------------------------------------------------------
def brainvision_files(data_uv: np.ndarray) -> dict[str, bytes]:
    channels = len(data_uv)
    header = ["Brain Vision Data Exchange Header File Version 1.0", "[Common Infos]", "Codepage=UTF-8",
              "DataFile=rec.eeg", "MarkerFile=rec.vmrk", "DataFormat=BINARY", "DataOrientation=MULTIPLEXED",
              f"NumberOfChannels={channels}", f"SamplingInterval={1e6 / RATE:g}", "[Binary Infos]",
              "BinaryFormat=IEEE_FLOAT_32", "[Channel Infos]"]
    header += [f"Ch{i + 1}={name},,0.1,µV" for i, name in enumerate(CHANNELS[:channels])]
    marker = ["Brain Vision Data Exchange Marker File, Version 1.0", "[Common Infos]", "Codepage=UTF-8",
              "DataFile=rec.eeg", "[Marker Infos]", "Mk1=New Segment,,1,1,0", "Mk2=Stimulus,S  1,129,1,0"]
    return {"rec.vhdr": ("\n".join(header) + "\n").encode(), "rec.vmrk": ("\n".join(marker) + "\n").encode(),
            "rec.eeg": (data_uv / 0.1).T.astype("<f4").tobytes()}


BV_KEYS = {"DataFile": ["/etc/passwd", "../rec.eeg", "rec.vmrk", "missing.eeg", "", "rec.eeg\\..\\x", "."],
           "MarkerFile": ["/etc/hosts", "../x.vmrk", "none.vmrk", ""],
           "NumberOfChannels": NUMBERS + ["16", "4"], "SamplingInterval": NUMBERS + ["7812.5", "1000000000"],
           "BinaryFormat": ["INT_16", "INT_32", "IEEE_FLOAT_64", "INT_64", "", "x"],
           "DataOrientation": ["VECTORIZED", "x", ""], "DataFormat": ["ASCII", "x", ""]}


def brainvision_case(rng: random.Random) -> tuple[str, dict[str, bytes], bool | None]:
    files = brainvision_files(_rng_data(rng))
    choice = rng.random()
    if choice < 0.2:
        kind, data = _bytes_mutation(rng, files["rec.vhdr"])
        files["rec.vhdr"] = data
        return f"vhdr bytes:{kind}", files, None
    if choice < 0.35:
        cut = rng.randrange(len(files["rec.eeg"]))
        files["rec.eeg"] = files["rec.eeg"][:cut]
        return f"eeg data cut to {cut} bytes", files, True if cut < 2 * 4 * len(CHANNELS) else None
    key = rng.choice(tuple(BV_KEYS))
    value = rng.choice(BV_KEYS[key])
    lines = files["rec.vhdr"].decode().splitlines()
    lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in lines]
    files["rec.vhdr"] = ("\n".join(lines) + "\n").encode()
    invalid: bool | None = None
    if key in ("DataFile",) or (key == "MarkerFile" and value != ""):
        invalid = True
    elif key in ("NumberOfChannels", "SamplingInterval"):
        try:
            number = float(value)
            rate = 1e6 / number if number else math.inf
            if key == "NumberOfChannels":
                invalid = True if number != len(CHANNELS) else None
            else:
                invalid = True if not (number > 0 and 1.0 <= rate <= 50_000) else None
        except ValueError:
            invalid = True
    elif key == "BinaryFormat" and value not in ("IEEE_FLOAT_32",):
        invalid = True if value in ("INT_64", "", "x") else None
    return f"vhdr {key}={value!r}", files, invalid


# -- EEGLAB --------------------------------------------------------------------------------------------------------
def eeglab_files(rng: random.Random, changes: dict[str, Any], fdt: bool) -> dict[str, bytes]:
    import scipy.io

    data = _rng_data(rng, 4).astype(np.float32)
    chanlocs = np.zeros((1, 4), dtype=[("labels", object)])
    for i, name in enumerate(CHANNELS[:4]):
        chanlocs[0, i]["labels"] = name
    content: dict[str, Any] = {"setname": "x", "nbchan": 4.0, "pnts": float(data.shape[1]), "trials": 1.0,
                               "srate": float(RATE), "xmin": 0.0, "xmax": (data.shape[1] - 1) / RATE,
                               "ref": "common", "chanlocs": chanlocs, "icawinv": np.zeros((0, 0)),
                               "icasphere": np.zeros((0, 0)), "icaweights": np.zeros((0, 0)),
                               "data": "rec.fdt" if fdt else data}
    content.update(changes)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, appendmat=False)
    files = {"rec.set": buffer.getvalue()}
    if fdt:
        files["rec.fdt"] = data.T.astype("<f4").tobytes() if "fdt_bytes" not in changes else changes["fdt_bytes"]
    return files


EEGLAB_CHANGES = {"nbchan": [0.0, -1.0, 64.0, 3.0, 1e9, np.nan], "pnts": [0.0, -5.0, 1e9, 1e12, 100.0, np.nan, 2.5],
                  "trials": [0.0, 2.0, -1.0], "srate": [0.0, -128.0, 1e9, np.inf, 0.5, 256.0],
                  "data": [np.zeros((4, 3)), np.zeros((64, 10**3), np.float32), "../../etc/passwd", "none.fdt",
                           np.zeros((0, 0))]}


def eeglab_case(rng: random.Random) -> tuple[str, dict[str, bytes], bool | None]:
    fdt = rng.random() < 0.4
    if rng.random() < 0.15:
        files = eeglab_files(rng, {}, fdt)
        kind, data = _bytes_mutation(rng, files["rec.set"])
        files["rec.set"] = data
        return f"set bytes:{kind} (fdt {fdt})", files, None
    key = rng.choice(tuple(EEGLAB_CHANGES))
    value = rng.choice(EEGLAB_CHANGES[key])
    invalid: bool | None = True
    if key == "srate" and value in (256.0,):
        invalid = None
    if key == "pnts" and value == 100.0:
        invalid = None     # fewer points than the data: MNE reads what the header says
    if key == "data" and isinstance(value, str):
        fdt = False
    files = eeglab_files(rng, {key: value}, fdt)
    return f"set {key}={_short(value)} (fdt {fdt})", files, invalid


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


# -- XDF -----------------------------------------------------------------------------------------------------------
def _stream_header(sid: int, name: str, kind: str, channels: int, rate: str, fmt: str, described: int = 0) -> bytes:
    labels = "".join(f"<channel><label>{CHANNELS[i % len(CHANNELS)]}{i // len(CHANNELS) or ''}</label>"
                     f"<type>EEG</type><unit>microvolts</unit></channel>" for i in range(described))
    xml = (f'<?xml version="1.0"?><info><name>{name}</name><type>{kind}</type><channel_count>{channels}'
           f"</channel_count><nominal_srate>{rate}</nominal_srate><channel_format>{fmt}</channel_format>"
           f"<source_id>{name}</source_id><desc><channels>{labels}</channels></desc></info>")
    return stream_chunk(2, sid, xml.encode())


def xdf_chunks(stamps: np.ndarray, samples: np.ndarray, rate: str = str(RATE), declared: int | None = None,
               with_markers: bool = True) -> list[bytes]:
    channels = samples.shape[1] if samples.ndim == 2 else 0
    chunks = [file_header_chunk(),
              _stream_header(1, "Cap", "EEG", declared if declared is not None else channels, rate, "float32",
                             described=channels)]
    if with_markers:
        chunks.append(_stream_header(2, "Stim", "Markers", 1, "0", "string"))
    chunks += sample_chunks(1, stamps, samples, "float32")
    if with_markers and len(stamps):
        chunks += sample_chunks(2, [float(stamps[0]) + 1.0], [["go"]], "string")
    for sid in (1, 2) if with_markers else (1,):
        chunks.append(clock_offset_chunk(sid, float(stamps[0]) if len(stamps) else 0, 0.0))
    return chunks


def xdf_case(rng: random.Random) -> tuple[str, dict[str, bytes], bool | None]:
    n = 6 * RATE
    stamps = 1000.0 + np.arange(n) / RATE
    samples = np.random.default_rng(rng.randrange(2**32)).normal(0, 20, (n, len(CHANNELS))).astype(np.float32)
    choice = rng.random()
    invalid: bool | None = None
    rate, declared = str(RATE), None
    if choice < 0.35:
        what = rng.choice(("jump 1e6", "jump -1e6", "reversed", "nan stamp", "all equal", "jitter", "jump 30"))
        if what == "jump 1e6":
            stamps[n // 2:] += 1e6
        elif what == "jump -1e6":
            stamps[n // 2:] -= 1e6
        elif what == "jump 30":
            stamps[n // 2:] += 30
        elif what == "reversed":
            stamps = stamps[::-1].copy()
            invalid = True
        elif what == "nan stamp":
            stamps[rng.randrange(n)] = np.nan
        elif what == "all equal":
            stamps[:] = 1000.0
            invalid = True
        else:
            stamps += np.random.default_rng(1).normal(0, 0.01, n)
        mutation = f"stamps {what}"
    elif choice < 0.55:
        rate = rng.choice(NUMBERS)
        mutation = f"nominal_srate={rate!r}"
        try:
            value = float(rate)
            invalid = True if not (math.isfinite(value) and 1.0 <= value <= 50_000) else None
        except ValueError:
            invalid = True
    elif choice < 0.65:
        declared = rng.choice((0, 1, 4, 16, 10**6))
        mutation = f"channel_count={declared} (chunks hold {len(CHANNELS)})"
        invalid = True
    elif choice < 0.7:
        stamps, samples = stamps[:rng.choice((0, 1))], samples[:0]
        mutation = f"{len(stamps)} sample(s)"
        invalid = True
    else:
        mutation = None
    chunks = xdf_chunks(stamps, samples[:len(stamps)] if len(samples) else np.zeros((len(stamps), 8), np.float32),
                        rate, declared)
    data = b"XDF:" + b"".join(chunks)
    if mutation is None:
        index = rng.randrange(1, len(chunks))
        kind, changed = _bytes_mutation(rng, chunks[index])
        data = b"XDF:" + b"".join(chunks[:index]) + changed + b"".join(chunks[index + 1:])
        mutation = f"chunk {index} bytes:{kind}"
    return f"xdf {mutation}", {"rec.xdf": data}, invalid


# -- recording folders (--export) ---------------------------------------------------------------------------------
def recording_files(data_uv: np.ndarray, meta_eeg: dict[str, Any] | None = None, meta: dict | None = None,
                    stamps: np.ndarray | None = None) -> dict[str, bytes]:
    channels, samples = data_uv.shape
    eeg = {"channels": CHANNELS[:channels], "srate": float(RATE), "units": "uV", "source": "fuzz"}
    eeg.update(meta_eeg or {})
    document = {"format": "milmer-recording", "version": 1, "created_utc": "2026-01-02T03:04:05+00:00",
                "created_lsl": 1000.0, "eeg": eeg, "video": None, "model": {}}
    document.update(meta or {})
    stamps = 1000.0 + np.arange(samples) / RATE if stamps is None else stamps
    markers = b"".join(json.dumps({"timestamp": 1000.0 + t, "text": text}).encode() + b"\n"
                       for t, text in ((0.5, "trial 1"), (1.5, "line\nbreak\x00"), (2.0, "é" * 300)))
    return {"meta.json": json.dumps(document, allow_nan=True).encode(), "eeg.f32": data_uv.T.astype("<f4").tobytes(),
            "eeg_ts.f64": stamps.astype("<f8").tobytes(), "markers.jsonl": markers}


META_VALUES: list[Any] = [0, -128, "fast", None, True, [], {}, "Fp1,AF3", [1, 2], ["Fp1"] * 5000, float("nan"),
                          float("inf"), 1e9, 128.5, ["a\nb", "µV", "x" * 100, "", "Fp1", "Fp1", "AF3", "F3"]]


def recording_case(rng: random.Random) -> tuple[str, dict[str, bytes], bool | None]:
    data = _rng_data(rng, len(CHANNELS), seconds=3).astype(np.float32)
    choice = rng.random()
    if choice < 0.3:
        what = rng.choice(("nan", "inf", "constant", "dc -12 V", "1e30", "empty"))
        if what == "nan":
            data[rng.randrange(len(data)), 10:20] = np.nan
        elif what == "inf":
            data[:, 5] = np.inf
        elif what == "constant":
            data[rng.randrange(len(data))] = 7.0
        elif what == "dc -12 V":
            data[0] -= 12.0029e6
        elif what == "1e30":
            data[1, 3] = 1e30
        else:
            data = data[:, :0]
        return f"recording data {what}", recording_files(data), True if what == "empty" else None
    if choice < 0.75:
        field = rng.choice(("srate", "channels"))
        value = rng.choice(META_VALUES)
        invalid: bool | None = True
        if field == "srate" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and 0 < value <= 100_000:
            invalid = None
        if field == "channels" and isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
            invalid = None
        return f"meta eeg.{field}={_short(value)}", recording_files(data, {field: value}), invalid
    if choice < 0.85:
        variants: list[tuple[str, Any]] = [("list", [1, 2]), ("deep", None), ("eeg string", {"eeg": "x"}),
                                           ("no created_utc", {"created_utc": 5}), ("version 2", {"version": 2})]
        name, value = rng.choice(variants)
        files = recording_files(data, meta=value if isinstance(value, dict) else None)
        if name == "list":
            files["meta.json"] = b"[1, 2]"
        elif name == "deep":
            files["meta.json"] = b'{"format": "milmer-recording", "version": 1, "eeg": ' + b"[" * 100_000 + \
                b"]" * 100_000 + b"}"
        return f"meta {name}", files, None if name == "no created_utc" else True
    files = recording_files(data)
    target = rng.choice(("meta.json", "eeg.f32", "eeg_ts.f64", "markers.jsonl"))
    kind, changed = _bytes_mutation(rng, files[target])
    files[target] = changed
    return f"{target} bytes:{kind}", files, None


CASE_MAKERS = {"edf": edf_case, "brainvision": brainvision_case, "eeglab": eeglab_case, "xdf": xdf_case,
               "recording": recording_case}


# -- running one case (in a worker) --------------------------------------------------------------------------------
def write_case(files: dict[str, bytes], folder: Path) -> Path:
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder / next(iter(files))


def run_file_case(target: str, files: dict[str, bytes], scratch: Path) -> str | None:
    """Open the case as the app would; a problem with what was accepted (None: sound)."""
    if target == "recording":
        from milmer_app.export import export_recording

        folder = scratch / "rec"
        folder.mkdir(exist_ok=True)
        write_case(files, folder)
        for suffix in (".edf", ".fif"):
            out = scratch / f"out{suffix}"
            export_recording(folder, out)
            if not out.is_file() or out.stat().st_size == 0:
                return f"export to {suffix} wrote nothing"
        return None
    from milmer_app.sources.file import load_eeg_file

    folder = scratch / "file"
    folder.mkdir(exist_ok=True)
    path = write_case(files, folder)
    loaded = load_eeg_file(path)
    if not (math.isfinite(loaded.srate) and 1.0 <= loaded.srate <= 50_000 and loaded.samples >= 2
            and loaded.channel_names):
        return f"accepted {loaded.samples} samples at {loaded.srate} Hz, {len(loaded.channel_names)} channels"
    piece = max(1, int(4 * loaded.srate))
    for start in range(0, loaded.samples, piece):                      # the replay reads it all, in pieces
        chunk = loaded.read(start, min(loaded.samples, start + piece))
        if chunk.shape != (len(loaded.channel_names), min(loaded.samples, start + piece) - start):
            return f"piece at {start} has shape {chunk.shape}"
    if loaded.times is not None and not (np.all(np.diff(loaded.times) > 0) and np.isfinite(loaded.times).all()):
        return "media times not ascending"
    if loaded.duration > 10 * 3600:
        return f"a {loaded.duration:.0f} s replay from a small file"
    return None
