"""DEAP replay of synthetic data with the real demo model, and the --demo command line."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from live_support import next_matching, save_tiny_checkpoint
from milmer_app.demo import DEMO_DATA, demo_checkpoint
from milmer_app.engine import Engine, EngineConfig
from training.synth import write_synthetic_deap

pytestmark = pytest.mark.slow

WINDOWS_PER_TRIAL = 4   # 16 whole windows in all: each trial's planted quadrant predicted several times


def test_deap_replay_predicts_the_planted_quadrant_with_the_demo_model(tmp_path: Path):
    demo_checkpoint()    # the shipped demo model must be there: no skipping
    # A subject neither the demo model nor the demo replay has seen, made like the demo subject.
    params = {**DEMO_DATA, "trials": 4, "seconds": 9.0, "seed": 4242, "video_size": tuple(DEMO_DATA["video_size"])}
    data = write_synthetic_deap(tmp_path / "deap", **params)
    engine = Engine(EngineConfig(eeg=f"deap:{data.root}:1:1", video="deap", checkpoint="demo", hop=0.5,
                                 speed=3.0, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    got: list = []
    whole_windows: Counter[str] = Counter()   # per trial: predicted windows that had a frame at every instance

    def every_trial_predicted(prediction) -> bool:
        got.append(prediction)
        if "no frame" not in prediction.face_problems:
            whole_windows[prediction.source] += 1
        return len(whole_windows) == 4 and min(whole_windows.values()) >= WINDOWS_PER_TRIAL

    with engine:
        assert engine.is_demo_model and engine.replay.truth is not None
        # A live engine predicts the newest window and drops stale ones, and a late video source skips frames:
        # how many windows of a pass are predicted whole depends on the machine's load. So the replay loops
        # over the trials (as the demo's does) until every trial has had its windows; the timeout guards a hang.
        engine.eeg_source.playback.advance = True
        next_matching(predictions, every_trial_predicted, timeout=300)
    truths = {p.truth for p in got}
    assert truths == {0, 1, 2, 3}, truths
    truth_of_trial = {(p.source, p.truth) for p in got}
    assert len(truth_of_trial) == len({p.source for p in got}) == 4, truth_of_trial
    assert all(p.demo_model and p.to_json()["model"] == "demo" for p in got)
    correct = sum(p.quadrant == p.truth for p in got)
    assert correct / len(got) > 0.5, f"{correct}/{len(got)} predictions match the planted quadrant"
    # A face is found in every frame of a window but at most one (a frame skipped under load is no face to find).
    for p in got:
        missed = [why for found, why in zip(p.face_mask, p.face_problems, strict=True)
                  if not found and why != "no frame"]
        assert len(missed) <= 1, (p.source, p.media_time, p.face_problems)


def test_headless_demo_writes_labelled_predictions(tmp_path: Path):
    demo_checkpoint()
    predictions = tmp_path / "demo.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "milmer_app.cli", "--headless", "--demo", "--duration", "7",
                             "--predictions", str(predictions)], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "DEMO model" in result.stdout and "DEMO model" in result.stderr
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) >= 2
    for record in records:
        assert record["model"] == "demo" and record["demo_model"] is True
        assert {"window_start", "window_end", "emitted", "quadrant", "probabilities", "latency", "truth"} <= set(record)
        assert record["window_start"] < record["window_end"] <= record["emitted"]
        assert record["latency"] == pytest.approx(record["emitted"] - record["window_end"], abs=1e-5)
    assert list((tmp_path / "cache" / "milmer").glob("demo-*/data_preprocessed_python/s01.dat"))


def test_use_checkpoint_switches_the_running_model_and_refuses_another_input(tmp_path: Path):
    from models.errors import MilmerError

    # The demo model under another name (same contract and modalities), and a model of another contract.
    mine = tmp_path / "mine"
    shutil.copy(demo_checkpoint().with_suffix(".safetensors"), mine.with_suffix(".safetensors"))
    meta = json.loads(demo_checkpoint().with_suffix(".json").read_text())
    meta["provenance"] = {key: value for key, value in meta["provenance"].items() if key not in ("demo", "demo_model")}
    mine.with_suffix(".json").write_text(json.dumps(meta))
    other = save_tiny_checkpoint(tmp_path)
    data = write_synthetic_deap(tmp_path / "deap", **{**DEMO_DATA, "trials": 2, "seconds": 9.0, "seed": 77,
                                                      "video_size": tuple(DEMO_DATA["video_size"])})
    engine = Engine(EngineConfig(eeg=f"deap:{data.root}:1:1", video="deap", checkpoint="demo", hop=0.5,
                                 speed=1.0, device="cpu"))
    predictions: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    with engine:
        next_matching(predictions, lambda p: p.to_json()["model"] == "demo", timeout=60)
        engine.use_checkpoint(mine)
        assert (engine.model_name, engine.is_demo_model) == ("mine", False)
        switched = next_matching(predictions, lambda p: p.to_json()["model"] == "mine", timeout=60)
        assert not switched.demo_model
        with pytest.raises(MilmerError, match="input contract differs"):
            engine.use_checkpoint(other)
        assert engine.model_name == "mine"
