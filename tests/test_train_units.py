"""The trainer's building blocks: metrics, batch sharding, resume state, configuration."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch

from models.errors import CheckpointError
from training.distributed import DistributedContext, plan_train_batches, shard_for_evaluation
from training.metrics import MetricAccumulator, metrics_from_confusion
from training.resume import (
    ResumeState,
    interrupts_deferred,
    load_resume_state,
    remove_resume_state,
    resume_exists,
    save_resume_state,
)
from training.run_dir import EpochLog, read_epoch_rows
from training.train_config import ConfigError, TrainConfig, read_config_file, resolve_config


def test_metrics_match_hand_computed_values():
    # targets 0,0,0,1,1,2 ; predictions 0,0,1,1,2,2 ; class 3 never occurs
    confusion = np.zeros((4, 4), int)
    for target, prediction in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]:
        confusion[target, prediction] += 1
    metrics = metrics_from_confusion(confusion, loss_sum=3.0)
    assert metrics.count == 6 and metrics.loss == pytest.approx(0.5)
    assert metrics.accuracy == pytest.approx(4 / 6)
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]  # class 3 absent from targets and predictions
    assert metrics.macro_f1 == pytest.approx(np.mean(f1))
    assert metrics.balanced_accuracy == pytest.approx(np.mean([2 / 3, 1 / 2, 1.0]))


def test_accumulator_counts_batches():
    accumulator = MetricAccumulator(3)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    accumulator.update(logits[:2], torch.tensor([0, 2]), 1.0)
    accumulator.update(logits[2:], torch.tensor([2, 0]), 1.0)
    result = accumulator.result()
    assert result.confusion == [[2, 0, 0], [0, 0, 0], [0, 1, 1]]
    assert result.accuracy == pytest.approx(0.75)


@pytest.mark.parametrize("size,batch,world", [(23, 6, 2), (24, 6, 2), (13, 4, 3), (7, 7, 2), (25, 6, 4)])
def test_sharded_batches_rebuild_the_single_process_batches(size, batch, world):
    alone = plan_train_batches(size, batch, epoch_seed=7, context=DistributedContext())
    shards = [plan_train_batches(size, batch, 7, DistributedContext(rank, world)) for rank in range(world)]
    assert all(len(plan) == len(alone) for plan in shards)
    for step, single in enumerate(alone):
        real = [shard[step] for shard in shards if shard[step].weight > 0]
        assert sorted(i for part in real for i in part.indices) == sorted(single.indices)
        # Weighted sums of per-sample losses, averaged over ranks, equal the single-process batch mean.
        assert sum(part.weight * len(part.indices) for part in real) / world == pytest.approx(1.0)
        assert single.weight == pytest.approx(1 / len(single.indices))


def test_evaluation_shards_cover_every_window_once():
    for size in (0, 1, 5, 10):
        covered = [i for rank in range(3) for i in shard_for_evaluation(size, DistributedContext(rank, 3))]
        assert covered == list(range(size))


def test_resume_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5, eta_min=1e-4)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    stem = tmp_path / "resume"
    save_resume_state(stem, ResumeState(fold=1, epoch=3, model=model.state_dict(), optimizer=optimizer.state_dict(),
                                        scheduler=scheduler.state_dict(), fold_progress={"best_epoch": 2},
                                        completed_folds=[{"fold": 0}]))
    assert resume_exists(stem)
    state = load_resume_state(stem)
    assert (state.fold, state.epoch, state.fold_progress, state.completed_folds) == (1, 3, {"best_epoch": 2},
                                                                                     [{"fold": 0}])
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(state.model)
    restored_optimizer = torch.optim.AdamW(restored.parameters(), lr=1e-3)
    restored_optimizer.load_state_dict(state.optimizer)
    restored_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(restored_optimizer, T_max=5, eta_min=1e-4)
    restored_scheduler.load_state_dict(state.scheduler)
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(optimizer.state_dict()["state"][0][key], restored_optimizer.state_dict()["state"][0][key])
    assert restored_scheduler.get_last_lr() == scheduler.get_last_lr()
    remove_resume_state(stem)
    assert not resume_exists(stem)


def test_resume_state_from_two_different_saves_is_rejected(tmp_path):
    stem = tmp_path / "resume"
    state = ResumeState(fold=0, epoch=1, model={"w": torch.zeros(2)}, optimizer={"state": {}, "param_groups": []},
                        scheduler={})
    save_resume_state(stem, state)
    old_json = (tmp_path / "resume.json").read_text()
    save_resume_state(stem, state)
    (tmp_path / "resume.json").write_text(old_json)
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_resume_state(stem)


def test_ctrl_c_while_saving_takes_effect_once_the_files_are_written(tmp_path):
    stem = tmp_path / "resume"
    state = ResumeState(fold=0, epoch=1, model={"w": torch.zeros(2)}, optimizer={"state": {}, "param_groups": []},
                        scheduler={})
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            save_resume_state(stem, state)
    assert load_resume_state(stem).epoch == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_epoch_log_keeps_rows_before_the_resume_point(tmp_path):
    log = EpochLog(tmp_path / "epochs.csv")
    log.start()
    for fold, epoch in [(0, 1), (0, 2), (1, 1), (1, 2)]:  # epochs numbered from 1
        log.append({"fold": fold, "epoch": epoch, "train_loss": 1.0, "val_accuracy": None})
    log.start(keep_before=(1, 1))  # fold 1 has one epoch done
    rows = read_epoch_rows(tmp_path / "epochs.csv")
    assert [(r["fold"], r["epoch"]) for r in rows] == [(0, 1), (0, 2), (1, 1)]
    assert np.isnan(rows[0]["val_accuracy"])


def test_config_layers_defaults_file_and_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 7\nlr = 0.001\npreset = "tiny"\n[model]\ndropout = 0.0\nmil = "amil"\n')
    config = resolve_config(read_config_file(path), {"lr": 0.01, "model": {"mil": "topk"}, "seed": None}, str(path))
    assert (config.epochs, config.lr, config.batch_size, config.seed) == (7, 0.01, 14, 0)
    model = config.model_config()
    assert (model.preset, model.dropout, model.mil) == ("tiny", 0.0, "topk")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_paper_defaults():
    config = TrainConfig()
    assert (config.lr, config.min_lr_ratio, config.batch_size, config.epochs, config.seed) == (1e-4, 0.1, 14, 100, 0)


@pytest.mark.parametrize("text,match", [('epochz = 3\n', "unknown settings"), ('protocol = "random"\n', "protocol"),
                                        ('[model]\nwidth = 3\n', "unknown model settings"), ('epochs = \n', "TOML")])
def test_bad_config_files_are_named(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        resolve_config(read_config_file(path), {}, str(path))


def test_ablation_grid_is_the_published_table():
    from training.ablation import ablation_grid

    rows = {(v.model["modalities"], v.model["mil"], v.model["fusion"]) for v in ablation_grid()}
    full = ("eeg,face", "weighted_topk", "cross_attention")
    assert rows == {full, ("eeg", "weighted_topk", "cross_attention"), ("face", "weighted_topk", "cross_attention"),
                    *{("eeg,face", mil, "cross_attention") for mil in ("first", "global_weights", "amil", "topk")},
                    ("eeg,face", "weighted_topk", "mlp"), ("eeg,face", "weighted_topk", "none")}
    assert {"mean", "gated_amil"} <= {v.model["mil"] for v in ablation_grid(full_grid=True)}


def test_video_offset_travels_from_the_train_config_through_the_contract_to_prepare():
    from training.run_data import contract_for, prepare_config_for

    contract = contract_for(TrainConfig(preset="tiny", video_offset=1.5))
    assert contract.video_offset == 1.5
    assert prepare_config_for(contract).window.video_offset_s == 1.5
    assert prepare_config_for(contract_for(TrainConfig(preset="tiny"))).window.video_offset_s == 0.0


def test_a_cache_that_does_not_fit_the_model_is_named_with_its_differences(tmp_path, caplog):
    from training.run_data import _announce_cache, contract_for, prepare_config_for

    config = prepare_config_for(contract_for(TrainConfig(preset="tiny")))
    paper = prepare_config_for(contract_for(TrainConfig(preset="paper")))
    (tmp_path / "paperkey").mkdir()
    (tmp_path / "paperkey" / "manifest.json").write_text(json.dumps({"parameters": paper.parameters()}))
    with caplog.at_level("INFO", logger="training.run_data"):
        _announce_cache(tmp_path, tmp_path / "tinykey", config)
    assert "paperkey does not fit this model" in caplog.text
    assert "face size 224 (needed: 64)" in caplog.text and "num_instances 10 (needed: 4)" in caplog.text
    assert "preparing a new cache" in caplog.text
    (tmp_path / "tinykey").mkdir()
    (tmp_path / "tinykey" / "manifest.json").write_text(json.dumps({"parameters": config.parameters()}))
    caplog.clear()
    with caplog.at_level("INFO", logger="training.run_data"):
        _announce_cache(tmp_path, tmp_path / "tinykey", config)
    assert "reusing the prepared cache" in caplog.text and "tinykey" in caplog.text


def test_run_files_are_strict_json(tmp_path):
    import json

    from training.run_dir import write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"mean_test_macro_f1": float("nan"), "folds": [{"val_accuracy": float("inf")}, {"x": 0.5}]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}")) == {
        "mean_test_macro_f1": None, "folds": [{"val_accuracy": None}, {"x": 0.5}]}
