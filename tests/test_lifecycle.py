"""Sources, the engine and the LSL player are context managers that tolerate a manual stop first, and a
method called before connecting says so by name (mne-lsl's `_check_connected`)."""

from __future__ import annotations

import numpy as np
import pytest

from milmer_app.clock import local_clock
from milmer_app.lsl_player import LslPlayer
from milmer_app.sources.base import EEGSource


class _Steady(EEGSource):
    """Two channels at 100 Hz, pushed as the clock passes."""

    def _open(self) -> None:
        self.channel_names, self.srate = ["Cz", "Pz"], 100.0
        self._start, self._sent = local_clock(), 0

    def _pull(self) -> bool:
        due = int((local_clock() - self._start) * self.srate)
        if due > self._sent:
            index = np.arange(self._sent, due)
            self.push(np.zeros((2, len(index)), np.float32), self._start + index / self.srate)
            self._sent = due
        self._stop.wait(0.01)
        return True


def test_a_source_is_a_context_manager_that_tolerates_a_manual_disconnect():
    source = _Steady("steady")
    with source as entered:
        assert entered is source and source.connected
        assert source.buffer.wait_for(5, timeout=10)
        source.disconnect()                       # stopped by hand first: leaving the block is still fine
        assert not source.connected
    assert not source.connected
    with source:                                  # and it can be used again
        assert source.connected and source.buffer.wait_for(source.buffer.count + 1, timeout=10)
    assert not source.connected


def test_pushing_before_connecting_names_the_method():
    source = _Steady("early")
    with pytest.raises(RuntimeError, match=r"early: push\(\) needs a connected source; call connect\(\) first"):
        source.push(np.zeros((2, 1), np.float32), np.zeros(1))


def test_the_lsl_player_is_a_context_manager_and_names_a_call_before_start():
    player = LslPlayer(np.zeros((2, 64), np.float32), 64.0, ["Cz", "Pz"], name="MilmerLifecycle")
    with pytest.raises(RuntimeError, match=r"wait_for_consumers\(\) called before start\(\)"):
        player.wait_for_consumers(0.1)
    with player as entered:
        assert entered is player and player.pushed >= 0
        player.stop()                             # stopped by hand first
    player.stop()
