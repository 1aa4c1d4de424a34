"""Seeded fuzzing of what milmer reads from outside: DEAP .dat pickles, the ratings CSV, checkpoint
JSON, safetensors headers, source spec strings, and lab files (EDF/BDF headers, BrainVision headers,
EEGLAB dimensions, XDF chunks: replayed with `file:`) and recording folders (exported): the file cases
are in milmer_app.fuzzing_files.

Each case is a valid input mutated (byte flips, truncation, type swaps, boundary numbers, deep
nesting, hostile pickle payloads) and run in a worker process (a crash cannot take the campaign
down) under a per-case timeout and a memory limit. Outcomes:

  clear_error        a one-line MilmerError-family error
  handled            accepted, and the result passes sanity checks (or the input was fine)
  other_exception    any other exception: a bug
  hang               the case ran past its timeout
  crash              the worker process died (segfault, abort, killed)
  silent_acceptance  accepted although the input is invalid by construction
  code_execution     the payload's marker file appeared
  memory             the worker's peak RSS went over the limit

`bench/fuzz.py --cases N` runs a campaign and prints its figures; tests/test_fuzz.py runs a short one
of the same cases in CI.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import logging
import math
import os
import pickle
import random
import resource
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from milmer_app.demo import DEMO_CHECKPOINT
from milmer_app.fuzzing_files import CASE_MAKERS, FILE_TARGETS, run_file_case

OUTCOMES = ("clear_error", "handled", "other_exception", "hang", "crash", "silent_acceptance", "code_execution",
            "memory")
BAD_OUTCOMES = OUTCOMES[2:]
INPUT_TARGETS = ("dat", "csv", "checkpoint_json", "safetensors_header", "spec")
TARGETS = INPUT_TARGETS + FILE_TARGETS
RSS_LIMIT_MB = 2048
ADDRESS_SPACE_LIMIT = 8 * 2 ** 30  # a runaway allocation fails with MemoryError before it can take the machine
CKPT_NAME = "demo_model"  # the name the checkpoint's JSON gives its tensors file

BOUNDARY_NUMBERS: list[Any] = [0, -1, 1, 2 ** 31, 2 ** 63, -(2 ** 63), 10 ** 9, 1e-300, 1e308, 0.5, 1.5, 3.0, 4097,
                               float("nan"), float("inf"), float("-inf")]
TYPE_SWAPS: list[Any] = [None, True, False, "", "x", [], {}, [1, 2], {"a": 1}, "NaN", "1e999"]


@dataclass
class Case:
    target: str
    mutation: str
    data: Any  # bytes, str, (json bytes, safetensors bytes), or {file name: bytes} (lab files)
    invalid: bool | None  # True: invalid by construction; None: unknown (byte-level damage)
    marker: str = ""
    expect_rows: list[tuple[int, int]] = field(default_factory=list)  # csv: (participant, trial) that must be named


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str = ""
    rss_mb: float = 0.0


# ----------------------------------------------------------------------------- seeds

def _seed_dat() -> bytes:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (2, 40, 48))
    labels = rng.uniform(1, 9, (2, 4))
    return pickle.dumps({"labels": labels, "data": data}, protocol=2)


_CSV_HEADER = ["Participant_id", "Trial", "Experiment_id", "Start_time", "Valence", "Arousal", "Dominance",
               "Liking", "Familiarity"]


def _seed_csv_rows() -> list[list[str]]:
    rows = [_CSV_HEADER]
    for participant in (1, 2):
        for trial, experiment in ((1, 2), (2, 1), (3, 3)):
            rows.append([str(participant), str(trial), str(experiment), str(trial * 100), "6.5", "3.2", "5", "7",
                         "2"])
    return rows


def _csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


# (role, spec)
VALID_SPECS = (("eeg", "lsl:type=EEG"), ("eeg", "lsl:name=Cap,timeout=2"),
               ("eeg", "lsl:source_id=abc,min_channels=0.5,map=position"), ("eeg", "brainflow:synthetic"),
               ("eeg", "brainflow:board=0,serial_port=/dev/ttyUSB0"), ("eeg", "deap:/data/deap:1:3"),
               ("eeg", "recording:/tmp/rec"), ("eeg", "none"), ("eeg", "demo"), ("eeg", "file:/tmp/x.bdf"),
               ("eeg", "file:/tmp/x.xdf,stream=EEG,start=2,loop=true"), ("video", "none"),
               ("video", "webcam:0,width=640,height=480,fps=30"), ("video", "file:/tmp/x.avi"), ("video", "deap"))


# ----------------------------------------------------------------------------- generic mutations

def _bytes_mutation(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    kind = rng.choice(("flip", "truncate", "insert", "delete", "duplicate", "boundary_byte"))
    data = bytearray(raw)
    if not data:
        return "empty", b""
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "insert":
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        at = rng.randrange(len(data))
        del data[at:at + rng.randint(1, 16)]
    elif kind == "duplicate":
        at = rng.randrange(len(data))
        data[at:at] = data[at:at + rng.randint(1, 64)]
    else:
        data[rng.randrange(len(data))] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
    return kind, bytes(data)


def _text_number(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return {True: "nan"}.get(math.isnan(value), "inf" if value > 0 else "-inf")
    return str(value)


# ----------------------------------------------------------------------------- .dat cases

class _Call:
    """Pickles as a call of function(*args) (+ a BUILD state): how a hostile file asks for a call."""

    def __init__(self, function: Any, args: tuple, state: Any = None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


def marker_payloads(marker: str) -> list[tuple[str, bytes]]:
    command = f"touch {marker}"
    code = f"open({marker!r}, 'w').write('x')"
    payloads = [
        ("os.system GLOBAL", b"cos\nsystem\n(S'" + command.encode() + b"'\ntR."),
        ("posix.system GLOBAL", b"cposix\nsystem\n(S'" + command.encode() + b"'\ntR."),
        ("builtins.eval", b"c__builtin__\neval\n(S\"" + code.encode() + b"\"\ntR."),
        ("builtins.exec STACK_GLOBAL", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04exec"
         b"\x93\x8c" + bytes([len(code)]) + code.encode() + b"\x85R."),
        ("INST os.system", b"(S'" + command.encode() + b"'\nios\nsystem\n."),
        ("subprocess.Popen", b"csubprocess\nPopen\n((S'touch'\nS'" + marker.encode() + b"'\nltR."),
        ("numpy reconstruct with os.system subtype",
         b"cnumpy.core.multiarray\n_reconstruct\n(cos\nsystem\n(I0\ntS'b'\ntR."),
        ("numpy.testing runstring", b"cnumpy.testing._private.utils\nrunstring\n(S\"" + code.encode()
         + b"\"\n(dtR."),
        ("copyreg reconstructor", b"ccopyreg\n_reconstructor\n(cos\n_wrap_close\nc__builtin__\nobject\nNtR."),
        ("codecs encode other codec", b"c_codecs\nencode\n(S'" + command.encode() + b"'\nS'rot13'\ntR."),
        ("dtype with object fields",
         pickle.dumps(_Call(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                            (1, (1,), _Call(np.dtype, ("V8", False, True),
                                            (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)),
                             False, b"\0" * 8)), protocol=2)),
        ("object array short list (numpy 2 segfault)",
         pickle.dumps({"data": _Call(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                     (1, (1000,), np.dtype("O"), False, [1])), "labels": 1}, protocol=2)),
        ("persistent id", b"P" + command.encode() + b"\n."),
    ]
    return payloads


def _array_state(shape: Any, dtype: Any, data: Any, version: Any = 1, fortran: Any = False) -> _Call:
    return _Call(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (version, shape, dtype, fortran, data))


def _dat_cases(rng: random.Random, seed_dat: bytes, marker: str) -> Case:
    choice = rng.random()
    if choice < 0.35:
        kind, data = _bytes_mutation(rng, seed_dat)
        return Case("dat", f"bytes:{kind}", data, None)
    if choice < 0.5:
        name, payload = rng.choice(marker_payloads(marker))
        return Case("dat", f"payload:{name}", payload, True, marker)
    good = np.random.default_rng(rng.randrange(2 ** 32)).normal(0, 20, (2, 40, 48))
    labels = np.full((2, 4), 5.0)
    variants: list[tuple[str, Any, Any, bool]] = [
        ("nan eeg", _with(good, (1, 3, 7), np.nan), labels, True),
        ("inf eeg", _with(good, (0, 31, 0), np.inf), labels, True),
        ("huge amplitude", _with(good, (0, 5, 5), 1e6), labels, True),
        ("complex", good.astype(np.complex64), labels, True),
        ("zero trials", np.zeros((0, 40, 48)), np.zeros((0, 4)), True),
        ("wrong channels", good[:, :32], labels, True),
        ("labels out of scale", good, np.full((2, 4), 99.0), True),
        ("labels nan", good, np.full((2, 4), np.nan), True),
        ("labels rows", good, np.full((3, 4), 5.0), True),
        ("string array", np.array(["a", "b"]), labels, True),
        ("int16 eeg", good.astype(np.int16), labels, False),
        ("float16 eeg", good.astype(np.float16), labels, False),
        ("big-endian fortran", np.asfortranarray(good.astype(">f8")), labels, False),
        ("bool labels", good, np.ones((2, 4), bool), False),
        ("data is a list", [1, 2, 3], labels, True),
        ("data is a dict", {"x": good}, labels, True),
        ("deep nesting", None, labels, True),
        ("short byte state", _array_state((2, 40, 48), np.dtype("f8"), b"\0" * 100), labels, True),
        ("negative shape", _array_state((2, -40, 48), np.dtype("f8"), b""), labels, True),
        ("huge shape", _array_state((2 ** 40, 2 ** 40), np.dtype("f8"), b"\0" * 8), labels, True),
        ("list state", _array_state((3,), np.dtype("f8"), [1.0, 2.0, 3.0]), labels, True),
        ("state version", _array_state((1,), np.dtype("f8"), b"\0" * 8, version=rng.choice((0, 2, "x"))),
         labels, True),
        ("fortran junk", _array_state((1,), np.dtype("f8"), b"\0" * 8, fortran=[1]), labels, True),
        ("dtype string", _array_state((1,), "f8", b"\0" * 8), labels, True),
        ("void dtype", _array_state((1,), np.dtype("V8"), b"\0" * 8), labels, True),
        ("datetime dtype", _array_state((1,), np.dtype("M8[s]"), b"\0" * 8), labels, True),
    ]
    name, data, labels, invalid = rng.choice(variants)
    content = {"data": data, "labels": labels}
    if rng.random() < 0.1:
        content = rng.choice(([content], (content,), {"data": data}, {"labels": labels, "data": data, "x": None}))
        invalid = invalid or not isinstance(content, dict) or "labels" not in content
        name += " (container changed)"
    if name.startswith("deep nesting"):  # written by hand: pickling it would exhaust this process's recursion
        return Case("dat", f"array:{name}", _deep_pickle(rng.choice((1000, 100_000))), True)
    return Case("dat", f"array:{name}", pickle.dumps(content, protocol=rng.choice((2, 2, 4, 5))), invalid)


def _with(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    copy = array.copy()
    copy[index] = value
    return copy


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(min(depth, 500)):
        value = [value]
    return value


def _deep_pickle(depth: int) -> bytes:
    return b"\x80\x02}X\x04\x00\x00\x00data" + b"]" * depth + b"a" * (depth - 1) + b"X\x06\x00\x00\x00labelsK\x01u."


# ----------------------------------------------------------------------------- ratings CSV cases

def _cell_invalid(column: str, text: str) -> bool:
    if column in ("Participant_id", "Trial", "Experiment_id"):
        try:
            return int(text.strip()) < 1
        except ValueError:
            return True
    if column in ("Valence", "Arousal", "Dominance", "Liking"):
        try:
            value = float(text.strip())
        except ValueError:
            return True
        return not (math.isfinite(value) and 1 <= value <= 9)
    return False


def _csv_cases(rng: random.Random) -> Case:
    rows = _seed_csv_rows()
    choice = rng.random()
    if choice < 0.3:
        kind, data = _bytes_mutation(rng, _csv_text(rows))
        return Case("csv", f"bytes:{kind}", data, None)
    if choice < 0.8:
        row = rng.randrange(1, len(rows))
        column = rng.randrange(len(_CSV_HEADER))
        value = rng.choice(["nan", "NaN", "inf", "-inf", "", " ", "-1", "0", "10", "9.0001", "1e308", "1e999", "x",
                            "5.5.5", "\x00", "99999999999999999999999", "3", "7.25", "0x10", "1_0", "\u0663"])
        before = (rows[row][0], rows[row][1])
        rows[row][column] = value
        name = _CSV_HEADER[column]
        invalid = _cell_invalid(name, value)
        expect = [(int(before[0]), int(before[1]))] if invalid and column > 1 else []
        if column <= 2 and not invalid:  # a valid id may now collide with another row's
            invalid = None
        return Case("csv", f"cell:{name}={value!r}", _csv_text(rows), invalid or None, expect_rows=expect)
    if choice < 0.9:
        row = rng.randrange(1, len(rows))
        rows.append(list(rows[row]))
        return Case("csv", "duplicate row", _csv_text(rows), True,
                    expect_rows=[(int(rows[row][0]), int(rows[row][1]))])
    variants = [("missing column", [r[:2] + r[3:] for r in rows], True),
                ("header only", rows[:1], False),
                ("ragged row", rows + [["1", "4"]], True),
                ("extra columns", [r + ["z"] for r in rows], False),
                ("long row", rows + [["1"] * 100_000], True)]
    name, changed, invalid = rng.choice(variants)
    return Case("csv", f"shape:{name}", _csv_text(changed), invalid)


# ----------------------------------------------------------------------------- checkpoint cases

def _json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    paths = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.append(prefix + (key,))
            paths.extend(_json_paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            paths.append(prefix + (i,))
            paths.extend(_json_paths(item, prefix + (i,)))
    return paths


def _set_path(document: Any, path: tuple, value: Any) -> None:
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _value_invalid(path: tuple, old: Any, new: Any) -> bool | None:
    """Whether putting `new` where `old` was is invalid for sure (None: it may be fine)."""
    if path[0] in ("provenance",):
        return None
    if path == ("tensors", "file"):
        return None
    if isinstance(new, float) and not math.isfinite(new):
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is not type(new) or None
    if isinstance(old, (int, float)):
        if not isinstance(new, (int, float)):
            return True
        if abs(new) >= 10 ** 9:
            return True
        if isinstance(old, int) and isinstance(new, float) and not float(new).is_integer():
            return True
        if new < 0 and path[-1] != "video_offset":
            return True
        return None
    if isinstance(old, str) and not isinstance(new, str):
        return True
    if isinstance(old, (list, dict)) and type(new) is not type(old):
        return True
    return None


def _checkpoint_cases(rng: random.Random, seed_json: bytes, tensors: bytes) -> Case:
    choice = rng.random()
    if choice < 0.25:
        kind, data = _bytes_mutation(rng, seed_json)
        return Case("checkpoint_json", f"bytes:{kind}", (data, tensors), None)
    document = json.loads(seed_json)
    if choice < 0.85:
        paths = [p for p in _json_paths(document) if p[0] in ("config", "contract", "tensors", "format_version")]
        path = rng.choice(paths)
        old = document
        for part in path:
            old = old[part]
        new = rng.choice(BOUNDARY_NUMBERS + TYPE_SWAPS) if rng.random() < 0.8 else _nested(rng.choice((50, 500)))
        _set_path(document, path, new)
        invalid = _value_invalid(path, old, new)
        if isinstance(new, list) and new and isinstance(new[0], list):
            invalid = True
        text = json.dumps(document, allow_nan=True)
        return Case("checkpoint_json", f"field:{'.'.join(map(str, path))}={_short(new)}",
                    (text.encode(), tensors), invalid)
    if choice < 0.92:
        depth = rng.choice((10_000, 200_000))
        text = json.dumps(document)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        return Case("checkpoint_json", f"deep nesting {depth}", (text.encode(), tensors), True)
    key = rng.choice(("config", "contract", None))
    (document[key] if key else document)["unknown_field"] = 1
    return Case("checkpoint_json", f"unknown field in {key or 'top level'}", (json.dumps(document).encode(), tensors),
                True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _with_digest(seed_json: bytes, tensors: bytes) -> bytes:
    import hashlib

    document = json.loads(seed_json)
    document["tensors"]["sha256"] = hashlib.sha256(tensors).hexdigest()
    return json.dumps(document).encode()


def _header_cases(rng: random.Random, seed_json: bytes, tensors: bytes) -> Case:
    (length,) = struct.unpack("<Q", tensors[:8])
    header = json.loads(tensors[8:8 + length])
    body = tensors[8 + length:]
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    choice = rng.random()
    invalid: bool | None = True
    if choice < 0.15:
        kind, raw = _bytes_mutation(rng, tensors[:8 + length])
        data, mutation, invalid = raw + body, f"header bytes:{kind}", None
    elif choice < 0.25:
        new_length = rng.choice((0, 1, length - 1, length + 1, 2 ** 63, 2 ** 64 - 1, 100 * 2 ** 20))
        data, mutation = struct.pack("<Q", new_length) + tensors[8:], f"header length {new_length}"
    elif choice < 0.4:
        offset = 8 + length + 4 * rng.randrange(max(1, len(body) // 4))
        value = rng.choice((float("nan"), float("inf"), float("-inf")))
        data = tensors[:offset] + struct.pack("<f", value) + tensors[offset + 4:]
        mutation = f"{value} in the weights"
    else:
        entry = header[name]
        field_name = rng.choice(("dtype", "shape", "data_offsets", "entry", "metadata"))
        if field_name == "dtype":
            entry["dtype"] = rng.choice(("F64", "F16", "I8", "BOOL", "X", 3, None))
        elif field_name == "shape":
            old_shape = list(entry["shape"])
            entry["shape"] = rng.choice(([], [-1], [2 ** 62, 2 ** 62], entry["shape"][::-1] + [1], ["a"],
                                         _nested(200)))
            invalid = None if entry["shape"] == old_shape else True
        elif field_name == "data_offsets":
            begin, end = entry["data_offsets"]
            entry["data_offsets"] = rng.choice(([end, begin], [begin, end + 4], [begin + 4, end], [0, 2 ** 63],
                                                [-1, end], [begin], "x"))
        elif field_name == "entry":
            header[name] = rng.choice((None, [], "x", {"dtype": "F32"}))
        else:
            header["__metadata__"] = rng.choice(({"format": 1}, {"a": "b"}, [], {"format": "x" * 100_000}))
            invalid = None
        encoded = json.dumps(header).encode()
        data = struct.pack("<Q", len(encoded)) + encoded + body
        mutation = f"header {name}.{field_name}"
    # The attacker controls both files: the JSON's digest matches the tampered tensors.
    return Case("safetensors_header", mutation, (_with_digest(seed_json, data), data), invalid)


# ----------------------------------------------------------------------------- spec cases

def _numeric_options() -> list[tuple[str, str, str, Any]]:
    """(role, spec to extend, option, its limits) for every numeric option of every registered kind
    whose spec takes KEY=VALUE options; the limits are the source registry's own."""
    from milmer_app.sources import registry

    found = []
    for role in registry.ROLES:
        for kind in registry.kinds(role):
            if kind.split is not None or not kind.example:
                continue
            for key, limits in registry.number_limits(kind.options).items():
                if key != kind.head:
                    found.append((role, kind.example, key, limits))
    return found


