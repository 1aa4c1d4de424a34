"""Checks of milmer-train's paths and options that need no heavy import.

Every subcommand runs its checks before torch, OpenCV or the data load (a few seconds on a
small machine), so that a mistyped folder is reported in well under a second.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import DataError


def check_deap_folder(path: str | Path | None) -> None:
    if path is None:
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: DEAP folder not found",
                        hint="pass the folder that holds data_preprocessed_python/ (or milmer-train synth's --out)")


def check_file(path: str | Path | None, what: str) -> None:
    if path is None:
        return
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file}: {what} not found")


def check_folder(path: str | Path | None, what: str) -> None:
    if path is None:
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} not found")


def check_checkpoint(spec: str | Path) -> None:
    """Both files of a checkpoint (NAME.safetensors + NAME.json, given as NAME or either file) exist."""
    path = Path(spec).expanduser()
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    for suffix, what in ((".json", "checkpoint metadata file"), (".safetensors", "checkpoint tensor file")):
        check_file(path.with_name(path.name + suffix), what)


def check_positive(value: float | None, flag: str) -> None:
    if value is not None and value < 1:
        raise DataError(f"{flag} must be 1 or more, got {value}")
