"""milmer-train report: one table over run directories, honest about the leaky paper protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import DataError
from training import cli
from training.report import find_runs


def _write_run(path: Path, protocol: str, modalities: str, accuracy: float, best_over_epochs: float | None = None,
               mil: str = "weighted_topk", fusion: str = "cross_attention") -> Path:
    path.mkdir(parents=True)
    metrics = {
        "protocol": protocol, "modalities": modalities, "mil": mil, "fusion": fusion, "preset": "tiny",
        "protocol_label": "paper (leaky: windows of one trial in train and test)" if protocol == "paper" else protocol,
        "num_folds": 2, "mean_test_accuracy": accuracy, "std_test_accuracy": 0.05, "mean_test_macro_f1": accuracy - 0.1,
        "std_test_macro_f1": 0.02, "mean_test_balanced_accuracy": accuracy, "folds": [],
        "leaky": protocol == "paper",
        "training_data": {"label": "trials with face video" if "face" in modalities else "all trials",
                          "subjects": [1, 2], "trials": 16,
                          "excluded": {"trials": 8 if "face" in modalities else 0}},
    }
    if best_over_epochs is not None:
        metrics["mean_best_test_accuracy_over_epochs"] = best_over_epochs
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_report_tabulates_runs_in_protocol_order(tmp_path, capsys):
    runs = tmp_path / "runs"
    _write_run(runs / "b_trial_eeg", "trial", "eeg", 0.61)
    _write_run(runs / "a_loso", "loso", "eeg,face", 0.42)
    _write_run(runs / "c_paper", "paper", "eeg,face", 0.90, best_over_epochs=0.97)
    _write_run(runs / "d_trial_mlp", "trial", "eeg,face", 0.66, fusion="mlp")
    assert cli.main(["-q", "report", str(runs), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "protocol" not in line]
    assert [line.split(" | ")[0] for line in lines] == [
        "| paper (leaky: windows of one trial in train and test)", "| trial", "| trial", "| loso"]
    paper, trial_eeg, trial_mlp, _ = lines
    assert "LEAKY 90.0 ± 5.0 %" in paper and "LEAKY 97.0 %" in paper and "LEAKY" not in trial_eeg
    assert "| eeg | — | — |" in trial_eeg  # MIL and fusion do not apply without faces
    assert "| mlp |" in trial_mlp and trial_mlp.split(" | ")[9] == "—"  # best-over-epochs only for paper
    assert "runs/c_paper" in paper
    assert "trials with face video: 2 subjects, 16 trials (8 without face video left out)" in paper
    assert "| all trials: 2 subjects, 16 trials |" in trial_eeg
    page = (tmp_path / "report.html").read_text()
    assert page.count("<tr>") == 5 and "leaky" in page
    assert "| trial |" in capsys.readouterr().out


def test_report_names_a_folder_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no metrics.json"):
        find_runs([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{}")
    with pytest.raises(DataError, match="not a milmer-train metrics file"):
        find_runs([tmp_path / "bad"])
