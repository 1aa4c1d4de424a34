"""The pages of the sources panel, one per source kind (named by the kind's registry entry).

Every page takes `(runner, kind)` and offers `options()` (the kind's typed options;
MilmerError when something needed is missing) and `set_options(options)`. A kind
without a page of its own gets an `OptionsForm` made from its options' fields.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from functools import partial
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.controls import browse_button
from milmer_app.gui.elided_label import ClampedLabel, ElidedLabel
from milmer_app.gui.workers import CallRunner, interrupted
from milmer_app.sources.folder_scan import scan_folder
from milmer_app.sources.kinds.brainflow import brainflow_boards
from milmer_app.sources.kinds.deap import DeapOptions
from milmer_app.sources.kinds.recording import FolderOptions
from milmer_app.sources.lsl_streams import LslStreamEntry, discover_lsl_streams
from milmer_app.sources.registry import (
    Options,
    SourceKind,
    format_spec,
    option_help,
    option_metavar,
    option_text,
    parse_spec,
    spec_from_strings,
)
from models.errors import MilmerError


def browse_row(line: QtWidgets.QLineEdit, browse: QtWidgets.QPushButton) -> QtWidgets.QWidget:
    row = QtWidgets.QWidget()
    layout = QtWidgets.QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(line, 1)
    layout.addWidget(browse)
    return row


class PickerTable(QtWidgets.QTableWidget):
    """Asks for the room of a few rows (it scrolls beyond), not Qt's default 192 px, so that a page with
    a table leaves the Sources dock's Video and Model sections in sight at 1280x800."""

    def __init__(self, rows: int, columns: int, rows_asked: int = 3):
        super().__init__(rows, columns)
        self.rows_asked = rows_asked

    def sizeHint(self) -> QtCore.QSize:
        hint = super().sizeHint()
        rows = self.verticalHeader().defaultSectionSize() * self.rows_asked
        return QtCore.QSize(hint.width(), min(hint.height(), self.horizontalHeader().sizeHint().height() + rows
                                              + 2 * self.frameWidth()))


def picker_table(columns: list[str], rows_asked: int = 3) -> QtWidgets.QTableWidget:
    """A read-only table whose rows are picked one at a time (streams, trials, a folder's files)."""
    table = PickerTable(0, len(columns), rows_asked)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    return table


class FolderLister:
    """A folder line with a Browse button whose folder is read in the background (`runner`) when it is
    typed or chosen: `read(folder)` runs off the GUI thread, `done(result)` and `status(text)` on it."""

    def __init__(self, page: QtWidgets.QWidget, runner: CallRunner, placeholder: str, read, what: str,
                 done, status, busy_text: str):
        self.page, self.runner = page, runner
        self.read, self.what, self.done, self.status, self.busy_text = read, what, done, status, busy_text
        self.placeholder = placeholder
        self.edit = QtWidgets.QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.editingFinished.connect(self.scan)
        browse = browse_button(f"choose a {placeholder}")
        browse.clicked.connect(self._browse)
        self.row = browse_row(self.edit, browse)

    def _browse(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self.page, self.placeholder, self.edit.text())
        if chosen:
            self.edit.setText(chosen)
            self.scan()

    def scan(self) -> None:
        folder = self.edit.text().strip()
        if not folder:
            return
        self.status(self.busy_text)
        self.runner.start(lambda: self.read(Path(folder)), f"{self.what} {folder}", self.done, self.status)


def _typed(role: str, text: str, kind: str) -> Options:
    """Spec text typed in a page -> the kind's typed options (SourceError naming what is wrong)."""
    text = text.strip()
    if not text.lower().startswith(f"{kind}:") and text.lower() != kind:
        text = f"{kind}:{text}"
    return parse_spec(role, text).options


def _scan_deap(folder: Path):
    from training.deap import scan_deap  # imported when a folder is scanned: the panel opens fast

    return scan_deap(folder)