def _spec_invalid(limits: Any, text: str) -> bool:
    try:
        value = int(text) if limits.integer else float(text)
    except ValueError:
        return True
    return not limits.allows(value)


def _spec_cases(rng: random.Random) -> Case:
    role, base = rng.choice(VALID_SPECS)
    choice = rng.random()
    if choice < 0.3:
        kind, data = _bytes_mutation(rng, base.encode())
        return Case("spec", f"bytes:{kind} of {base}", (role, data.decode("utf-8", "replace")), None)
    if choice < 0.85:
        role, prefix, key, limits = rng.choice(_numeric_options())
        value = rng.choice([_text_number(v) for v in BOUNDARY_NUMBERS] + ["", "x", "1e400", "-0", "0.0001", "3600",
                                                                          "3600.5", "16384", "16385", "1001"])
        text = f"{prefix},{key}={value}"
        return Case("spec", f"option:{text}", (role, text), _spec_invalid(limits, value))
    variants = [("long", "lsl:name=" + "x" * 1_000_000, None), ("many options", "lsl:type=EEG" + ",a=1" * 10_000,
                                                                  None),
                ("empty", "", True), ("colons", ":::::", True), ("commas", "lsl:,,,,", True),
                ("equals", "lsl:=,=,=", True), ("unicode", "lsl:type=\u0415\u0415\u0413\ud800", None),
                ("nul", "lsl:type=EEG\x00", None), ("deap subject", "deap:/d:-1:x", True)]
    name, text, invalid = rng.choice(variants)
    return Case("spec", f"shape:{name}", ("eeg", text), invalid)


