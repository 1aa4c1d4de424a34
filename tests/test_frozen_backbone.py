"""train/evaluate --freeze-backbone and the run's cost estimate, end to end on a small synthetic DEAP
(tiny preset, CPU, one thread). Backbone calls are counted with a real forward hook on the Swin's
patch embedding, which runs once per backbone call."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from milmer_app.engine import describe_model
from models.checkpoint import load_checkpoint
from models.config import FROZEN_BACKBONE_LABEL, MilmerConfig
from models.milmer import Milmer, build_backbone
from synthetic_runs import synthetic_deap, train_metrics
from training import cli

pytestmark = pytest.mark.slow

CHANCE = 0.25
TRAIN = ["--protocol", "trial", "--preset", "tiny", "--lr", "2e-3", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def deap(tmp_path_factory, single_thread) -> tuple[Path, Path]:
    return synthetic_deap(tmp_path_factory.mktemp("frozen"), 3)


@contextmanager
def backbone_calls() -> Iterator[list[int]]:
    """Counts face-backbone calls in this process (every Swin call starts with its patch embedding)."""
    count = [0]

    def hook(module, inputs, output):
        if type(module).__name__ == "PatchEmbed":
            count[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def _train(deap: tuple[Path, Path], out: Path, *extra: str) -> dict:
    return train_metrics(deap, out, *TRAIN, *extra)


def _feature_files(cache: Path) -> dict[str, tuple[int, int]]:
    """Every file under the caches' embeddings folders with its size and modification time."""
    return {str(p.relative_to(cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in cache.glob("*/embeddings/**/*") if p.is_file()}


@pytest.fixture(scope="module")
def frozen_run(deap, tmp_path_factory) -> tuple[Path, dict, int]:
    out = tmp_path_factory.mktemp("runs") / "frozen"
    with backbone_calls() as calls:
        metrics = _train(deap, out, "--folds", "2", "--epochs", "12", "--freeze-backbone")
    return out, metrics, calls[0]


def test_frozen_training_learns_and_every_record_says_face_backbone_frozen(frozen_run):
    out, metrics, calls = frozen_run
    assert calls > 0  # the features were computed in this run
    assert metrics["face_backbone"] == FROZEN_BACKBONE_LABEL
    assert metrics["mean_test_accuracy"] > CHANCE + 0.15
    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["face_backbone"] == FROZEN_BACKBONE_LABEL for row in rows)
    checkpoint = load_checkpoint(out / "fold_0" / "best")
    assert checkpoint.provenance["face_backbone"] == FROZEN_BACKBONE_LABEL
    assert FROZEN_BACKBONE_LABEL in describe_model("tiny", checkpoint.provenance)
    report = out.parent / "report"
    assert cli.main(["-q", "report", str(out), "--out", str(report)]) == 0
    assert FROZEN_BACKBONE_LABEL in (report / "report.md").read_text()
    # It loads and runs on frames like any checkpoint: the backbone is in it.
    config = checkpoint.config
    faces = torch.randint(0, 256, (1, config.num_instances, 3, config.image_size, config.image_size),
                          dtype=torch.uint8)
    with torch.no_grad():
        logits = checkpoint.model(torch.randn(1, config.eeg_channels, config.eeg_samples), faces).logits
    assert logits.shape == (1, 4) and torch.isfinite(logits).all()


def test_features_are_computed_once_and_reused_by_other_folds_and_seeds(frozen_run, deap, tmp_path):
    _, _, first_calls = frozen_run
    stored = _feature_files(deap[1])
    assert any(name.endswith(".npy") for name in stored) and first_calls > 0
    with backbone_calls() as calls:
        metrics = _train(deap, tmp_path / "again", "--folds", "3", "--seed", "7", "--epochs", "2",
                         "--freeze-backbone")
    assert calls[0] == 0
    assert _feature_files(deap[1]) == stored  # nothing written there
    assert metrics["face_backbone"] == FROZEN_BACKBONE_LABEL and metrics["num_folds"] == 3


def test_evaluate_reproduces_the_frozen_runs_test_figure_without_running_the_backbone(frozen_run, deap, tmp_path):
    out, metrics, _ = frozen_run
    data, cache = deap
    result = tmp_path / "eval.json"
    with backbone_calls() as calls:
        assert cli.main(["-q", "evaluate", "--checkpoint", str(out / "fold_0" / "best"), "--deap", str(data),
                         "--cache", str(cache), "--device", "cpu", "--out", str(result)]) == 0
    assert calls[0] == 0
    evaluated = json.loads(result.read_text())
    assert evaluated["face_backbone"] == FROZEN_BACKBONE_LABEL
    assert evaluated["accuracy"] == pytest.approx(metrics["folds"][0]["test_accuracy"], abs=1e-9)
    assert evaluated["count"] == metrics["folds"][0]["windows"]["test"]


def test_other_backbone_weights_or_another_cache_get_their_own_features(frozen_run, deap, tmp_path):
    cache = deap[1]  # holding the frozen run's features already
    weights = tmp_path / "backbone.safetensors"
    torch.manual_seed(11)
    state = {k: v.contiguous() for k, v in build_backbone(MilmerConfig.tiny()).state_dict().items()}
    save_file(state, str(weights))
    before = {p.name for p in cache.glob("*/embeddings/*")}
    with backbone_calls() as calls:
        _train(deap, tmp_path / "weights_a", "--folds", "2", "--epochs", "1", "--freeze-backbone",
               "--backbone-weights", str(weights))
    assert calls[0] > 0
    after_a = {p.name for p in cache.glob("*/embeddings/*")}
    assert len(after_a - before) == 1
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"] * 1.01
    save_file(state, str(weights))
    with backbone_calls() as calls:
        _train(deap, tmp_path / "weights_b", "--folds", "2", "--epochs", "1", "--freeze-backbone",
               "--backbone-weights", str(weights))
    assert calls[0] > 0 and len({p.name for p in cache.glob("*/embeddings/*")} - after_a) == 1

    other = tmp_path / "other_deap"
    assert cli.main(["-q", "synth", "--out", str(other), "--subjects", "2", "--trials", "4", "--seconds", "9",
                     "--strength", "3", "--seed", "2", "--video-size", "160x128"]) == 0
    with backbone_calls() as calls:
        assert cli.main(["-q", "train", "--deap", str(other), "--cache", str(cache), *TRAIN, "--folds", "2",
                         "--epochs", "1", "--freeze-backbone", "--out", str(tmp_path / "other_run")]) == 0
    assert calls[0] > 0
    assert len({p.parent.parent for p in cache.glob("*/embeddings/*")}) == 2  # one per prepared cache


def test_the_cost_estimate_is_printed_first_and_is_of_the_runs_size(deap, tmp_path, capfd):
    """A sanity bound only: the 25 % target is checked by bench/train.py --estimate, on a quiet machine."""
    data, cache = deap
    capfd.readouterr()
    assert cli.main(["train", "--deap", str(data), "--cache", str(cache), *TRAIN, "--folds", "2",
                     "--epochs", "3", "--out", str(tmp_path / "run")]) == 0
    lines = capfd.readouterr().err.splitlines()
    estimate_line = next(i for i, line in enumerate(lines) if "estimated wall time of the whole run" in line)
    first_epoch = next(i for i, line in enumerate(lines) if " epoch 1/3" in line)
    assert estimate_line < first_epoch
    assert "2 fold(s) x 3 epoch(s)" in lines[estimate_line]
    assert all("ETA " in line for line in lines if " epoch " in line and "train loss" in line)
    cost = json.loads((tmp_path / "run" / "metrics.json").read_text())["cost"]
    assert 0.4 < cost["measured_seconds"] / cost["estimated_seconds"] < 2.5


def test_an_interrupted_subject_resumes_where_it_stopped(frozen_run, deap):
    """A subject cut off after some rows: the next run embeds only the rest, and the result is the same."""
    from training.dataset import PreparedCache
    from training.embeddings import (
        DEFAULT_FRAMES_PER_CALL,
        ensure_features,
        feature_store,
    )
    from training.trainer import FROZEN_BACKBONE_SEED

    cache_path = next(p for p in deap[1].iterdir() if (p / "manifest.json").is_file() and (p / "embeddings").is_dir())
    cache = PreparedCache(cache_path)
    torch.manual_seed(FROZEN_BACKBONE_SEED)  # the frozen run's backbone, as the trainer builds it
    backbone = build_backbone(MilmerConfig.tiny())
    model = Milmer(MilmerConfig.tiny())
    model.backbone.load_state_dict(backbone.state_dict())
    store = feature_store(model, cache)
    assert store.complete(1), "the frozen run's features are keyed by this backbone"
    complete = np.load(store.path(1))
    mask = np.load(cache.subject_files(1)["face_mask"])
    rows_done = len(mask) // 2
    partial = complete.copy()
    partial[rows_done:] = 0
    np.save(store.folder / "s01.partial.npy", partial)
    (store.folder / "s01.partial.json").write_text(json.dumps({"rows_done": rows_done}))
    store.path(1).unlink()
    with backbone_calls() as calls:
        ensure_features(model, cache, cache.subjects, show_progress=False)
    left = int(mask[rows_done:].sum())
    # One call probes the feature shape; the others embed only the rows after the cut (a full subject needs more).
    assert 1 < calls[0] <= 1 + math.ceil(left / DEFAULT_FRAMES_PER_CALL["cpu"])
    np.testing.assert_allclose(np.load(store.path(1)).astype(np.float32), complete.astype(np.float32), atol=2e-3)
    assert not (store.folder / "s01.partial.npy").exists() and not (store.folder / "s01.partial.json").exists()
