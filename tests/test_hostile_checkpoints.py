"""Tampered checkpoints: bounds and a size budget before anything is built, one CheckpointError for every
failure inside loading, non-finite weights refused, the stored image normalisation honoured or refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.checkpoint import file_sha256, load_checkpoint, read_checkpoint_meta
from models.config import MilmerConfig
from models.config_bounds import BUDGET_MULTIPLE, check_budget, estimate_parameters
from models.errors import CheckpointError

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo" / "demo_model"


@pytest.fixture
def stem(tiny_checkpoint, tmp_path) -> Path:
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), tmp_path / f"model{suffix}")
    return tmp_path / "model"


def _edit(stem: Path, change) -> None:
    path = stem.with_suffix(".json")
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _set(section: str, key: str, value):
    def change(meta):
        target = meta
        for part in section.split("."):
            target = target[part]
        target[key] = value
    return change


@pytest.mark.parametrize("section, key, value, message", [
    ("config", "d_model", 10 ** 6, r"config\.d_model=1000000 is outside the plausible range 8\.\.4096"),
    ("config", "num_queries", 0, r"config\.num_queries=0 is outside the plausible range 1\.\.1024"),
    ("config", "encoder_layers", 10 ** 4, r"config\.encoder_layers=10000 is outside"),
    ("config", "num_instances", 65, r"config\.num_instances=65 is outside"),
    ("config", "dropout", 1.5, r"config\.dropout=1\.5 is outside"),
    ("config", "image_size", 60, r"config\.image_size=60 is not a multiple of patch_size x 2\^\(stages-1\) = 8"),
    ("config", "num_heads", 0, r"config\.num_heads=0 is outside the plausible range 1\.\.64"),
    ("config.backbone_kwargs", "depths", [1] * 9, r"config\.backbone_kwargs\.depths=.* must be a list of 1\.\.4"),
    ("config.backbone_kwargs", "num_heads", [3, 4], r"num_heads\[0\]=3 does not divide stage 0's width 32"),
    ("config.backbone_kwargs", "window_size", 10 ** 9, r"window_size=1000000000 is outside"),
    ("contract", "sampling_rate", float("inf"), r"contract\.sampling_rate=inf is outside"),
    ("contract", "window_seconds", float("nan"), r"contract\.window_seconds=nan is outside"),
    ("contract", "filter_band", [4.0, 80.0],
     r"contract\.filter_band\[1\]=80\.0 is outside the plausible range 0\.\.64"),
    ("contract", "filter_band", [30.0, 4.0], r"contract\.filter_band=\[30\.0, 4\.0\] must satisfy 0 < low < high"),
    ("contract", "face_expand", 5.0, r"contract\.face_expand=5\.0 is outside the plausible range 0\.\.1"),
    ("contract", "eeg_channels", ["Fz"] * 32, r"contract\.eeg_channels='Fz' appears twice"),
    ("contract", "class_names", ["A", "B", "", "D"], r"contract\.class_names\[2\]='' must be a non-empty name"),
    ("contract", "label_rule", {"kind": "quadrant", "threshold": "high"}, r"label_rule\.threshold='high'"),
    ("contract", "image_mean", [0.5, 0.5, 0.5], r"image_mean=\[0\.5, 0\.5, 0\.5\]: the model normalises face images "
                                                r"with the ImageNet mean"),
])
def test_implausible_fields_are_named_with_their_limit(stem, section, key, value, message):
    _edit(stem, _set(section, key, value))
    with pytest.raises(CheckpointError, match=r"model\.json: .*" + message):
        load_checkpoint(stem)


def test_a_model_over_the_budget_is_refused_before_allocating(stem):
    big = MilmerConfig.paper().replace(d_model=4096, num_heads=64, ff_dim=16384, encoder_layers=24)
    with pytest.raises(CheckpointError, match=r"parameters, over the limit of .* \(4 x the paper preset\)"):
        check_budget(big)
    assert estimate_parameters(big) > BUDGET_MULTIPLE * estimate_parameters(MilmerConfig.paper())
    check_budget(MilmerConfig.paper().replace(image_size=448))  # a bigger but sane model passes


@pytest.mark.parametrize("text, message", [
    ('{"format": "milmer-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", r"not valid JSON"),
    ('{"format": "milmer-checkpoint", "format_version": 1' + ', "n": 1' + "0" * 5000 + "}", r"not valid JSON"),
    ("\udcff", r"not valid JSON"),
])
def test_json_that_breaks_the_parser_is_one_clear_error(stem, text, message):
    stem.with_suffix(".json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match=r"model\.json: " + message):
        read_checkpoint_meta(stem)


def _rewrite_tensors(stem: Path, change) -> None:
    state = load_file(str(stem.with_suffix(".safetensors")))
    change(state)
    save_file(state, str(stem.with_suffix(".safetensors")), metadata={"format": "milmer-checkpoint"})
    digest = file_sha256(stem.with_suffix(".safetensors"))
    _edit(stem, lambda meta: meta["tensors"].update(sha256=digest))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(stem, value):
    _rewrite_tensors(stem, lambda state: state["head.weight"].__setitem__((0, 0), value))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor head\.weight holds NaN or Inf"):
        load_checkpoint(stem)


def test_tensor_layout_is_checked_from_the_header(stem):
    def change(state):
        state["head.weight"] = state["head.weight"].double()
        state["head.bias"] = torch.zeros(7)
        del state["cls_token"]
    _rewrite_tensors(stem, change)
    with pytest.raises(CheckpointError, match=r"1 missing: cls_token; 1 wrong shape: head\.bias \(7,\) != \(4,\); "
                                              r"1 wrong dtype: head\.weight F64 != F32"):
        load_checkpoint(stem)


def test_old_checkpoints_with_imagenet_normalisation_still_load(stem):
    def old(meta):   # as checkpoints before this version stored it
        meta["contract"]["image_mean"] = [0.485, 0.456, 0.406]
        meta["contract"]["image_std"] = [0.229, 0.224, 0.225]

    _edit(stem, old)
    loaded = load_checkpoint(stem)
    assert not hasattr(loaded.contract, "image_mean")
    assert "image_mean" not in loaded.contract.to_dict()


def test_a_haar_checkpoint_loads_and_the_app_says_its_detector_differs(stem):
    from milmer_app.bags import live_cropper

    _edit(stem, _set("contract", "face_detector", "haar"))   # as checkpoints before CenterFace stored it
    contract = load_checkpoint(stem).contract
    assert contract.face_detector["name"] == "haar" and contract.face_detector["detect_width"] == 240
    cropper, note = live_cropper(contract)
    assert cropper.spec.name == "centerface"   # the app runs the bundled detector (OpenCV 5 has no cascades)
    assert note is not None and "differs from the checkpoint's" in note
    assert "centerface (centerface-onnx-" in note and "haar (opencv-haarcascade_frontalface_default" in note


def test_an_unknown_face_detector_is_refused(stem):
    _edit(stem, _set("contract", "face_detector", {"name": "mtcnn"}))
    with pytest.raises(CheckpointError, match=r"contract\.face_detector.*unknown face detector 'mtcnn'"):
        load_checkpoint(stem)


_PEAK_RSS = """
import resource, sys
from models.checkpoint import load_checkpoint
from models.errors import CheckpointError
for stem in sys.argv[1:]:
    try:
        load_checkpoint(stem)
        print("LOADED", stem)
    except CheckpointError as exc:
        print("REFUSED", str(exc)[:200])
