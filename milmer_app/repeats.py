"""Warnings that inform, not flood: a message repeated within an interval is shown once, and the next
one shown after the interval says how many like it were held back."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from milmer_app.clock import local_clock

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)
MAX_KINDS = 1000


@dataclass
class _Seen:
    since: float
    held: int = 0
    example: str = ""


class RepeatLimiter:
    """`admit(message)`: the text to show (with a count of those held back since), or None to hold it.
    Messages that differ only in their numbers are the same kind."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = local_clock):
        self.interval = interval
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    def admit(self, message: str) -> str | None:
        kind = _NUMBER.sub("#", message)
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen.since < self.interval:
            seen.held += 1
            seen.example = message
            return None
        if len(self._seen) >= MAX_KINDS:
            self._seen.pop(next(iter(self._seen)))
        self._seen[kind] = _Seen(now)
        if seen is not None and seen.held:
            return f"{message} (and {seen.held} more like it in the {self.interval:g} s before)"
        return message

    def held_back(self) -> list[str]:
        """One line per kind with messages still held back (at the end of a run), and forget them."""
        lines = [f"{seen.example} ({seen.held} like it in the last {self.interval:g} s)"
                 for seen in self._seen.values() if seen.held]
        self._seen.clear()
        return lines
