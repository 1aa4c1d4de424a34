"""FaceCropper: detection on real photographs, 10 % expansion, crop and resize, pluggable detector, threads,
tracking one person, crop quality."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.face_detector_spec import DetectorSpec
from models.pipeline.face_tracking import FOUND, LOST, MISSING, TRACKING
from models.pipeline.faces import FaceCropper, QualityFloor, expand_box
from training.face_scenes import (
    PORTRAITS,
    SIZE_BANDS,
    Degradation,
    background,
    degrade,
    empty_scenes,
    face_scenes,
    hit,
    paste_portrait,
)
from training.synth import TrialVideoComposer, face_box

pytestmark = pytest.mark.opencv  # run again under OpenCV 5 by the test command


@pytest.fixture(scope="module")
def frames():
    composer = TrialVideoComposer(0, 1.0, (720, 576), np.random.default_rng(1))
    return [(composer.frame(t), composer.portrait_box(t)) for t in np.arange(0, 4, 0.5)]


def test_crop_is_rgb_of_the_requested_size(frames):
    frame, portrait = frames[0]
    crop = FaceCropper(96).crop(frame)
    assert crop.image.shape == (96, 96, 3) and crop.image.dtype == np.uint8
    x, y, w, h = crop.box
    fx, fy, fw, fh = face_box(portrait)
    assert 1.0 < w / fw < 1.6 and 1.0 < h / fh < 1.6  # the detection, grown by 10 % on each side
    # RGB, not BGR: the crop equals the frame's box resized, channels reversed.
    top_left = frame[y:y + 4, x:x + 4].reshape(-1, 3).mean(axis=0)
    assert np.allclose(crop.image[0, 0], top_left[::-1], atol=10)


def test_no_face_gives_none():
    assert FaceCropper(64).crop(np.full((288, 360, 3), 127, np.uint8)) is None


def test_expand_box_clips_to_the_frame():
    assert expand_box((10, 10, 100, 50), 0.10, 1000, 1000) == (0, 5, 120, 60)
    assert expand_box((900, 950, 100, 50), 0.10, 1000, 1000) == (890, 945, 110, 55)


def test_pluggable_detector_sees_a_downscaled_grey_image():
    seen = []

    def detector(grey):
        seen.append(grey.shape)
        return [(10, 20, 30, 30), (40, 40, 60, 60)]  # the larger one wins

    crop = FaceCropper(32, expand=0.0, detector=detector, detect_width=320).crop(np.zeros((576, 720, 3), np.uint8))
    assert seen == [(256, 320)]
    assert crop.box == (90, 90, 135, 135)  # 40 * 720 / 320 = 90, 60 * 2.25 = 135


def test_bad_input():
    with pytest.raises(DataError, match="BGR"):
        FaceCropper(32).crop(np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="unknown face detector"):
        FaceCropper(32, detector="mtcnn")


def test_threads_share_one_cropper(frames):
    cropper = FaceCropper(48)
    serial = [cropper.crop(f).box for f, _ in frames]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda item: cropper.crop(item[0]).box, frames))
    assert parallel == serial


# ---------------------------------------------------------------------------- real photographs

def test_real_photographs_in_camera_like_frames_are_found():
    """Real portraits (scikit-image, matplotlib) at 32-200 px, turned, dimmed, blurred, JPEG'd; no face in a cat."""
    cropper = FaceCropper(64)
    scenes = list(face_scenes(6, seed=11))
    hits = {band: 0 for band in SIZE_BANDS}
    for scene in scenes:
        band = next(b for b in SIZE_BANDS if b[0] <= scene.face[3] <= b[1])
        hits[band] += hit(cropper.detect(scene.frame), scene.face)
    assert hits == dict.fromkeys(SIZE_BANDS, 6), hits
    empty = list(empty_scenes(6, seed=12))
    assert empty[0].portrait is None and len(empty) == 6
    assert sum(cropper.detect(scene.frame) is not None for scene in empty) == 0   # the cat among them


def test_the_cropper_names_its_detector_version_and_thresholds():
    spec = FaceCropper(32).spec
    assert spec.name == "centerface" and spec.version.startswith("centerface-onnx-")
    assert DetectorSpec.from_value(spec.to_dict()) == spec
    assert {"score_threshold", "min_face", "nms_iou", "box_scale", "box_shift"} <= set(spec.to_dict())
    with pytest.raises(DataError, match="score_threshold=7"):
        DetectorSpec.from_value({**spec.to_dict(), "score_threshold": 7})