class LslPage(QtWidgets.QWidget):
    """Streams found on this network; a click picks one. The stream the engine is connected to is
    listed and marked (●) as soon as it connects, without a Refresh, and again after every switch."""

    COLUMNS = ["", "name", "type", "Hz", "ch", "host", "source_id"]

    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.kind = kind
        self.searched = False
        self.entries: list[LslStreamEntry] = []
        self.connected: LslStreamEntry | None = None
        self.table = picker_table(self.COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        # Wider than the dock when host and source_id are long: the table scrolls, the dock does not grow.
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setSizeAdjustPolicy(QtWidgets.QAbstractScrollArea.SizeAdjustPolicy.AdjustIgnored)
        self.table.setMinimumWidth(60)
        self.table.itemSelectionChanged.connect(self._picked)
        self.table.setMinimumHeight(90)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.found_label = ElidedLabel("press Refresh to look for streams", min_chars=6)
        self.found_label.setStyleSheet(f"color: {theme.MUTED};")
        self.spec_edit = QtWidgets.QLineEdit("lsl:type=EEG")
        self.spec_edit.setToolTip("lsl:name=NAME | lsl:type=TYPE | lsl:source_id=ID")
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.refresh_button)
        top.addWidget(self.found_label, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(QtWidgets.QLabel("stream"))
        layout.addWidget(self.spec_edit)

    def refresh(self) -> None:
        if not self.refresh_button.isEnabled():   # a search is already running
            return
        self.searched = True
        self.refresh_button.setEnabled(False)
        self.found_label.setText("looking for streams…")
        self.runner.start(discover_lsl_streams, "LSL discovery", self.set_entries, self._failed)

    def set_entries(self, entries: list[LslStreamEntry]) -> None:
        self.entries = list(entries)
        if self.connected is not None and not any(e.same_stream(self.connected) for e in self.entries):
            self.entries.insert(0, self.connected)   # connected, if not (yet) found by this search
        self._fill()
        self.found_label.setText(f"{len(self.entries)} stream(s) found")
        self.refresh_button.setEnabled(True)

    def show_connected(self, entry: LslStreamEntry | None) -> None:
        """Mark the stream the engine reads (None: none); list it at once, then look for the others."""
        self.connected = entry
        if entry is not None:
            known = next((i for i, e in enumerate(self.entries) if e.same_stream(entry)), None)
            if known is None:
                self.entries.insert(0, entry)
            elif not self.entries[known].type:
                self.entries[known] = entry
        self._fill()
        if entry is not None:
            self.refresh()

    def connected_row(self) -> int | None:
        if self.connected is None:
            return None
        return next((i for i, e in enumerate(self.entries) if e.same_stream(self.connected)), None)

    def _fill(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.entries))
        marked = self.connected_row()
        for row, entry in enumerate(self.entries):
            here = row == marked
            values = ("●" if here else "", entry.name, entry.type or "–", f"{entry.nominal_rate:g}",
                      str(entry.channels), entry.hostname or "–", entry.source_id or "–")
            for column, value in enumerate(values):
                item = QtWidgets.QTableWidgetItem(value)
                item.setToolTip(f"{entry.name} on {entry.hostname or '–'} (source_id {entry.source_id or '–'})"
                                + (" — connected" if here else ""))
                if here:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                    item.setForeground(QtGui.QColor(theme.GOOD))
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)

    def _failed(self, message: str) -> None:
        self.found_label.setText(message)
        self.refresh_button.setEnabled(True)

    def _picked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.spec_edit.setText(self.entries[rows[0].row()].spec)

    def options(self) -> Options:
        return _typed(self.kind.role, self.spec_edit.text(), self.kind.name)

    def set_options(self, options: Options) -> None:
        self.spec_edit.setText(format_spec(self.kind.role, self.kind.name, options))


class BrainFlowPage(QtWidgets.QWidget):
    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.board_box = QtWidgets.QComboBox()
        for name, board_id in brainflow_boards():
            self.board_box.addItem(f"{name} ({board_id})", board_id)
        self.params_edit = QtWidgets.QLineEdit()
        self.params_edit.setPlaceholderText("serial_port=/dev/ttyUSB0, ip_address=…, mac_address=…")
        self.params_edit.setToolTip("BrainFlow input parameters as KEY=VALUE, comma separated")
        layout = QtWidgets.QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("board", self.board_box)
        layout.addRow("parameters", self.params_edit)

    def options(self) -> Options:
        board_id = self.board_box.currentData()
        params = ",".join(p.strip() for p in self.params_edit.text().split(",") if p.strip())
        board = "synthetic" if board_id == -1 else str(board_id)
        return _typed(self.kind.role, f"{board}" + (f",{params}" if params else ""), self.kind.name)

    def set_options(self, options: Options) -> None:
        given = dict(options.given())
        board = str(given.pop("board", "synthetic"))
        try:
            board_id = -1 if board.lower() == "synthetic" else int(board)
        except ValueError:   # a board name: shown among the parameters
            board_id, given = None, {"board": board, **given}
        index = self.board_box.findData(board_id)
        if index >= 0:
            self.board_box.setCurrentIndex(index)
        self.params_edit.setText(",".join(f"{k}={v}" for k, v in given.items()))


