"""`milmer-app` with a window: open the main window over the engine and run the Qt event loop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import shiboken6
from PySide6 import QtCore, QtGui, QtWidgets

import resources
from milmer_app.gui import theme
from milmer_app.gui.main_window import MainWindow, grab_png
from milmer_app.gui.selection import SourceSelection
from milmer_app.gui.settings import app_settings, load_selection
from models.errors import MilmerError

log = logging.getLogger(__name__)

SCREENSHOT_ENV = "MILMER_SCREENSHOT"   # save the window as PNG just before --quit-after closes it
ICON = Path(resources.__file__).resolve().parent / "icons" / "milmer.svg"


def check_display() -> None:
    """Fail with a clear message, rather than Qt's abort, when Linux has no display to open a window on."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise MilmerError("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set)",
                          hint="use --headless, or run under xvfb-run, or set QT_QPA_PLATFORM=offscreen")


def application() -> QtWidgets.QApplication:
    """The process's QApplication (created once), themed for the window."""
    if QtWidgets.QApplication.instance() is None:
        check_display()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName("milmer")
    app.setApplicationName("milmer-app")
    theme.configure_pyqtgraph()
    app.setStyleSheet(theme.style_sheet())
    if ICON.is_file():
        app.setWindowIcon(QtGui.QIcon(str(ICON)))
    return app


def initial_selection(args: argparse.Namespace, settings: QtCore.QSettings) -> SourceSelection:
    """Command line first, then the last settings, then (first launch) the demo."""
    return SourceSelection.from_args(args) or load_selection(settings) or SourceSelection.demo_selection()


def open_window(args: argparse.Namespace, settings: QtCore.QSettings | None = None) -> MainWindow:
    """Create, show and connect the main window (also what the tests use)."""
    application()
    settings = settings if settings is not None else app_settings()
    window = MainWindow(settings, base_args=args)
    window.show()
    if SourceSelection.from_args(args) is None:
        stored = load_selection(settings)
        problem = stored.problem() if stored is not None else None
        if problem is not None:   # a saved file or folder has gone: open anyway, with that field marked
            window.show_unavailable(stored, *problem)
            return window
    window.connect_to(initial_selection(args, settings))
    return window


def schedule_quit(window: MainWindow, seconds: float, screenshot: Path | None) -> None:
    def quit_now() -> None:
        if screenshot is not None:
            if grab_png(window, screenshot):
                log.info("screenshot saved to %s", screenshot)
            else:
                log.warning("could not save the screenshot to %s", screenshot)
        window.close()

    QtCore.QTimer.singleShot(int(seconds * 1000), quit_now)


def close_on_interrupt(window: MainWindow) -> None:
    """Ctrl+C in the terminal closes the window cleanly (Qt's loop would otherwise hold the signal back)."""
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QtCore.QTimer(window)
    wake.timeout.connect(lambda: None)   # returns to Python now and then so the handler can run
    wake.start(250)


def run(args: argparse.Namespace) -> int:
    app = application()
    window = open_window(args)
    close_on_interrupt(window)
    app.aboutToQuit.connect(window.close)   # a quit by any other path still stops the engine first
    quit_after = getattr(args, "quit_after", None)
    if quit_after is not None:
        shot = os.environ.get(SCREENSHOT_ENV)
        schedule_quit(window, float(quit_after), Path(shot) if shot else None)
    app.exec()
    error = window.last_error
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Destroy the window's Qt objects now, while the QApplication exists: closures (the SIGINT
    # handler, the quit timer) hold Python references that would otherwise outlive it.
    shiboken6.delete(window)
    if error:
        log.error("%s", error)
        return 2
    return 0
