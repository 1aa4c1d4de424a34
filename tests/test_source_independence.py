"""EEG and video connect, fail and reconnect independently (a real LSL outlet, real video files)."""

from __future__ import annotations

import json
import queue
import re
import uuid

import numpy as np
import pytest

from live_support import write_face_video
from milmer_app import cli as app_cli
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.lsl_player import LslPlayer
from models.contract import GENEVA_CHANNELS
from models.errors import SourceError

pytestmark = [pytest.mark.lsl, pytest.mark.slow]

RATE = 128.0
MISSING_CAMERA = "webcam:99"   # no machine has a /dev/video99


def _player() -> tuple[LslPlayer, str]:
    data = (np.random.default_rng(3).standard_normal((len(GENEVA_CHANNELS), int(RATE * 8))) * 20).astype(np.float32)
    name = f"MilmerIndep-{uuid.uuid4().hex[:8]}"
    player = LslPlayer(data, RATE, list(GENEVA_CHANNELS), name=name)
    player.start()
    return player, name


def _next_prediction(predictions: queue.Queue, timeout: float = 60.0):
    return predictions.get(timeout=timeout)


def test_a_video_that_cannot_open_leaves_eeg_running_and_retry_reopens_only_the_video(tiny_checkpoint, tmp_path):
    player, name = _player()
    video = tmp_path / "face.avi"
    video.write_bytes(b"not a video")            # there, but unreadable: fails when the source opens
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", video=f"file:{video}", checkpoint=str(tiny_checkpoint),
                                 hop=0.5, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    events: list[tuple[str, str]] = []
    statuses: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    engine.add_event_listener(lambda level, message: events.append((level, message)))
    engine.add_status_listener(statuses.put)
    with player, engine:
        assert engine.eeg_source.connected and not engine.video_source.connected
        assert "OpenCV cannot read this video" in engine.video_source.error
        assert any(level == "warning" and message.startswith("video not connected") for level, message in events)
        first = _next_prediction(predictions)             # from EEG alone
        assert not any(first.face_mask)
        report = statuses.get(timeout=5)
        video_status = next(s for s in report if s.role == "video")
        assert not video_status.connected and "OpenCV" in video_status.error

        with pytest.raises(SourceError):
            engine.retry("video")                          # still unreadable: a clear error, EEG untouched
        assert engine.eeg_source.connected
        inlet, eeg_count = engine.eeg_source._inlet, engine.eeg_source.buffer.count

        write_face_video(video, quadrant=0, seconds=20.0, seed=1)
        engine.retry("video")
        assert engine.video_source.connected and engine.video_source.error is None
        assert engine.video_source.buffer.wait_for(3, timeout=10)
        assert engine.eeg_source._inlet is inlet            # the EEG stream was never reopened
        assert engine.eeg_source.buffer.count > eeg_count
        deadline = local_clock() + 30
        while not statuses.empty() or local_clock() < deadline:
            report = statuses.get(timeout=5)
            if next(s for s in report if s.role == "video").connected:
                break
        else:
            raise AssertionError("the status never showed the video connected again")
        assert not engine.finished.is_set()


def test_headless_run_with_a_missing_camera_writes_eeg_predictions_and_says_so(tiny_checkpoint, tmp_path, capsys):
    player, name = _player()
    out = tmp_path / "predictions.jsonl"
    with player:
        code = app_cli.main(["--headless", "--eeg", f"lsl:name={name}", "--video", MISSING_CAMERA,
                             "--checkpoint", str(tiny_checkpoint), "--hop", "0.5", "--duration", "7",
                             "--predictions", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err                     # the run is incomplete, and its exit status says so
    assert "webcam 99: cannot open the camera" in err and "came from the other source alone" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and not any(any(r["face_mask"]) for r in records)
    assert re.search(r"\] \w+  HAHV \d\.\d\d LAHV \d\.\d\d", err), err   # progress lines name the classes
    assert "Traceback" not in err
