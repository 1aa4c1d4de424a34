"""Logging set-up and the error boundary shared by the command-line tools."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib import metadata

from models.errors import MilmerError

log = logging.getLogger("milmer")


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


def run_cli(main: Callable[[], int], prog: str) -> int:
    """Run a CLI entry point: expected failures become one line plus a hint and exit 2."""
    try:
        return int(main() or 0)
    except MilmerError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"{prog}: hint: {exc.hint}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"{prog}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
