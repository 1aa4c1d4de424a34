"""The one clock of the live app: LSL's, so our timestamps line up with lab recorders."""

from __future__ import annotations

import time

import pylsl

from milmer_app.library_logs import configure_liblsl

# Every part of the app that uses liblsl imports this module, before any stream is resolved or opened.
configure_liblsl()


def local_clock() -> float:
    """Seconds on the LSL clock of this machine."""
    return pylsl.local_clock()


def wall_to_lsl_offset() -> float:
    """Add this to a wall-clock time (time.time()) to get LSL-clock seconds."""
    before = pylsl.local_clock()
    wall = time.time()
    after = pylsl.local_clock()
    return (before + after) / 2.0 - wall
