"""An unpickler that can rebuild numpy arrays and nothing else.

DEAP's ``.dat`` files are Python 2 pickles. A pickle can name any callable and run
it while loading, so only the handful of globals that numpy's array pickling uses
are admitted; any other global (os.system, builtins.eval, ...) is refused before it
is looked up, so its payload never runs. ``numpy.ndarray`` is admitted only as the
type argument of ``_reconstruct`` (never callable), and no array may be allocated
larger than the file itself, so a few bytes cannot claim gigabytes of memory.
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


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use for bytes; latin1 only."""
    if encoding.lower().replace("-", "") != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _NdarrayType:
    """What the pickle gets for ``numpy.ndarray``: a token for ``_reconstruct``, not a constructor."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError("refused a direct numpy.ndarray(...) call (arrays come from _reconstruct)")


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any, max_bytes: int) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"refused array subtype {subtype!r}")
    try:
        dims = tuple(operator.index(d) for d in (shape if isinstance(shape, tuple) else (shape,)))
    except TypeError:
        raise pickle.UnpicklingError(f"refused array shape {shape!r}") from None
    size = math.prod(max(d, 0) for d in dims) * np.dtype(dtype).itemsize
    if size > max_bytes:
        raise pickle.UnpicklingError(f"refused array of shape {dims} ({size} bytes) in a {max_bytes}-byte file")
    return np.ndarray.__new__(np.ndarray, dims, dtype)


def _scalar(dtype: np.dtype, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refused numpy scalar of dtype {dtype!r}")
    if isinstance(data, str):
        data = data.encode("latin1")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError("refused object array")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer


class NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, max_bytes: int, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.max_bytes = max_bytes

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are allowed)") from None
        if found is _reconstruct:
            return lambda subtype, shape, dtype: _reconstruct(subtype, shape, dtype, self.max_bytes)
        return found


def _check_no_objects(value: Any, path: Path) -> None:
    # Iterative: a deeply nested pickle must not exhaust the interpreter's recursion limit.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise DataError(f"{path}: pickle holds an object array; only numeric arrays are allowed")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)


def load_numpy_pickle(path: Path) -> Any:
    """Load a pickle of numpy arrays (Python 2 or 3, latin1 strings) without executing anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        value = NumpyOnlyUnpickler(io.BytesIO(raw), max_bytes=len(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or corrupt pickle: {exc}",
                        hint="DEAP .dat files hold only numpy arrays; re-download the file") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})",
                        hint="re-download or re-extract the file") from exc
    _check_no_objects(value, path)
    return value
