"""Sources panel: pick the EEG source, the video source and the model; connect and disconnect."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.controls import browse_button
from milmer_app.gui.selection import SourceSelection
from milmer_app.gui.source_pages import OptionsForm, browse_row
from milmer_app.gui.workers import CLOSE_WAIT_S, CallRunner
from milmer_app.sources.registry import OptionError, SourceKind, kinds, spec_from_options
from models.errors import MilmerError


class PageStack(QtWidgets.QWidget):
    """Pages of which one shows, taking the room of that page alone. A QStackedWidget reserves the
    height of its tallest page (its layout's height-for-width is the pages' maximum), which pushed
    the Video and Model sections out of sight; a layout skips hidden widgets."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._pages: list[QtWidgets.QWidget] = []
        self._current: QtWidgets.QWidget | None = None

    def addWidget(self, page: QtWidgets.QWidget) -> None:
        self._pages.append(page)
        self._layout.addWidget(page)
        page.setVisible(self._current is None)
        if self._current is None:
            self._current = page

    def setCurrentWidget(self, page: QtWidgets.QWidget) -> None:
        if page is self._current:
            return
        if self._current is not None:
            self._current.hide()
        self._current = page
        page.show()

    def currentWidget(self) -> QtWidgets.QWidget | None:
        return self._current

    def count(self) -> int:
        return len(self._pages)

    def widget(self, index: int) -> QtWidgets.QWidget:
        return self._pages[index]


