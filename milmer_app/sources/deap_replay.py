"""A DEAP subject's trials replayed as live sources: EEG at real time (or faster) and its face video.

Replay starts at the stimulus (after the 3 s pre-trial baseline, which training
drops too) and runs the subject's presentation trials in order from the chosen
one: one trial, or all of them in a loop (`advance=True`, used by the demo).
A video's first frame is at trial time ``video_offset`` (the checkpoint contract's; 0: the
first EEG sample of the trial, the baseline's start), as in training's window/frame pairing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from milmer_app.clock import local_clock
from milmer_app.replay import ReplayControl
from milmer_app.sources.base import EEGSource, VideoSource
from milmer_app.sources.camera import open_video_file
from models.contract import GENEVA_CHANNELS
from models.errors import DataError, SourceError
from models.pipeline.labels import LabelRule
from training.deap import DeapIndex, TrialRecord, load_subject, scan_deap
from training.deap.readers import DEAP_RATE, EEG_CHANNELS

log = logging.getLogger(__name__)

BASELINE_S = 3.0


@dataclass(frozen=True)
class ReplayItem:
    generation: int
    record: TrialRecord
    eeg: np.ndarray            # (32, samples) float32, stimulus part only
    video: Path | None


class DeapReplay:
    """The trial being replayed and how to move to the next; owns the ReplayControl."""

    def __init__(self, root: Path, subject: int, trial: int, speed: float = 1.0,
                 label_rule: LabelRule | None = None, advance: bool = False, video_offset: float = 0.0):
        try:
            self.index: DeapIndex = scan_deap(root)
        except DataError as exc:
            raise SourceError(f"DEAP replay: {exc}", hint=exc.hint) from exc
        if subject not in self.index.subjects:
            raise SourceError(f"DEAP replay: {root} has no EEG for subject {subject} (have {self.index.subjects})")
        self.subject = subject
        self.trials = sorted((t for t in self.index.trials if t.subject == subject and t.presentation_trial),
                             key=lambda t: t.presentation_trial)
        if not any(t.presentation_trial == trial for t in self.trials):
            have = [t.presentation_trial for t in self.trials]
            raise SourceError(f"DEAP replay: subject {subject} in {root} has no presentation trial {trial} "
                              f"(have {have[:5]}{' ...' if len(have) > 5 else ''})")
        self.rule = label_rule or LabelRule()
        self.advance = advance
        self.video_offset = video_offset
        self._arrays = load_subject(self.index, subject)
        self.control = ReplayControl(1.0, speed=speed, next_item=self.next_trial)
        self._item: ReplayItem | None = None
        self._load(trial)

    @property
    def item(self) -> ReplayItem:
        assert self._item is not None
        return self._item

    def _load(self, presentation_trial: int) -> None:
        record = next(t for t in self.trials if t.presentation_trial == presentation_trial)
        data = self._arrays.data[record.experiment_id - 1, :EEG_CHANNELS]
        start = int(round(BASELINE_S * DEAP_RATE))
        eeg = np.ascontiguousarray(data[:, start:], dtype=np.float32)
        truth = self.rule.apply(record.valence, record.arousal)
        ratings = {"valence": record.valence, "arousal": record.arousal,
                   "dominance": record.dominance, "liking": record.liking}
        description = f"s{self.subject:02d} trial {presentation_trial} (experiment {record.experiment_id})"
        if record.video is None:
            log.warning("DEAP replay: %s has no face video; faces will be masked", description)
        with self.control.locked():
            self.control.start_item(eeg.shape[1] / DEAP_RATE, description, truth, ratings)
            self._item = ReplayItem(self.control.generation, record, eeg, record.video)
        log.info("replaying %s, truth %s", description, self.rule.class_names[truth])

    def next_trial(self) -> bool:
        current = self.item.record.presentation_trial
        later = [t.presentation_trial for t in self.trials if t.presentation_trial > current]
        if later:
            self._load(later[0])
            return True
        if self.advance:
            self._load(self.trials[0].presentation_trial)
            return True
        return False


class DeapEEGSource(EEGSource):
    """Emits the replayed trial's 32 EEG channels as the replay clock reaches them."""

    # DEAP's preprocessed EEG is already band-passed 4-45 Hz and average-referenced.
    already_filtered = (4.0, 45.0)
    already_referenced = True

    def __init__(self, replay: DeapReplay):
        super().__init__(f"DEAP s{replay.subject:02d}")
        self.playback = replay
        self.replay = replay.control
        self.channel_names = list(GENEVA_CHANNELS)
        self.srate = DEAP_RATE
        self._generation = -1
        self._next = 0

    def _open(self) -> None:
        return None

    def _pull(self) -> bool:
        with self.replay.locked():
            item = self.playback.item
            generation, anchor_lsl, anchor_pos, speed, paused = self.replay.snapshot()
            position = self.replay.position_at(local_clock())
            label = (self.replay.truth, self.replay.description)
        if generation != self._generation:
            # A new trial or a seek: carry on from the new position.
            self._generation = generation
            self._next = int(position * self.srate)
            self.segment_start = anchor_lsl + (self._next / self.srate - anchor_pos) / speed
            self.segment_label = (self.segment_start, *label)   # one assignment: read whole by the bags
        total = item.eeg.shape[1]
        target = min(total, int(position * self.srate))
        if target > self._next:
            times = anchor_lsl + (np.arange(self._next, target) / self.srate - anchor_pos) / speed
            self.push(item.eeg[:, self._next:target], times)
            self._next = target
        if self._next >= total and not paused:
            if not self.replay.next_trial():
                return False
        self._stop.wait(0.02)
        return True


