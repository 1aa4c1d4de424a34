"""EEG and video sources, built from command-line specs (see `milmer_app.specs`)."""

from __future__ import annotations

from pathlib import Path

from milmer_app.sources.base import EEGSource, Source, VideoSource
from milmer_app.specs import SourceSpec
from models.errors import SourceError
from models.pipeline.labels import LabelRule

__all__ = ["EEGSource", "Source", "VideoSource", "build_sources"]


def build_sources(eeg_spec: SourceSpec, video_spec: SourceSpec, speed: float = 1.0,
                  label_rule: LabelRule | None = None,
                  video_offset: float = 0.0) -> tuple[EEGSource | None, VideoSource | None]:
    """Unconnected sources for the two specs; a replayed EEG source and its video share one replay clock.

    ``video_offset``: the checkpoint contract's trial time of a DEAP video's first frame.
    """
    eeg: EEGSource | None = None
    video: VideoSource | None = None
    deap = None
    recording = None
    if eeg_spec.kind in ("deap", "demo"):
        from milmer_app.sources.deap_replay import DeapEEGSource, DeapReplay

        if eeg_spec.kind == "demo":
            from milmer_app.demo import DEMO_SUBJECT, demo_data_dir

            deap = DeapReplay(demo_data_dir(), DEMO_SUBJECT, 1, speed=speed, label_rule=label_rule, advance=True,
                              video_offset=video_offset)
        else:
            assert eeg_spec.path is not None and eeg_spec.subject is not None and eeg_spec.trial is not None
            deap = DeapReplay(eeg_spec.path, eeg_spec.subject, eeg_spec.trial, speed=speed, label_rule=label_rule,
                              video_offset=video_offset)
        eeg = DeapEEGSource(deap)
    elif eeg_spec.kind == "lsl":
        from milmer_app.sources.lsl import LSLSource

        eeg = LSLSource(eeg_spec)
    elif eeg_spec.kind == "brainflow":
        from milmer_app.sources.brainflow_board import BrainFlowSource

        eeg = BrainFlowSource(eeg_spec)
    elif eeg_spec.kind == "recording":
        from milmer_app.sources.recorded import RecordingEEGSource, RecordingReplay

        assert eeg_spec.path is not None
        recording = RecordingReplay(eeg_spec.path, speed=speed)
        eeg = RecordingEEGSource(recording)

    if video_spec.kind == "deap":
        if deap is None:
            raise SourceError("video spec 'deap' needs a DEAP EEG source (--eeg deap:DIR:SUBJECT:TRIAL)")
        from milmer_app.sources.deap_replay import DeapVideoSource

        video = DeapVideoSource(deap)
    elif video_spec.kind == "webcam":
        from milmer_app.sources.camera import WebcamSource

        video = WebcamSource(video_spec)
    elif video_spec.kind == "file":
        from milmer_app.sources.camera import VideoFileSource

        video = VideoFileSource(video_spec)
    elif video_spec.kind == "recording":
        from milmer_app.sources.recorded import RecordingReplay, RecordingVideoSource

        assert video_spec.path is not None
        if recording is None or recording.folder.resolve() != Path(video_spec.path).resolve():
            recording = RecordingReplay(video_spec.path, speed=speed)
        video = RecordingVideoSource(recording)
    if eeg is None and video is None:
        raise SourceError("no source: both --eeg and --video are 'none'")
    return eeg, video
