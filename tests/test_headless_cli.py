"""milmer-app --headless: unusable sources and checkpoints end with one clear line and a non-zero exit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from milmer_app import cli as app_cli
from models.checkpoint import save_checkpoint
from models.config import MilmerConfig
from models.contract import GENEVA_CHANNELS, InputContract
from models.errors import MilmerError
from models.milmer import Milmer
from training.synth import write_synthetic_deap


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("milmer-app: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.lsl
def test_missing_lsl_stream(tiny_checkpoint, capsys):
    code = app_cli.main(["--headless", "--eeg", "lsl:name=NoSuchStream,timeout=0.5",
                         "--checkpoint", str(tiny_checkpoint)])
    assert code == 2
    assert "no LSL stream with name=NoSuchStream" in _error_line(capsys)


def test_bad_specs_and_checkpoints(tiny_checkpoint, tmp_path, capsys):
    cases = [
        (["--eeg", "gtec:1"], "unknown EEG source 'gtec:1'"),
        (["--eeg", "brainflow:synthetic", "--video", "file:/no/such.avi"], "/no/such.avi: video file not found"),
        (["--eeg", f"deap:{tmp_path}:1:1"], "DEAP replay"),
        (["--eeg", "brainflow:board=nonsense"], "unknown BrainFlow board 'nonsense'"),
        (["--eeg", "recording:/no/such/recording"], "/no/such/recording: not a recording"),
        (["--eeg", "brainflow:board=synthetic,ip_port=x"], "ip_port must be a whole number, got 'x'"),
        (["--eeg", "brainflow:synthetic", "--video", "file:/dev/zero"], "/dev/zero: not a video file"),
        (["--eeg", "lsl:type=EEG,timeout=-1"], "timeout must be above 0, got -1"),
        (["--eeg", "lsl:type=EEG,timout=2"], "unknown option 'timout' (did you mean 'timeout'?)"),
        (["--eeg", "brainflow:synthetic", "--video", "webcam:0,fps=x"], "fps must be a number, got 'x'"),
    ]
    for args, expected in cases:
        assert app_cli.main(["--headless", *args, "--checkpoint", str(tiny_checkpoint)]) == 2, args
        assert expected in _error_line(capsys)
    assert app_cli.main(["--headless", "--eeg", "brainflow:synthetic", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "checkpoint metadata file not found" in _error_line(capsys)
    broken = tmp_path / "broken"
    save_checkpoint(broken, Milmer(MilmerConfig.tiny()), InputContract.for_deap(MilmerConfig.tiny()))
    with broken.with_suffix(".safetensors").open("r+b") as handle:
        handle.truncate(1000)
    assert app_cli.main(["--headless", "--eeg", "brainflow:synthetic", "--checkpoint", str(broken)]) == 2
    assert "do not match the digest" in _error_line(capsys)
    assert app_cli.main(["--headless"]) == 2
    assert "no source given" in _error_line(capsys)


@pytest.mark.slow
def test_deap_replay_headless_run_writes_truth(tiny_checkpoint, tmp_path, capsys):
    data = write_synthetic_deap(tmp_path / "deap", subjects=1, trials=2, seconds=6.0, seed=9)
    out = tmp_path / "p.jsonl"
    dumps = tmp_path / "bags"
    code = app_cli.main(["--headless", "--eeg", f"deap:{data.root}:1:2", "--video", "deap", "--checkpoint",
                         str(tiny_checkpoint), "--speed", "2", "--hop", "0.5", "--predictions", str(out),
                         "--dump-bags", str(dumps)])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    truth = next(t.quadrant for t in data.trials if t.presentation_trial == 2)
    assert records and all(r["truth"] == truth and r["model"] == "tiny" and not r["demo_model"] for r in records)
    assert all(r["source"].startswith("s01 trial 2 (experiment ") for r in records)
    assert f"{len(records)} prediction(s)" in capsys.readouterr().out
    # --dump-bags: one file per prediction, the bag as the model got it.
    bags = [np.load(path) for path in sorted(dumps.glob("bag-*.npz"))]
    assert [path.name for path in sorted(dumps.glob("bag-*.npz"))][0] == "bag-000000.npz"
    assert len(bags) == len(records)
    for bag, record in zip(bags, records, strict=True):
        assert bag["eeg"].dtype == np.float32 and bag["eeg"].shape == (32, 384)
        assert bag["eeg_mask"].dtype == bool and bag["eeg_mask"].all()
        assert list(bag["channels"]) == list(GENEVA_CHANNELS)
        assert bag["faces"].dtype == np.uint8 and bag["faces"].shape == (4, 64, 64, 3)
        assert bag["face_mask"].tolist() == record["face_mask"] and bag["face_mask"].any()
        assert (bag["faces"][~bag["face_mask"]] == 0).all()
        assert bag["window_start"].dtype == np.float64 and float(bag["window_end"]) == pytest.approx(
            record["window_end"], abs=1e-5)
        assert float(bag["source_rate"]) == 128.0 and float(bag["delay"]) == record["delay"] == 0.0
        assert record["eeg_channels_masked"] == []
        # Per-crop quality: face size, sharpness, detector score for every instance with a crop.
        assert list(bag["face_quality_fields"]) == ["face_px", "sharpness", "score"]
        quality = bag["face_quality"]
        assert quality.shape == (4, 3) and np.isfinite(quality[bag["face_mask"]]).all()
        assert (quality[bag["face_mask"], 0] >= 24).all() and (quality[bag["face_mask"], 2] >= 0.4).all()
        assert [p == "" for p in bag["face_problems"]] == bag["face_mask"].tolist()
        assert [q is not None for q in record["face_quality"]] == np.isfinite(quality).all(axis=1).tolist()


def test_engine_config_from_the_command_line():
    from milmer_app.engine import EngineConfig

    demo = EngineConfig.from_args(app_cli.build_parser().parse_args(["--demo", "--speed", "2", "--hop", "0.5"]))
    assert (demo.eeg, demo.video, demo.checkpoint, demo.speed, demo.hop) == ("demo", "deap", "demo", 2.0, 0.5)
    live = EngineConfig.from_args(app_cli.build_parser().parse_args(
        ["--eeg", "lsl:type=EEG", "--video", "webcam:0", "--checkpoint", "x", "--record", "rec", "--lsl-outlet", "E"]))
    assert (live.eeg, live.video, str(live.record), live.lsl_outlet) == ("lsl:type=EEG", "webcam:0", "rec", "E")
    assert live.dump_bags is None
    dumping = EngineConfig.from_args(app_cli.build_parser().parse_args(["--eeg", "demo", "--dump-bags", "bags"]))
    assert str(dumping.dump_bags) == "bags"
    with pytest.raises(MilmerError, match="--hop must be positive"):
        EngineConfig(eeg="none", hop=0)


def test_the_engine_never_imports_qt():
    import subprocess
    import sys

    code = ("import sys, milmer_app.engine, milmer_app.headless, milmer_app.export, milmer_app.sources.lsl, "
            "milmer_app.sources.camera, milmer_app.sources.deap_replay, milmer_app.sources.recorded; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
