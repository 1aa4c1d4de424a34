"""Closing during slow background work never hangs: calls are asked to stop and waited for with a limit
(mne-qt-browser's LoadThread pattern), and what is still running is let go to end on its own."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.gui


def test_closing_the_sources_panel_during_a_slow_call_returns_and_drops_its_result(qtbot):
    from milmer_app.gui import workers
    from milmer_app.gui.sources_panel import SourcesPanel

    panel = SourcesPanel()
    qtbot.addWidget(panel)
    started, release, delivered, asked = threading.Event(), threading.Event(), [], []

    def slow_load():
        started.set()
        release.wait(30)
        asked.append(workers.interrupted())
        return "late"

    call = panel.runner.start(slow_load, "a slow load", delivered.append)
    assert started.wait(10)
    begin = time.monotonic()
    panel.close()
    assert time.monotonic() - begin < workers.CLOSE_WAIT_S + 3.0      # the limit, not the call's 30 s
    assert call in workers._let_go and not panel.runner.busy()
    release.set()
    assert call.wait(10_000)
    qtbot.wait(100)                                                   # a queued result would arrive now
    assert asked == [True] and delivered == []


def test_a_folder_scan_asked_to_stop_returns_what_it_has(tmp_path):
    from milmer_app.sources.folder_scan import scan_folder

    for index in range(3):
        (tmp_path / f"rec-{index}").mkdir()
        (tmp_path / f"rec-{index}" / "meta.json").write_text("{}")
    asked = []
    assert scan_folder(tmp_path, should_stop=lambda: asked.append(1) or True) == []
    assert asked == [1]
    assert len(scan_folder(tmp_path)) == 3


def test_closing_the_window_while_its_engine_still_searches_a_stream_returns(qtbot, settings, tiny_checkpoint):
    from milmer_app.cli import build_parser
    from milmer_app.gui import workers
    from milmer_app.gui.app import open_window

    args = build_parser().parse_args(["--eeg", "lsl:name=MilmerNoSuchStream,timeout=12", "--checkpoint",
                                      str(tiny_checkpoint), "--device", "cpu"])
    window = open_window(args, settings)
    qtbot.addWidget(window)
    # The engine start is searching once it says it connects (busy alone is true before the start has
    # begun, and a close then simply supersedes it).
    qtbot.waitUntil(lambda: (window.startup.stage or "").startswith("connecting"), timeout=10000)
    before = set(workers._let_go)
    begin = time.monotonic()
    window.close()
    assert time.monotonic() - begin < 2 * workers.CLOSE_WAIT_S + 3.0   # not the search's 12 s
    left = workers._let_go - before
    assert left and window.bridge.engine is None
    for call in left:                                                 # the start ends on its own
        assert call.wait(30_000)
