"""Atomic, durable writes: a crash or an error leaves the old file or the new one, never half of one.

Every writer goes through a temporary name in the target's own folder (a rename across file
systems is not atomic), flushes it to disk, renames it over the target and flushes the folder
entry; on an error the temporary is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _fsync_path(path: Path) -> None:
    if path.is_dir():
        if os.name != "posix":  # Windows cannot open a folder to flush it
            return
        descriptor = os.open(path, os.O_RDONLY)
    else:
        descriptor = os.open(path, os.O_RDWR)  # Windows flushes only a writable descriptor
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Flush `temporary` (a complete file, or a folder) to disk and rename it over `path`, durably.

    For writers that stage a file in one step and publish it in another; `temporary` must lie in
    `path`'s folder.
    """
    temporary, path = Path(temporary), Path(path)
    _fsync_path(temporary)
    os.replace(temporary, path)
    _fsync_path(path.parent)
    return path


def _temporary_name(path: Path) -> Path:
    # Hidden and unique: two writers of one target never share a temporary, and a left-over one (a
    # killed process) matches no reader's pattern. It keeps the suffixes: some writers (MNE) check them.
    suffixes = "".join(path.suffixes)
    base = path.name[:len(path.name) - len(suffixes)]
    return path.with_name(f".{base}.{uuid.uuid4().hex[:12]}.tmp{suffixes}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` for writers that want a file name (np.save, safetensors, a
    memory map); on a clean exit the file written there replaces `path`, on an exception it is
    removed and `path` is untouched."""
    path = Path(path)
    temporary = _temporary_name(path)
    try:
        yield temporary
        publish(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """`open(path, mode)` for writing, through a temporary file (see `atomic_path`)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} is not a 'w' mode")
    with atomic_path(path) as temporary, open(temporary, mode, **kwargs) as handle:
        yield handle


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and durably."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """An empty staging folder beside `path`; on a clean exit it is renamed to `path` (which must not
    exist or be empty, else OSError), on an exception or a failed rename it is removed."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        publish(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
