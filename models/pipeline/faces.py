"""Face detection and cropping: detect, expand the box by 10 %, crop, resize (RGB uint8).

The same class crops faces offline (``prepare``) and per frame in the live app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from models.errors import DataError

log = logging.getLogger(__name__)

# A detector takes a grey uint8 image and returns boxes (x, y, w, h) in that image's pixels.
Detector = Callable[[np.ndarray], "np.ndarray | list[tuple[int, int, int, int]]"]

HAAR_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceCrop:
    image: np.ndarray  # RGB uint8 (size, size, 3)
    box: tuple[int, int, int, int]  # expanded box (x, y, w, h) clipped to the frame


class HaarDetector:
    """OpenCV's frontal-face Haar cascade; one classifier per thread (cascades are not thread-safe)."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 4, min_size: int = 24):
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            path = cv2.data.haarcascades + HAAR_FILE
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise DataError(f"OpenCV Haar cascade {path} could not be loaded")
            self._local.cascade = cascade
        return cascade

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        return self._cascade().detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))


def make_detector(detector: str | Detector) -> Detector:
    if callable(detector):
        return detector
    if detector == "haar":
        return HaarDetector()
    raise DataError(f"unknown face detector {detector!r}; use 'haar' or pass a callable")


def expand_box(box: tuple[int, int, int, int], expand: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """Grow a box by ``expand`` of its size on each side, clipped to the frame."""
    x, y, w, h = box
    x0 = max(0, int(round(x - expand * w)))
    y0 = max(0, int(round(y - expand * h)))
    x1 = min(frame_w, int(round(x + w + expand * w)))
    y1 = min(frame_h, int(round(y + h + expand * h)))
    return x0, y0, x1 - x0, y1 - y0


class FaceCropper:
    """Find the largest face in a BGR frame and return it as an RGB ``size x size`` crop.

    Detection runs on a grey copy downscaled to at most ``detect_width`` (240) pixels wide,
    which keeps the Haar cascade fast on 720 x 576 video and live webcam frames.
    """

    def __init__(self, size: int, expand: float = 0.10, detector: str | Detector = "haar", detect_width: int = 240):
        if size <= 0:
            raise DataError(f"face crop size must be positive, got {size}")
        self.size = size
        self.expand = expand
        self.detector_name = (detector if isinstance(detector, str)
                              else getattr(detector, "__name__", type(detector).__name__))
        self._detect = make_detector(detector)
        self.detect_width = detect_width

    def detect(self, frame_bgr: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face box (x, y, w, h) in frame pixels, before expansion, or None."""
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise DataError(f"face cropper expects a BGR (H, W, 3) frame, got {getattr(frame_bgr, 'shape', None)}")
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, self.detect_width / w)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
        boxes = np.asarray(self._detect(grey)).reshape(-1, 4)
        if len(boxes) == 0:
            return None
        x, y, bw, bh = boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]
        return tuple(int(round(v / scale)) for v in (x, y, bw, bh))  # type: ignore[return-value]

    def crop_box(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> FaceCrop:
        """Crop an already expanded box and resize it to ``size`` (RGB)."""
        x, y, bw, bh = box
        patch = frame_bgr[y:y + bh, x:x + bw]
        resized = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return FaceCrop(image=cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), box=box)

    def crop(self, frame_bgr: np.ndarray) -> FaceCrop | None:
        found = self.detect(frame_bgr)
        if found is None:
            return None
        h, w = frame_bgr.shape[:2]
        box = expand_box(found, self.expand, w, h)
        if box[2] <= 1 or box[3] <= 1:
            return None
        return self.crop_box(frame_bgr, box)
