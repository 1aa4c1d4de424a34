"""Task functions that kill their own process, importable by spawned pool workers (tests only)."""

from __future__ import annotations

import os
import signal


def die_on(payload: tuple[int, int]) -> int:
    """(value, signal number or 0): kill this process with the signal, or return value squared."""
    value, signum = payload
    if signum:
        os.kill(os.getpid(), signum)
    return value * value


def eeg_worker_that_segfaults_on_subject_2(payload):
    from training.prepare import window_subject_eeg

    index, subject, cache, spec = payload
    if subject == 2:
        os.kill(os.getpid(), signal.SIGSEGV)
    return subject, window_subject_eeg(index, subject, cache, spec), None


def sleep_for(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
