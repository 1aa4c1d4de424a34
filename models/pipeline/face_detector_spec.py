"""The spec that names a face detector, its version and its thresholds: what a contract and a
prepared cache record. Kept apart from the detectors so that reading a contract needs neither
OpenCV nor numpy (`milmer-train --help` and path checks stay light)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from models.errors import DataError

# The shipped file (resources/faces/centerface.onnx) and the published weights it holds: the file is the
# published one with its graph made shape-free for onnxruntime (resources/faces/LICENSE); its outputs are
# the published file's, so the detector's version keeps naming the published weights.
CENTERFACE_SHA256 = "51b259fdf3e64541e6a48ce51d6f7b74881ec71b07147fa5487e8433979bae8a"
CENTERFACE_PUBLISHED_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
DEFAULT_DETECTOR = "centerface"


@dataclass(frozen=True)
class DetectorSpec:
    """Which detector found the faces a model was trained on, its version and its thresholds."""

    name: str = DEFAULT_DETECTOR
    version: str = f"centerface-onnx-{CENTERFACE_PUBLISHED_SHA256[:12]}"
    score_threshold: float = 0.35
    # The smallest face (box height, pixels) a full-frame search must find: the frame is shrunk
    # until such a face is `net_face` pixels tall at the network (no larger than it came).
    min_face: int = 32
    net_face: int = 24
    nms_iou: float = 0.3
    # The crop square: side = box_scale x CenterFace box height, centre box_shift x height below the
    # box's centre (negative: above). Measured (bench/faces.py --calibrate): the mean over the shipped
    # portraits and the synthetic face of Haar side / CenterFace height and centre offset / height.
    box_scale: float = 0.88
    box_shift: float = -0.04
    # Haar cascade settings (name "haar" only).
    scale_factor: float = 1.1
    min_neighbors: int = 4
    min_size: int = 24
    detect_width: int = 240

    def to_dict(self) -> dict[str, Any]:
        """The fields that matter to this detector (what a contract and a cache key record)."""
        keys = _KEYS[self.name] if self.name in _KEYS else [f.name for f in fields(self)]
        data = asdict(self)
        return {k: data[k] for k in keys}

    @classmethod
    def from_value(cls, value: str | dict[str, Any] | DetectorSpec) -> DetectorSpec:
        """A spec from a detector name ("centerface", "haar"), a contract's dict or a spec."""
        if isinstance(value, DetectorSpec):
            return value
        if isinstance(value, str):
            if value not in KNOWN_DETECTORS:
                raise DataError(f"unknown face detector {value!r}; known: {', '.join(KNOWN_DETECTORS)}")
            return KNOWN_DETECTORS[value]
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise DataError(f"face detector {value!r} must be a name or a dict with a 'name'")
        base = cls.from_value(value["name"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DataError(f"face detector {value['name']!r}: unknown settings {unknown}")
        try:
            spec = cls(**{**asdict(base), **value})
        except TypeError as exc:
            raise DataError(f"face detector {value!r}: {exc}") from exc
        for f in fields(spec):
            if f.name not in ("name", "version") and (
                    isinstance(getattr(spec, f.name), bool) or not isinstance(getattr(spec, f.name), (int, float))):
                raise DataError(f"face detector setting {f.name}={getattr(spec, f.name)!r} is not a number")
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(spec, name) <= high:
                raise DataError(f"face detector setting {name}={getattr(spec, name)!r} is outside {low:g}..{high:g}")
        return spec

    def describe(self) -> str:
        settings = ", ".join(f"{k} {v:g}" for k, v in self.to_dict().items() if k not in ("name", "version"))
        return f"{self.name} ({self.version}; {settings})"


_RANGES = {"score_threshold": (0.01, 1.0), "min_face": (4, 4096), "net_face": (4, 512), "nms_iou": (0.0, 1.0),
           "box_scale": (0.2, 5.0), "box_shift": (-2.0, 2.0), "scale_factor": (1.01, 2.0),
           "min_neighbors": (0, 100), "min_size": (1, 4096), "detect_width": (16, 8192)}
_COMMON = ["name", "version"]
_KEYS = {
    "centerface": _COMMON + ["score_threshold", "min_face", "net_face", "nms_iou", "box_scale", "box_shift"],
    "haar": _COMMON + ["scale_factor", "min_neighbors", "min_size", "detect_width"],
}
KNOWN_DETECTORS = {
    "centerface": DetectorSpec(),
    # Every checkpoint before CenterFace: OpenCV's frontal-face cascade on a 240 px wide grey copy.
    "haar": DetectorSpec(name="haar", version="opencv-haarcascade_frontalface_default"),
}