print("PEAK_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


@pytest.mark.slow
def test_peak_memory_of_loading_tampered_checkpoints_stays_small(tiny_checkpoint, tmp_path):
    changes = [
        _set("config", "d_model", 4096), _set("config", "image_size", 1024), _set("config", "num_queries", 1024),
        _set("config", "ff_dim", 16384), _set("config", "encoder_layers", 24), _set("config", "num_instances", 64),
        _set("config.backbone_kwargs", "embed_dim", 512), _set("config.backbone_kwargs", "depths", [24, 24, 24, 24]),
        _set("config.backbone_kwargs", "num_heads", [64, 64, 64, 64]), _set("config", "eeg_samples", 16384),
    ]
    stems = []
    for i, change in enumerate(changes):
        for suffix in (".json", ".safetensors"):
            shutil.copy(tiny_checkpoint.with_suffix(suffix), tmp_path / f"m{i}{suffix}")
        _edit(tmp_path / f"m{i}", change)
        stems.append(str(tmp_path / f"m{i}"))
    child = subprocess.run([sys.executable, "-c", _PEAK_RSS, *stems], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    lines = child.stdout.splitlines()
    assert sum(line.startswith("REFUSED") for line in lines) == len(changes), child.stdout
    peak = float(lines[-1].split()[1])
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_evaluate_refuses_a_tampered_checkpoint_in_one_line(stem, tmp_path):
    _edit(stem, _set("config", "d_model", 10 ** 6))
    child = subprocess.run([sys.executable, "-m", "training.cli", "evaluate", "--checkpoint", str(stem),
                            "--deap", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 2
    assert "Traceback" not in child.stderr
    errors = [line for line in child.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("milmer-train: error:")
    assert "config.d_model=1000000 is outside the plausible range" in errors[0]


def test_a_non_finite_model_output_is_counted_never_emitted():
    import threading

    import numpy as np

    from milmer_app.bags import Bag
    from milmer_app.inference import InferenceWorker, NonFiniteOutput, Predictor
    from models import strict_json

    loaded = load_checkpoint(DEMO)
    cfg = loaded.config
    bag = Bag(0.0, 3.0, np.zeros((cfg.eeg_channels, cfg.eeg_samples), np.float32), np.ones(cfg.eeg_channels, bool),
              np.zeros((cfg.num_instances, cfg.image_size, cfg.image_size, 3), np.uint8),
              np.zeros(cfg.num_instances, bool), [None] * cfg.num_instances, None, "test", 3.0)
    bag.eeg[0, 0] = np.inf  # an unmasked channel carrying Inf: the logits become NaN
    predictor = Predictor(loaded.model, list(loaded.contract.class_names), "demo", True)
    with pytest.raises(NonFiniteOutput, match="window ending 3.000 is not finite"):
        predictor.predict(bag)
    emitted, finished = [], threading.Event()
    worker = InferenceWorker(predictor, emitted.append)
    worker.start()
    good = Bag(**{**bag.__dict__, "eeg": np.zeros_like(bag.eeg), "window_end": 4.0})
    worker.submit(bag)
    while worker.non_finite == 0:
        finished.wait(0.01)
    worker.submit(good)
    while worker.done == 0:
        finished.wait(0.01)
    worker.stop()
    assert worker.non_finite == 1 and [p.window_end for p in emitted] == [4.0]
    assert strict_json.dumps({"loss": float("nan"), "x": [float("inf"), 1.5]}) == '{"loss": null, "x": [null, 1.5]}'


@pytest.mark.parametrize("key, value, message", [
    ("filter_taps", 10 ** 9 + 1, r"contract\.filter_taps=1000000001 is outside the plausible range 1\.\.4097"),
    ("filter_cutoffs", [50.0, 70.0], r"contract\.filter_cutoffs=\[50\.0, 70\.0\] must be \[low, high\]"),
    ("resample_half_width", 10 ** 6, r"contract\.resample_half_width=1000000 is outside"),
    ("filter_window", "nonsense", r"contract\.filter_window='nonsense' is not a window scipy knows"),
])
def test_eeg_transform_fields_are_bounded(stem, key, value, message):
    _edit(stem, _set("contract", key, value))
    with pytest.raises(CheckpointError, match=r"model\.json: " + message):
        load_checkpoint(stem)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_the_size_estimate_follows_the_model(preset):
    # The budget is only as good as the estimate: it must track the network as built (on the meta device).
    from models.config import FUSION_MODES, MIL_MODES
    from models.milmer import Milmer, count_parameters

    base = getattr(MilmerConfig, preset)()
    for mil in MIL_MODES:
        for fusion in FUSION_MODES:
            config = base.replace(mil=mil, fusion=fusion)
            with torch.device("meta"):
                actual = count_parameters(Milmer(config))
            assert abs(estimate_parameters(config) - actual) <= 0.05 * actual, (mil, fusion)


@pytest.mark.parametrize("section, key, value, message", [
    ("contract", "image_mean", [0.485, 0.456, float("nan")], r"image_mean=\[0\.485, 0\.456, nan\]"),
    ("tensors", "file", [["x"]], r"tensors\.file is not a file name"),
])
def test_values_found_by_the_fuzz_campaign(stem, section, key, value, message):
    _edit(stem, _set(section, key, value))
    with pytest.raises(CheckpointError, match=r"model\.json: .*" + message):
        load_checkpoint(stem)
