"""An unpickler that can rebuild numpy arrays and nothing else.

DEAP's ``.dat`` files are Python 2 pickles. A pickle can name any callable and run
it while loading, so only the handful of globals that numpy's array pickling uses
are admitted; any other global (os.system, builtins.eval, ...) is refused before it
is looked up, so its payload never runs.
"""

from __future__ import annotations

import io
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


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


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
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are allowed)") from None


def _check_no_objects(value: Any, path: Path) -> None:
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        raise DataError(f"{path}: pickle holds an object array; only numeric arrays are allowed")
    if isinstance(value, dict):
        for item in value.values():
            _check_no_objects(item, path)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_no_objects(item, path)


def load_numpy_pickle(path: Path) -> Any:
    """Load a pickle of numpy arrays (Python 2 or 3, latin1 strings) without executing anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        value = NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or corrupt pickle: {exc}",
                        hint="DEAP .dat files hold only numpy arrays; re-download the file") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})",
                        hint="re-download or re-extract the file") from exc
    _check_no_objects(value, path)
    return value
