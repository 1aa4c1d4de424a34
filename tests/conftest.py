"""Shared fixtures. The environment is set before Qt or liblsl are imported anywhere."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

def _private_lsl_config() -> str:
    """The loopback LSL config plus a SessionID of this test run's own.

    liblsl only shows streams of the same session, so test runs that share a
    machine (two checkouts, a developer's app) never see each other's outlets.
    """
    import tempfile

    base = Path(os.environ.get("LSLAPICFG") or ROOT / "resources" / "lsl_api.cfg")
    text = base.read_text()
    session = f"milmer-tests-{os.getpid()}"
    text = text.replace("[lab]", f"[lab]\nSessionID = {session}", 1) if "[lab]" in text \
        else text + f"\n[lab]\nSessionID = {session}\n"
    folder = Path(tempfile.mkdtemp(prefix="milmer-lsl-"))
    path = folder / "lsl_api.cfg"
    path.write_text(text)
    return str(path)


os.environ["LSLAPICFG"] = _private_lsl_config()
# Keep the two cores for the code under test rather than oversubscribed BLAS pools.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_user_folders(tmp_path_factory: pytest.TempPathFactory):
    """Keep the demo cache and saved settings of the app under test out of the user's home."""
    saved = {key: os.environ.get(key) for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# Threads of an engine, a source or a test's LSL player (milmer_app names them so). Not "model load":
# a start that fails (a stream not there) returns at once and lets its model load finish on its own.
LIVE_THREAD_NAMES = ("scheduler", "monitor", "inference", "recorder")
LIVE_THREAD_PREFIXES = ("source:", "lsl-player:")
THREAD_END_WAIT_S = 15.0   # for threads a test asked to stop and that are still winding down


def live_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate()
            if thread.name in LIVE_THREAD_NAMES or thread.name.startswith(LIVE_THREAD_PREFIXES)]


@pytest.fixture(autouse=True)
def no_live_thread_outlives_its_test():
    """Every engine, source and LSL player a test starts is stopped by that test: a thread left
    running logs into the tests after it (and, between two tests, onto the terminal)."""
    before = set(live_threads())
    yield
    left = [thread for thread in live_threads() if thread not in before]
    for thread in left:
        thread.join(timeout=THREAD_END_WAIT_S / max(1, len(left)))
    running = sorted(thread.name for thread in left if thread.is_alive())
    assert not running, f"threads this test started are still running after it: {running}"


@pytest.fixture(autouse=True)
def root_logging_restored():
    """A command line run in-process (`main([...])`) sets up logging for a process: a handler on the
    root logger writing to this test's captured stderr, which is closed once the test ends. Later
    log records would fail on it ("--- Logging error ---"), so the root logger is put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and type(handler) is logging.StreamHandler:   # not pytest's own capture
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A temporary output folder for a test's files."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def lsl_config() -> Path:
    """The LSL configuration that keeps streams on this machine."""
    path = Path(os.environ["LSLAPICFG"])
    assert path.is_file(), path
    return path


@pytest.fixture
def qapp_offscreen(qapp):
    """pytest-qt's QApplication, guaranteed to run on the offscreen platform."""
    assert qapp.platformName() in {"offscreen", "xcb", "minimal"}, qapp.platformName()
    return qapp


@pytest.fixture
def settings(tmp_path: Path, qapp_offscreen):
    """The app's QSettings, kept in this test's own folder."""
    from PySide6 import QtCore

    from milmer_app.gui.settings import app_settings

    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                             str(tmp_path / "config"))
    return app_settings()


@pytest.fixture
def open_window(qtbot, settings):
    """Opens windows like `milmer-app` does (`open_window(args)`, args as its command line parses them)
    and closes them, stopping their engines, at the end of the test."""
    import gc

    from milmer_app.gui.app import open_window as open_app_window

    windows = []

    def opener(args: argparse.Namespace, window_settings=None):
        window = open_app_window(args, window_settings or settings)
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield opener
    for window in windows:
        window.close()
        assert window.engine is None
    windows.clear()
    # Collect the closed windows now, while no engine thread runs, rather than at a random later moment.
    gc.collect()


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread in this process for the module's tests; OMP_NUM_THREADS=1 also stops the trainer from
    choosing its own count. In-process runs and subprocesses then compute bit-identical results."""
    import torch

    threads = torch.get_num_threads()
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if previous is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = previous


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny-preset model with the DEAP contract: real inference, no meaning."""
    # Imported here so that collecting tests that need no model does not import torch.
    from live_support import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))