class DeapPage(QtWidgets.QWidget):
    """Folder chooser, subject and trial with its ratings and whether its face video is there."""

    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.index = None
        self.message = QtWidgets.QLabel("")
        self.lister = FolderLister(self, runner, "DEAP folder", _scan_deap, "DEAP scan of", self.set_index,
                                   self.message.setText, "scanning…")
        self.folder_edit, self.scan = self.lister.edit, self.lister.scan
        self.subject_box = QtWidgets.QComboBox()
        self.subject_box.currentIndexChanged.connect(self._fill_trials)
        self.trial_table = picker_table(["trial", "exp", "val", "aro", "lik", "video"])
        self.trial_table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.trial_table.setMinimumHeight(110)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.MUTED};")
        self._wanted: tuple[int, int] | None = None
        self.trials: list = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.lister.row)
        subject_row = QtWidgets.QHBoxLayout()
        subject_row.addWidget(QtWidgets.QLabel("subject"))
        subject_row.addWidget(self.subject_box, 1)
        layout.addLayout(subject_row)
        layout.addWidget(self.trial_table, 1)
        layout.addWidget(self.message)

    def set_index(self, index) -> None:
        self.index = index
        wanted = self._wanted
        self.subject_box.blockSignals(True)
        self.subject_box.clear()
        for subject in index.subjects:
            self.subject_box.addItem(f"s{subject:02d}", subject)
        self.subject_box.blockSignals(False)
        if wanted is not None and self.subject_box.findData(wanted[0]) >= 0:
            self.subject_box.setCurrentIndex(self.subject_box.findData(wanted[0]))
        self._fill_trials()
        problems = "; ".join(index.problems[:2])
        self.message.setText(f"{len(index.subjects)} subjects, {len(index.trials)} trials" +
                             (f" — {problems}" if problems else ""))

    def _fill_trials(self) -> None:
        subject = self.subject_box.currentData()
        if self.index is None or subject is None:
            self.trial_table.setRowCount(0)
            return
        trials = sorted(self.index.subject_trials(subject),
                        key=lambda t: (t.presentation_trial is None, t.presentation_trial or t.experiment_id))
        self.trials = [t for t in trials if t.presentation_trial is not None]
        self.trial_table.setRowCount(len(self.trials))
        for row, record in enumerate(self.trials):
            values = (record.presentation_trial, record.experiment_id, f"{record.valence:.1f}",
                      f"{record.arousal:.1f}", f"{record.liking:.1f}", "yes" if record.video else "no")
            for column, value in enumerate(values):
                self.trial_table.setItem(row, column, QtWidgets.QTableWidgetItem(str(value)))
        wanted_trial = self._wanted[1] if self._wanted and self._wanted[0] == subject else 1
        for row, record in enumerate(self.trials):
            if record.presentation_trial == wanted_trial:
                self.trial_table.selectRow(row)
                break

    def set_options(self, options: DeapOptions) -> None:
        self._wanted = (options.subject, options.trial)
        self.folder_edit.setText(str(options.path))
        self.scan()

    def options(self) -> DeapOptions:
        folder = self.folder_edit.text().strip()
        if not folder:
            raise MilmerError("choose a DEAP folder first")
        rows = self.trial_table.selectionModel().selectedRows()
        if rows and self.subject_box.currentData() is not None:
            return DeapOptions(path=Path(folder), subject=self.subject_box.currentData(),
                               trial=self.trials[rows[0].row()].presentation_trial)
        if self._wanted is not None:
            return DeapOptions(path=Path(folder), subject=self._wanted[0], trial=self._wanted[1])
        raise MilmerError(f"{folder}: pick a subject and a trial")


class FolderPage(QtWidgets.QWidget):
    """A folder line with a Browse button (recordings)."""

    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.title = f"{kind.title.lower()} folder"
        self.folder_edit = QtWidgets.QLineEdit()
        self.folder_edit.setPlaceholderText(self.title)
        browse = browse_button("choose a folder")
        browse.clicked.connect(self._browse)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(browse_row(self.folder_edit, browse))
        layout.addStretch(1)

    def _browse(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self, self.title, self.folder_edit.text())
        if chosen:
            self.folder_edit.setText(chosen)

    def folder(self) -> str:
        folder = self.folder_edit.text().strip()
        if not folder:
            raise MilmerError(f"choose a folder: {self.title}")
        return folder

    def options(self) -> FolderOptions:
        return FolderOptions(path=Path(self.folder()))

    def set_options(self, options: FolderOptions) -> None:
        self.folder_edit.setText(str(options.path))


