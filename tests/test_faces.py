"""FaceCropper: detection, 10 % expansion, crop and resize, pluggable detector, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.faces import FaceCropper, expand_box
from training.synth import TrialVideoComposer, face_box


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
