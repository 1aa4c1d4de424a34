"""EEG files replayed as a live source (`--eeg file:PATH`), and a video beside one (`--video file:PATH,offset=S`).

Anything `mne.io.read_raw` reads (EDF, BDF, FIF, BrainVision, EEGLAB, CNT, ...)
and XDF (through `milmer_app.sources.xdf`) is opened as an `EEGFile`: its header
checked against the file first (`file_headers`), then read in pieces as the replay
reaches them (MNE's preload=False; XDF files, which pyxdf reads whole, are limited
in size): EEG channels only, in microvolts, media times in seconds from the
file's start, markers (triggers, annotations, marker streams) and the sample
indices where the data stop being continuous. A `FileReplay` plays it on a
`ReplayControl`, the same clock the DEAP and recording replays use, so the
window's play/pause, speed and seek drive it, and a video beside the file
follows the same clock.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from milmer_app.clock import local_clock
from milmer_app.replay import ReplayControl
from milmer_app.sources.base import EEGSource, VideoSource
from milmer_app.sources.eeg_file import (
    TRIGGER_MASK,
    XDF_SUFFIXES,
    EEGFile,
    is_non_eeg_label,
)
from milmer_app.sources.paths import check_eeg_file
from models.errors import SourceError

log = logging.getLogger(__name__)

# -- loading ------------------------------------------------------------------------------
PIECE_SECONDS = 4.0                # the most a replay reads and pushes at once
PIECE_VALUES = 2_000_000           # ... and at most this many values (channels x samples) per read
MAX_VALUES_PER_SECOND = 4_200_000  # channels x rate: a 60 s buffer stays near 1 GB (256 channels at 16 kHz)
PROBE_SECONDS = 2.0                # the length of each piece the signal check reads
PROBE_PIECES = 8                   # pieces spread over the file
MAX_EEG_UV = 5000.0                # robust spread (µV) above which a channel is not scalp EEG in µV
FLAT_UV = 0.1                      # spread (µV) below which a channel is flat (as the live checks)


def load_eeg_file(path: Path, stream: str | None = None, unit: str | None = None) -> EEGFile:
    """The EEG of a file MNE or pyxdf reads (channel names as the file has them: the engine maps them,
    with montage= where the spec gives one). The header is checked against the file before any data is
    read; a lie is corrected with a warning or refused in one line (SourceError)."""
    from milmer_app.sources.file_headers import check_header

    path = Path(path)
    check_eeg_file(path)
    for warning in check_header(path):
        log.warning("%s", warning)
    if path.suffix.lower() in XDF_SUFFIXES:
        from milmer_app.sources.xdf import load_xdf_eeg

        loaded = load_xdf_eeg(path, stream=stream, unit=unit)
    else:
        if stream is not None:
            raise SourceError(f"{path}: stream= is for XDF files; this file has one recording")
        if unit is not None:
            raise SourceError(f"{path}: unit= is for XDF files; MNE reads this file's units from it")
        loaded = _load_mne(path)
    if loaded.samples < 2:
        raise SourceError(f"{path}: holds no EEG samples")
    values = len(loaded.channel_names) * loaded.srate
    if values > MAX_VALUES_PER_SECOND:
        raise SourceError(f"{path}: {len(loaded.channel_names)} EEG channels at {loaded.srate:g} Hz are {values:.3g} "
                          f"values per second, more than a replay keeps ({MAX_VALUES_PER_SECOND:.2g})",
                          hint="resample the file or pick fewer channels (e.g. with MNE) before replaying it")
    check_signal(loaded)
    if loaded.excluded:
        log.info("%s: left out channels %s", path.name, ", ".join(loaded.excluded))
    return loaded


def check_signal(loaded: EEGFile) -> None:
    """Pieces spread over the file, checked per channel: no finite sample, flat (zero included) or an
    implausible spread for microvolts (e.g. 1e6 µV: a file in the wrong unit). Such channels are left
    out with a warning naming them; when none is left, the file is refused in one line."""
    length = max(2, min(int(PROBE_SECONDS * loaded.srate), PIECE_VALUES // len(loaded.channel_names)))
    starts = sorted({int(s) for s in np.linspace(0, max(0, loaded.samples - length), PROBE_PIECES)})
    pieces = [loaded.read(start, min(loaded.samples, start + length)).astype(np.float64) for start in starts]
    finite = np.array([np.isfinite(p).any(axis=1) for p in pieces]).any(axis=0)
    spreads = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN rows: judged by `finite` below
        for piece in pieces:
            centred = np.where(np.isfinite(piece), piece, np.nan)
            median = np.nanmedian(centred, axis=1, keepdims=True)
            spreads.append(1.4826 * np.nanmedian(np.abs(centred - median), axis=1))
        spread = np.nan_to_num(np.nanmax(np.array(spreads), axis=0), nan=0.0)
        typical = np.nan_to_num(np.nanmedian(np.array(spreads), axis=0), nan=0.0)
    problems: dict[str, str] = {}
    for index, name in enumerate(loaded.channel_names):
        if not finite[index]:
            problems[name] = "no finite sample (NaN/Inf)"
        elif spread[index] < FLAT_UV:
            problems[name] = "flat"
        elif typical[index] > MAX_EEG_UV:
            problems[name] = f"spread {typical[index]:.3g} µV, implausible for EEG"
    if not problems:
        return
    summary = "; ".join(f"{name}: {why}" for name, why in list(problems.items())[:6]) + \
        (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    if len(problems) == len(loaded.channel_names):
        kinds = {why.split(" ", 1)[0] for why in problems.values()}
        hint = "is the file's unit right? MNE reads it from the file" if "spread" in kinds else None
        raise SourceError(f"{loaded.path}: no usable EEG: every channel is unusable ({summary})", hint=hint)
    log.warning("%s: %d of %d channels left out as unusable: %s", loaded.path.name, len(problems),
                len(loaded.channel_names), summary)
    keep = [i for i, name in enumerate(loaded.channel_names) if name not in problems]
    read = loaded.read
    loaded.read = lambda start, stop: read(start, stop)[keep]
    loaded.excluded += [f"{name} ({why})" for name, why in problems.items()]
    loaded.channel_names = [loaded.channel_names[i] for i in keep]


def _load_mne(path: Path) -> EEGFile:
    import mne

    from milmer_app.sources.file_headers import check_opened

    try:
        raw = mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as exc:
        raise SourceError(f"{path}: MNE cannot read this file ({type(exc).__name__}: {exc})",
                          hint="file: reads what mne.io.read_raw reads (EDF, BDF, FIF, BrainVision .vhdr, "
                               "EEGLAB .set, CNT, ...) and XDF") from None
    check_opened(path, raw)
    types = raw.get_channel_types()
    keep, excluded = [], []
    for index, (name, kind) in enumerate(zip(raw.ch_names, types, strict=True)):
        if kind != "eeg" or is_non_eeg_label(name):
            excluded.append(name)
        else:
            keep.append(index)
    if not keep:
        found = ", ".join(f"{n} ({t})" for n, t in zip(raw.ch_names, types))
        raise SourceError(f"{path}: no EEG channels (found {found})")
    srate = float(raw.info["sfreq"])
    samples = int(raw.n_times)

    def read(start: int, stop: int) -> np.ndarray:
        try:
            return (raw.get_data(picks=keep, start=start, stop=stop) * 1e6).astype(np.float32)   # MNE gives volts
        except Exception as exc:
            raise SourceError(f"{path}: reading samples {start}-{stop} of the {samples} the header promises "
                              f"failed ({type(exc).__name__}: {exc})") from None

    for start in (0, samples - 1):   # both ends: a header promising more than the file holds is caught here
        read(start, start + 1)
    markers = _annotation_markers(raw)
    breaks = {}
    for onset, text in markers:
        if text.lower().startswith(("bad_acq_skip", "edge boundary", "boundary")):
            index = round(onset * srate)
            if 0 < index < samples:
                breaks[index] = f"recording break in {path.name} at {onset:.2f} s"
    markers = [(float(t), text) for t, text in markers if not text.lower().startswith("bad_acq_skip")]
    return EEGFile(path, [raw.ch_names[i] for i in keep], srate, samples, read, None, sorted(markers), breaks,
                   excluded, triggers=_trigger_reader(raw, path))


def _trigger_reader(raw, path: Path) -> Callable[[int, int], list[tuple[int, str]]] | None:
    """Onsets of the stim channels' codes (trigger bits only) in a span, read with the sample before it."""
    stim = [name for name, kind in zip(raw.ch_names, raw.get_channel_types(), strict=True) if kind == "stim"]
    if not stim:
        return None

    def onsets(start: int, stop: int) -> list[tuple[int, str]]:
        first = max(0, start - 1)
        try:
            values = raw.get_data(picks=stim, start=first, stop=stop)
        except Exception as exc:
            raise SourceError(f"{path}: reading the trigger channel(s) at samples {start}-{stop} failed "
                              f"({type(exc).__name__}: {exc})") from None
        with np.errstate(invalid="ignore"):
            codes = np.nan_to_num(np.round(values), nan=0.0, posinf=0.0, neginf=0.0)
        codes = np.clip(codes, -(2**62), 2**62).astype(np.int64) & TRIGGER_MASK
        before = codes[:, :1] if first < start else np.zeros((len(stim), 1), np.int64)
        body = codes[:, start - first:]
        found = []
        for row, name in enumerate(stim):
            for index in np.flatnonzero(np.diff(body[row], prepend=before[row]) != 0):
                if body[row, index] != 0:
                    found.append((start + int(index), f"{name} {int(body[row, index])}"))
        return sorted(found)

    return onsets


