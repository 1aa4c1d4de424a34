"""The face detector on real photographs: recall per face size, false detections, speed, jitter.

Frames are built by ``training.face_scenes``: the portraits scikit-image and matplotlib ship
(astronaut, cameraman, Grace Hopper) pasted into 640 x 480 crops of real face-free photographs,
turned up to +-25 degrees, brightness 0.35-1.3, sensor noise, motion blur, JPEG quality 35-90.
A detection counts when its centre lies inside the true face box and its size is 0.5-2x.

Prints, for the default detector (CenterFace) and OpenCV's Haar cascade (as the cropper ran it
before, on a 240 px wide copy, and at full resolution):
- recall per face-height band (targets: >= 0.90 for 32-48 px, >= 0.97 for 48-200 px);
- face-free frames (a cat among them) with a detection (target: <= 2 of 60);
- frames/s on the same frames, timed alternately so that the machine's load hits both alike
  (target: >= 2x Haar at full resolution), and the tracker's frames/s on a 640 x 480 sequence
  (target: >= 30 frames/s, the live app's camera rate);
- the box jitter of a still face (the tracked box's largest move over 60 noisy frames);
- the crop quality (face size, sharpness, score) of the faces found and how many fall below the floor;
- with --calibrate: the Haar box relative to CenterFace's (what sets box_scale / box_shift).

    .venv/bin/python bench/faces.py [--per-band 60] [--threads 2] [--calibrate]
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from models.pipeline.face_detectors import CenterFaceDetector, DetectorSpec, haar_available
from models.pipeline.faces import FaceCropper
from training.face_scenes import (
    PORTRAITS,
    SIZE_BANDS,
    Degradation,
    background,
    degrade,
    empty_scenes,
    face_scene,
    face_scenes,
    hit,
    paste_portrait,
)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _largest(boxes: np.ndarray) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    best = boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]
    return tuple(int(round(float(v))) for v in best[:4])  # type: ignore[return-value]


def recall_table(detectors: dict, scenes: list, empty: list) -> dict[str, dict]:
    results = {name: {"hits": {band: [] for band in SIZE_BANDS}, "false": 0, "seconds": 0.0} for name in detectors}
    for scene in scenes + empty:
        for name, detect in detectors.items():   # alternate: the machine's load hits every detector alike
            started = time.perf_counter()
            boxes = detect(scene.frame)
            results[name]["seconds"] += time.perf_counter() - started
            found = _largest(boxes)
            if scene.face is None:
                results[name]["false"] += found is not None
                continue
            band = next(b for b in SIZE_BANDS if b[0] <= scene.face[3] <= b[1])
            results[name]["hits"][band].append(hit(found, scene.face))
    return results


def tracker_sequence(rng: np.random.Generator, frames: int, still: bool) -> list[tuple[np.ndarray, tuple]]:
    """A 640 x 480 sequence: one portrait drifting (or still) over a fixed background, fresh noise each frame."""
    base = background(rng)
    portrait = PORTRAITS[0]
    out = []
    for i in range(frames):
        frame = base.copy()
        centre = (320.0, 240.0) if still else (200.0 + 240.0 * i / frames, 240.0 + 30.0 * np.sin(i / 10))
        box = paste_portrait(frame, portrait, 90.0, 0.0, centre)
        deg = Degradation(0.0, 0.9, 3.0, 1, 0.0, 80)
        out.append((degrade(frame, deg, rng), box))
    return out


def track_bench(cropper: FaceCropper, rng: np.random.Generator) -> None:
    moving = tracker_sequence(rng, 150, still=False)
    tracker = cropper.tracker()
    states, hits = [], 0
    started = time.perf_counter()
    for i, (frame, truth) in enumerate(moving):
        track, _ = cropper.crop_tracked(tracker, frame, i / 30.0)
        states.append(track.state)
        hits += hit(track.box, truth)
    elapsed = time.perf_counter() - started
    print(f"tracker (640 x 480, one face moving across the frame, {len(moving)} frames): "
          f"{len(moving) / elapsed:.1f} frames/s (target >= 30), {hits}/{len(moving)} frames with the face, "
          f"states: {', '.join(f'{s} {states.count(s)}' for s in sorted(set(states)))}")
    still = tracker_sequence(rng, 60, still=True)
    tracker = cropper.tracker()
    tracked = [cropper.crop_tracked(tracker, frame, i / 30.0)[0].box for i, (frame, _) in enumerate(still)]
    raw = [_largest(cropper.detections(frame)) for frame, _ in still]
    for label, boxes in (("tracked", tracked), ("detector alone", raw)):
        present = np.array([b for b in boxes if b is not None], float)
        if len(present) == 0:
            print(f"jitter ({label}): no face found")
            continue
        centre = present[:, :2] + present[:, 2:] / 2
        jitter = np.abs(centre - np.median(centre, axis=0)).max()
        size = np.abs(present[:, 2] - np.median(present[:, 2])).max()
        print(f"jitter on a still face ({label}, {len(present)}/{len(still)} frames, face ~90 px): largest centre "
              f"move {jitter:.1f} px, largest size change {size:.1f} px")


def calibrate(cropper: FaceCropper, rng: np.random.Generator) -> None:
    """Haar's box relative to CenterFace's raw box on clean, upright faces both find."""
    from models.pipeline.face_detectors import HaarDetector
    from training.synth import TrialVideoComposer

    centerface = CenterFaceDetector()
    haar = HaarDetector(DetectorSpec(name="haar", version="full resolution", detect_width=100_000))
    clean = Degradation(0.0, 1.0, 1.0, 1, 0.0, 90)
    frames = [(p.name, face_scene(rng, p, float(rng.uniform(80, 200)), clean).frame)
              for p in PORTRAITS for _ in range(15)]
    for quadrant in range(4):
        composer = TrialVideoComposer(quadrant, 1.0, (720, 576), np.random.default_rng(quadrant))
        frames += [("synthetic", composer.frame(t)) for t in (0.0, 1.0, 2.0)]
    rows: dict[str, list] = {}
    for name, frame in frames:
        raw, boxes = centerface.run(frame), haar(frame)
        if len(raw) == 0 or len(boxes) == 0:
            continue
        r = raw[np.argmax(raw[:, 2] * raw[:, 3])]
        b = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])]
        shift = (b[1] + b[3] / 2 - r[1] - r[3] / 2) / r[3]
        if abs(b[0] + b[2] / 2 - r[0] - r[2] / 2) > r[3] / 2:
            continue   # not the same face
        rows.setdefault(name, []).append((b[3] / r[3], shift))
    medians = {name: np.median(np.array(v), axis=0) for name, v in rows.items()}
    for name, (scale, shift) in medians.items():
        print(f"calibration {name} ({len(rows[name])} faces): Haar side / CenterFace height {scale:.3f}, "
              f"centre offset / height {shift:+.3f}")
    scale, shift = np.mean(list(medians.values()), axis=0)
    print(f"calibration: box_scale {scale:.3f}, box_shift {shift:+.3f} (mean over sources; "
          f"in use: {cropper.spec.box_scale:g}, {cropper.spec.box_shift:+g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-band", type=int, default=60, help="frames per face-size band (3 bands)")
    parser.add_argument("--empty", type=int, default=60, help="face-free frames")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (the live app's 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true", help="also measure Haar's box against CenterFace's")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    print(f"OpenCV {cv2.__version__}, {args.threads} thread(s); {_load()}")
    cropper = FaceCropper(64)
    print(f"detector: {cropper.spec.describe()}")
    scenes = list(face_scenes(args.per_band, seed=args.seed))
    empty = list(empty_scenes(args.empty, seed=args.seed + 1))
    detectors = {"centerface": cropper.detections}
    if haar_available():
        detectors["haar 240 px (before)"] = FaceCropper(64, detector="haar").detections
        detectors["haar full resolution"] = FaceCropper(64, detector="haar", detect_width=100_000).detections
    results = recall_table(detectors, scenes, empty)
    frames = len(scenes) + len(empty)
    for name, result in results.items():
        bands = ", ".join(f"{lo}-{hi} px {np.mean(h):.3f} ({sum(h)}/{len(h)})"
                          for (lo, hi), h in result["hits"].items())
        print(f"{name}: recall {bands}; face-free frames with a detection {result['false']}/{len(empty)}; "
              f"{frames / result['seconds']:.1f} frames/s")
    if "haar full resolution" in results:
        ratio = results["haar full resolution"]["seconds"] / results["centerface"]["seconds"]
        print(f"speed: centerface {ratio:.2f}x the frames/s of Haar at full resolution (target >= 2)")
    qualities = []
    for scene in scenes:
        crop = cropper.crop(scene.frame)
        if crop is not None and hit(crop.quality and cropper.detect(scene.frame), scene.face):
            qualities.append(crop)
    if qualities:
        sharp = np.array([c.quality.sharpness for c in qualities])
        masked = sum(not c.usable for c in qualities)
        print(f"crop quality of the faces found: sharpness median {np.median(sharp):.0f} (5th percentile "
              f"{np.percentile(sharp, 5):.0f}); below the floor ({cropper.floor}): {masked}/{len(qualities)}")
    rng = np.random.default_rng(args.seed + 2)
    track_bench(cropper, rng)
    if args.calibrate and haar_available():
        calibrate(cropper, rng)
    print(_load())


if __name__ == "__main__":
    main()
