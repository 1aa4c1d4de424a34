"""Camera-like test frames built from real photographs that installed packages ship.

Portraits (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper) are scaled to a
chosen face height, turned, pasted into 640 x 480 crops of real face-free photographs
(scikit-image's rocket, coffee, cat, ...) and degraded like a webcam: dimmed or brightened,
sensor noise, motion blur, JPEG compression. Each frame knows where its face is, so a detector's
recall, false detections and box jitter can be measured (bench/faces.py, tests/test_faces.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

FRAME_W, FRAME_H = 640, 480
SIZE_BANDS = ((32, 48), (48, 96), (96, 200))


@dataclass(frozen=True)
class Portrait:
    name: str
    face: tuple[int, int, int, int]  # x, y, w, h of the face in the photograph (forehead to chin)


# Face boxes drawn by hand on each photograph (pixels of the shipped image).
PORTRAITS = (
    Portrait("astronaut", (182, 58, 88, 120)),
    Portrait("cameraman", (202, 119, 56, 78)),  # semi-profile, behind a camera
    Portrait("grace_hopper", (151, 127, 230, 193)),
)
BACKGROUNDS = ("chelsea", "rocket", "coffee", "hubble_deep_field", "stereo_motorcycle", "brick", "grass",
               "gravel", "immunohistochemistry", "retina", "clock", "moon", "colorwheel", "cell",
               "page", "text", "horse")


@dataclass(frozen=True)
class Degradation:
    angle: float  # degrees, counter-clockwise
    brightness: float
    noise_sigma: float
    blur_len: int  # motion blur kernel length in pixels (1 = none)
    blur_angle: float
    jpeg_quality: int


@dataclass(frozen=True)
class Scene:
    frame: np.ndarray  # BGR uint8 (480, 640, 3)
    face: tuple[int, int, int, int] | None  # true face box (x, y, w, h), None for a face-free frame
    portrait: str | None
    degradation: Degradation


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


@functools.cache
def photograph(name: str) -> np.ndarray:
    """A shipped photograph as BGR uint8 (read-only)."""
    if name == "grace_hopper":
        from matplotlib import cbook

        image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    else:
        import skimage.data

        image = getattr(skimage.data, "camera" if name == "cameraman" else name)()
        if isinstance(image, tuple):  # a stereo pair: the left view
            image = image[0]
        if image.dtype == bool:
            image = 255 * image.astype(np.uint8)
        image = _bgr(image.astype(np.uint8))
    image.setflags(write=False)
    return image


def random_degradation(rng: np.random.Generator, max_angle: float = 25.0) -> Degradation:
    return Degradation(angle=float(rng.uniform(-max_angle, max_angle)), brightness=float(rng.uniform(0.35, 1.3)),
                       noise_sigma=float(rng.uniform(1.0, 8.0)), blur_len=int(rng.integers(1, 8)),
                       blur_angle=float(rng.uniform(0, 180)), jpeg_quality=int(rng.integers(35, 91)))


def degrade(frame: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Brightness, motion blur, sensor noise and a JPEG round trip, in a camera's order."""
    out = frame.astype(np.float32) * deg.brightness
    if deg.blur_len > 1:
        kernel = np.zeros((deg.blur_len, deg.blur_len), np.float32)
        kernel[deg.blur_len // 2, :] = 1.0
        centre = ((deg.blur_len - 1) / 2, (deg.blur_len - 1) / 2)
        kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, deg.blur_angle, 1.0), kernel.shape[::-1])
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6))
    out += rng.normal(0.0, deg.noise_sigma, out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, deg.jpeg_quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def background(rng: np.random.Generator, name: str | None = None) -> np.ndarray:
    """A random 640 x 480 crop (zoomed 1-2x) of a face-free photograph."""
    image = photograph(name or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    h, w = image.shape[:2]
    zoom = rng.uniform(1.0, 2.0)
    crop_w = min(w, int(round(w / zoom)))
    crop_h = min(h, int(round(crop_w * FRAME_H / FRAME_W)))
    crop_w = min(crop_w, int(round(crop_h * FRAME_W / FRAME_H)))
    x0 = int(rng.integers(0, w - crop_w + 1))
    y0 = int(rng.integers(0, h - crop_h + 1))
    return cv2.resize(image[y0:y0 + crop_h, x0:x0 + crop_w], (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)


def paste_portrait(frame: np.ndarray, portrait: Portrait, face_h: float, angle: float,
                   centre: tuple[float, float]) -> tuple[int, int, int, int]:
    """Paste the head and shoulders of ``portrait`` so its face is ``face_h`` px tall, turned by
    ``angle`` degrees and centred at ``centre``; returns the true face box in frame pixels."""
    image = photograph(portrait.name)
    fx, fy, fw, fh = portrait.face
    scale = face_h / fh
    # Head and shoulders: the face plus most of a face on every side (clipped to the photograph).
    h, w = image.shape[:2]
    x0, x1 = max(0, int(fx - 0.9 * fw)), min(w, int(fx + 1.9 * fw))
    y0, y1 = max(0, int(fy - 0.7 * fh)), min(h, int(fy + 2.0 * fh))
    face_cx, face_cy = fx + fw / 2 - x0, fy + fh / 2 - y0
    rot = cv2.getRotationMatrix2D((face_cx, face_cy), angle, scale)
    rot[0, 2] += centre[0] - face_cx
    rot[1, 2] += centre[1] - face_cy
    patch = image[y0:y1, x0:x1]
    warped = cv2.warpAffine(patch, rot, (FRAME_W, FRAME_H), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(patch.shape[:2], 255, np.uint8), rot, (FRAME_W, FRAME_H))
    alpha = cv2.GaussianBlur(mask, (0, 0), 1.5).astype(np.float32)[..., None] / 255.0
    frame[:] = (warped * alpha + frame * (1.0 - alpha)).astype(np.uint8)
    box_w, box_h = fw * scale, fh * scale
    return (int(round(centre[0] - box_w / 2)), int(round(centre[1] - box_h / 2)), int(round(box_w)), int(round(box_h)))


def face_scene(rng: np.random.Generator, portrait: Portrait, face_h: float,
               deg: Degradation | None = None) -> Scene:
    deg = deg or random_degradation(rng)
    frame = background(rng)
    margin = face_h * 0.75
    centre = (float(rng.uniform(margin, FRAME_W - margin)), float(rng.uniform(margin, FRAME_H - margin)))
    box = paste_portrait(frame, portrait, face_h, deg.angle, centre)
    return Scene(degrade(frame, deg, rng), box, portrait.name, deg)


def empty_scene(rng: np.random.Generator, name: str | None = None) -> Scene:
    deg = random_degradation(rng)
    return Scene(degrade(background(rng, name), deg, rng), None, None, deg)


def face_scenes(per_band: int, seed: int = 0, bands: tuple[tuple[int, int], ...] = SIZE_BANDS) -> Iterator[Scene]:
    """``per_band`` frames per size band, portraits taken in turn, face heights uniform in the band."""
    rng = np.random.default_rng(seed)
    for low, high in bands:
        for i in range(per_band):
            yield face_scene(rng, PORTRAITS[i % len(PORTRAITS)], float(rng.uniform(low, high)))


def empty_scenes(count: int, seed: int = 1) -> Iterator[Scene]:
    """Face-free frames; the first is the cat (skimage.data.chelsea), then backgrounds in turn."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield empty_scene(rng, BACKGROUNDS[i % len(BACKGROUNDS)])


def hit(found: tuple[int, int, int, int] | None, truth: tuple[int, int, int, int]) -> bool:
    """A detection counts when its centre lies inside the true box and its size is 0.5-2x the true size."""
    if found is None:
        return False
    x, y, w, h = found
    tx, ty, tw, th = truth
    cx, cy = x + w / 2, y + h / 2
    ratio = np.sqrt((w * h) / (tw * th))
    return tx <= cx <= tx + tw and ty <= cy <= ty + th and 0.5 <= ratio <= 2.0
