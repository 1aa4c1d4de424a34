"""A recording made by this app, replayed as EEG and video sources on a shared replay clock."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from milmer_app.clock import local_clock
from milmer_app.recording import RecordingReader
from milmer_app.replay import ReplayControl
from milmer_app.sources.base import EEGSource, VideoSource
from models.errors import DataError, SourceError

log = logging.getLogger(__name__)


class RecordingReplay:
    """The recording's data in memory (EEG) or indexed on disk (frames), and its ReplayControl."""

    def __init__(self, folder: Path, speed: float = 1.0):
        try:
            self.reader = RecordingReader(folder)
        except DataError as exc:
            raise SourceError(f"recording {folder}: {exc}") from exc
        self.folder = Path(folder)
        self.eeg, self.eeg_times = self.reader.eeg()
        self.frames = self.reader.frame_index()
        starts = [t[0] for t in (self.eeg_times, self.frames[:, 0]) if len(t)]
        ends = [t[-1] for t in (self.eeg_times, self.frames[:, 0]) if len(t)]
        if not starts:
            raise SourceError(f"recording {folder}: holds no EEG and no frames")
        self.origin = float(min(starts))
        duration = float(max(ends)) - self.origin
        self.control = ReplayControl(duration, speed=speed, description=f"recording {self.folder.name}")
        # What a recorded replay was playing, and its truth, from the markers (media time, text, truth).
        self.items = sorted((float(m["timestamp"]) - self.origin, str(m.get("text", "")), int(m["truth"]))
                            for m in self.reader.markers() if isinstance(m.get("truth"), int))

    def follow_items(self, position: float) -> None:
        """Set the control's truth and description to those of the item playing at `position`."""
        current = [item for item in self.items if item[0] <= position]
        if current:
            _, text, truth = current[-1]
            self.control.truth = truth
            self.control.description = f"recording {self.folder.name}: {text.removeprefix('replay: ')}"


class RecordingEEGSource(EEGSource):
    def __init__(self, replay: RecordingReplay):
        super().__init__(f"recording {replay.folder.name}")
        if not replay.reader.channel_names or replay.eeg.shape[1] == 0:
            raise SourceError(f"recording {replay.folder}: holds no EEG")
        self.rec = replay
        self.replay = replay.control
        self.channel_names = replay.reader.channel_names
        self.srate = replay.reader.srate
        eeg_meta = replay.reader.meta.get("eeg") or {}
        filtered = eeg_meta.get("already_filtered")
        self.already_filtered = tuple(filtered) if filtered else None
        self.already_referenced = bool(eeg_meta.get("already_referenced", False))
        self._generation = -1
        self._next = 0

    def _open(self) -> None:
        return None

    def _pull(self) -> bool:
        generation, anchor_lsl, anchor_pos, speed, paused = self.replay.snapshot()
        position = self.replay.position_at(local_clock())
        media_times = self.rec.eeg_times - self.rec.origin
        if generation != self._generation:
            self._generation = generation
            self._next = int(np.searchsorted(media_times, position, side="left"))
            if self._next < len(media_times):
                self.segment_start = anchor_lsl + (media_times[self._next] - anchor_pos) / speed
        target = int(np.searchsorted(media_times, position, side="right"))
        if target > self._next:
            times = anchor_lsl + (media_times[self._next:target] - anchor_pos) / speed
            self.push(self.rec.eeg[:, self._next:target], times)
            self._next = target
            self.rec.follow_items(position)
        if self._next >= len(media_times) and not paused:
            return False
        self._stop.wait(0.02)
        return True


class RecordingVideoSource(VideoSource):
    def __init__(self, replay: RecordingReplay):
        super().__init__(f"recording {replay.folder.name} video")
        if len(replay.frames) == 0:
            raise SourceError(f"recording {replay.folder}: holds no video frames")
        self.rec = replay
        self.replay = replay.control
        stamps = replay.frames[:, 0]
        self.fps = float((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 else 1.0
        self._generation = -1
        self._next = 0

    def _open(self) -> None:
        return None

    def _pull(self) -> bool:
        generation, anchor_lsl, anchor_pos, speed, paused = self.replay.snapshot()
        position = self.replay.position_at(local_clock())
        media_times = self.rec.frames[:, 0] - self.rec.origin
        if generation != self._generation:
            self._generation = generation
            self._next = int(np.searchsorted(media_times, position, side="left"))
        target = int(np.searchsorted(media_times, position, side="right"))
        if target > self._next:
            rows = self.rec.frames[self._next:target]
            for stamp, image in self.rec.reader.read_frames(rows[-max(1, int(self.fps)):]):
                self.push(image, anchor_lsl + (stamp - self.rec.origin - anchor_pos) / speed)
            self._next = target
        if self._next >= len(media_times) and not paused:
            return False
        self._stop.wait(0.01)
        return True
