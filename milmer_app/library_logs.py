"""The log output of liblsl and OpenCV at the app's verbosity.

Both libraries write their own lines to stderr (`Stream transmission broke off;
re-connecting...`, `[ WARN:0@5.5] global cap_v4l.cpp ...`) about events the app
already reports in its own words (stream lost, camera cannot open). They are
shown only with `-v` (warnings) or `-vv` (everything). The level follows the
root logger, which `models.console.setup_logging` sets from -q/-v.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

# liblsl (loguru) levels: -3 fatal, -2 error, -1 warning, 0 info, 1-9 detail.
LSL_QUIET, LSL_VERBOSE = -3, -1
_lsl_configured = False


def _verbosity() -> int:
    """0 as by default, 1 with -v (the root logger at DEBUG), -1 with -q."""
    level = logging.getLogger().getEffectiveLevel()
    return 1 if level <= logging.DEBUG else -1 if level >= logging.WARNING else 0


def liblsl_config_file() -> Path | None:
    """The configuration file liblsl would read, in its own search order."""
    candidates = [os.environ.get("LSLAPICFG"), "lsl_api.cfg", Path.home() / "lsl_api" / "lsl_api.cfg",
                  "/etc/lsl_api/lsl_api.cfg"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def liblsl_config_text(level: int, current: str) -> str | None:
    """`current` (a configuration file's text) with a [log] level added, or None where the file
    sets the level itself (then the user's choice stands)."""
    section = re.search(r"^\s*\[log\]\s*$(.*?)(?=^\s*\[|\Z)", current, re.MULTILINE | re.DOTALL)
    if section and re.search(r"^\s*level\s*=", section.group(1), re.MULTILINE):
        return None
    return current.rstrip("\n") + f"\n\n[log]\nlevel = {level}\n"


def configure_liblsl() -> None:
    """Set liblsl's log level once, before its configuration is first read (at the first resolve or
    outlet, after pylsl is imported). Keeps every other setting of the file liblsl would have read."""
    global _lsl_configured
    if _lsl_configured:
        return
    _lsl_configured = True
    import pylsl

    setter = getattr(getattr(pylsl, "lib", None), "lib", None)
    setter = getattr(setter, "lsl_set_config_content", None)
    if setter is None:   # liblsl older than 1.16: the shipped lsl_api.cfg's [log] level still applies
        return
    path = liblsl_config_file()
    level = LSL_VERBOSE if _verbosity() >= 1 else LSL_QUIET
    try:
        current = path.read_text() if path is not None else ""
    except OSError:
        return
    text = liblsl_config_text(level, current)
    if text is not None:
        setter(text.encode())


def configure_opencv(cv2) -> None:
    """OpenCV's own messages through its log-level API: silent unless -v."""
    levels = cv2.utils.logging
    level = levels.LOG_LEVEL_WARNING if _verbosity() >= 1 else levels.LOG_LEVEL_SILENT
    levels.setLogLevel(level)
