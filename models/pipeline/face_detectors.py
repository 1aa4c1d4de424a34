"""Face detectors: CenterFace (the default, a small CNN run by OpenCV's dnn module) and the
legacy Haar cascade, with the spec that names a detector, its version and thresholds.

A detector takes a BGR uint8 image and returns an (K, 5) float32 array of boxes
``x, y, w, h, score`` in that image's pixels. Boxes are what the face crop is cut from:
squares placed where the Haar cascade put its box (the region every checkpoint before
CenterFace was trained on), so ``face_expand`` means the same for either detector.

CenterFace's weights (``resources/faces/centerface.onnx``, MIT, see LICENSE beside it)
ship inside this package: nothing is downloaded at run time. onnxruntime runs them (2.1x
faster than ``cv2.dnn`` on the same graph, same outputs to 1e-5), whatever OpenCV is installed.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import resources
from models.errors import DataError
from models.pipeline.face_detector_spec import (  # noqa: F401  (re-exported)
    CENTERFACE_SHA256,
    DEFAULT_DETECTOR,
    KNOWN_DETECTORS,
    DetectorSpec,
)

CENTERFACE_FILE = Path(resources.__file__).resolve().parent / "faces" / "centerface.onnx"
HAAR_FILE = "haarcascade_frontalface_default.xml"
# CenterFace's input and the outputs used: heat map, log box size, centre offset (strides of 4 pixels).
_CENTERFACE_INPUT = "input.1"
_CENTERFACE_OUTPUTS = ("537", "538", "539")
_STRIDE = 4
_NET_MULTIPLE = 32


@functools.lru_cache(maxsize=4)
def _centerface_session(path: Path, threads: int) -> Any:
    """An onnxruntime session of the CenterFace network in `path`, its file checked against its SHA-256;
    one per process and thread count (``InferenceSession.run`` is thread-safe), shared by every detector."""
    import onnxruntime

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"face detector weights {path}: cannot read ({exc.strerror or exc}); "
                        "reinstall milmer") from exc
    if hashlib.sha256(data).hexdigest() != CENTERFACE_SHA256:
        raise DataError(f"face detector weights {path} are damaged (wrong checksum); reinstall milmer")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: the camera thread shares the cores with the model.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def haar_available() -> bool:
    """OpenCV 5 dropped the Haar cascades from its main module."""
    return hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data")


class CenterFaceDetector:
    """CenterFace (a MobileNetV2 heat-map detector) run by onnxruntime on the CPU.

    The session uses as many threads as OpenCV is set to (``cv2.setNumThreads``), so the one
    setting that bounds a prepare worker's or the bench's OpenCV work bounds the detector too.
    """

    def __init__(self, spec: DetectorSpec = KNOWN_DETECTORS["centerface"]):
        self.spec = spec

    def run(self, image_bgr: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Raw CenterFace boxes (x, y, w, h, score) in ``image_bgr`` pixels, the image shrunk by ``scale`` first."""
        h, w = image_bgr.shape[:2]
        if scale != 1.0:
            image_bgr = cv2.resize(image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                   interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        sh, sw = image_bgr.shape[:2]
        pad_h, pad_w = -sh % _NET_MULTIPLE, -sw % _NET_MULTIPLE
        if pad_h or pad_w:
            image_bgr = cv2.copyMakeBorder(image_bgr, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(image_bgr, 1.0, swapRB=True)   # the network takes RGB 0-255
        session = _centerface_session(CENTERFACE_FILE, max(1, cv2.getNumThreads()))
        heat, size, offset = session.run(list(_CENTERFACE_OUTPUTS), {_CENTERFACE_INPUT: blob})
        heat = heat[0, 0]
        rows, cols = np.nonzero(heat > self.spec.score_threshold)
        if len(rows) == 0:
            return np.zeros((0, 5), np.float32)
        # Log sizes beyond the padded image are no face (and would overflow exp).
        limit = np.log(max(heat.shape))
        log_h, log_w = size[0, 0, rows, cols], size[0, 1, rows, cols]
        sane = np.isfinite(log_h) & np.isfinite(log_w) & (log_h <= limit) & (log_w <= limit)
        rows, cols, log_h, log_w = rows[sane], cols[sane], log_h[sane], log_w[sane]
        if len(rows) == 0:
            return np.zeros((0, 5), np.float32)
        box_h = np.exp(log_h.astype(np.float64)) * _STRIDE
        box_w = np.exp(log_w.astype(np.float64)) * _STRIDE
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * _STRIDE
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * _STRIDE
        boxes = np.stack([cx - box_w / 2, cy - box_h / 2, box_w, box_h], axis=1) / scale
        scores = heat[rows, cols]
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.spec.score_threshold, self.spec.nms_iou)
        keep = np.asarray(keep, int).reshape(-1)
        return np.concatenate([boxes[keep], scores[keep, None].astype(np.float64)], axis=1).astype(np.float32)

    def to_crop_squares(self, raw: np.ndarray) -> np.ndarray:
        """CenterFace boxes (taller than wide, forehead to chin) -> the squares faces are cropped from."""
        out = raw.copy()
        side = raw[:, 3] * self.spec.box_scale
        cx = raw[:, 0] + raw[:, 2] / 2
        cy = raw[:, 1] + raw[:, 3] / 2 + raw[:, 3] * self.spec.box_shift
        out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - side / 2, cy - side / 2, side, side
        return out

    def full_frame_scale(self, image_shape: tuple[int, ...]) -> float:
        return min(1.0, self.spec.net_face / self.spec.min_face)

    def __call__(self, image_bgr: np.ndarray, scale: float | None = None) -> np.ndarray:
        raw = self.run(image_bgr, self.full_frame_scale(image_bgr.shape) if scale is None else scale)
        return self.to_crop_squares(raw)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a grey copy at most ``detect_width`` wide (score 1);
    one classifier per thread (cascades are not thread-safe). Needs OpenCV 4."""

    def __init__(self, spec: DetectorSpec = KNOWN_DETECTORS["haar"]):
        if not haar_available():
            raise DataError(f"face detector 'haar' needs OpenCV 4's Haar cascades; OpenCV {cv2.__version__} has "
                            "none: use the 'centerface' detector")
        self.spec = spec
        self._local = threading.local()

    def _cascade(self) -> Any:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            path = cv2.data.haarcascades + HAAR_FILE
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise DataError(f"OpenCV Haar cascade {path} could not be loaded")
            self._local.cascade = cascade
        return cascade

    def __call__(self, image_bgr: np.ndarray, scale: float | None = None) -> np.ndarray:
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.spec.detect_width / w) if scale is None else scale
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
        boxes = self._cascade().detectMultiScale(grey, scaleFactor=self.spec.scale_factor,
                                                 minNeighbors=self.spec.min_neighbors,
                                                 minSize=(self.spec.min_size, self.spec.min_size))
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / scale
        return np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)


@dataclass
class CallableDetector:
    """A user's callable taking a grey image shrunk to ``detect_width`` and returning (x, y, w, h) boxes."""

    function: Callable[[np.ndarray], Any]
    detect_width: int = 240
    spec: DetectorSpec = field(init=False)

    def __post_init__(self) -> None:
        name = getattr(self.function, "__name__", type(self.function).__name__)
        self.spec = DetectorSpec(name=name, version="callable")

    def __call__(self, image_bgr: np.ndarray, scale: float | None = None) -> np.ndarray:
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.detect_width / w) if scale is None else scale
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
        boxes = np.asarray(self.function(grey), np.float32).reshape(-1, 4) / scale
        return np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)


FaceDetector = CenterFaceDetector | HaarDetector | CallableDetector


def make_detector(detector: str | dict[str, Any] | DetectorSpec | Callable[[np.ndarray], Any],
                  detect_width: int | None = None) -> FaceDetector:
    if callable(detector) and not isinstance(detector, DetectorSpec):
        return CallableDetector(detector, detect_width or 240)
    spec = DetectorSpec.from_value(detector)
    if detect_width is not None and spec.name == "haar":
        spec = DetectorSpec(**{**asdict(spec), "detect_width": detect_width})
    if spec.name == "haar":
        return HaarDetector(spec)
    return CenterFaceDetector(spec)