class SourcesPanel(QtWidgets.QWidget):
    """Emits `connect_requested(SourceSelection)` and `disconnect_requested()`.

    The kinds and their pages come from the source registry: one entry and one page per kind.
    """

    connect_requested = QtCore.Signal(object)
    disconnect_requested = QtCore.Signal()
    cancel_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.runner = CallRunner(self)
        self.pages: dict[str, dict[str, QtWidgets.QWidget]] = {"eeg": {}, "video": {}}
        self.eeg_kind, self.eeg_pages = self._kind_box("eeg")
        self.video_kind, self.video_pages = self._kind_box("video")
        self.eeg_kind.currentIndexChanged.connect(self._eeg_kind_changed)
        self.eeg_kind.activated.connect(self._eeg_kind_picked)
        self.video_kind.currentIndexChanged.connect(self._video_kind_changed)
        # Built-in pages the window and tests reach directly.
        self.lsl_page = self.pages["eeg"].get("lsl")
        self.brainflow_page = self.pages["eeg"].get("brainflow")
        self.deap_page = self.pages["eeg"].get("deap")
        self.recording_page = self.pages["eeg"].get("recording")
        self.file_page = self.pages["eeg"].get("file")
        if "recording" in self.pages["video"]:
            self.pages["video"]["recording"].folder_edit.setPlaceholderText(
                "recording folder (default: the EEG recording)")

        self.checkpoint_edit = QtWidgets.QLineEdit("demo")
        self.checkpoint_edit.setToolTip("NAME.safetensors (with NAME.json beside it) or 'demo'")
        checkpoint_browse = browse_button("choose a checkpoint")
        checkpoint_browse.clicked.connect(self._browse_checkpoint)
        demo_button = QtWidgets.QPushButton("demo")
        demo_button.setToolTip("use the built-in demo model")
        demo_button.clicked.connect(lambda: self.checkpoint_edit.setText("demo"))
        checkpoint_row = browse_row(self.checkpoint_edit, checkpoint_browse)
        checkpoint_row.layout().addWidget(demo_button)
        self.device_box = QtWidgets.QComboBox()
        self.device_box.addItems(["auto", "cpu", "cuda"])
        self.hop_box = QtWidgets.QDoubleSpinBox(minimum=0.25, maximum=10.0, value=1.0, singleStep=0.25, suffix=" s")
        self.hop_box.setToolTip("seconds between predictions")

        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.setObjectName("connectButton")
        self.connect_button.clicked.connect(self._connect_clicked)
        self.disconnect_button = QtWidgets.QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_requested.emit)
        self.disconnect_button.setEnabled(False)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("sourcesMessage")
        self.message.setVisible(False)
        self.marked: list[QtWidgets.QWidget] = []   # fields marked wrong by `mark_problem`
        self.connecting = False

        eeg_group = QtWidgets.QGroupBox("EEG")
        eeg_layout = QtWidgets.QVBoxLayout(eeg_group)
        eeg_layout.addWidget(self.eeg_kind)
        eeg_layout.addWidget(self.eeg_pages)
        video_group = QtWidgets.QGroupBox("Video")
        video_layout = QtWidgets.QVBoxLayout(video_group)
        video_layout.addWidget(self.video_kind)
        video_layout.addWidget(self.video_pages)
        model_group = QtWidgets.QGroupBox("Model")
        model_layout = QtWidgets.QFormLayout(model_group)
        model_layout.addRow("checkpoint", checkpoint_row)
        model_layout.addRow("device", self.device_box)
        model_layout.addRow("hop", self.hop_box)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.disconnect_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(eeg_group)
        layout.addWidget(video_group)
        layout.addWidget(model_group)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addStretch(1)
        for box in self.findChildren(QtWidgets.QComboBox):
            box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        self._eeg_kind_changed()
        self._video_kind_changed()

    def _kind_box(self, role: str) -> tuple[QtWidgets.QComboBox, QtWidgets.QStackedWidget]:
        box = QtWidgets.QComboBox()
        stack = PageStack()
        for kind in kinds(role):
            box.addItem(kind.title, kind.name)
            box.setItemData(box.count() - 1, kind.help, QtCore.Qt.ItemDataRole.ToolTipRole)
            page = self._page(kind)
            self.pages[role][kind.name] = page
            stack.addWidget(page)
        return box, stack

    def _page(self, kind: SourceKind) -> QtWidgets.QWidget:
        page_class = kind.page_class() or OptionsForm
        page = page_class(self.runner, kind)
        if hasattr(page, "spec_picked"):   # a browser page that can point at another kind (a recording, DEAP)
            page.spec_picked.connect(lambda text, role=kind.role: self._show_spec(role, text))
        return page

    def _show_spec(self, role: str, text: str) -> None:
        from milmer_app.specs import parse_spec

        try:
            spec = parse_spec(role, text)
        except MilmerError as exc:
            self.show_message(str(exc), "error")
            return
        self._select(self.eeg_kind if role == "eeg" else self.video_kind, spec.kind)
        self.pages[role][spec.kind].set_options(spec.options)

    def page(self, role: str, kind: str) -> QtWidgets.QWidget:
        return self.pages[role][kind]

    # state --------------------------------------------------------------------
    def set_connected(self, connected: bool, busy: bool = False) -> None:
        self.connecting = False
        self.connect_button.setEnabled(not busy)
        self.connect_button.setText("Reconnect" if connected else "Connect")
        self.disconnect_button.setEnabled(connected and not busy)

    def set_connecting(self) -> None:
        """While an engine starts, Connect becomes Cancel (a stream search or a model load can take long)."""
        self.connecting = True
        self.connect_button.setEnabled(True)
        self.connect_button.setText("Cancel")
        self.disconnect_button.setEnabled(False)

    def mark_problem(self, field: str, message: str) -> None:
        """Mark one field ("eeg", "video" or "checkpoint") as wrong, say why, and keep the rest as it is."""
        widgets = [self.checkpoint_edit] if field == "checkpoint" else \
            self._current_page(field).findChildren(QtWidgets.QLineEdit)
        for widget in widgets:
            widget.setStyleSheet(f"border: 2px solid {theme.ERROR};")
            widget.setToolTip(message)
            self.marked.append(widget)
        self.show_message(message, "error")

    def clear_marks(self) -> None:
        for widget in self.marked:
            widget.setStyleSheet("")
        self.marked = []

    def _current_page(self, role: str) -> QtWidgets.QWidget:
        box = self.eeg_kind if role == "eeg" else self.video_kind
        return self.pages[role][box.currentData()]

    def show_connected_stream(self, entry) -> None:
        """The LSL stream the engine reads (an LslStreamEntry), or None: listed and marked in the LSL table."""
        if self.lsl_page is not None:
            self.lsl_page.show_connected(entry)

    def show_message(self, text: str, level: str = "info") -> None:
        colour = {"info": theme.MUTED, "error": theme.ERROR, "warning": theme.WARNING}.get(level, theme.MUTED)
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)
        self.message.setVisible(bool(text))   # an empty line would still take its room

    # selection ----------------------------------------------------------------
    def selection(self) -> SourceSelection:
        """What the panel currently says; MilmerError when a required field is empty or a value is wrong."""
        eeg_kind = self.eeg_kind.currentData()
        common = {"checkpoint": self.checkpoint_edit.text().strip() or "demo",
                  "device": self.device_box.currentText(), "hop": self.hop_box.value()}
        if eeg_kind == "demo":
            return SourceSelection(demo=True, **common)
        eeg = self._spec("eeg", eeg_kind)
        video_kind = self.video_kind.currentData()
        if video_kind == "recording" and not self.pages["video"]["recording"].folder_edit.text().strip() \
                and eeg.kind == "recording":
            video = spec_from_options("video", "recording", eeg.options)   # the EEG recording's own frames
        else:
            video = self._spec("video", video_kind)
        return SourceSelection(demo=False, eeg=eeg, video=video, **common)

    def _spec(self, role: str, kind: str):
        page = self.pages[role][kind]
        try:
            return spec_from_options(role, kind, page.options())
        except OptionError as exc:
            raise MilmerError(f"{kind}: {exc}") from None

    def set_selection(self, selection: SourceSelection) -> None:
        """Show a stored or command-line selection."""
        self.checkpoint_edit.setText(selection.checkpoint)
        self.device_box.setCurrentText(selection.device)
        self.hop_box.setValue(selection.hop)
        if selection.demo:
            self._select(self.eeg_kind, "demo")
            return
        for role, spec, box in (("eeg", selection.eeg, self.eeg_kind), ("video", selection.video, self.video_kind)):
            self._select(box, spec.kind)
            page = self.pages[role].get(spec.kind)
            if page is not None:
                page.set_options(spec.options)

    @staticmethod
    def _select(box: QtWidgets.QComboBox, key: str) -> None:
        index = box.findData(key)
        if index >= 0:
            box.setCurrentIndex(index)

    # slots --------------------------------------------------------------------
    @staticmethod
    def _show_page(pages: QtWidgets.QStackedWidget, page: QtWidgets.QWidget) -> None:
        pages.setCurrentWidget(page)

    def _eeg_kind_changed(self) -> None:
        kind = self.eeg_kind.currentData()
        self._show_page(self.eeg_pages, self.pages["eeg"][kind])
        if kind == "demo":   # the demo replays its trials with their own face videos
            self._select(self.video_kind, "deap")
        elif kind != "deap" and self.video_kind.currentData() == "deap":   # only a DEAP trial has that video
            self._select(self.video_kind, "none")
        self.video_kind.setEnabled(kind != "demo")

    def _eeg_kind_picked(self) -> None:
        """The user chose an EEG kind: look for LSL streams the first time that page opens."""
        if self.eeg_kind.currentData() == "lsl" and self.lsl_page is not None and not self.lsl_page.searched:
            self.lsl_page.refresh()

    def closeEvent(self, event) -> None:
        self.runner.wait_all(CLOSE_WAIT_S)
        super().closeEvent(event)

    def _video_kind_changed(self) -> None:
        self._show_page(self.video_pages, self.pages["video"][self.video_kind.currentData()])

    def _connect_clicked(self) -> None:
        if self.connecting:
            self.cancel_requested.emit()
            return
        self.clear_marks()
        try:
            selection = self.selection()
        except MilmerError as exc:
            self.show_message(str(exc), "error")
            return
        self.show_message("")
        self.connect_requested.emit(selection)

    def _browse_checkpoint(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Checkpoint", "",
                                                          "Checkpoints (*.safetensors *.json);;All files (*)")
        if chosen:
            self.checkpoint_edit.setText(chosen)
