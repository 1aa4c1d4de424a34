"""Sources, the engine and the LSL player are context managers that tolerate a manual stop first, and a
method called before connecting says so by name (mne-lsl's `_check_connected`)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from milmer_app.clock import local_clock
from milmer_app.lsl_player import LslPlayer
from milmer_app.sources.base import EEGSource
from milmer_app.stopping import join_or_warn


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


def test_a_thread_that_outlives_its_join_limit_is_named_in_a_warning(caplog):
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="stuck", daemon=True)
    stuck.start()
    with caplog.at_level("WARNING", logger="milmer_app.stopping"):
        assert not join_or_warn(stuck, 0.05, "the recording writer of rec-1", "the last frames may not be written")
    assert "the recording writer of rec-1 did not stop within 0.05 s: the last frames may not be written" in caplog.text
    release.set()
    caplog.clear()
    assert join_or_warn(stuck, 5.0, "the recording writer of rec-1") and not caplog.text