# ----------------------------------------------------------------------------- generation

@dataclass
class Seeds:
    dat: bytes
    checkpoint_json: bytes
    tensors: bytes
    marker: str


def make_seeds(workdir: Path) -> Seeds:
    return Seeds(dat=_seed_dat(), checkpoint_json=DEMO_CHECKPOINT.with_suffix(".json").read_bytes(),
                 tensors=DEMO_CHECKPOINT.with_suffix(".safetensors").read_bytes(), marker=str(workdir / "PWNED"))


def generate(cases: int, seed: int, seeds: Seeds, targets: tuple[str, ...] = TARGETS) -> list[Case]:
    """`cases` cases spread evenly over `targets`; the same seed gives the same cases."""
    rng = random.Random(seed)
    out = []
    for i in range(cases):
        target = targets[i % len(targets)]
        if target == "dat":
            out.append(_dat_cases(rng, seeds.dat, seeds.marker))
        elif target == "csv":
            out.append(_csv_cases(rng))
        elif target == "checkpoint_json":
            out.append(_checkpoint_cases(rng, seeds.checkpoint_json, seeds.tensors))
        elif target == "safetensors_header":
            out.append(_header_cases(rng, seeds.checkpoint_json, seeds.tensors))
        elif target in FILE_TARGETS:
            mutation, files, invalid = CASE_MAKERS[target](rng)
            out.append(Case(target, mutation, files, invalid))
        else:
            out.append(_spec_cases(rng))
        out[-1].marker = seeds.marker
    return out


