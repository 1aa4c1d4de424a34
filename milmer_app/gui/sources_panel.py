"""Sources panel: pick the EEG source, the video source and the model; connect and disconnect."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.controls import browse_button
from milmer_app.gui.selection import SourceSelection
from milmer_app.gui.source_pages import BrainFlowPage, DeapPage, FolderPage, LslPage, browse_row
from milmer_app.gui.workers import CallRunner
from models.errors import MilmerError

EEG_KINDS = [("demo", "Demo (synthetic subject)"), ("lsl", "LSL stream"), ("brainflow", "BrainFlow board"),
             ("deap", "DEAP trial"), ("recording", "Recording"), ("none", "None")]
VIDEO_KINDS = [("none", "None"), ("webcam", "Camera"), ("file", "Video file"), ("deap", "DEAP trial video"),
               ("recording", "Recording")]


class SourcesPanel(QtWidgets.QWidget):
    """Emits `connect_requested(SourceSelection)` and `disconnect_requested()`."""

    connect_requested = QtCore.Signal(object)
    disconnect_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.runner = CallRunner(self)

        self.eeg_kind = QtWidgets.QComboBox()
        for key, text in EEG_KINDS:
            self.eeg_kind.addItem(text, key)
        self.eeg_pages = QtWidgets.QStackedWidget()
        demo_text = QtWidgets.QLabel("A synthetic subject replayed with its face video and the demo model. "
                                     "The demo model knows nothing about real emotions.")
        demo_text.setWordWrap(True)
        self.lsl_page = LslPage(self.runner)
        self.brainflow_page = BrainFlowPage()
        self.deap_page = DeapPage(self.runner)
        self.recording_page = FolderPage("recording folder")
        self._eeg_page_of = {"demo": demo_text, "lsl": self.lsl_page, "brainflow": self.brainflow_page,
                             "deap": self.deap_page, "recording": self.recording_page,
                             "none": QtWidgets.QLabel("no EEG")}
        for page in self._eeg_page_of.values():
            self.eeg_pages.addWidget(page)
        self.eeg_kind.currentIndexChanged.connect(self._eeg_kind_changed)
        self.eeg_kind.activated.connect(self._eeg_kind_picked)

        self.video_kind = QtWidgets.QComboBox()
        for key, text in VIDEO_KINDS:
            self.video_kind.addItem(text, key)
        self.camera_index = QtWidgets.QSpinBox(minimum=0, maximum=16)
        self.video_file = QtWidgets.QLineEdit()
        self.video_file.setPlaceholderText("video file")
        file_browse = browse_button("choose a video file")
        file_browse.clicked.connect(self._browse_video)
        self.video_recording = QtWidgets.QLineEdit()
        self.video_recording.setPlaceholderText("recording folder (default: the EEG recording)")
        self.video_pages = QtWidgets.QStackedWidget()
        self._video_page_of = {"none": QtWidgets.QWidget(), "webcam": self._labelled("camera", self.camera_index),
                               "file": browse_row(self.video_file, file_browse),
                               "deap": QtWidgets.QLabel("the replayed trial's own face video"),
                               "recording": self.video_recording}
        for page in self._video_page_of.values():
            self.video_pages.addWidget(page)
        self.video_kind.currentIndexChanged.connect(self._video_kind_changed)

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

        eeg_group = QtWidgets.QGroupBox("EEG")
        eeg_layout = QtWidgets.QVBoxLayout(eeg_group)
        eeg_layout.addWidget(self.eeg_kind)
        eeg_layout.addWidget(self.eeg_pages, 1)
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

    @staticmethod
    def _labelled(text: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
        row = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QtWidgets.QLabel(text))
        layout.addWidget(widget, 1)
        return row

    # state --------------------------------------------------------------------
    def set_connected(self, connected: bool, busy: bool = False) -> None:
        self.connect_button.setEnabled(not busy)
        self.connect_button.setText("Reconnect" if connected else "Connect")
        self.disconnect_button.setEnabled(connected and not busy)

    def show_message(self, text: str, level: str = "info") -> None:
        colour = {"info": theme.MUTED, "error": theme.ERROR, "warning": theme.WARNING}.get(level, theme.MUTED)
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)

    # selection ----------------------------------------------------------------
    def selection(self) -> SourceSelection:
        """What the panel currently says; raises MilmerError when a required field is empty."""
        eeg_kind = self.eeg_kind.currentData()
        common = {"checkpoint": self.checkpoint_edit.text().strip() or "demo",
                  "device": self.device_box.currentText(), "hop": self.hop_box.value()}
        if eeg_kind == "demo":
            return SourceSelection(demo=True, **common)
        if eeg_kind == "lsl":
            eeg = self.lsl_page.spec()
        elif eeg_kind == "brainflow":
            eeg = self.brainflow_page.spec()
        elif eeg_kind == "deap":
            eeg = self.deap_page.spec()
        elif eeg_kind == "recording":
            eeg = f"recording:{self.recording_page.folder()}"
        else:
            eeg = "none"
        return SourceSelection(demo=False, eeg=eeg, video=self._video_spec(eeg), **common)

    def _video_spec(self, eeg: str) -> str:
        kind = self.video_kind.currentData()
        if kind == "webcam":
            return f"webcam:{self.camera_index.value()}"
        if kind == "file":
            path = self.video_file.text().strip()
            if not path:
                raise MilmerError("choose a video file, or set video to None")
            return f"file:{path}"
        if kind == "recording":
            folder = self.video_recording.text().strip() or (eeg.partition(":")[2] if eeg.startswith("recording:")
                                                             else "")
            if not folder:
                raise MilmerError("choose the recording folder for the video")
            return f"recording:{folder}"
        return kind

    def set_selection(self, selection: SourceSelection) -> None:
        """Show a stored or command-line selection (unparseable specs leave the page at its default)."""
        from milmer_app.specs import parse_eeg_spec, parse_video_spec

        self.checkpoint_edit.setText(selection.checkpoint)
        self.device_box.setCurrentText(selection.device)
        self.hop_box.setValue(selection.hop)
        if selection.demo:
            self._select(self.eeg_kind, "demo")
            return
        try:
            eeg = parse_eeg_spec(selection.eeg)
            video = parse_video_spec(selection.video)
        except MilmerError as exc:
            self.show_message(str(exc), "error")
            return
        self._select(self.eeg_kind, eeg.kind)
        if eeg.kind == "lsl":
            self.lsl_page.spec_edit.setText(selection.eeg)
        elif eeg.kind == "brainflow":
            self.brainflow_page.set_spec(eeg.options)
        elif eeg.kind == "deap":
            self.deap_page.set_spec(eeg.path, eeg.subject, eeg.trial)
            self.deap_page.scan()
        elif eeg.kind == "recording":
            self.recording_page.folder_edit.setText(str(eeg.path))
        self._select(self.video_kind, video.kind)
        if video.kind == "webcam":
            self.camera_index.setValue(int(video.options.get("index", 0)))
        elif video.kind == "file":
            self.video_file.setText(str(video.path))
        elif video.kind == "recording":
            self.video_recording.setText(str(video.path))

    @staticmethod
    def _select(box: QtWidgets.QComboBox, key: str) -> None:
        index = box.findData(key)
        if index >= 0:
            box.setCurrentIndex(index)

    # slots --------------------------------------------------------------------
    @staticmethod
    def _show_page(pages: QtWidgets.QStackedWidget, page: QtWidgets.QWidget) -> None:
        """Show `page` and size the stack to it (hidden pages do not reserve room)."""
        ignored, preferred = QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        for index in range(pages.count()):
            other = pages.widget(index)
            other.setSizePolicy(preferred if other is page else ignored, preferred if other is page else ignored)
        pages.setCurrentWidget(page)
        pages.adjustSize()

    def _eeg_kind_changed(self) -> None:
        kind = self.eeg_kind.currentData()
        self._show_page(self.eeg_pages, self._eeg_page_of[kind])
        if kind == "demo":   # the demo replays its trials with their own face videos
            self._select(self.video_kind, "deap")
        elif kind != "deap" and self.video_kind.currentData() == "deap":   # only a DEAP trial has that video
            self._select(self.video_kind, "none")
        self.video_kind.setEnabled(kind != "demo")

    def _eeg_kind_picked(self) -> None:
        """The user chose an EEG kind: look for LSL streams the first time that page opens."""
        if self.eeg_kind.currentData() == "lsl" and not self.lsl_page.searched:
            self.lsl_page.refresh()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.runner.wait_all()
        super().closeEvent(event)

    def _video_kind_changed(self) -> None:
        self._show_page(self.video_pages, self._video_page_of[self.video_kind.currentData()])

    def _connect_clicked(self) -> None:
        try:
            selection = self.selection()
        except MilmerError as exc:
            self.show_message(str(exc), "error")
            return
        self.show_message("")
        self.connect_requested.emit(selection)

    def _browse_video(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Video file", self.video_file.text(),
                                                          "Videos (*.avi *.mp4 *.mkv *.mov);;All files (*)")
        if chosen:
            self.video_file.setText(chosen)

    def _browse_checkpoint(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Checkpoint", "",
                                                          "Checkpoints (*.safetensors *.json);;All files (*)")
        if chosen:
            self.checkpoint_edit.setText(chosen)
