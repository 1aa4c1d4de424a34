"""The built-in source kinds, registered in one place.

Each registration names its options (a frozen dataclass of `registry.Options`),
its builder and its GUI page; builders and pages live in modules that are
imported only when a source is built or a page shown, so parsing a spec stays
light. To add a kind, see "Adding a source kind" in docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from milmer_app.sources.registry import (BuildContext, NoOptions, OptionError, Options, SourceKind, SourceSpec,
                                         option, register)
from models.errors import SourceError
from models.pipeline.channels import MONTAGES
from models.pipeline.units import SPEC_UNITS as UNITS


# -- options shared by EEG kinds that map device channels onto the model's --------------
@dataclass(frozen=True, kw_only=True)
class ChannelOptions(Options):
    map: str = option("label", "match the model's channels by label, or feed them in the device's order",
                      choices=("label", "position"))
    min_channels: float | None = option(None, "fraction of the model's channels that must be found "
                                              "(default: the engine's, 0.25)", above=0.0, high=1.0,
                                        metavar="FRACTION")
    montage: str | None = option(None, "read BioSemi position codes (A1..A32, B1..B32) as the cap's 10-20 names "
                                       "(MNE's standard montages)", choices=MONTAGES)


@dataclass(frozen=True, kw_only=True)
class LslStreamOptions(Options):
    """Which LSL stream: shared by the EEG and the marker stream."""

    name: str | None = option(None, "stream name")
    type: str | None = option(None, "stream type, e.g. EEG or Markers")
    source_id: str | None = option(None, "stream source_id (identifies a device across restarts)", metavar="ID")
    timeout: float | None = option(None, "seconds to wait for the stream [default 5]", above=0.0, high=3600.0,
                                   metavar="S")
    pick: str | None = option(None, "when several streams match: take the first instead of stopping with the "
                                    "list of them", choices=("first",))

    def check(self) -> None:
        if not (self.name or self.type or self.source_id):
            raise OptionError("stream", "needs name=, type= or source_id=")


@dataclass(frozen=True, kw_only=True)
class LslOptions(LslStreamOptions, ChannelOptions):
    unit: str | None = option(None, "what the samples are in, overriding the stream's own unit labels "
                                    "(default: the labels, else judged from the amplitude)", choices=UNITS)


@dataclass(frozen=True, kw_only=True)
class BrainFlowOptions(ChannelOptions):
    board: str = option(help="'synthetic', a BoardIds number or name", metavar="ID|NAME")
    serial_port: str | None = option(None, "serial port, e.g. /dev/ttyUSB0")
    mac_address: str | None = option(None, "Bluetooth MAC address")
    ip_address: str | None = option(None, "IP address")
    ip_address_aux: str | None = option(None, "auxiliary IP address")
    ip_address_anc: str | None = option(None, "ancillary IP address")
    ip_port: int | None = option(None, "IP port", low=0, high=65535)
    ip_port_aux: int | None = option(None, "auxiliary IP port", low=0, high=65535)
    ip_port_anc: int | None = option(None, "ancillary IP port", low=0, high=65535)
    ip_protocol: int | None = option(None, "BrainFlow IpProtocolTypes number", low=0, high=16)
    other_info: str | None = option(None, "board-specific extra information")
    timeout: int | None = option(None, "board discovery timeout in seconds", above=0, high=3600, metavar="S")
    serial_number: str | None = option(None, "device serial number")
    file: str | None = option(None, "file for playback/streaming boards", metavar="PATH")
    file_aux: str | None = option(None, "auxiliary file", metavar="PATH")
    file_anc: str | None = option(None, "ancillary file", metavar="PATH")
    master_board: int | None = option(None, "master board id (playback/streaming boards)")
    unit: str | None = option(None, "what the board's EEG rows are in [default uV, as BrainFlow returns them]",
                              choices=UNITS)

    def check(self) -> None:
        if not self.board.lstrip("-").isdigit() and not self.board.replace("-", "_").replace("_", "").isalnum():
            raise OptionError("board", f"must be a BoardIds number or name, got '{self.board}'")


@dataclass(frozen=True, kw_only=True)
class DeapOptions(Options):
    path: Path = option(help="DEAP folder (with data_preprocessed_python/ or data_preprocessed_matlab/)",
                        metavar="DIR")
    subject: int = option(help="subject number", low=1, high=999)
    trial: int = option(help="presentation trial (1-based)", low=1, high=999)


@dataclass(frozen=True, kw_only=True)
class FolderOptions(Options):
    path: Path = option(help="folder", metavar="DIR")


@dataclass(frozen=True, kw_only=True)
class FileOptions(ChannelOptions):
    path: Path = option(help="EEG file: anything mne.io.read_raw reads (EDF, BDF, FIF, BrainVision .vhdr, "
                             "EEGLAB .set, CNT, ...) or XDF", metavar="PATH")
    stream: str | None = option(None, "XDF: the EEG stream's name or type (needed when several streams "
                                      "could be EEG)", metavar="NAME|TYPE")
    start: float = option(0.0, "seconds into the file to start from", low=0.0, metavar="S")
    loop: bool = option(False, "start again at the end")
    unit: str | None = option(None, "XDF: what the samples are in, overriding the stream's unit labels "
                                    "(default: the labels, else uV)", choices=UNITS)


@dataclass(frozen=True, kw_only=True)
class WebcamOptions(Options):
    index: int = option(0, "camera index", low=0, high=255)
    width: int | None = option(None, "requested frame width", above=0, high=16384, metavar="W")
    height: int | None = option(None, "requested frame height", above=0, high=16384, metavar="H")
    fps: float | None = option(None, "requested frame rate", above=0.0, high=1000.0, metavar="F")


@dataclass(frozen=True, kw_only=True)
class VideoFileOptions(Options):
    path: Path = option(help="video file", metavar="PATH")
    offset: float | None = option(None, "with an EEG file: the video's start, in seconds after the EEG file's "
                                        "start (negative: before)", low=-86400.0, high=86400.0, metavar="S")
    xdf_stream: str | None = option(None, "with an XDF EEG file: the XDF stream holding this video's "
                                          "per-frame timestamps", metavar="NAME")

    def check(self) -> None:
        if self.offset is not None and self.xdf_stream is not None:
            raise OptionError("offset", "and xdf_stream= exclude each other: give one")


# -- grammars ----------------------------------------------------------------------------
def _split_deap(rest: str) -> dict[str, str]:
    parts = rest.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise OptionError("deap", "expects deap:DIR:SUBJECT:TRIAL")
    return {"path": parts[0], "subject": parts[1].strip().lower().lstrip("s") or parts[1],
            "trial": parts[2].strip().lower().lstrip("s") or parts[2]}


def _unsplit_deap(options: DeapOptions) -> str:
    return f"{options.path}:{options.subject}:{options.trial}"


# -- builders (heavy imports inside) ------------------------------------------------------
def _build_demo(spec: SourceSpec, context: BuildContext):
    from milmer_app.demo import DEMO_SUBJECT, demo_data_dir
    from milmer_app.sources.deap_replay import DeapEEGSource, DeapReplay

    replay = DeapReplay(demo_data_dir(), DEMO_SUBJECT, 1, speed=context.speed, label_rule=context.label_rule,
                        advance=True, video_offset=context.video_offset)
    return DeapEEGSource(replay)


def _build_deap(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.deap_replay import DeapEEGSource, DeapReplay

    o: DeapOptions = spec.typed
    return DeapEEGSource(DeapReplay(o.path, o.subject, o.trial, speed=context.speed, label_rule=context.label_rule,
                                    video_offset=context.video_offset))


def _build_lsl(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.lsl import LSLSource

    return LSLSource(spec)


def _build_lsl_markers(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.lsl_markers import LSLMarkerSource

    return LSLMarkerSource(spec)


def _build_brainflow(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.brainflow_board import BrainFlowSource

    return BrainFlowSource(spec)


def _build_recording_eeg(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.recorded import RecordingEEGSource, RecordingReplay

    return RecordingEEGSource(RecordingReplay(spec.typed.path, speed=context.speed))


def _build_nothing(spec: SourceSpec, context: BuildContext):
    return None


def _build_webcam(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.camera import WebcamSource

    return WebcamSource(spec)


def _build_deap_video(spec: SourceSpec, context: BuildContext):
    deap = getattr(context.eeg, "deap", None)
    if deap is None:
        raise SourceError("video spec 'deap' needs a DEAP EEG source (--eeg deap:DIR:SUBJECT:TRIAL or demo)")
    from milmer_app.sources.deap_replay import DeapVideoSource

    return DeapVideoSource(deap)


def _build_recording_video(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.recorded import RecordingReplay, RecordingVideoSource

    folder = Path(spec.typed.path)
    recording = getattr(context.eeg, "rec", None)
    if recording is None or recording.folder.resolve() != folder.resolve():
        recording = RecordingReplay(folder, speed=context.speed)
    return RecordingVideoSource(recording)


PAGES = "milmer_app.gui.source_pages"
CHECKS = "milmer_app.preflight"

# -- the registrations, in the order the GUI and the help list them -----------------------
register(SourceKind("demo", "eeg", "Demo (synthetic subject)",
                    "the built-in demo: a synthetic subject replayed with its face video (use with --video deap "
                    "and the demo model, or just --demo)", build=_build_demo,
                    replayed=True))
register(SourceKind("lsl", "eeg", "LSL stream",
                    "a Lab Streaming Layer stream, found by name, type and/or source_id (a stream must match "
                    "all that are given)", LslOptions, _build_lsl,
                    f"{PAGES}:LslPage", grammar="lsl:name=NAME|type=TYPE|source_id=ID[,OPTION=VALUE...]",
                    example="lsl:type=EEG"))
register(SourceKind("brainflow", "eeg", "BrainFlow board",
                    "a BrainFlow board ('synthetic' needs no hardware) with its connection parameters",
                    BrainFlowOptions, _build_brainflow, f"{PAGES}:BrainFlowPage",
                    grammar="brainflow:synthetic|board=ID|NAME[,OPTION=VALUE...]", head="board",
                    check=f"{CHECKS}:check_brainflow_spec",
                    example="brainflow:board=0,serial_port=/dev/ttyUSB0"))
register(SourceKind("deap", "eeg", "DEAP trial",
                    "a DEAP subject's presentation trial replayed in real time (or --speed); predictions carry "
                    "the true quadrant", DeapOptions, _build_deap, f"{PAGES}:DeapPage",
                    grammar="deap:DIR:SUBJECT:TRIAL", example="deap:/data/DEAP:1:3", split=_split_deap,
                    unsplit=_unsplit_deap, replayed=True, check=f"{CHECKS}:check_deap_spec"))
register(SourceKind("file", "eeg", "EEG file (EDF, BDF, FIF, XDF, ...)",
                    "replay an EEG file: anything mne.io.read_raw reads (EDF, BDF, FIF, BrainVision, EEGLAB, "
                    "CNT, ...) or XDF; non-EEG channels are left out, triggers and annotations become markers",
                    FileOptions, "milmer_app.sources.file:build_file_eeg", f"{PAGES}:FilePage",
                    grammar="file:PATH[,OPTION=VALUE...]", head="path", example="file:sub-01.bdf,montage=biosemi64",
                    replayed=True, check=f"{CHECKS}:check_eeg_file_spec"))
register(SourceKind("recording", "eeg", "Recording",
                    "a recording made with --record or the Record button", FolderOptions, _build_recording_eeg,
                    f"{PAGES}:FolderPage", grammar="recording:DIR", head="path", example="recording:rec-001",
                    replayed=True, check=f"{CHECKS}:check_recording_spec"))
register(SourceKind("none", "eeg", "None", "no EEG (face only)", build=_build_nothing))

register(SourceKind("none", "video", "None", "no video (EEG only)", build=_build_nothing))
register(SourceKind("webcam", "video", "Camera", "a camera through OpenCV", WebcamOptions, _build_webcam,
                    grammar="webcam:INDEX[,width=W,height=H,fps=F]", head="index", example="webcam:0,width=640"))
register(SourceKind("file", "video", "Video file",
                    "a video file; alone it plays at its own frame rate, beside an EEG file it follows the "
                    "EEG's replay through offset= or xdf_stream=", VideoFileOptions,
                    "milmer_app.sources.file:build_file_video", grammar="file:PATH[,offset=S|xdf_stream=NAME]",
                    head="path", example="file:face.mp4,offset=2.5", check=f"{CHECKS}:check_video_file_spec"))
register(SourceKind("deap", "video", "DEAP trial video", "the replayed DEAP trial's own face video",
                    build=_build_deap_video, check=f"{CHECKS}:check_deap_video_spec"))
register(SourceKind("recording", "video", "Recording", "the frames of a recording", FolderOptions,
                    _build_recording_video, f"{PAGES}:FolderPage", grammar="recording:DIR", head="path",
                    example="recording:rec-001", check=f"{CHECKS}:check_recording_spec"))

register(SourceKind("none", "markers", "None", "no marker stream", build=_build_nothing))
register(SourceKind("lsl", "markers", "LSL marker stream",
                    "a Lab Streaming Layer marker stream (strings), found like an LSL EEG stream; its markers are "
                    "recorded with their text, stamped in the LSL clock, and drawn on the EEG traces",
                    LslStreamOptions, _build_lsl_markers,
                    grammar="lsl:name=NAME|type=TYPE|source_id=ID[,OPTION=VALUE...]", example="lsl:type=Markers"))
