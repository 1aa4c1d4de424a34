"""Recordings: round trip and export, a kill -9 mid-recording, and a disk that refuses writes."""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import mne
import numpy as np
import pytest

from live_support import write_face_video
from milmer_app import cli as app_cli
from milmer_app.buffers import Frame
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.recording import Recorder, RecordingReader
from models.errors import DataError


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "camera.avi"
    write_face_video(path, quadrant=1, seconds=30.0, seed=5)
    return path


def test_recording_round_trip_and_export(out_dir: Path):
    folder = out_dir / "rec"
    names = ["Fp1", "Cz", "O2"]
    recorder = Recorder(folder, {"channels": names, "srate": 128.0, "units": "uV", "source": "test",
                                 "already_filtered": None}, {"source": "test video", "fps": 10.0})
    recorder.start()
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((3, 640)) * 30).astype(np.float32)
    stamps = 100.0 + np.arange(640) / 128.0
    stamps[320:] += 2.0                              # a 2 s outage half way
    for start in range(0, 640, 64):
        recorder.add_eeg(data[:, start:start + 64], stamps[start:start + 64])
    image = np.full((48, 64, 3), 120, np.uint8)
    for i in range(5):
        recorder.add_frame(Frame(image, 100.0 + i / 10, (9, i)))
    recorder.add_marker("trial 1", 100.5)
    recorder.add_prediction({"window_start": 100.0, "window_end": 103.0, "quadrant": 2})
    recorder.stop()
    assert recorder.error is None and not recorder.active

    reader = RecordingReader(folder)
    eeg, times = reader.eeg()
    np.testing.assert_array_equal(eeg, data)
    np.testing.assert_array_equal(times, stamps)
    index = reader.frame_index()
    assert len(index) == 5 and [t for t, _ in reader.read_frames(index[:2])] == [100.0, 100.1]
    assert reader.markers() == [{"timestamp": 100.5, "text": "trial 1"}]
    assert reader.predictions()[0]["quadrant"] == 2

    fif, edf = out_dir / "rec_raw.fif", out_dir / "rec.edf"
    assert app_cli.main(["--export", str(folder), str(fif)]) == 0
    assert app_cli.main(["--export", str(folder), str(edf)]) == 0
    for path in (fif, edf):
        raw = mne.io.read_raw(path, preload=True, verbose="error")
        assert raw.ch_names == names and raw.info["sfreq"] == 128.0
        np.testing.assert_allclose(raw.get_data()[:, :640] * 1e6, data, atol=0.05)
        descriptions = list(raw.annotations.description)
        assert any(d.startswith("BAD_gap") for d in descriptions) and "trial 1" in descriptions


def test_recorder_refuses_a_disk_without_room_or_a_used_folder(out_dir: Path):
    with pytest.raises(DataError, match="MB free"):
        Recorder(out_dir / "a", None, None, min_free_bytes=1 << 62).start()
    ok = Recorder(out_dir / "b", None, None)
    ok.start()
    ok.stop()
    with pytest.raises(DataError, match="already holds a recording"):
        Recorder(out_dir / "b", None, None).start()


def test_an_unexpected_writer_failure_stops_the_recording_with_a_message(out_dir: Path):
    stopped = threading.Event()
    messages = []
    recorder = Recorder(out_dir / "bad", None, {"source": "test", "fps": 10.0},
                        on_stopped=lambda error: (messages.append(error), stopped.set()))
    recorder.start()
    recorder.add_frame(Frame(np.zeros((0, 0, 3), np.uint8), 1.0, (1, 1)))   # OpenCV raises on an empty image
    assert stopped.wait(timeout=10), "the writer died without stopping the recording"
    recorder.stop()
    assert not recorder.active and recorder.error == messages[0] and "writing failed" in recorder.error


