"""An unpickler that can rebuild numeric numpy arrays and nothing else.

DEAP's ``.dat`` files are Python 2 pickles. A pickle can name any callable and run
it while loading, so only the handful of globals that numpy's array pickling uses
are admitted; any other global (os.system, builtins.eval, ...) is refused before it
is looked up, so its payload never runs.

numpy itself never sees a pickled state: ``ndarray.__setstate__`` trusts it (an
object-dtype state whose item list is shorter than the shape crashes numpy 2.x;
a dtype state can declare object fields behind a "no objects" flag). So
``_reconstruct`` and ``numpy.dtype`` hand the unpickler placeholders whose
``__setstate__`` checks the state (plain numeric dtype, integer shape, raw bytes of
exactly shape x itemsize) and builds the array with ``numpy.frombuffer``. After
loading, the placeholders are swapped for what they built. All arrays together may
not hold more bytes than the file, so a few bytes cannot claim gigabytes of memory.
"""

from __future__ import annotations

import io
import math
import operator
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import DataError

# Bool, signed/unsigned integers, floats and complex: nothing numpy would read as Python objects.
NUMERIC_KINDS = "biufc"
_ARRAY_STATE_VERSION = 1
_DTYPE_STATE_VERSIONS = (3, 4)


class _Refused(pickle.UnpicklingError):
    pass


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use for bytes; latin1 only."""
    if not isinstance(encoding, str) or encoding.lower().replace("-", "") != "latin1" or not isinstance(text, str):
        raise _Refused(f"refused _codecs.encode with encoding {encoding!r}")
    try:
        return text.encode("latin1")
    except UnicodeEncodeError:
        raise _Refused("refused _codecs.encode of text outside latin1") from None


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes()``, which protocol-2 pickles use for b"" (a zero-size array's data); no arguments."""
    if args:
        raise _Refused("refused bytes(...) with arguments")
    return b""


class _Budget:
    """Bytes all arrays of one file may hold together (the file's own length)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, size: int, what: str) -> None:
        if size > self.limit - self.used:
            raise _Refused(f"refused {what} ({size} bytes): arrays would exceed the file's {self.limit} bytes")
        self.used += size


def _plain_dtype(value: Any) -> np.dtype:
    """A resolved numeric dtype, or refusal."""
    if isinstance(value, _PendingDtype):
        value = value.resolve()
    if not isinstance(value, np.dtype):
        raise _Refused(f"refused dtype {value!r}")
    if value.hasobject or value.kind not in NUMERIC_KINDS or value.fields is not None or value.subdtype is not None:
        raise _Refused(f"refused dtype {value} (only plain numeric arrays are allowed)")
    return value


class _PendingDtype:
    """What ``numpy.dtype(...)`` gives the pickle: checked and built when its state arrives."""

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = True):
        if not isinstance(spec, str) or len(spec) > 8:
            raise _Refused(f"refused dtype spec {spec!r}")
        try:
            dtype = np.dtype(spec)
        except (TypeError, ValueError):
            raise _Refused(f"refused dtype spec {spec!r}") from None
        self._dtype = _plain_dtype(dtype)
        self._built = False

    def __setstate__(self, state: Any) -> None:
        # Numeric dtypes pickle as (version, byte order, None, None, None, -1, -1, flags).
        if self._built:
            raise _Refused("refused a second state for one dtype")
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in _DTYPE_STATE_VERSIONS:
            raise _Refused(f"refused dtype state {_short(state)}")
        order = state[1]
        if order not in ("<", ">", "|", "=") or any(item is not None for item in state[2:5]):
            raise _Refused(f"refused dtype state {_short(state)}")
        if state[5] not in (-1, self._dtype.itemsize) or state[6] not in (-1, self._dtype.alignment):
            raise _Refused(f"refused dtype state {_short(state)}")
        if state[7] not in (0, self._dtype.flags):
            raise _Refused(f"refused dtype flags {state[7]!r}")
        if order in ("<", ">") and self._dtype.itemsize > 1:
            self._dtype = self._dtype.newbyteorder(order)
        self._built = True

    def resolve(self) -> np.dtype:
        return self._dtype


class _NdarrayType:
    """What the pickle gets for ``numpy.ndarray``: a token for ``_reconstruct``, not a constructor."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise _Refused("refused a direct numpy.ndarray(...) call (arrays come from _reconstruct)")


_NDARRAY = _NdarrayType()


def _shape(value: Any) -> tuple[int, ...]:
    dims = value if isinstance(value, tuple) else (value,)
    try:
        shape = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise _Refused(f"refused array shape {_short(value)}") from None
    if len(shape) > 32 or any(d < 0 for d in shape):
        raise _Refused(f"refused array shape {_short(value)}")
    return shape


def _raw_bytes(value: Any) -> bytes:
    if isinstance(value, str):  # Python 2 str read with encoding="latin1"
        try:
            return value.encode("latin1")
        except UnicodeEncodeError:
            raise _Refused("refused array data: text outside latin1") from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    # A list here is how numpy pickles object arrays: never interpreted.
    raise _Refused(f"refused array data of type {type(value).__name__} (only raw bytes of numeric arrays)")


