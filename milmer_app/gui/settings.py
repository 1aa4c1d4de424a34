"""Settings that persist between launches (QSettings, organisation "milmer", application "milmer-app").

The source selection is stored as its kinds and their typed options (`SourceSelection.to_dict`),
key by key under `sources/`, and rebuilt through the registry's checks when loaded.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore

from milmer_app.gui.selection import SourceSelection, as_bool

ORGANISATION = "milmer"
APPLICATION = "milmer-app"
SELECTION_GROUP = "sources"


def app_settings() -> QtCore.QSettings:
    """INI settings in the user's config folder (tests move it with QSettings.setPath or XDG_CONFIG_HOME)."""
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                            ORGANISATION, APPLICATION)


def load_selection(settings: QtCore.QSettings) -> SourceSelection | None:
    """The last connected selection (kinds and typed options, checked again), or None on first launch."""
    settings.beginGroup(SELECTION_GROUP)
    try:
        keys = settings.allKeys()
        if not keys:
            return None
        return SourceSelection.from_dict({key: settings.value(key) for key in keys})
    finally:
        settings.endGroup()


def save_selection(settings: QtCore.QSettings, selection: SourceSelection) -> None:
    settings.beginGroup(SELECTION_GROUP)
    settings.remove("")
    for key, value in selection.to_dict().items():
        settings.setValue(key, value)
    settings.endGroup()
    settings.sync()


def default_recording_folder() -> Path:
    return Path.home() / "milmer-recordings"


def value(settings: QtCore.QSettings, key: str, default, kind: type):
    """A typed value: INI files hand back strings, so convert and fall back on bad ones."""
    raw = settings.value(key, default)
    try:
        if kind is bool:
            return as_bool(raw)
        return kind(raw)
    except (TypeError, ValueError):
        return default
