"""What can be known about the files and folders a source spec names before anything opens them.

Light (standard library only): the command line's preflight, the kinds' checks and the sources
themselves ask the same questions here, so each answer is worded once.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import SourceError

RECORDING_META = "meta.json"          # milmer_app.recording.META_FILE, repeated to keep this module light
FOLDER_FORMATS = (".ds", ".mff")      # EEG formats stored as folders


def check_eeg_file(path: Path) -> None:
    """SourceError unless `path` is an EEG file (or one of the formats stored as a folder)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: EEG file not found")
    if not path.is_file() and path.suffix.lower() not in FOLDER_FORMATS:
        raise SourceError(f"{path}: not an EEG file (not a regular file)")


def check_video_file(path: Path) -> None:
    """SourceError unless `path` is a regular file (a device, FIFO or folder could block OpenCV for ever)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: video file not found")
    if not path.is_file():
        raise SourceError(f"{path}: not a video file (not a regular file)")


def check_recording_folder(folder: Path) -> None:
    """SourceError unless `folder` holds a recording written by milmer-app."""
    folder = Path(folder)
    if not folder.is_dir() or not (folder / RECORDING_META).is_file():
        raise SourceError(f"{folder}: not a recording (no {RECORDING_META})",
                          hint="pass a folder written by milmer-app --record or the Record button")