# ----------------------------------------------------------------------------- running (in a worker)

def worker_init() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    logging.disable(logging.CRITICAL)
    import warnings

    warnings.simplefilter("ignore")
    # Imported before the first case, so that a case's timeout measures the case, not torch's import.
    import mne  # noqa: F401
    import pyxdf  # noqa: F401

    import milmer_app.export
    import milmer_app.sources.file
    import milmer_app.specs  # noqa: F401
    import models.checkpoint  # noqa: F401
    import training.deap  # noqa: F401


def _scratch() -> Path:
    folder = Path(tempfile.gettempdir()) / f"milmer-fuzz-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


def _run_target(case: Case, scratch: Path) -> str | None:
    """Run the reader; return a problem with an accepted result (None: the result is sound)."""
    if case.target in FILE_TARGETS:
        return run_file_case(case.target, case.data, scratch)
    if case.target == "dat":
        from training.deap import read_dat

        path = scratch / "s01.dat"
        path.write_bytes(case.data)
        arrays = read_dat(path)
        if not (np.isfinite(arrays.data[:, :32]).all() and arrays.data.ndim == 3 and arrays.data.shape[1] == 40
                and len(arrays.data) == len(arrays.labels) > 0):
            return "accepted arrays that fail the checks"
        return None
    if case.target == "csv":
        from training.deap import read_ratings_table

        path = scratch / "participant_ratings.csv"
        path.write_bytes(case.data)
        table = read_ratings_table(path)
        keys = [(r.participant, r.trial) for r in table.rows]
        if len(keys) != len(set(keys)) or len({(r.participant, r.experiment_id) for r in table.rows}) != len(keys):
            return "duplicate rows accepted"
        for row in table.rows:
            ratings = (row.valence, row.arousal, row.dominance, row.liking)
            if not all(math.isfinite(v) and 1 <= v <= 9 for v in ratings) or min(row.trial, row.experiment_id) < 1:
                return f"row {row} accepted"
        named = {(p.participant, p.trial) for p in table.problems}
        missing = [key for key in case.expect_rows if key not in named]
        if missing:
            return f"rows {missing} not named"
        if case.invalid and not table.problems:
            return "no problem reported"
        return None
    if case.target in ("checkpoint_json", "safetensors_header"):
        from models.checkpoint import load_checkpoint

        json_bytes, tensors = case.data
        (scratch / f"{CKPT_NAME}.json").write_bytes(json_bytes)
        (scratch / f"{CKPT_NAME}.safetensors").write_bytes(tensors)
        loaded = load_checkpoint(scratch / CKPT_NAME)
        if not all(bool(p.isfinite().all()) for p in loaded.model.parameters()):
            return "non-finite weights accepted"
        return None
    from milmer_app.specs import parse_spec

    role, text = case.data
    parse_spec(role, text)
    return None


