"""Bags for the model: the newest EEG window and N face crops from the same span of time.

The EEG window comes from the stream's `StreamingEEG`, fed here with every sample that
arrived since the last bag; it ends the pipeline's delay before the newest sample, and the
face frames come from that same span. Too few usable channels: no bag, and `problem` says why.

The N instance times lie on a grid of spacing window/N fixed on the LSL clock,
so consecutive overlapping windows pick the same frames for the times they
share and the per-frame crops and embeddings can be reused; a grid time's frame
is known ("settled") as soon as a later frame arrives, so it can be cropped and
embedded before its window is complete. Each instance takes
the frame nearest its grid time (within half a spacing plus a frame period);
an instance without a frame, whose frame shows no face, or whose crop is below the
quality floor (too small, blurred, doubtful) is masked. Faces are found and cropped by
`models.pipeline.faces.FaceCropper`, the class training uses, following one person with its
tracker (`CropCache`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from milmer_app.buffers import Frame
from milmer_app.clock import local_clock
from milmer_app.sources.base import EEGSource, VideoSource
from milmer_app.sources.channel_options import ChannelOptions
from models.contract import InputContract
from models.errors import SourceError
from models.pipeline.channels import map_channels
from models.pipeline.face_detector_spec import DetectorSpec
from models.pipeline.face_tracking import FOUND, LOST
from models.pipeline.faces import FaceCrop, FaceCropper
from models.pipeline.streaming import StreamingEEG

log = logging.getLogger(__name__)

FrameKey = tuple[int, int]


@dataclass
class Bag:
    window_start: float
    window_end: float
    eeg: np.ndarray               # (C, T) float32 (zeros when there is no EEG source)
    eeg_mask: np.ndarray          # (C,) bool
    crops: np.ndarray             # (N, S, S, 3) RGB uint8, zeros where masked
    face_mask: np.ndarray         # (N,) bool
    frame_keys: list[FrameKey | None]
    truth: int | None
    source: str
    assembled: float              # LSL time the bag was complete
    delay: float = 0.0            # seconds from the window's end to the newest EEG sample received
    eeg_masked: dict[str, str] = field(default_factory=dict)   # contract channel -> why it is not fed
    media_time: tuple[float, float] | None = None   # a replay's window in seconds of the item replayed
    # Per instance: face_px, sharpness, detector score of its crop (NaN: no crop), and why a crop was masked.
    face_quality: np.ndarray | None = None                      # (N, 3) float32
    face_problems: list[str | None] = field(default_factory=list)


QUALITY_FIELDS = ("face_px", "sharpness", "score")


def live_cropper(contract: InputContract) -> tuple[FaceCropper, str | None]:
    """The app's cropper: the default detector (CenterFace), cropping the face region the model was
    trained on; and a warning when the checkpoint's faces were found by another detector or version."""
    cropper = FaceCropper(contract.face_size, expand=contract.face_expand)
    trained = DetectorSpec.from_value(contract.face_detector)
    if trained.to_dict() == cropper.spec.to_dict():
        return cropper, None
    return cropper, (f"face detector differs from the checkpoint's: this app finds faces with "
                     f"{cropper.spec.describe()}; the model was trained on faces found by {trained.describe()}. "
                     "Crops cover the same face region, but predictions may differ from the model's test figures")