class _PendingArray:
    """What ``_reconstruct`` gives the pickle: the array is built from a checked state, never by numpy's setstate."""

    def __init__(self, budget: _Budget):
        self._budget = budget
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise _Refused("refused a second state for one array")
        if isinstance(state, tuple) and len(state) == 5:
            if state[0] != _ARRAY_STATE_VERSION:
                raise _Refused(f"refused array state version {_short(state[0])}")
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Refused(f"refused array state {_short(state)}")
        shape, dtype, fortran, data = _shape(state[0]), _plain_dtype(state[1]), state[2], _raw_bytes(state[3])
        if not isinstance(fortran, (bool, int)):
            raise _Refused(f"refused array order flag {_short(fortran)}")
        size = math.prod(shape) * dtype.itemsize
        if size != len(data):
            raise _Refused(f"refused array of shape {shape} and dtype {dtype}: it needs {size} bytes, "
                           f"the pickle holds {len(data)}")
        self._budget.take(size, f"array of shape {shape}")
        flat = np.frombuffer(data, dtype=dtype) if size else np.zeros(0, dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy(order="K")

    def resolve(self) -> np.ndarray:
        if self.array is None:
            raise _Refused("refused an array without its data")
        return self.array


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bytes, tuple, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


class NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, max_bytes: int, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.budget = _Budget(max_bytes)
        self._allowed: dict[tuple[str, str], Any] = {
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): _PendingDtype,
            ("_codecs", "encode"): _latin1_encode,
            ("__builtin__", "bytes"): _empty_bytes,
            ("builtins", "bytes"): _empty_bytes,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            self._allowed[(module, "_reconstruct")] = self._reconstruct
            self._allowed[(module, "scalar")] = self._scalar
        for module in ("numpy.core.numeric", "numpy._core.numeric"):
            self._allowed[(module, "_frombuffer")] = self._frombuffer

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"refused global {module}.{name} (only numpy arrays are allowed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refused a persistent id")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
        if subtype is not _NDARRAY:
            raise _Refused(f"refused array subtype {_short(subtype)}")
        _shape(shape)
        return _PendingArray(self.budget)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        dtype = _plain_dtype(dtype)
        raw = _raw_bytes(data)
        if len(raw) != dtype.itemsize:
            raise _Refused(f"refused numpy scalar of dtype {dtype} with {len(raw)} bytes")
        return np.frombuffer(raw, dtype=dtype, count=1)[0]

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        dtype, dims = _plain_dtype(dtype), _shape(shape)
        if order not in ("C", "F"):
            raise _Refused(f"refused array order {_short(order)}")
        data = _raw_bytes(bytes(buffer) if isinstance(buffer, pickle.PickleBuffer) else buffer)
        size = math.prod(dims) * dtype.itemsize
        if size != len(data):
            raise _Refused(f"refused array of shape {dims} and dtype {dtype}: it needs {size} bytes, "
                           f"the pickle holds {len(data)}")
        self.budget.take(size, f"array of shape {dims}")
        return np.frombuffer(data, dtype=dtype).reshape(dims, order=order).copy(order="K")


_LEAVES = (str, bytes, int, float, complex, bool, type(None), np.generic, np.ndarray)


def _resolve(root: Any) -> Any:
    """The loaded value with every placeholder replaced by what it built (iterative: deep or cyclic input is fine)."""
    new: dict[int, Any] = {}
    order: list[Any] = []  # containers in discovery order
    seen: set[int] = set()
    pending = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (_PendingArray, _PendingDtype)):
            new[id(item)] = item.resolve()
        elif isinstance(item, dict):
            for key in item:
                if not isinstance(key, (str, bytes, int, float, bool, type(None))):
                    raise _Refused(f"refused dict key of type {type(key).__name__}")
            new[id(item)] = {}
            order.append(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            new[id(item)] = []
            order.append(item)
            pending.extend(item)
        elif isinstance(item, tuple):
            order.append(item)
            pending.extend(item)
        elif isinstance(item, _LEAVES):
            new[id(item)] = item
        else:
            raise _Refused(f"refused a value of type {type(item).__name__}")
    # Tuples are immutable: build each after the tuples inside it (they cannot form a cycle on their own).
    tuples = [t for t in order if isinstance(t, tuple)]
    while tuples:
        waiting = []
        for item in tuples:
            if all(id(child) in new for child in item):
                new[id(item)] = tuple(new[id(child)] for child in item)
            else:
                waiting.append(item)
        if len(waiting) == len(tuples):
            raise _Refused("refused a self-referencing tuple")
        tuples = waiting
    for item in order:
        if isinstance(item, dict):
            new[id(item)].update((key, new[id(value)]) for key, value in item.items())
        elif isinstance(item, list):
            new[id(item)].extend(new[id(child)] for child in item)
    return new[id(root)]


def load_numpy_pickle(path: Path) -> Any:
    """Load a pickle of numeric numpy arrays (Python 2 or 3, latin1 strings) without executing anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return _resolve(NumpyOnlyUnpickler(io.BytesIO(raw), max_bytes=len(raw), encoding="latin1").load())
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or corrupt pickle: {exc}",
                        hint="DEAP .dat files hold only numpy arrays; re-download the file") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError,
            RecursionError, UnicodeError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})",
                        hint="re-download or re-extract the file") from exc