def test_damaged_detector_weights_are_refused_with_the_file_named(tmp_path, monkeypatch):
    from models.pipeline import face_detectors

    damaged = tmp_path / "centerface.onnx"
    data = bytearray(face_detectors.CENTERFACE_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(face_detectors, "CENTERFACE_FILE", damaged)
    with pytest.raises(DataError, match=f"{damaged}.*damaged"):
        FaceCropper(32).detect(np.zeros((96, 128, 3), np.uint8))


# ---------------------------------------------------------------------------- tracking

def _two_people(left_face: float, right_face: float | None,
                rng: np.random.Generator) -> tuple[np.ndarray, tuple, tuple]:
    frame = background(rng, "brick")
    left = paste_portrait(frame, PORTRAITS[0], left_face, 0.0, (190.0, 230.0)) if left_face else None
    right = paste_portrait(frame, PORTRAITS[2], right_face, 0.0, (470.0, 240.0)) if right_face else None
    return frame, left, right


def test_the_tracker_keeps_the_same_person_and_says_when_lost():
    cropper = FaceCropper(64)
    tracker = cropper.tracker()
    rng = np.random.default_rng(3)
    frame, left, _ = _two_people(90, 60, rng)
    first = tracker.update(frame, 0.0)
    assert first.state == FOUND and first.faces == 2 and hit(first.box, left)   # the largest at the start
    # The other person comes closer and is now the larger face: the tracker stays with the first.
    for i in range(1, 5):
        frame, left, _ = _two_people(70, 110, rng)
        track = tracker.update(frame, i / 10)
        assert track.state == TRACKING and hit(track.box, left)
    # The tracked person leaves: missing, then lost; then the search starts again and finds the other.
    states = []
    for i in range(5, 5 + tracker.config.lost_after):
        frame, _, right = _two_people(0, 110, rng)
        states.append(tracker.update(frame, i / 10).state)
    assert states == [MISSING] * (tracker.config.lost_after - 1) + [LOST]
    again = tracker.update(frame, 1.0)
    assert again.state == FOUND and hit(again.box, right)


def test_a_still_face_box_does_not_jitter():
    cropper = FaceCropper(64)
    tracker = cropper.tracker()
    rng = np.random.default_rng(4)
    base = background(rng, "rocket")
    paste_portrait(base, PORTRAITS[2], 80.0, 0.0, (320.0, 240.0))
    boxes = []
    for i in range(12):   # fresh sensor noise and JPEG in every frame, the face does not move
        frame = degrade(base, Degradation(0.0, 0.9, 4.0, 1, 0.0, 70), rng)
        boxes.append(cropper.crop_tracked(tracker, frame, i / 30)[1].box)
    boxes = np.array(boxes, float)
    assert np.abs(boxes - np.median(boxes, axis=0)).max() <= 2.0


def test_a_long_gap_restarts_the_search():
    cropper = FaceCropper(64)
    tracker = cropper.tracker()
    rng = np.random.default_rng(5)
    frame, _, _ = _two_people(90, 60, rng)
    assert tracker.update(frame, 0.0).state == FOUND
    assert tracker.update(frame, 0.1).state == TRACKING
    assert tracker.update(frame, 5.0).state == FOUND   # a frame seconds later: a new full-frame search


# ---------------------------------------------------------------------------- quality

def test_crops_below_the_quality_floor_are_marked_not_usable(frames):
    frame, _ = frames[0]
    crop = FaceCropper(64).crop(frame)
    assert crop.usable and crop.problem is None and crop.quality.score >= 0.4 and crop.quality.face_px > 100
    blurred = cv2.GaussianBlur(frame, (0, 0), 12)   # about 4 px of blur on the 64 px face the sharpness is measured on
    box = FaceCropper(64).detect(frame)
    soft = FaceCropper(64).crop_found(blurred, box, 0.9)
    assert soft.quality.sharpness < crop.quality.sharpness / 10
    assert not soft.usable and soft.problem.startswith("sharpness")
    small = FaceCropper(64, floor=QualityFloor(min_face_px=500)).crop(frame)
    assert not small.usable and small.problem.startswith("face ")


def test_the_live_crop_cache_reports_the_person_found_and_lost():
    from milmer_app.bags import CropCache
    from milmer_app.buffers import Frame

    events = []
    cache = CropCache(FaceCropper(64), on_event=lambda level, message: events.append((level, message)))
    rng = np.random.default_rng(6)
    for i in range(3):
        frame, _, _ = _two_people(90, 60, rng)
        assert cache.get(Frame(frame, 10.0 + i / 10, (1, i))).usable
    assert events == [("info", "face: tracking a person (the largest of 2 in view)")]
    empty = background(rng, "brick")
    for i in range(3, 3 + cache.tracker.config.lost_after):
        assert cache.get(Frame(empty, 10.0 + i / 10, (1, i))) is None
    assert events[-1][0] == "warning" and "tracked person is lost" in events[-1][1]
    assert cache.get(Frame(empty, 10.0 + 3 / 10, (1, 3))) is None   # a frame searched once: from the cache
    assert len(events) == 2
