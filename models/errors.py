"""Exceptions for failures a user can fix (bad file, bad argument, missing stream).

The command-line tools print these as one line plus a hint, without a traceback.
"""

from __future__ import annotations


class MilmerError(Exception):
    """An expected failure: wrong input, missing file, unusable source."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class CheckpointError(MilmerError):
    """A checkpoint that is missing, tampered with, truncated or mismatched."""


class DataError(MilmerError):
    """A data file (DEAP, recording, video) that cannot be used as it is."""


class SourceError(MilmerError):
    """A live source (LSL, BrainFlow, camera, file) that cannot be opened or read."""
