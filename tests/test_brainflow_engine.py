"""BrainFlow's synthetic board as the EEG and a video file written here as the camera, end to end."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from live_support import write_face_video
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from training.synth import TrialVideoComposer, face_box

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> tuple[Path, TrialVideoComposer]:
    """12 s of a synthetic face at 10 fps, 320 x 240, MJPG."""
    path = tmp_path_factory.mktemp("video") / "camera.avi"
    return path, write_face_video(path, quadrant=2, seconds=12.0, seed=3)


def test_synthetic_board_and_video_file_camera_end_to_end(tiny_checkpoint, face_video):
    video_path, composer = face_video
    engine = Engine(EngineConfig(eeg="brainflow:synthetic", video=f"file:{video_path}",
                                 checkpoint=str(tiny_checkpoint), hop=0.5, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    started = local_clock()
    with engine:
        eeg = engine.eeg_source
        assert eeg.srate == 250.0 and len(eeg.channel_names) == 16
        got = [predictions.get(timeout=20) for _ in range(3)]
        frame, frame_time, box = engine.latest_frame()
    for p in got:
        assert p.window_end - p.window_start == pytest.approx(3.0 - 1 / 250, abs=0.05)
        # BrainFlow's wall-clock stamps were moved onto the LSL clock.
        assert started < p.window_start and p.window_end <= p.emitted < p.window_end + 2.0
        # Fz C3 Cz C4 Pz Oz F7 F3 F4 F8 of the board's 16 labels are model channels.
        assert p.eeg_channels_used == 10
        assert sum(p.face_mask) >= 3 and p.crops.shape == (4, 64, 64, 3)
    assert frame.shape == (240, 320, 3) and abs(frame_time - local_clock()) < 2.0
    # The face box the cropper found covers the synthetic face.
    fx, fy, fw, fh = face_box(composer.portrait_box(0.0))
    x, y, w, h = box
    assert x <= fx + fw // 2 <= x + w and y <= fy + fh // 2 <= y + h
