"""`calibrate --max-minutes`: one time budget for the whole run, checked inside the expensive stages.

A stage (finding faces, embedding crops) counts its items; after a few it knows its pace, and when
the rest of it would end past the deadline, or the deadline has passed, the run stops at once with
one line naming the stage and what it would need (`BudgetError`: exit 2, before training, nothing
written). Training itself checks the deadline between epochs and stops early instead (`adapt`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models.errors import MilmerError

# A stage's pace is trusted after this many items and seconds, not counting its first item (loading, warming up).
PACE_ITEMS, PACE_SECONDS = 3, 1.0


class BudgetError(MilmerError):
    """The run cannot finish within --max-minutes."""


@dataclass
class TimeBudget:
    minutes: float
    started: float                                  # time.monotonic() when the run began
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def deadline(self) -> float:
        return self.started + self.minutes * 60.0

    def stop_error(self, what: str, more_s: float | None = None) -> BudgetError:
        """The error for a run stopped because of `what`; `more_s`: what the stopped stage alone still needed."""
        advice = "raise --max-minutes"
        if more_s is not None:   # at least the time spent so far and the rest of this stage
            advice += f" to more than {math.ceil((self.clock() - self.started + more_s) / 6.0) / 10:g}"
        return BudgetError(f"--max-minutes {self.minutes:g}: {what}; stopped before training, nothing written "
                           f"({advice})")

    def check(self, stage: str) -> None:
        """Raise `BudgetError` when the budget is spent before `stage` starts."""
        now = self.clock()
        if now >= self.deadline:
            raise self.stop_error(f"the time budget was spent ({now - self.started:.0f} s) before {stage}")

    def stage(self, name: str, total: int, unit: str) -> StageClock:
        """A clock for a stage of `total` items; raises at once when the budget is already spent."""
        self.check(f"{name}, {total} {unit}")
        return StageClock(self, name, total, unit)


@dataclass
class StageClock:
    budget: TimeBudget
    name: str
    total: int
    unit: str
    done: int = 0
    _first: tuple[float, int] | None = None     # when the first item(s) were done, and how many

    def advance(self, count: int = 1) -> None:
        """`count` more items done; raises `BudgetError` when the rest cannot end within the budget."""
        now = self.budget.clock()
        self.done += count
        if self._first is None:
            self._first = (now, self.done)
        rest = self.total - self.done
        if rest <= 0:
            return
        left = self.budget.deadline - now
        since, first_items = self._first
        paced = self.done - first_items
        if paced >= PACE_ITEMS and now - since >= PACE_SECONDS:
            per_item = (now - since) / paced
            needed = per_item * rest
            if needed > left:
                raise self.budget.stop_error(
                    f"{self.name} would need about {needed:.0f} s more for {rest} of its {self.total} {self.unit} "
                    f"({_duration(per_item)} each), {max(0.0, left):.0f} s of the budget left", needed)
        if left <= 0:
            raise self.budget.stop_error(
                f"the time budget ran out during {self.name}, {self.done} of {self.total} {self.unit} done")


def _duration(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds >= 1 else f"{seconds * 1000:.2g} ms"
