"""One person's face followed from frame to frame (the live app's face path).

The first search covers the whole frame and takes the largest face. After that only a
square region around the tracked face is searched (the face grown by ``roi_margin`` of its
side on each side, resized to ``roi_net`` pixels: with the defaults the face is ~43 px at the
network, and the network always sees one input size): cheap enough for every frame, and it
keeps the same person when several are in view, since only the face nearest the previous box
is taken. A still face keeps its box (moves under ``still``
of its side are ignored; small moves are smoothed), so crops do not jitter. When the person
is not seen for ``lost_after`` frames in a row, or no frame came for ``max_gap_s``, the
track is lost and the next frame starts a new full-frame search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.pipeline.face_detectors import FaceDetector

Box = tuple[int, int, int, int]

FOUND, TRACKING, MISSING, LOST, NONE = "found", "tracking", "missing", "lost", "none"


@dataclass(frozen=True)
class TrackerConfig:
    roi_margin: float = 1.0
    roi_net: int = 128
    lost_after: int = 3
    max_gap_s: float = 1.0
    still: float = 0.04        # of the box side: moves smaller than this keep the previous box
    smooth_below: float = 0.15  # of the box side: moves smaller than this are halved (larger ones followed at once)
    max_jump: float = 0.6      # of the box side: a face further than this from the previous box is someone else


@dataclass(frozen=True)
class Track:
    state: str                 # found (a new person), tracking, missing (not seen this frame), lost, none
    box: Box | None            # the tracked face's box (frame pixels, before expansion); None unless seen now
    score: float = 0.0
    faces: int = 0             # faces the search saw (full frame: all of them; region: near the person)


class FaceTracker:
    """Not thread-safe: feed one camera's frames in order from one thread (or under a lock)."""

    def __init__(self, detector: FaceDetector, config: TrackerConfig | None = None):
        self.detector = detector
        self.config = config or TrackerConfig()
        self._box: np.ndarray | None = None    # float x, y, w, h of the tracked face
        self._time: float | None = None
        self._misses = 0

    @property
    def tracking(self) -> bool:
        return self._box is not None

    def reset(self) -> None:
        self._box, self._time, self._misses = None, None, 0

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> Track:
        cfg = self.config
        if self._box is not None and timestamp is not None and self._time is not None \
                and abs(timestamp - self._time) > cfg.max_gap_s:
            self.reset()
        if self._box is None:
            return self._acquire(frame_bgr, timestamp)
        found, faces = self._search_near(frame_bgr)
        if found is None:
            self._misses += 1
            if self._misses >= cfg.lost_after:
                self.reset()
                return Track(LOST, None, 0.0, faces)
            return Track(MISSING, None, 0.0, faces)
        self._misses = 0
        self._time = timestamp
        self._box = self._smoothed(found[:4])
        return Track(TRACKING, _int_box(self._box), float(found[4]), faces)

    def _acquire(self, frame_bgr: np.ndarray, timestamp: float | None) -> Track:
        boxes = self.detector(frame_bgr)
        if len(boxes) == 0:
            return Track(NONE, None, 0.0, 0)
        best = boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]
        self._box, self._time, self._misses = best[:4].astype(np.float64), timestamp, 0
        # The same face searched again as every later frame will be (its region, one scale at the
        # network): every box of a track, the first included, is measured alike.
        refined, _ = self._search_near(frame_bgr)
        if refined is not None:
            best = refined
            self._box = refined[:4].astype(np.float64)
        return Track(FOUND, _int_box(self._box), float(best[4]), len(boxes))

    def _search_near(self, frame_bgr: np.ndarray) -> tuple[np.ndarray | None, int]:
        assert self._box is not None
        cfg = self.config
        x, y, w, h = self._box
        side = max(w, h)
        span = int(np.ceil((1 + 2 * cfg.roi_margin) * side))
        x0, y0 = int(round(x + w / 2 - span / 2)), int(round(y + h / 2 - span / 2))
        fh, fw = frame_bgr.shape[:2]
        region = np.zeros((span, span, 3), np.uint8)   # the part outside the frame stays black
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(fw, x0 + span), min(fh, y0 + span)
        if sx1 - sx0 < 8 or sy1 - sy0 < 8:
            return None, 0
        region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame_bgr[sy0:sy1, sx0:sx1]
        scale = cfg.roi_net / span
        boxes = self.detector(region, scale).astype(np.float64)
        if len(boxes) == 0:
            return None, 0
        boxes[:, 0] += x0
        boxes[:, 1] += y0
        centre = np.array([x + w / 2, y + h / 2])
        centres = boxes[:, :2] + boxes[:, 2:4] / 2
        distance = np.linalg.norm(centres - centre, axis=1) / side
        ratio = np.sqrt(boxes[:, 2] * boxes[:, 3] / (w * h))
        plausible = (distance <= cfg.max_jump) & (ratio > 0.6) & (ratio < 1.6)
        if not plausible.any():
            return None, len(boxes)
        nearest = int(np.argmin(np.where(plausible, distance, np.inf)))
        return boxes[nearest], len(boxes)

    def _smoothed(self, found: np.ndarray) -> np.ndarray:
        assert self._box is not None
        previous = self._box
        side = max(previous[2], previous[3])
        move = float(np.abs(found - previous).max()) / side
        if move < self.config.still:
            return previous
        if move < self.config.smooth_below:
            return previous + 0.5 * (found - previous)
        return found.astype(np.float64)


def _int_box(box: np.ndarray) -> Box:
    return tuple(int(round(float(v))) for v in box)  # type: ignore[return-value]
