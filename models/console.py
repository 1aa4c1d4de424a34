"""Logging set-up and the error boundary shared by the command-line tools."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from typing import TypeVar

from models.errors import MilmerError

log = logging.getLogger("milmer")

T = TypeVar("T")
# Exit codes a shell gives a process ended by these signals.
INTERRUPT_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def package_version() -> str:
    try:
        return metadata.version("milmer")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once. verbosity: -1 quiet, 0 info, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party libraries are chatty at INFO.
    for noisy in ("matplotlib", "PIL", "mne", "timm", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def one_line(text: object) -> str:
    """`text` on one line: control characters (a newline typed into a spec, a file name) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def run_cli(main: Callable[[], int], prog: str) -> int:
    """Run a CLI entry point: expected failures become one line plus a hint and exit 2."""
    try:
        return int(main() or 0)
    except MilmerError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        if exc.hint:
            print(f"{prog}: hint: {one_line(exc.hint)}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"{prog}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def run_interruptible(work: Callable[[], T], what: str, prog: str) -> T:
    """Run a start-up step that may block inside C code (an LSL resolve, a device session, model loading).

    Python runs signal handlers only between bytecodes, so a SIGINT/SIGTERM would wait for the
    blocking call to return (an LSL resolve: up to its timeout). The step runs in a thread while
    this (main) thread waits; a signal ends the process at once with one line and exit 130/143.
    Nothing needs flushing yet: outputs and recordings open only once start-up is done.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the main thread below
            outcome["error"] = exc
        finally:
            done.set()

    def on_signal(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"{prog}: interrupted ({name}) while {what}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(INTERRUPT_EXIT_CODES.get(signum, 128 + signum))

    previous = {signum: signal.signal(signum, on_signal) for signum in INTERRUPT_EXIT_CODES}
    try:
        threading.Thread(target=target, name="start-up", daemon=True).start()
        while not done.wait(0.05):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
