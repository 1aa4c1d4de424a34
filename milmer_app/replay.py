"""Replay timing shared by a replayed EEG source and its video: pause, speed, seek, next trial.

Media time (seconds into the item being replayed) maps onto the LSL clock as
`anchor_lsl + (position - anchor_position) / speed`; every pause, speed change,
seek or trial change re-anchors the map at "now", so stamps never run backwards
and the EEG and the video of one replay always share the same map. The maps of the recent
past are kept, so that a time in the LSL clock (a window's end, a marker) can be told in media
time (`media_time`) even after a seek or a speed change.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable

from milmer_app.clock import local_clock

MAPS_KEPT = 256   # past clock maps kept for media_time (a pause, seek or speed change adds one)


class ReplayControl:
    """Thread-safe replay clock and controls; `next_item()` (given by the replay) switches items."""

    def __init__(self, duration: float, speed: float = 1.0, description: str = "",
                 truth: int | None = None, ratings: dict | None = None,
                 next_item: Callable[[], bool] | None = None):
        if speed <= 0:
            raise ValueError(f"replay speed must be positive, got {speed}")
        self._lock = threading.RLock()
        self._speed = float(speed)
        self._paused = False
        self._anchor_lsl = local_clock()
        self._anchor_pos = 0.0
        # (anchor_lsl, anchor_position, speed) of every map in force lately, oldest first
        self._maps: deque[tuple[float, float, float]] = deque([(self._anchor_lsl, 0.0, self._speed)], maxlen=MAPS_KEPT)
        self._generation = 0          # bumps on seek and item change: sources restart their read position
        self.duration = float(duration)
        self.description = description
        self.truth = truth
        self.ratings = ratings
        self._next_item = next_item

    # -- read by the sources -------------------------------------------------------------
    def locked(self) -> threading.RLock:
        """Hold this to read (or, in a replay's loader, change) the item and the clock together."""
        return self._lock

    @property
    def generation(self) -> int:
        return self._generation

    def position_at(self, now: float) -> float:
        with self._lock:
            if self._paused:
                return self._anchor_pos
            return min(self.duration, self._anchor_pos + (now - self._anchor_lsl) * self._speed)

    def stamp(self, position: float) -> float:
        """The LSL time at which media `position` plays under the current map."""
        with self._lock:
            return self._anchor_lsl + (position - self._anchor_pos) / self._speed

    def media_time(self, lsl_time: float) -> float:
        """Seconds into the replayed item (the file's, trial's or recording's own time) of a moment in the
        LSL clock, under the map that was in force at that moment."""
        with self._lock:
            starts = [anchor for anchor, _, _ in self._maps]
            index = max(0, bisect.bisect_right(starts, lsl_time) - 1)
            anchor_lsl, anchor_pos, speed = self._maps[index]
            return anchor_pos + (lsl_time - anchor_lsl) * speed

    def snapshot(self) -> tuple[int, float, float, float, bool]:
        """(generation, anchor_lsl, anchor_position, speed, paused), consistent with each other."""
        with self._lock:
            return self._generation, self._anchor_lsl, self._anchor_pos, self._speed, self._paused

    # -- the API the GUI and CLI use -------------------------------------------------------
    @property
    def position(self) -> float:
        return self.position_at(local_clock())

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    def _reanchor(self, position: float, speed: float | None = None) -> None:
        self._anchor_pos = position
        self._anchor_lsl = local_clock()
        if speed is not None:
            self._speed = float(speed)
        self._maps.append((self._anchor_lsl, position, self._speed))

    def pause(self) -> None:
        with self._lock:
            if not self._paused:
                self._reanchor(self.position_at(local_clock()))
                self._paused = True

    def resume(self) -> None:
        with self._lock:
            if self._paused:
                self._paused = False
                self._reanchor(self._anchor_pos)

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"replay speed must be positive, got {speed}")
        with self._lock:
            self._reanchor(self.position_at(local_clock()), speed)

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._reanchor(min(max(0.0, float(seconds)), self.duration))
            self._generation += 1

    def start_item(self, duration: float, description: str, truth: int | None, ratings: dict | None) -> None:
        """Called by the item loader: play a new item from its start."""
        with self._lock:
            self.duration = float(duration)
            self.description = description
            self.truth = truth
            self.ratings = ratings
            self._reanchor(0.0)
            self._generation += 1

    def next_trial(self) -> bool:
        """Move on to the next item (DEAP: the subject's next presentation trial); False if none."""
        if self._next_item is None:
            return False
        return self._next_item()

    def at_end(self) -> bool:
        return self.position >= self.duration


def moment_text(replay: ReplayControl | None, lsl_time: float) -> str:
    """A moment as a person lines it up: seconds into a replayed file or trial, else the LSL clock."""
    if replay is not None:
        return f"{replay.media_time(lsl_time):.2f} s"
    return f"LSL {lsl_time:.3f}"


class ReplayWatch:
    """What a replay did between two looks: pause, resume, seek and item changes are events of the
    replay (logged and recorded as markers), not gaps in the streams."""

    def __init__(self, replay: ReplayControl):
        self.replay = replay
        self._state = replay.snapshot()
        self._described = replay.description

    def changes(self) -> list[tuple[str, str | None, int | None]]:
        """(message, marker text or None for the default, truth or None) for each change since the last look."""
        replay, found = self.replay, []
        now = replay.snapshot()
        generation, _, position, _, paused = now
        if replay.description != self._described:
            self._described = replay.description
            found.append((f"replay: {self._described}", f"replay: {self._described}", replay.truth))
        elif generation != self._state[0]:
            found.append((f"replay: seek to {position:.1f} s", None, None))
        if paused != self._state[4]:
            found.append(("replay paused" if paused else "replay resumed", None, None))
        self._state = now
        return found