class DeapVideoSource(VideoSource):
    """Emits the replayed trial's face-video frames as the replay clock reaches them."""

    def __init__(self, replay: DeapReplay):
        super().__init__(f"DEAP s{replay.subject:02d} video")
        self.playback = replay
        self.replay = replay.control
        self._capture: cv2.VideoCapture | None = None
        self._item: ReplayItem | None = None
        self._generation = -1
        self._video_fps = 0.0
        self._next_frame = 0

    def _open(self) -> None:
        self._reopen()
        if self.fps <= 0:
            self.fps = 25.0

    def _reopen(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        item = self.playback.item
        self._item = item
        self._generation = item.generation
        if item.video is None:
            return
        self._capture, self._video_fps = open_video_file(item.video)
        self.fps = self.fps or self._video_fps
        self._seek_to_position()

    def _seek_to_position(self) -> None:
        assert self._capture is not None
        self._next_frame = max(0, int(np.ceil(self._video_time(self.replay.position) * self._video_fps)))
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, self._next_frame)

    def _pull(self) -> bool:
        control = self.replay
        if control.generation != self._generation:
            if self.playback.item is not self._item:
                try:
                    self._reopen()
                except SourceError as exc:   # one unreadable video: that trial goes on without faces
                    self.emit_event("warning", str(exc))
            else:
                self._generation = control.generation
                if self._capture is not None:
                    self._seek_to_position()
        if self._capture is None:
            self._stop.wait(0.05)
            return True
        due = int(np.floor(self._video_time(control.position) * self._video_fps))
        # More than a second behind (a slow decoder at high speed): skip the backlog undecoded.
        backlog_limit = max(1, int(self._video_fps))
        while self._next_frame <= due and not self._stop.is_set():
            if not self._capture.grab():
                self._capture.release()
                self._capture = None
                return True
            if due - self._next_frame < backlog_limit:
                ok, image = self._capture.retrieve()
                if ok:
                    self.push(image, control.stamp(self._replay_time(self._next_frame)))
            self._next_frame += 1
        wait = control.stamp(self._replay_time(self._next_frame)) - local_clock()
        self._stop.wait(min(0.05, max(0.0, wait)) if not control.paused else 0.05)
        return True

    def _video_time(self, position: float) -> float:
        """Replay position (s after the baseline) -> seconds into the video."""
        return position + BASELINE_S - self.playback.video_offset

    def _replay_time(self, frame: int) -> float:
        """Video frame number -> replay position (s after the baseline)."""
        return frame / self._video_fps + self.playback.video_offset - BASELINE_S

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
