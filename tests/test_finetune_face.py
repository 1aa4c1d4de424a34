"""finetune-face learns an image-folder expression set and its output loads as --backbone-weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from models.checkpoint import load_checkpoint
from models.config import MilmerConfig
from models.convert import load_backbone_weights
from models.errors import DataError
from models.milmer import Milmer
from training import cli
from training.synth import CUE_COLOURS_BGR, paint_cue

CLASSES = ("happy", "calm", "sad", "angry")


def _write_image_folder(root: Path, per_class: int = 16, seed: int = 0) -> None:
    """Face crops whose cheeks carry one colour per class, with random framing and noise."""
    from skimage import data

    rng = np.random.default_rng(seed)
    portrait = cv2.cvtColor(np.ascontiguousarray(data.astronaut()[16:216, 125:325]), cv2.COLOR_RGB2BGR)
    assert len(CUE_COLOURS_BGR) == len(CLASSES)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            painted = paint_cue(portrait, label, strength=1.0).astype(np.float32)
            painted += rng.normal(0, 8, painted.shape)
            x, y = 52 + rng.integers(-5, 6), 50 + rng.integers(-5, 6)  # around the face box of the portrait
            crop = np.clip(painted[y:y + 95, x:x + 95], 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{i:03d}.png"), cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Path:
    """The output of one finetune-face run on a synthetic image folder, shared by the tests below."""
    root = tmp_path_factory.mktemp("finetune")
    images = root / "faces"
    _write_image_folder(images)
    out = root / "backbone.safetensors"
    status = cli.main(["-q", "finetune-face", "--images", str(images), "--out", str(out), "--preset", "tiny",
                       "--epochs", "5", "--batch-size", "8", "--lr", "2e-3", "--val-fraction", "0.25",
                       "--device", "cpu"])
    assert status == 0
    return out


@pytest.mark.slow
def test_finetune_face_learns_and_loads_as_backbone(finetuned):
    with safe_open(str(finetuned), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["classes"]) == sorted(CLASSES)
    assert float(metadata["val_accuracy"]) >= 0.5  # chance is 0.25

    model = Milmer(MilmerConfig.tiny())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    assert load_backbone_weights(model, finetuned) > 0
    after = model.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_train_starts_from_finetuned_backbone_weights(finetuned, tmp_path):
    """train --backbone-weights: the face backbone of the trained checkpoint is the file's, not a fresh one."""
    data = tmp_path / "deap"
    assert cli.main(["-q", "synth", "--out", str(data), "--subjects", "1", "--trials", "4", "--seconds", "6",
                     "--seed", "3", "--video-size", "160x128"]) == 0
    run = tmp_path / "run"
    # A learning rate this small leaves the weights where they started, within float rounding.
    assert cli.main(["-q", "train", "--deap", str(data), "--cache", str(tmp_path / "cache"), "--protocol", "trial",
                     "--folds", "2", "--preset", "tiny", "--modalities", "face", "--epochs", "1", "--lr", "1e-12",
                     "--device", "cpu", "--backbone-weights", str(finetuned), "--out", str(run)]) == 0
    trained = load_checkpoint(run / "fold_0" / "best").model.backbone.state_dict()
    expected = Milmer(MilmerConfig.tiny())
    load_backbone_weights(expected, finetuned)
    for name, value in expected.backbone.state_dict().items():
        assert torch.allclose(trained[name].float(), value.float(), atol=1e-6), name


def test_finetune_face_rejects_a_folder_without_classes(tmp_path):
    (tmp_path / "only").mkdir()
    cv2.imwrite(str(tmp_path / "only" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    from training.finetune_face import FinetuneConfig, finetune_face

    with pytest.raises(DataError, match="class folder"):
        finetune_face(FinetuneConfig(images=str(tmp_path), out=str(tmp_path / "x.safetensors"), preset="tiny"),
                      torch.device("cpu"))