class OptionsForm(QtWidgets.QWidget):
    """A page made from a kind's options: its help, then one row per option (a list for choices,
    a line with a Browse button for paths, a line otherwise; empty = the default)."""

    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.kind = kind
        self.editors: dict[str, QtWidgets.QWidget] = {}
        layout = QtWidgets.QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        about = ClampedLabel(kind.help, lines=2)
        about.setStyleSheet(f"color: {theme.MUTED};")
        layout.addRow(about)
        hints = typing.get_type_hints(kind.options)
        for f in fields(kind.options):
            editor, row = self._editor(f, hints[f.name])
            editor.setToolTip(option_help(f))
            self.editors[f.name] = editor
            layout.addRow(f.name, row)

    def _editor(self, f, hint) -> tuple[QtWidgets.QWidget, QtWidgets.QWidget]:
        choices = f.metadata.get("choices")
        if choices:
            box = QtWidgets.QComboBox()
            if f.default is None or f.default is MISSING:
                box.addItem("", "")
            for choice in choices:
                box.addItem(choice, choice)
            return box, box
        line = QtWidgets.QLineEdit()
        if f.default is not MISSING and f.default is not None:
            line.setPlaceholderText(str(f.default))
        else:
            line.setPlaceholderText(option_metavar(f, hint) + ("" if f.default is MISSING else " (optional)"))
        if option_metavar(f, hint) in ("PATH", "DIR"):
            browse = browse_button(f"choose {f.name}")
            folder = option_metavar(f, hint) == "DIR"
            browse.clicked.connect(lambda _=False, line=line, folder=folder: self._browse(line, folder))
            return line, browse_row(line, browse)
        return line, line

    def _browse(self, line: QtWidgets.QLineEdit, folder: bool) -> None:
        if folder:
            chosen = QtWidgets.QFileDialog.getExistingDirectory(self, self.kind.title, line.text())
        else:
            chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, self.kind.title, line.text())
        if chosen:
            line.setText(chosen)

    def raw(self) -> dict[str, str]:
        values = {}
        for name, editor in self.editors.items():
            text = editor.currentData() if isinstance(editor, QtWidgets.QComboBox) else editor.text().strip()
            if text:
                values[name] = text
        return values

    def options(self) -> Options:
        return spec_from_strings(self.kind.role, self.kind.name, self.raw()).options

    def set_options(self, options: Options) -> None:
        given = options.given()
        for name, editor in self.editors.items():
            value = given.get(name)
            text = "" if value is None else option_text(value)
            if isinstance(editor, QtWidgets.QComboBox):
                index = editor.findData(text)
                editor.setCurrentIndex(index if index >= 0 else 0)
            else:
                editor.setText(text)


class FilePage(OptionsForm):
    """An EEG file and its options, above a browser of a folder's EEG files, recordings and DEAP subjects
    (duration, channels, rate). Picking a recording or a DEAP subject emits `spec_picked(spec)`."""

    spec_picked = QtCore.Signal(str)

    def __init__(self, runner: CallRunner, kind: SourceKind, parent: QtWidgets.QWidget | None = None):
        super().__init__(runner, kind, parent)
        self.entries: list = []
        self.found = ElidedLabel("", min_chars=6, hide_empty=True)
        self.lister = FolderLister(self, runner, "folder to list", partial(scan_folder, should_stop=interrupted),
                                   "listing", self.set_entries, self.found.setText, "reading the folder…")
        self.folder_edit, self.scan = self.lister.edit, self.lister.scan
        self.table = picker_table(["name", "kind", "s", "ch", "Hz"], rows_asked=2)   # below 7 option rows
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._picked)
        self.table.setMinimumHeight(80)
        self.found.setStyleSheet(f"color: {theme.MUTED};")
        layout = self.layout()
        layout.addRow("browse", self.lister.row)
        layout.addRow(self.table)
        layout.addRow(self.found)

    def set_entries(self, entries: list) -> None:
        self.table.clearSelection()
        self.entries = list(entries)
        self.table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            values = (entry.path.name, entry.kind, "" if entry.duration is None else f"{entry.duration:.1f}",
                      "" if entry.channels is None else str(entry.channels),
                      "" if entry.srate is None else f"{entry.srate:g}")
            for column, value in enumerate(values):
                item = QtWidgets.QTableWidgetItem(value)
                item.setToolTip(f"{entry.spec}\n{entry.detail}".strip())
                self.table.setItem(row, column, item)
        self.found.setText(f"{len(self.entries)} item(s)")

    def _picked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        entry = self.entries[rows[0].row()]
        if entry.kind == "file":
            self.editors["path"].setText(str(entry.path))
        else:
            self.spec_picked.emit(entry.spec)