def _annotation_markers(raw) -> list[tuple[float, str]]:
    annotations = raw.annotations
    shift = raw.first_time if annotations.orig_time is not None else 0.0
    return [(float(onset - shift), str(text)) for onset, text in zip(annotations.onset, annotations.description,
                                                                      strict=True)
            if np.isfinite(onset)]


# -- replay ---------------------------------------------------------------------------------
class FileReplay:
    """The loaded file and its ReplayControl (no loop unless asked)."""

    def __init__(self, recording: EEGFile, speed: float = 1.0, start: float = 0.0, loop: bool = False):
        self.file = recording
        if start >= recording.duration:
            raise SourceError(f"{recording.path}: start={start:g} s is past the end ({recording.duration:.1f} s)")
        self.loop = loop
        self.control = ReplayControl(recording.duration, speed=speed, description=f"file {recording.path.name}",
                                     next_item=self._again)
        if start > 0:
            self.control.seek(start)

    def _again(self) -> bool:
        if not self.loop:
            return False
        self.control.start_item(self.file.duration, self.control.description, None, None)
        return True


class FileEEGSource(EEGSource):
    """Emits the file's EEG as the replay clock reaches it, with its markers and breaks."""

    def __init__(self, replay: FileReplay):
        super().__init__(f"file {replay.file.path.name}")
        self.playback = replay
        self.replay = replay.control
        self.channel_names = list(replay.file.channel_names)
        self.srate = replay.file.srate
        self.unit, self.unit_origin = replay.file.unit, replay.file.unit_origin
        self._marker_times = np.array([t for t, _ in replay.file.markers], dtype=np.float64)
        self._break_at = np.array(sorted(replay.file.breaks), dtype=np.int64)
        self._generation = -1
        self._next = 0
        self._next_marker = 0
        self._piece = max(1, min(int(PIECE_SECONDS * self.srate), PIECE_VALUES // len(self.channel_names)))

    def _open(self) -> None:
        return None

    def _pull(self) -> bool:
        recording = self.playback.file
        generation, anchor_lsl, anchor_pos, speed, paused = self.replay.snapshot()
        position = self.replay.position_at(local_clock())

        def to_lsl(media):
            return anchor_lsl + (media - anchor_pos) / speed

        if generation != self._generation:
            # The start, a seek, a speed change or a loop: carry on from the new position.
            self._generation = generation
            self._next = recording.index_at(position, side="left")
            self._next_marker = int(np.searchsorted(self._marker_times, position, side="left"))
            if self._next < recording.samples:
                self.segment_start = float(to_lsl(recording.time_of(self._next, self._next + 1)[0]))
        target = recording.index_at(position, side="right")
        while target > self._next and not self._stop.is_set():
            # At a break the data restart: no window may reach back across it.
            reason = recording.breaks.get(self._next)
            if reason is not None:
                self.mark_discontinuity(float(to_lsl(recording.time_of(self._next, self._next + 1)[0])), reason)
            later = self._break_at[self._break_at > self._next]
            stop = min(target, int(later[0])) if len(later) else target
            stop = min(stop, self._next + self._piece)          # read in pieces, whatever the speed
            self.push(recording.read(self._next, stop), to_lsl(recording.time_of(self._next, stop)))
            if recording.triggers is not None:
                for index, text in recording.triggers(self._next, stop):
                    self.emit_marker(text, float(to_lsl(recording.time_of(index, index + 1)[0])))
            self._next = stop
        due = int(np.searchsorted(self._marker_times, position, side="right"))
        for index in range(self._next_marker, due):
            media, text = recording.markers[index]
            self.emit_marker(text, float(to_lsl(media)))
        self._next_marker = max(self._next_marker, due)
        if self._next >= recording.samples and not paused:
            if not self.replay.next_trial():
                return False
        self._stop.wait(0.02)
        return True


def open_file_replay(path: Path, *, stream: str | None = None, unit: str | None = None, speed: float = 1.0,
                     start: float = 0.0, loop: bool = False) -> FileEEGSource:
    """The EEG of a file, checked and ready to replay from `start` at `speed` (see `load_eeg_file`)."""
    recording = load_eeg_file(path, stream=stream, unit=unit)
    log.info("%s: %d EEG channels at %g Hz, %.1f s, %d marker(s)%s", recording.path.name,
             len(recording.channel_names), recording.srate, recording.duration, len(recording.markers),
             f"; left out {', '.join(recording.excluded)}" if recording.excluded else "")
    return FileEEGSource(FileReplay(recording, speed=speed, start=start, loop=loop))


# -- a video beside the file -------------------------------------------------------------------
class ReplayedVideoFile(VideoSource):
    """A video whose frames have media times on an EEG file's replay clock (from offset= or XDF stamps)."""

    def __init__(self, path: Path, replay: ReplayControl, frame_times: np.ndarray | None, offset: float = 0.0):
        super().__init__(f"video {path.name}")
        self.path = Path(path)
        self.replay = replay
        self._given_times = frame_times
        self._offset = offset
        self._times = np.zeros(0)
        self._capture = None
        self._generation = -1
        self._next_frame = 0
        self._read_frame = 0           # the capture's own position

    @classmethod
    def beside(cls, eeg: FileEEGSource, path: Path, *, offset: float | None = None,
               xdf_stream: str | None = None) -> ReplayedVideoFile:
        """The video at `path` on `eeg`'s replay clock: starting `offset` seconds after the EEG file's start,
        or at the frame times the XDF stream `xdf_stream` of the EEG file holds."""
        if xdf_stream is None:
            return cls(path, eeg.replay, None, offset=float(offset or 0.0))
        from milmer_app.sources.xdf import frame_times

        return cls(path, eeg.replay, frame_times(eeg.playback.file, xdf_stream))

    def _open(self) -> None:
        import cv2

        from milmer_app.sources.camera import open_video_file

        self._capture, self.fps = open_video_file(self.path)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if self._given_times is not None:
            self._times = np.asarray(self._given_times, dtype=np.float64)
            if count and abs(count - len(self._times)) > 1:
                self.emit_event("warning", f"{self.name}: {count} frames but {len(self._times)} frame time stamps; "
                                           "aligning the first ones")
            if count:
                self._times = self._times[:count]
        else:
            self._times = self._offset + np.arange(max(count, 1)) / self.fps
        end = self.replay.duration
        if len(self._times) and (self._times[-1] < 0 or self._times[0] >= end):
            self._capture.release()
            self._capture = None
            raise SourceError(f"{self.path}: its frames span {self._times[0]:.1f}..{self._times[-1]:.1f} s of the EEG "
                              f"file's time, which runs 0..{end:.1f} s: they never overlap",
                              hint="check offset= (seconds from the EEG file's start to the video's first frame)")
        self._generation = -1

    def _seek(self, frame: int) -> None:
        import cv2

        self._capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        self._read_frame = frame

    def _pull(self) -> bool:
        control = self.replay
        generation, anchor_lsl, anchor_pos, speed, paused = control.snapshot()
        position = control.position_at(local_clock())
        if generation != self._generation:
            self._generation = generation
            self._next_frame = int(np.searchsorted(self._times, position, side="left"))
            if self._next_frame < len(self._times):
                self._seek(self._next_frame)
        due = int(np.searchsorted(self._times, position, side="right"))
        backlog_limit = max(1, int(self.fps))    # more than a second behind: skip undecoded
        while self._next_frame < due and not self._stop.is_set():
            if self._read_frame != self._next_frame:
                self._seek(self._next_frame)
            if not self._capture.grab():
                self._next_frame = len(self._times)      # the file ended early: idle until a seek
                break
            self._read_frame += 1
            if due - self._next_frame <= backlog_limit:
                ok, image = self._capture.retrieve()
                if ok:
                    self.push(image, anchor_lsl + (self._times[self._next_frame] - anchor_pos) / speed)
            self._next_frame += 1
        self._stop.wait(0.01 if not paused else 0.05)
        return True

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