def _headless(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "milmer_app.cli", "--headless", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = local_clock() + timeout
    event = __import__("threading").Event()
    while not predicate():
        if local_clock() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        event.wait(0.05)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.mark.slow
def test_recording_survives_kill_9_and_replays(tiny_checkpoint, face_video, out_dir: Path):
    folder = out_dir / "killed"
    process = _headless(["--eeg", "brainflow:synthetic", "--video", f"file:{face_video}",
                         "--checkpoint", str(tiny_checkpoint), "--record", str(folder), "--hop", "0.5"])
    try:
        # 4.5 s of EEG (16 ch x 250 Hz x 8 bytes of timestamp) and some frames on disk.
        _wait_for(lambda: _size(folder / "eeg_ts.f64") >= 8 * 250 * 4.5 and _size(folder / "frames.idx") >= 24 * 10,
                  timeout=60, what="recorded data on disk")
        killed_at = local_clock()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    reader = RecordingReader(folder)
    eeg, times = reader.eeg()
    frames = reader.frame_index()
    assert reader.meta["eeg"]["srate"] == 250.0 and eeg.shape[0] == 16
    assert killed_at - times[-1] <= 1.0, f"lost {killed_at - times[-1]:.2f} s of EEG"
    assert killed_at - frames[-1, 0] <= 1.0, f"lost {killed_at - frames[-1, 0]:.2f} s of video"
    assert np.all(np.diff(times) > 0) and len(list(reader.read_frames(frames[-2:]))) == 2

    # The cut recording replays as a source, EEG and video on one replay clock.
    engine = Engine(EngineConfig(eeg=f"recording:{folder}", video=f"recording:{folder}",
                                 checkpoint=str(tiny_checkpoint), hop=0.5, speed=2.0, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    with engine:
        first = predictions.get(timeout=20)
        assert engine.replay is not None and engine.replay.duration > 4.0
    assert first.window_end - first.window_start == pytest.approx(3.0 / 2.0, abs=0.05)   # at double speed
    assert first.eeg_channels_used == 10 and sum(first.face_mask) >= 3


def _limit_file_size() -> None:
    # Writing past RLIMIT_FSIZE fails with EFBIG ("File too large") once SIGXFSZ is ignored.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))


@pytest.mark.slow
def test_a_failing_disk_stops_the_recording_but_not_acquisition(tiny_checkpoint, face_video, out_dir: Path):
    folder = out_dir / "full"
    predictions_file = out_dir / "predictions.jsonl"
    process = _headless(["--eeg", "brainflow:synthetic", "--video", f"file:{face_video}", "--checkpoint",
                         str(tiny_checkpoint), "--record", str(folder), "--predictions", str(predictions_file),
                         "--hop", "0.5", "--duration", "7"], preexec_fn=_limit_file_size)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    assert "recording stopped:" in stderr and "File too large" in stderr
    assert "recording stopped early" in stdout
    records = [json.loads(line) for line in predictions_file.read_text().splitlines()]
    reader = RecordingReader(folder)
    _, times = reader.eeg()
    frames = reader.frame_index()
    last_recorded = max(times[-1], frames[-1, 0])
    assert max(r["window_end"] for r in records) > last_recorded + 2.0, "predictions stopped with the recording"
    assert len(records) >= 5


@pytest.mark.slow
def test_a_recorded_deap_replay_replays_with_its_truth(tiny_checkpoint, out_dir: Path):
    from training.synth import write_synthetic_deap

    data = write_synthetic_deap(out_dir / "deap", subjects=1, trials=2, seconds=5.0, seed=21)
    folder = out_dir / "replayed"
    recording = Engine(EngineConfig(eeg=f"deap:{data.root}:1:1", video="deap", checkpoint=str(tiny_checkpoint),
                                    speed=2.0, record=folder, device="cpu"))
    with recording:
        assert recording.finished.wait(timeout=30)
    assert recording.recording_status().error is None
    meta = RecordingReader(folder).meta
    assert meta["eeg"]["already_referenced"] and meta["eeg"]["already_filtered"] == [4.0, 45.0]

    truths = {t.presentation_trial: t.quadrant for t in data.trials}
    replay = Engine(EngineConfig(eeg=f"recording:{folder}", video=f"recording:{folder}",
                                 checkpoint=str(tiny_checkpoint), speed=2.0, hop=0.5, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    replay.add_prediction_listener(predictions.put)
    with replay:
        assert replay.finished.wait(timeout=30)
    got = list(predictions.queue)
    assert {p.truth for p in got} == set(truths.values())
    for p in got:
        trial = int(p.source.split("trial ")[1].split()[0])
        assert p.truth == truths[trial]
