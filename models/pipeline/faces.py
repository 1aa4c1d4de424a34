"""Face detection and cropping: detect, expand the box by 10 %, crop, resize (RGB uint8), rate the crop.

The same class crops faces offline (``prepare``) and in the live app; the detector is
``models.pipeline.face_detectors`` (CenterFace unless another is named).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.errors import DataError
from models.pipeline.face_detectors import DEFAULT_DETECTOR, DetectorSpec, FaceDetector, HaarDetector, make_detector
from models.pipeline.face_tracking import FaceTracker, Track, TrackerConfig

log = logging.getLogger(__name__)

__all__ = ["CropQuality", "FaceCrop", "FaceCropper", "HaarDetector", "QualityFloor", "expand_box", "make_detector"]

# Sharpness is measured on the face shrunk or grown to this many pixels, so it does not depend on the face's size.
SHARPNESS_PX = 64


@dataclass(frozen=True)
class CropQuality:
    face_px: int        # side of the face box in frame pixels (before expansion)
    sharpness: float    # variance of the Laplacian of the grey face at 64 x 64
    score: float        # the detector's confidence (1 for detectors without one)

    def to_dict(self) -> dict[str, float]:
        return {"face_px": self.face_px, "sharpness": round(self.sharpness, 1), "score": round(self.score, 3)}


@dataclass(frozen=True)
class QualityFloor:
    """Crops below any of these are masked (not fed to the model), offline and live alike."""

    min_face_px: int = 24
    min_sharpness: float = 15.0
    min_score: float = 0.4

    def problem(self, quality: CropQuality) -> str | None:
        if quality.face_px < self.min_face_px:
            return f"face {quality.face_px} px < {self.min_face_px}"
        if quality.sharpness < self.min_sharpness:
            return f"sharpness {quality.sharpness:.0f} < {self.min_sharpness:g}"
        if quality.score < self.min_score:
            return f"score {quality.score:.2f} < {self.min_score:g}"
        return None


@dataclass(frozen=True)
class FaceCrop:
    image: np.ndarray  # RGB uint8 (size, size, 3)
    box: tuple[int, int, int, int]  # expanded box (x, y, w, h) clipped to the frame
    quality: CropQuality | None = None
    problem: str | None = None  # why the crop is below the quality floor (None: usable)

    @property
    def usable(self) -> bool:
        return self.problem is None


def expand_box(box: tuple[int, int, int, int], expand: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """Grow a box by ``expand`` of its size on each side, clipped to the frame."""
    x, y, w, h = box
    x0 = max(0, int(round(x - expand * w)))
    y0 = max(0, int(round(y - expand * h)))
    x1 = min(frame_w, int(round(x + w + expand * w)))
    y1 = min(frame_h, int(round(y + h + expand * h)))
    return x0, y0, x1 - x0, y1 - y0


def sharpness(frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    patch = frame_bgr[max(0, y):y + h, max(0, x):x + w]
    if patch.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(patch, (SHARPNESS_PX, SHARPNESS_PX), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _as_box(row: np.ndarray) -> tuple[int, int, int, int]:
    return tuple(int(round(float(v))) for v in row[:4])  # type: ignore[return-value]


class FaceCropper:
    """Find the largest face in a BGR frame and return it as an RGB ``size x size`` crop.

    ``detector``: a name ("centerface", the default, or "haar"), a contract's detector dict, a
    ``DetectorSpec``, or a callable that takes a grey image shrunk to ``detect_width`` wide and
    returns (x, y, w, h) boxes (``detect_width`` also sets the Haar cascade's working width).
    """

    def __init__(self, size: int, expand: float = 0.10,
                 detector: str | dict[str, Any] | DetectorSpec | Callable[[np.ndarray], Any] = DEFAULT_DETECTOR,
                 detect_width: int | None = None, floor: QualityFloor | None = None):
        if size <= 0:
            raise DataError(f"face crop size must be positive, got {size}")
        self.size = size
        self.expand = expand
        self.floor = floor or QualityFloor()
        self.detector: FaceDetector = make_detector(detector, detect_width)
        self.spec: DetectorSpec = self.detector.spec
        self.detector_name = self.spec.name

    @staticmethod
    def _check(frame_bgr: np.ndarray) -> None:
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise DataError(f"face cropper expects a BGR (H, W, 3) frame, got {getattr(frame_bgr, 'shape', None)}")

    def detections(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Every face box (K, 5): x, y, w, h, score in frame pixels, before expansion."""
        self._check(frame_bgr)
        return self.detector(frame_bgr)

    def detect_scored(self, frame_bgr: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
        boxes = self.detections(frame_bgr)
        if len(boxes) == 0:
            return None
        best = boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]
        return _as_box(best), float(best[4])

    def detect(self, frame_bgr: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face box (x, y, w, h) in frame pixels, before expansion, or None."""
        found = self.detect_scored(frame_bgr)
        return None if found is None else found[0]

    def crop_box(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> FaceCrop:
        """Crop an already expanded box and resize it to ``size`` (RGB)."""
        x, y, bw, bh = box
        patch = frame_bgr[y:y + bh, x:x + bw]
        resized = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return FaceCrop(image=cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), box=box)

    def crop_found(self, frame_bgr: np.ndarray, face: tuple[int, int, int, int], score: float) -> FaceCrop | None:
        """The crop of a face box found in ``frame_bgr``, rated against the quality floor."""
        h, w = frame_bgr.shape[:2]
        box = expand_box(face, self.expand, w, h)
        if box[2] <= 1 or box[3] <= 1:
            return None
        quality = CropQuality(face_px=int(max(face[2], face[3])), sharpness=sharpness(frame_bgr, face), score=score)
        crop = self.crop_box(frame_bgr, box)
        return FaceCrop(crop.image, crop.box, quality, self.floor.problem(quality))

    def tracker(self, config: TrackerConfig | None = None) -> FaceTracker:
        """A tracker on this cropper's detector, for one camera or one video's frames in order."""
        return FaceTracker(self.detector, config)

    def crop_tracked(self, tracker: FaceTracker, frame_bgr: np.ndarray,
                     timestamp: float | None = None) -> tuple[Track, FaceCrop | None]:
        """The tracked person's crop in the next frame (None when not seen), with the tracker's state."""
        self._check(frame_bgr)
        track = tracker.update(frame_bgr, timestamp)
        if track.box is None:
            return track, None
        return track, self.crop_found(frame_bgr, track.box, track.score)

    def crop(self, frame_bgr: np.ndarray) -> FaceCrop | None:
        """The largest face's crop (with its quality; ``usable`` False below the floor), or None."""
        found = self.detect_scored(frame_bgr)
        if found is None:
            return None
        return self.crop_found(frame_bgr, *found)
