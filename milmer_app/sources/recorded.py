"""A recording made by this app, replayed as EEG and video sources on a shared replay clock.

The markers it recorded from its sources (a marker stream's, the calibration wizard's) come out
again, as markers of the replayed EEG, when the replay reaches them."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from milmer_app.clock import local_clock
from milmer_app.recording import RecordingReader
from milmer_app.replay import ReplayControl
from milmer_app.sources.base import EEGSource, VideoSource
from models.calibration_protocol import marker_texts
from models.errors import DataError, SourceError

log = logging.getLogger(__name__)


class RecordingReplay:
    """The recording's data mapped from disk (EEG) or indexed on disk (frames), and its ReplayControl."""

    def __init__(self, folder: Path, speed: float = 1.0):
        try:
            self.reader = RecordingReader(folder)
        except DataError as exc:  # its message already names the folder
            raise SourceError(str(exc), hint=exc.hint) from exc
        self.folder = Path(folder)
        self.eeg, self.eeg_times = self.reader.eeg(mapped=True)
        self.frames = self.reader.frame_index()
        starts = [t[0] for t in (self.eeg_times, self.frames[:, 0]) if len(t)]
        ends = [t[-1] for t in (self.eeg_times, self.frames[:, 0]) if len(t)]
        if not starts:
            raise SourceError(f"recording {folder}: holds no EEG and no frames")
        self.origin = float(min(starts))
        duration = float(max(ends)) - self.origin
        self.control = ReplayControl(duration, speed=speed, description=f"recording {self.folder.name}")
        # What a recorded replay was playing, and its truth, from the markers (media time, text, truth).
        records = self.reader.markers()
        self.items = sorted((float(m["timestamp"]) - self.origin, str(m.get("text", "")), int(m["truth"]))
                            for m in records if isinstance(m.get("truth"), int))
        # The data markers (media time, text), in time order.
        self.markers = [(stamp - self.origin, text) for stamp, text in marker_texts(records)]

    def follow_items(self, position: float) -> None:
        """Set the control's truth and description to those of the item playing at `position`."""
        current = [item for item in self.items if item[0] <= position]
        if current:
            _, text, truth = current[-1]
            self.control.truth = truth
            self.control.description = f"recording {self.folder.name}: {text.removeprefix('replay: ')}"


class _RecordedStream(ABC):
    """Emits a recorded stream's items as the shared replay clock reaches their media times.

    A subclass sets `_media_times` (seconds from the recording's origin, ascending) and
    `_poll`, and implements `_emit(first, stop, to_lsl, position)` for items first..stop-1.
    """

    replay: ReplayControl
    segment_start: float
    _stop: threading.Event
    _media_times: np.ndarray
    _poll: float
    _generation = -1
    _next = 0

    def _open(self) -> None:
        return None

    def _pull(self) -> bool:
        generation, anchor_lsl, anchor_pos, speed, paused = self.replay.snapshot()
        position = self.replay.position_at(local_clock())
        times = self._media_times
        if generation != self._generation:
            # A seek or a speed change: carry on from the new position.
            self._generation = generation
            self._next = int(np.searchsorted(times, position, side="left"))
            if self._next < len(times):
                self.segment_start = anchor_lsl + (times[self._next] - anchor_pos) / speed
        target = int(np.searchsorted(times, position, side="right"))
        if target > self._next:
            self._emit(self._next, target, lambda media: anchor_lsl + (media - anchor_pos) / speed, position)
            self._next = target
        if self._next >= len(times) and not paused:
            return False
        self._stop.wait(self._poll)
        return True

    @abstractmethod
    def _emit(self, first: int, stop: int, to_lsl: Callable[[np.ndarray], np.ndarray], position: float) -> None:
        """Push items first..stop-1; `to_lsl` maps media times to LSL times."""


class RecordingEEGSource(_RecordedStream, EEGSource):
    _poll = 0.02

    def __init__(self, replay: RecordingReplay):
        super().__init__(f"recording {replay.folder.name}")
        if not replay.reader.channel_names or replay.eeg.shape[1] == 0:
            raise SourceError(f"recording {replay.folder}: holds no EEG")
        self.playback = replay
        self.replay = replay.control
        self.channel_names = replay.reader.channel_names
        self.srate = replay.reader.srate
        eeg_meta = replay.reader.meta.get("eeg") or {}
        filtered = eeg_meta.get("already_filtered")
        self.already_filtered = tuple(filtered) if filtered else None
        self.already_referenced = bool(eeg_meta.get("already_referenced", False))
        self._media_times = replay.eeg_times - replay.origin
        self._marker_times = np.array([t for t, _ in replay.markers], dtype=np.float64)
        self._next_marker = 0
        self._emitted_until = -1     # the index after the last sample pushed (another first: a seek)

    def _emit(self, first: int, stop: int, to_lsl: Callable[[np.ndarray], np.ndarray], position: float) -> None:
        self.push(self.playback.eeg[:, first:stop], to_lsl(self._media_times[first:stop]))
        if first != self._emitted_until:
            # After a seek: the markers from the new position on. At the start, from the recording's
            # start, although the replay's first samples may have passed while the sources connected.
            since = self._media_times[first] if self._emitted_until >= 0 else -np.inf
            self._next_marker = int(np.searchsorted(self._marker_times, since, side="left"))
        self._emitted_until = stop
        due = int(np.searchsorted(self._marker_times, self._media_times[stop - 1], side="right"))
        for index in range(self._next_marker, due):
            media, text = self.playback.markers[index]
            self.emit_marker(text, float(to_lsl(np.float64(media))))
        self._next_marker = max(self._next_marker, due)
        self.playback.follow_items(position)


class RecordingVideoSource(_RecordedStream, VideoSource):
    _poll = 0.01

    def __init__(self, replay: RecordingReplay):
        super().__init__(f"recording {replay.folder.name} video")
        if len(replay.frames) == 0:
            raise SourceError(f"recording {replay.folder}: holds no video frames")
        self.playback = replay
        self.replay = replay.control
        stamps = replay.frames[:, 0]
        self.fps = float((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 else 1.0
        self._media_times = stamps - replay.origin

    def _emit(self, first: int, stop: int, to_lsl: Callable[[np.ndarray], np.ndarray], position: float) -> None:
        rows = self.playback.frames[first:stop]
        # More than a second due at once (a slow disk or a seek): only the last second is decoded.
        for stamp, image in self.playback.reader.read_frames(rows[-max(1, int(self.fps)):]):
            self.push(image, float(to_lsl(np.float64(stamp - self.playback.origin))))
