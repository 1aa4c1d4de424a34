"""`recording:DIR` for EEG and video: a recording made with --record or the Record button, replayed
(the sources themselves: `milmer_app.sources.recorded`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from milmer_app.sources.paths import check_recording_folder
from milmer_app.sources.registry import BuildContext, Options, SourceKind, SourceSpec, option, register

PAGE = "milmer_app.gui.source_pages:FolderPage"


@dataclass(frozen=True, kw_only=True)
class FolderOptions(Options):
    path: Path = option(help="folder", metavar="DIR")


def check_recording(spec: SourceSpec, eeg: SourceSpec) -> None:
    check_recording_folder(spec.options.path)


def build_recording_eeg(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.recorded import RecordingEEGSource, RecordingReplay

    return RecordingEEGSource(RecordingReplay(spec.options.path, speed=context.speed))


def build_recording_video(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.recorded import RecordingReplay, RecordingVideoSource

    folder = Path(spec.options.path)
    recording = getattr(context.eeg, "playback", None)
    if recording is None or recording.folder.resolve() != folder.resolve():
        recording = RecordingReplay(folder, speed=context.speed)
    return RecordingVideoSource(recording)


register(SourceKind("recording", "eeg", "Recording", "a recording made with --record or the Record button",
                    FolderOptions, build_recording_eeg, PAGE, grammar="recording:DIR", head="path",
                    example="recording:rec-001", replayed=True, check=check_recording, order=60))
register(SourceKind("recording", "video", "Recording", "the frames of a recording", FolderOptions,
                    build_recording_video, PAGE, grammar="recording:DIR", head="path",
                    example="recording:rec-001", check=check_recording, order=40))