def run_case(case: Case) -> Result:
    from models.console import one_line
    from models.errors import MilmerError

    scratch = _scratch()
    # ru_maxrss only grows: a case is blamed for crossing the limit, not for a predecessor's peak.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        problem = _run_target(case, scratch)
        if problem is not None:
            outcome, detail = "silent_acceptance", problem
        elif case.invalid and case.target != "csv":  # a CSV's bad rows are reported, not raised: checked above
            outcome, detail = "silent_acceptance", "invalid input accepted"
        else:
            outcome, detail = "handled", ""
    except MilmerError as exc:
        text = one_line(exc)  # how the command-line tools print it
        outcome = "clear_error" if text.strip() and "Traceback" not in text else "other_exception"
        detail = text[:300]
    except Exception as exc:
        outcome, detail = "other_exception", f"{type(exc).__name__}: {str(exc)[:300]}"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if case.marker and os.path.exists(case.marker):
        outcome, detail = "code_execution", f"marker {case.marker} created"
    elif rss > RSS_LIMIT_MB >= rss_before:
        outcome, detail = "memory", f"peak RSS {rss:.0f} MB"
    return Result(case, outcome, detail, rss)


def run_campaign(cases: list[Case], workers: int = 2, timeout: float = 30.0) -> list[Result]:
    from training.process_pool import ProcessPool

    results = []
    with ProcessPool(workers, initializer=worker_init, isolate=True, task_timeout=timeout) as pool:
        for outcome in pool.imap_unordered(run_case, cases):
            if outcome.death is not None:
                kind = "hang" if outcome.death.startswith("timed out") else "crash"
                results.append(Result(outcome.payload, kind, outcome.death))
            else:
                results.append(outcome.result)
            marker = outcome.payload.marker
            if marker and os.path.exists(marker) and results[-1].outcome != "code_execution":
                results[-1] = Result(outcome.payload, "code_execution", f"marker {marker} created")
    return results


def summarise(results: list[Result]) -> dict[str, Any]:
    counts = collections.Counter(r.outcome for r in results)
    by_target = {t: collections.Counter(r.outcome for r in results if r.case.target == t) for t in TARGETS}
    return {"cases": len(results), "counts": {o: counts.get(o, 0) for o in OUTCOMES},
            "by_target": {t: {o: c for o, c in counts_.items()} for t, counts_ in by_target.items()},
            "peak_rss_mb": max((r.rss_mb for r in results), default=0.0),
            "bad": [(r.case.target, r.case.mutation, r.outcome, r.detail)
                    for r in results if r.outcome in BAD_OUTCOMES]}