class CropCache:
    """Face crops by frame key, so a frame is searched for a face once (LRU, thread-safe).

    Frames are searched in the order they are asked for, by one tracker that follows one person
    (the largest face at the start, then the face nearest its previous box); `on_event` hears when
    a person is found and when the tracked person is lost."""

    def __init__(self, cropper: FaceCropper, capacity: int = 64, on_event: EventSink | None = None):
        self.cropper = cropper
        self.capacity = capacity
        self.on_event = on_event
        self.tracker = cropper.tracker()
        self._items: OrderedDict[FrameKey, FaceCrop | None] = OrderedDict()
        self._lock = threading.Lock()
        self.last_box: tuple[float, tuple[int, int, int, int]] | None = None   # (frame time, box)
        self.last_crop: FaceCrop | None = None

    def _event(self, level: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(level, message)
        else:
            getattr(log, level if level in ("warning", "error") else "info")(message)

    def box_near(self, timestamp: float, within: float = 1.0) -> tuple[int, int, int, int] | None:
        """The latest face box, if it was found in a frame within `within` seconds of `timestamp`."""
        last = self.last_box
        return last[1] if last is not None and abs(timestamp - last[0]) <= within else None

    def get(self, frame: Frame) -> FaceCrop | None:
        with self._lock:
            if frame.key in self._items:
                self._items.move_to_end(frame.key)
                return self._items[frame.key]
            track, crop = self.cropper.crop_tracked(self.tracker, frame.image, frame.timestamp)
            if track.state == FOUND:
                others = f" (the largest of {track.faces} in view)" if track.faces > 1 else ""
                self._event("info", f"face: tracking a person{others}")
            elif track.state == LOST:
                self._event("warning", "face: the tracked person is lost (not seen in "
                                       f"{self.tracker.config.lost_after} frames); searching the whole frame")
            self._items[frame.key] = crop
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            if crop is not None and (self.last_box is None or frame.timestamp >= self.last_box[0]):
                self.last_box = (frame.timestamp, crop.box)
                self.last_crop = crop
        return crop


EventSink = Callable[[str, str], None]   # (level, message)


class BagAssembler:
    def __init__(self, contract: InputContract, eeg: EEGSource | None, preprocessor: StreamingEEG | None,
                 video: VideoSource | None, crops: CropCache | None, min_usable: int = 1,
                 on_event: EventSink | None = None):
        self.contract = contract
        self.eeg = eeg
        self.preprocessor = preprocessor
        self.video = video
        self.crops = crops
        self.num_instances = contract.num_instances
        self.size = contract.face_size
        self.min_usable = max(1, min_usable)
        self.on_event = on_event
        self.problem: str | None = None             # why no bag can be made now ("no usable EEG: ...")
        self.signal_problems: dict[str, str] = {}   # channels masked for their signal, and why
        self._position = 0                          # next EEG buffer position to feed
        self._segment = float("-inf")
        self._window_label: tuple[float, int | None, str] | None = None   # the segment label of `_segment`

    def _event(self, level: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(level, message)
        else:
            getattr(log, level if level in ("warning", "error") else "info")(message)

    def _feed(self) -> None:
        """Everything that arrived since the last call, into the streaming transform (restarted at a new segment)."""
        assert self.eeg is not None and self.eeg.buffer is not None and self.preprocessor is not None
        data, times, count = self.eeg.buffer.since(self._position)
        if count - len(times) > self._position:   # the ring buffer overran: what is left is not continuous
            self.preprocessor.restart()
        self._position = count
        segment = self.eeg.segment_start
        if segment != self._segment:
            split = int(np.searchsorted(times, segment - 1e-9))   # earlier samples close the old segment
            self.preprocessor.feed(data[:, :split], times[:split])
            self.preprocessor.restart()
            self._segment = segment
            data, times = data[:, split:], times[split:]
        self.preprocessor.feed(data, times)

    def _track(self, problems: dict[str, str], problem: str | None) -> None:
        """Report channels newly masked or usable again, and no-usable-EEG starting or ending."""
        stream = self.eeg.name if self.eeg is not None else "EEG"
        for name, why in problems.items():
            if self.signal_problems.get(name) != why:
                self._event("warning", f"{stream}: channel {name} masked ({why})")
        for name in self.signal_problems.keys() - problems.keys():
            self._event("info", f"{stream}: channel {name} usable again")
        self.signal_problems = dict(problems)
        if problem != self.problem:
            if problem is not None:
                self._event("warning", f"{stream}: {problem}")
            elif self.problem is not None:
                self._event("info", f"{stream}: EEG usable again")
        self.problem = problem

    def _speed(self) -> float:
        for source in (self.eeg, self.video):
            if source is not None and source.replay is not None:
                return source.replay.speed
        return 1.0

    def assemble(self) -> Bag | None:
        """The bag of the latest complete window, or None while there is not enough data."""
        channels = len(self.contract.eeg_channels)
        delay = 0.0
        if self.eeg is not None and self.preprocessor is not None:
            self._feed()
            window = self.preprocessor.window()
            if window is None:
                return None
            usable = int(window.mask.sum())
            problem = None
            if usable < self.min_usable:
                named = ", ".join(f"{n} ({why})" for n, why in window.problems.items()) or "none"
                problem = (f"no usable EEG: {usable} of {channels} model channels usable, "
                           f"{self.min_usable} needed; masked for their signal: {named}")
            self._track(window.problems, problem)
            if problem is not None:
                return None
            eeg, eeg_mask = window.eeg, window.mask
            window_start, window_end, delay = window.start, window.end, window.delay
            names = self.contract.eeg_channels
            masked = {names[i]: window.problems.get(names[i], "absent") for i in np.flatnonzero(~eeg_mask)}
        else:
            latest = self.video.buffer.latest() if self.video is not None and self.video.buffer else None
            if latest is None:
                return None
            window_end = latest.timestamp
            window_start = window_end - self.contract.window_seconds / self._speed()
            eeg, eeg_mask = np.zeros((channels, self.contract.window_samples), np.float32), np.zeros(channels, bool)
            masked = dict.fromkeys(self.contract.eeg_channels, "no EEG input")
        crops, face_mask, keys, quality, face_problems = self._faces(window_start, window_end)
        replay = self.eeg.replay if self.eeg is not None else None
        truth = replay.truth if replay is not None else None
        clock = replay or (self.video.replay if self.video is not None else None)
        media_time = (clock.media_time(window_start), clock.media_time(window_end)) if clock is not None else None
        source = replay.description if replay is not None else (self.eeg.name if self.eeg is not None else "")
        label = self._label_of_window()
        if label is not None:
            truth, source = label   # what this window's data shows, not what the replay plays next
        return Bag(window_start, window_end, eeg, eeg_mask, crops, face_mask, keys, truth, source, local_clock(),
                   delay, masked, media_time, quality, face_problems)

    def _label_of_window(self) -> tuple[int | None, str] | None:
        """A replay's truth and item of the segment the window was cut from (the source may already
        have moved on to the next one while this bag was being assembled)."""
        label = getattr(self.eeg, "segment_label", None) if self.preprocessor is not None else None
        if label is not None and label[0] == self._segment:
            self._window_label = label
        held = self._window_label
        return (held[1], held[2]) if held is not None and held[0] == self._segment else None

    def _spacing(self) -> float:
        return self.contract.window_seconds / self.num_instances / self._speed()

    def _tolerance(self) -> float:
        fps = self.video.fps if self.video is not None else 0.0
        return self._spacing() / 2 + 1.0 / max(fps * self._speed(), 1e-3)

    def instance_times(self, window_start: float, window_end: float) -> np.ndarray:
        """N times on the fixed grid inside [start, end)."""
        spacing = self._spacing()
        first = math.ceil(window_start / spacing - 1e-9)
        times = (first + np.arange(self.num_instances)) * spacing
        # Jitter may leave the span a hair short of N spacings: keep the last time inside it.
        return np.minimum(times, window_end)

    @staticmethod
    def _nearest(frames: list[Frame], stamps: np.ndarray, t: float, tolerance: float) -> Frame | None:
        if not frames:
            return None
        j = int(np.argmin(np.abs(stamps - t)))
        return frames[j] if abs(stamps[j] - t) <= tolerance else None

    def settled_instances(self, after: float | None) -> tuple[list[Frame], float | None]:
        """Frames of grid times later than `after` that no newer frame can displace.

        A grid time is settled once a frame at or after it has arrived. Returns those
        frames (for embedding ahead of time) and the last settled grid time (None: none yet).
        """
        if self.video is None or self.video.buffer is None:
            return [], after
        latest = self.video.buffer.latest()
        if latest is None:
            return [], after
        spacing, tolerance = self._spacing(), self._tolerance()
        last = math.floor(latest.timestamp / spacing)
        oldest = math.ceil((latest.timestamp - self.contract.window_seconds / self._speed()) / spacing)
        first = oldest if after is None else max(oldest, math.floor(after / spacing + 1e-9) + 1)
        if first > last:
            return [], after
        frames = self.video.buffer.between(first * spacing - tolerance, latest.timestamp)
        stamps = np.array([f.timestamp for f in frames])
        chosen = [self._nearest(frames, stamps, k * spacing, tolerance) for k in range(first, last + 1)]
        return [f for f in chosen if f is not None], last * spacing

    def _faces(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray, list[FrameKey | None], np.ndarray,
                                                         list[str | None]]:
        n, size = self.num_instances, self.size
        crops = np.zeros((n, size, size, 3), np.uint8)
        mask = np.zeros(n, bool)
        keys: list[FrameKey | None] = [None] * n
        quality = np.full((n, len(QUALITY_FIELDS)), np.nan, np.float32)
        problems: list[str | None] = ["no frame"] * n
        if self.video is None or self.video.buffer is None or self.crops is None:
            return crops, mask, keys, quality, problems
        tolerance = self._tolerance()
        frames = self.video.buffer.between(start - tolerance, end + tolerance)
        stamps = np.array([f.timestamp for f in frames])
        for i, t in enumerate(self.instance_times(start, end)):
            frame = self._nearest(frames, stamps, t, tolerance)
            crop = self.crops.get(frame) if frame is not None else None
            if crop is None:
                problems[i] = "no frame" if frame is None else "no face"
                continue
            if crop.quality is not None:
                quality[i] = (crop.quality.face_px, crop.quality.sharpness, crop.quality.score)
            problems[i] = crop.problem
            if not crop.usable:
                continue
            crops[i] = crop.image
            mask[i] = True
            keys[i] = frame.key
        return crops, mask, keys, quality, problems


def eeg_preprocessor(source: EEGSource, contract: InputContract, mapping: ChannelOptions,
                     min_channels: float) -> StreamingEEG:
    """The live transform for a connected EEG source: its channels mapped onto the model's (`mapping`:
    the spec's channel options; `min_channels`: the fraction that must be found unless the spec says).
    SourceError/MilmerError when its rate or channels do not fit."""
    band = contract.filter_band
    if band is not None and not source.srate > 2 * band[1]:
        raise SourceError(f"{source.name}: {source.srate:g} Hz cannot carry the model's {band[0]:g}-{band[1]:g} Hz "
                          f"band (it needs more than {2 * band[1]:g} Hz)")
    channels = map_channels(source.channel_names, list(contract.eeg_channels), source.name,
                            min_fraction=mapping.min_channels or min_channels,
                            by_position=mapping.by_position, montage=mapping.montage)
    preprocessor = StreamingEEG(contract, channels, source.srate, already_filtered=source.already_filtered,
                                already_referenced=source.already_referenced)
    log.info("%s: EEG pipeline delay %.3f s (windows end that long before the newest sample)",
             source.name, preprocessor.delay)
    return preprocessor


def schedule_bags(assembler: BagAssembler, worker, crops: CropCache | None, wall_hop: Callable[[], float],
                  stop: threading.Event, prefetch: bool) -> None:
    """Until `stop`: every hop (`wall_hop()` wall-clock seconds) a bag of the latest window to `worker`; in
    between, with `prefetch`, settled frames cropped and their embeddings prefetched.

    For a replay the hop is in recording time: at --speed 10 with a 1 s hop, ten bags per second,
    so a replay gives the same predictions at any speed that the machine keeps up with."""
    hop = wall_hop()
    prefetch = prefetch and crops is not None
    poll = min(hop, 0.1) if prefetch else hop
    next_tick = local_clock() + hop
    settled: float | None = None
    last_end: float | None = None
    failures = 0
    while not stop.wait(max(0.0, min(next_tick - local_clock(), poll))):
        try:
            if prefetch:
                frames, settled = assembler.settled_instances(settled)
                for frame in frames:
                    crop = crops.get(frame)
                    if crop is not None and crop.usable:
                        worker.prefetch(frame.key, crop.image)
            now = local_clock()
            if now < next_tick:
                continue
            hop = wall_hop()
            next_tick = max(next_tick + hop, now + hop / 2)   # never a burst of missed ticks
            bag = assembler.assemble()
        except Exception:
            failures += 1
            if failures == 1 or failures % 100 == 0:   # keep the log readable if it repeats
                log.exception("assembling a bag failed (%d time(s))", failures)
            next_tick = max(next_tick, local_clock() + hop / 2)
            continue
        if bag is None or bag.window_end == last_end:
            continue
        last_end = bag.window_end
        worker.submit(bag)
