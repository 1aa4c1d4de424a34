"""milmer-train train / evaluate / ablate end to end on a small synthetic DEAP (tiny preset, CPU).

One synthetic dataset and its prepared cache serve every test. Training runs use one
thread (in-process via torch.set_num_threads, subprocesses via OMP_NUM_THREADS) so that
runs in different processes compute bit-identical results, and so that two cores shared
with other work are not oversubscribed.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.config import MIL_MODES, MilmerConfig
from models.milmer import Milmer
from synthetic_runs import synthetic_deap, train_metrics
from training import cli
from training.commands.train import export_best_checkpoint
from training.run_dir import RunDir

pytestmark = pytest.mark.slow

EPOCHS = 12
TRAIN = ["--protocol", "trial", "--folds", "2", "--preset", "tiny", "--epochs", str(EPOCHS), "--lr", "2e-3",
         "--batch-size", "8", "--device", "cpu"]
CHANCE = 0.25


@pytest.fixture(scope="module")
def deap(tmp_path_factory, single_thread) -> tuple[Path, Path]:
    """A 5-subject x 8-trial x 15 s synthetic DEAP (s05 without face video, like DEAP's s23-s32) and a
    cache folder shared by the tests."""
    return synthetic_deap(tmp_path_factory.mktemp("train"), 5, "--video-subjects", "4")


def _train(deap: tuple[Path, Path], out: Path, *extra: str) -> dict:
    return train_metrics(deap, out, *TRAIN, *extra)


def _subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def full_run(deap, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "eeg_face"
    return out, _train(deap, out)


def test_full_model_learns_and_writes_the_run_directory(full_run):
    out, metrics = full_run
    assert metrics["protocol"] == "trial" and not metrics["leaky"]
    assert metrics["mean_test_accuracy"] >= 0.5 > CHANCE
    assert metrics["training_data"]["label"] == "trials with face video"
    assert metrics["training_data"]["subjects"] == [1, 2, 3, 4] and metrics["training_data"]["trials"] == 32
    assert metrics["training_data"]["excluded"] == {"subjects": [5], "trials": 8, "windows": 40}
    assert any("val split has 2 trial(s)" in warning for warning in metrics["split_warnings"])
    assert len(metrics["folds"]) == 2
    for key in ("std_test_accuracy", "mean_test_macro_f1"):
        assert isinstance(metrics[key], float)
    for fold in metrics["folds"]:
        for key in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy"):
            assert 0.0 <= fold[key] <= 1.0
        assert sum(map(sum, fold["confusion"])) == fold["windows"]["test"]
        assert (out / fold["checkpoint"]).is_file()
        assert (out / f"fold_{fold['fold']}" / "confusion.png").stat().st_size > 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["lr"] == 2e-3 and config["model"]["preset"] == "tiny"
    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * EPOCHS
    assert {"train_loss", "train_accuracy", "train_macro_f1", "val_loss", "val_accuracy", "val_macro_f1", "lr",
            "seconds"} <= set(rows[0])
    assert "test_accuracy" not in rows[0] and not any(row["leaky_test_accuracy"] for row in rows)
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # cosine decay
    assert (out / "learning_curves.png").stat().st_size > 0
    assert not (out / "resume.json").exists()


def test_trials_are_disjoint_within_and_across_folds(full_run):
    _, metrics = full_run
    as_set = lambda pairs: {tuple(pair) for pair in pairs}  # noqa: E731
    tested = []
    for fold in metrics["folds"]:
        train, val, test = as_set(fold["train"]), as_set(fold["val"]), as_set(fold["test"])
        assert train and val and test
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(train | val | test) == 32
        tested.append(test)
    assert not (tested[0] & tested[1]) and len(tested[0] | tested[1]) == 32


@pytest.fixture(scope="module")
def eeg_run(deap, tmp_path_factory) -> tuple[Path, dict]:
    """EEG only, with small batches: many cheap steps per epoch (the interruption test needs epochs that last)."""
    out = tmp_path_factory.mktemp("runs") / "eeg"
    return out, _train(deap, out, "--modalities", "eeg", "--batch-size", "4")


def test_single_modality_runs_are_above_chance(eeg_run, deap, tmp_path):
    runs = {"eeg": eeg_run[1], "face": _train(deap, tmp_path / "face", "--modalities", "face")}
    for modalities, metrics in runs.items():
        assert metrics["modalities"] == modalities
        assert metrics["mean_test_accuracy"] >= 0.5 > CHANCE
    assert runs["eeg"]["training_data"]["trials"] == 40  # EEG needs no video: s05 trains and tests too


def test_evaluate_reproduces_the_training_test_figure_from_the_checkpoint_alone(full_run, deap, tmp_path, capsys):
    out, metrics = full_run
    data, cache = deap
    fold = metrics["folds"][1]
    result = tmp_path / "evaluation.json"
    checkpoint = out / fold["checkpoint"]
    assert cli.main(["-q", "evaluate", "--checkpoint", str(checkpoint), "--deap", str(data),
                     "--cache", str(cache), "--device", "cpu", "--out", str(result)]) == 0
    evaluation = json.loads(result.read_text())
    assert evaluation["trials"] == fold["test"] and not evaluation["leaky"]
    assert evaluation["accuracy"] == fold["test_accuracy"]
    assert evaluation["confusion"] == fold["confusion"]
    assert "LEAKY" not in capsys.readouterr().out
    provenance = load_checkpoint(checkpoint).provenance
    assert provenance["leaky"] is False and provenance["split"]["unit"] == "trials"
    assert provenance["training_data"]["excluded"]["subjects"] == [5]

    everything = tmp_path / "everything.json"
    assert cli.main(["-q", "evaluate", "--checkpoint", str(checkpoint), "--deap", str(data), "--cache", str(cache),
                     "--device", "cpu", "--all-windows", "--out", str(everything)]) == 0
    assert "may include windows the checkpoint trained" in capsys.readouterr().out
    assert json.loads(everything.read_text())["count"] == 160  # the face-video trials only, as trained


def test_evaluate_refuses_a_checkpoint_without_its_test_split(full_run, deap, tmp_path, capsys):
    from models.checkpoint import save_checkpoint

    out, metrics = full_run
    loaded = load_checkpoint(out / metrics["folds"][0]["checkpoint"])
    stem = tmp_path / "old"
    save_checkpoint(stem, loaded.model, loaded.contract, {k: v for k, v in loaded.provenance.items() if k != "split"})
    assert cli.main(["evaluate", "--checkpoint", str(stem), "--deap", str(deap[0]), "--cache", str(deap[1]),
                     "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "does not record which windows it was tested on" in error and "--all-windows" in error


def test_include_faceless_restores_every_trial_and_says_so(deap):
    from training.run_data import open_window_data
    from training.train_config import TrainConfig

    data, cache = deap
    config = TrainConfig(deap=str(data), cache=str(cache), preset="tiny", model={"modalities": "face"})
    assert open_window_data(config).description["training_data"]["trials"] == 32
    everything = open_window_data(config.replace(include_faceless=True)).description["training_data"]
    assert everything["trials"] == 40 and "8 without face video" in everything["label"]
    assert not everything["face_trials_only"]


def test_face_only_loso_never_tests_a_subject_without_video(deap, tmp_path):
    metrics = _train(deap, tmp_path / "loso_face", "--protocol", "loso", "--epochs", "1", "--modalities", "face",
                     "--subjects", "1,2,5")
    assert [fold["name"] for fold in metrics["folds"]] == ["loso s01", "loso s02"]
    for fold in metrics["folds"]:
        assert 5 not in {subject for subject, _ in fold["train"] + fold["val"] + fold["test"]}
    assert metrics["training_data"]["excluded"]["subjects"] == [5]


def _wait_for_rows(csv_path: Path, rows: int, process: subprocess.Popen, timeout: float = 300) -> None:
    """Return once the run's epoch log holds ``rows`` rows; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not (csv_path.is_file() and len(csv_path.read_text().splitlines()) > rows):
        assert process.poll() is None, f"the run ended (status {process.returncode}) before epoch row {rows}"
        assert time.monotonic() < deadline, f"no epoch row {rows} after {timeout} s"
        time.sleep(0.01)


def test_ctrl_c_saves_a_state_that_resumes_to_the_uninterrupted_result(eeg_run, deap, tmp_path):
    reference_dir, reference = eeg_run
    data, cache = deap
    out, log = tmp_path / "resumed", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "training.cli", "-q", "train", "--deap", str(data), "--cache", str(cache),
               *TRAIN, "--modalities", "eeg", "--batch-size", "4", "--out", str(out)]
    with log.open("w") as stderr_file, subprocess.Popen(command, stderr=stderr_file, env=_subprocess_env()) as process:
        # A real Ctrl-C early in fold 0, wherever in an epoch it lands: the run must continue exactly, across
        # the fold boundary too. Early, so that a slow test process still signals before the run could end.
        try:
            _wait_for_rows(out / "epochs.csv", 2, process)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=300)
        finally:
            process.kill()
    stderr = log.read_text()
    assert process.returncode == 130, stderr
    assert f"--resume {out}" in stderr and "Traceback" not in stderr
    assert (out / "resume.json").is_file() and not (out / "metrics.json").exists()

    assert cli.main(["-q", "train", "--resume", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mean_test_accuracy", "std_test_accuracy", "mean_test_macro_f1"):
        assert metrics[key] == reference[key]
    for mine, theirs in zip(metrics["folds"], reference["folds"], strict=True):
        assert mine["confusion"] == theirs["confusion"]
        assert mine["best_epoch"] == theirs["best_epoch"]
        assert mine["test_loss"] == pytest.approx(theirs["test_loss"], abs=1e-6)
    columns = ("fold", "epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")

    def rows(path: Path) -> list[tuple]:
        with path.open() as handle:
            return [tuple(row[c] for c in columns) for row in csv.DictReader(handle)]

    assert rows(out / "epochs.csv") == rows(reference_dir / "epochs.csv")
    assert not (out / "resume.json").exists()


def test_exported_best_checkpoint_names_no_local_path(full_run, tmp_path):
    out, metrics = full_run
    stem = tmp_path / "exported"
    export_best_checkpoint(RunDir(out), metrics, stem, {"note": "test"}, "accuracy")
    loaded = load_checkpoint(stem)
    best = max(metrics["folds"], key=lambda fold: (fold["selected_val"]["accuracy"], -fold["selected_val"]["loss"]))
    assert loaded.provenance["fold"] == best["fold"] and loaded.provenance["test_trials"] == best["test"]
    assert loaded.provenance["note"] == "test" and loaded.provenance["train_config"]["lr"] == 2e-3
    text = stem.with_suffix(".json").read_text()
    assert str(out.parent.parent) not in text and "/tmp" not in text and "cache" not in loaded.provenance["dataset"]


def test_resume_of_a_finished_run_is_refused(full_run, capsys):
    out, _ = full_run
    assert cli.main(["train", "--resume", str(out)]) == 2
    error = capsys.readouterr().err
    assert "no resumable state" in error and "Traceback" not in error


def test_an_existing_run_directory_is_not_overwritten(full_run, deap, capsys):
    out, _ = full_run
    assert cli.main(["train", "--deap", str(deap[0]), *TRAIN, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_paper_protocol_trains_on_80_percent_and_reports_leaky_figures(deap, tmp_path, capsys):
    out = tmp_path / "paper"
    metrics = _train(deap, out, "--protocol", "paper", "--epochs", "3", "--modalities", "face")
    assert metrics["leaky"] and "leaky" in metrics["protocol_label"] and "LEAKY" in metrics["test_accuracy_note"]
    (fold,) = metrics["folds"]
    assert fold["windows"] == {"train": 128, "val": 0, "test": 32}  # all of the 80 %, no validation carve
    assert set(map(tuple, fold["train"])) & set(map(tuple, fold["test"]))  # windows of one trial on both sides
    assert fold["best_epoch"] == 3  # the last epoch's model, numbered from 1
    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(row["leaky_test_accuracy"] for row in rows) and "test_accuracy" not in rows[0]
    assert fold["best_test_accuracy_over_epochs"] == max(float(row["leaky_test_accuracy"]) for row in rows)
    assert fold["test_accuracy"] == pytest.approx(float(rows[-1]["leaky_test_accuracy"]), abs=1e-6)
    assert metrics["mean_best_test_accuracy_over_epochs"] == fold["best_test_accuracy_over_epochs"]

    checkpoint = out / fold["checkpoint"]
    provenance = load_checkpoint(checkpoint).provenance
    assert provenance["leaky"] is True and provenance["split"]["unit"] == "windows"
    assert len(provenance["split"]["test"]) == 32
    result = tmp_path / "evaluation.json"
    capsys.readouterr()
    assert cli.main(["-q", "evaluate", "--checkpoint", str(checkpoint), "--deap", str(deap[0]), "--cache",
                     str(deap[1]), "--device", "cpu", "--out", str(result)]) == 0
    printed = capsys.readouterr().out
    assert "LEAKY accuracy" in printed and "32 windows" in printed
    evaluation = json.loads(result.read_text())
    assert evaluation["leaky"] and evaluation["accuracy"] == fold["test_accuracy"]


def test_loso_holds_out_one_whole_subject_per_fold(deap, tmp_path):
    metrics = _train(deap, tmp_path / "loso", "--protocol", "loso", "--epochs", "1", "--modalities", "eeg")
    assert metrics["num_folds"] == 5
    held_out = []
    for fold in metrics["folds"]:
        test_subjects = {subject for subject, _ in fold["test"]}
        assert len(test_subjects) == 1 and len(fold["test"]) == 8
        assert not test_subjects & {subject for subject, _ in fold["train"] + fold["val"]}
        held_out += test_subjects
    assert sorted(held_out) == [1, 2, 3, 4, 5]


def test_ablate_runs_variants_and_reports_them(deap, tmp_path):
    data, cache = deap
    out = tmp_path / "ablation"
    assert cli.main(["-q", "ablate", "--deap", str(data), "--cache", str(cache), "--protocol", "trial", "--folds", "2",
                     "--preset", "tiny", "--epochs", "1", "--device", "cpu",
                     "--only", "eeg,eeg+face_amil_cross_attention", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"eeg", "eeg+face_amil_cross_attention"}
    report = (out / "report.md").read_text()
    assert "| trial | eeg | — | — |" in report
    assert "| trial | eeg,face | amil | cross_attention |" in report
    assert "<table>" in (out / "report.html").read_text()


@pytest.mark.parametrize("mil", MIL_MODES)
def test_every_mil_mode_learns_the_face_cue(deap, mil):
    """Face only, each MIL mode: a fixed number of steps on half the face-video trials, tested on the others."""
    from models.contract import InputContract
    from models.pipeline.labels import LabelRule
    from training.batches import collate_windows
    from training.run_data import face_trial_subset, open_windows
    from training.splits import make_splits

    config = MilmerConfig.tiny().replace(modalities="face", mil=mil)
    windows = face_trial_subset(open_windows(deap[0], deap[1], InputContract.for_deap(config), LabelRule()), False)
    split = make_splits(windows.dataset.meta, "trial", folds=2, seed=0)[0]
    train = np.concatenate([split.train, split.val])
    items = [windows.dataset[i] for i in range(len(windows))]
    torch.manual_seed(0)
    model = Milmer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = np.random.default_rng(0)
    for _ in range(160):
        batch = collate_windows([items[i] for i in order.choice(train, 8, replace=False)])
        loss = torch.nn.functional.cross_entropy(model(None, batch.faces, None, batch.face_mask).logits, batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = collate_windows([items[i] for i in split.test])
    with torch.no_grad():
        predicted = model(None, test.faces, None, test.face_mask).logits.argmax(dim=1)
        accuracy = float((predicted == test.labels).float().mean())
    assert accuracy >= 0.5 > CHANCE, f"{mil}: test accuracy {accuracy:.3f}"


def test_ddp_with_two_processes_agrees_with_one(deap, tmp_path):
    data, cache = deap
    config = tmp_path / "no_dropout.toml"
    config.write_text("[model]\ndropout = 0.0\ncls_dropout = 0.0\n")
    common = ["--deap", str(data), "--cache", str(cache), "--protocol", "trial", "--folds", "2", "--preset", "tiny",
              "--epochs", "2", "--lr", "2e-3", "--batch-size", "8", "--device", "cpu", "--config", str(config)]
    single = tmp_path / "single"
    assert cli.main(["-q", "train", *common, "--out", str(single)]) == 0
    double = tmp_path / "double"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.cli", "-q", "train", *common, "--out", str(double)],
        capture_output=True, text=True, env=_subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((double / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    # Same global batches and gradient means; only float summation order differs between the runs.
    for a, b in zip(one["folds"], two["folds"]):
        assert a["test"] == b["test"]
        assert sum(map(sum, b["confusion"])) == a["windows"]["test"]  # every test window counted once
        assert a["test_loss"] == pytest.approx(b["test_loss"], abs=1e-4)
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 1 / a["windows"]["test"] + 1e-12


def test_epochs_are_numbered_from_1_alike_in_log_metrics_csv_checkpoint_and_report(deap, tmp_path, capsys):
    data, cache = deap
    out = tmp_path / "numbered"
    capsys.readouterr()
    assert cli.main(["train", "--deap", str(data), "--cache", str(cache), "--protocol", "trial", "--folds", "2",
                     "--preset", "tiny", "--epochs", "4", "--lr", "2e-3", "--batch-size", "8", "--device", "cpu",
                     "--modalities", "eeg", "--out", str(out)]) == 0
    log = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["fold"]), int(r["epoch"])) for r in rows] == [(f, e) for f in (0, 1) for e in (1, 2, 3, 4)]
    for fold in metrics["folds"]:
        best = fold["best_epoch"]
        assert 1 <= best <= 4
        assert f"fold {fold['fold']}: best epoch {best} " in log
        row = next(r for r in rows if int(r["fold"]) == fold["fold"] and int(r["epoch"]) == best)
        assert float(row["val_accuracy"]) == pytest.approx(fold["selected_val"]["accuracy"], abs=1e-6)
        assert load_checkpoint(out / fold["checkpoint"]).provenance["epoch"] == best
    assert "fold 0 epoch 4/4:" in log and "epoch 0/" not in log
    # Quiet: no checkpoint save per epoch, the cache summary at most once.
    assert "saved checkpoint" not in log and log.count("prepared cache") <= 1

    assert cli.main(["-q", "report", str(out), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    for fold in metrics["folds"]:
        assert f"| {fold['fold']} | {fold['name']} | {fold['best_epoch']} |" in report
    assert "![learning curves](numbered/learning_curves.png)" in report
    assert "![fold 1 test confusion](numbered/fold_1/confusion.png)" in report
    # What does not apply to a synthetic EEG-only trial run is not said.
    assert "synthetic all trials" in report and "milmer-train synth" in report
    assert "DEAP: s01-s22" not in report and "paper protocol is leaky" not in report
