"""Waiting for a worker thread to end, with a limit, and saying so when it does not.

Every worker thread here is a daemon: one that outlives its join limit cannot keep the program
alive, but what it was doing (writing a recording, reading a device) may be unfinished, so the
caller's `what` and `consequence` name it in a warning instead of going on silently.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def join_or_warn(thread: threading.Thread, timeout: float, what: str, consequence: str = "") -> bool:
    """Join `thread` for at most `timeout` seconds; False, with a warning, if it is still running."""
    if thread is threading.current_thread():
        return False
    thread.join(timeout=timeout)
    if not thread.is_alive():
        return True
    log.warning("%s did not stop within %g s%s; it is left to end on its own", what, timeout,
                f": {consequence}" if consequence else "")
    return False
