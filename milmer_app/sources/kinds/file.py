"""`--eeg file:PATH` (an EEG file replayed) and `--video file:PATH` (a video file, alone or beside the EEG
file's replay). The sources themselves: `milmer_app.sources.file` and `milmer_app.sources.camera`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from milmer_app.sources.channel_options import UNITS, ChannelOptions
from milmer_app.sources.paths import check_eeg_file, check_video_file
from milmer_app.sources.registry import BuildContext, OptionError, Options, SourceKind, SourceSpec, option, register
from models.errors import SourceError


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
class VideoFileOptions(Options):
    path: Path = option(help="video file", metavar="PATH")
    offset: float | None = option(None, "with an EEG file: the video's start, in seconds after the EEG file's "
                                        "start (negative: before)", low=-86400.0, high=86400.0, metavar="S")
    xdf_stream: str | None = option(None, "with an XDF EEG file: the XDF stream holding this video's "
                                          "per-frame timestamps", metavar="NAME")

    def check(self) -> None:
        if self.offset is not None and self.xdf_stream is not None:
            raise OptionError("offset", "and xdf_stream= exclude each other: give one")

    @property
    def aligned(self) -> bool:
        """Whether the video follows an EEG file's replay (offset= or xdf_stream=)."""
        return self.offset is not None or self.xdf_stream is not None


def check_file_eeg(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_eeg_file(spec.options.path)


def build_file_eeg(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.file import open_file_replay

    o: FileOptions = spec.options
    return open_file_replay(o.path, stream=o.stream, unit=o.unit, speed=context.speed, start=o.start, loop=o.loop)


def _needs_eeg_file(spec: SourceSpec) -> SourceError:
    return SourceError(f"video spec '{spec.text}': offset= and xdf_stream= align the video to an EEG file; "
                       "use them with --eeg file:PATH")


def check_file_video(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_video_file(spec.options.path)
    if spec.options.aligned and eeg.kind != "file":
        raise _needs_eeg_file(spec)


def build_file_video(spec: SourceSpec, context: BuildContext):
    o: VideoFileOptions = spec.options
    check_video_file(o.path)
    if not o.aligned:
        from milmer_app.sources.camera import VideoFileSource

        return VideoFileSource(o.path)
    from milmer_app.sources.file import FileEEGSource, ReplayedVideoFile

    eeg = context.eeg
    if not isinstance(eeg, FileEEGSource):
        raise _needs_eeg_file(spec)
    return ReplayedVideoFile.beside(eeg, o.path, offset=o.offset, xdf_stream=o.xdf_stream)


register(SourceKind("file", "eeg", "EEG file (EDF, BDF, FIF, XDF, ...)",
                    "replay an EEG file: anything mne.io.read_raw reads (EDF, BDF, FIF, BrainVision, EEGLAB, "
                    "CNT, ...) or XDF; non-EEG channels are left out, triggers and annotations become markers",
                    FileOptions, build_file_eeg, "milmer_app.gui.source_pages:FilePage",
                    grammar="file:PATH[,OPTION=VALUE...]", head="path", example="file:sub-01.bdf,montage=biosemi64",
                    replayed=True, check=check_file_eeg, order=50))
register(SourceKind("file", "video", "Video file",
                    "a video file; alone it plays at its own frame rate, beside an EEG file it follows the "
                    "EEG's replay through offset= or xdf_stream=", VideoFileOptions, build_file_video,
                    grammar="file:PATH[,offset=S|xdf_stream=NAME]", head="path", example="file:face.mp4,offset=2.5",
                    check=check_file_video, order=20))
