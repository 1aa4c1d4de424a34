"""Tabulate run directories (metrics.json + config.json) as Markdown and HTML, standard library only."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import DataError

PROTOCOL_ORDER = {"paper": 0, "trial": 1, "loso": 2}
COLUMNS = ("protocol", "modalities", "MIL", "fusion", "preset", "folds", "test accuracy", "test macro-F1",
           "test balanced accuracy", "best test accuracy over epochs", "training data", "run")
NOTES = (
    "Test figures are mean ± sample standard deviation over folds; each fold's model is chosen on its "
    "validation split and its test split is evaluated once.",
    "The paper protocol is leaky: windows of one trial land in both train and test, so its figures (marked "
    "LEAKY) overstate how the model does on unseen trials or people. It trains on all of each subject's 80 % "
    "without validation; its test accuracy is the last epoch's, and its 'best test accuracy over epochs' picks "
    "the epoch on the test split itself, which is how the published figure was made; neither is an estimate "
    "of accuracy.",
    "Face models train and test on the trials with face video only (DEAP: s01-s22) unless the training data "
    "column says otherwise; EEG-only rows use every trial.",
)


@dataclass(frozen=True)
class RunSummary:
    path: Path
    metrics: dict[str, Any]

    @property
    def sort_key(self) -> tuple:
        m = self.metrics
        return (PROTOCOL_ORDER.get(m.get("protocol"), 9), m.get("modalities", ""), m.get("mil", ""),
                m.get("fusion", ""), str(self.path))

    def cells(self, relative_to: Path | None = None) -> list[str]:
        m = self.metrics
        best = m.get("mean_best_test_accuracy_over_epochs")
        face_used = "face" in str(m.get("modalities", "face"))
        leaky = bool(m.get("leaky", m.get("protocol") == "paper"))
        mark = "LEAKY " if leaky else ""
        try:
            shown_path = self.path.resolve().relative_to(relative_to.resolve()) if relative_to else self.path
        except ValueError:
            shown_path = self.path
        return [
            str(m.get("protocol_label", m.get("protocol", "?"))),
            str(m.get("modalities", "?")),
            str(m.get("mil", "?")) if face_used else "—",
            str(m.get("fusion", "?")) if face_used else "—",
            str(m.get("preset", "?")),
            str(m.get("num_folds", len(m.get("folds", [])))),
            mark + _mean_std(m.get("mean_test_accuracy"), m.get("std_test_accuracy")),
            mark + _mean_std(m.get("mean_test_macro_f1"), m.get("std_test_macro_f1")),
            mark + _percent(m.get("mean_test_balanced_accuracy")),
            mark + _percent(best) if best is not None else "—",
            _training_data(m.get("training_data")),
            str(shown_path),
        ]


def _training_data(record: dict[str, Any] | None) -> str:
    if not isinstance(record, dict):
        return "?"
    text = f"{record.get('label', '?')}: {len(record.get('subjects', []))} subjects, {record.get('trials', '?')} trials"
    excluded = record.get("excluded") or {}
    if excluded.get("trials"):
        text += f" ({excluded['trials']} without face video left out)"
    return text


def _percent(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f} %"


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f} ± {100 * (std or 0.0):.1f} %"


def find_runs(paths: list[Path]) -> list[RunSummary]:
    """Each path is a run directory, or a folder whose immediate subfolders are run directories."""
    runs = []
    for path in paths:
        if (path / "metrics.json").is_file():
            runs.append(read_run(path))
            continue
        children = sorted(child for child in path.glob("*/metrics.json")) if path.is_dir() else []
        if not children:
            raise DataError(f"{path}: no metrics.json here or in its subfolders",
                            hint="pass finished run directories (train writes metrics.json when all folds are done)")
        runs.extend(read_run(child.parent) for child in children)
    return sorted(runs, key=lambda run: run.sort_key)


def read_run(path: Path) -> RunSummary:
    metrics_path = path / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{metrics_path}: unreadable ({exc})") from exc
    if not isinstance(metrics, dict) or "mean_test_accuracy" not in metrics or "protocol" not in metrics:
        raise DataError(f"{metrics_path}: not a milmer-train metrics file (no protocol / mean_test_accuracy)")
    return RunSummary(path=path, metrics=metrics)


def markdown_table(runs: list[RunSummary], relative_to: Path | None = None) -> str:
    lines = ["# milmer-train report", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for run in runs:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in run.cells(relative_to)) + " |")
    lines += [""] + [f"- {note}" for note in NOTES] + [""]
    return "\n".join(lines)


def html_table(runs: list[RunSummary], relative_to: Path | None = None) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in run.cells(relative_to)) + "</tr>"
        for run in runs)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in NOTES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>milmer-train report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; text-align: left; }}
th {{ background: #eee; }}
</style></head>
<body><h1>milmer-train report</h1>
<table><thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
<ul>{notes}</ul>
</body></html>
"""


def write_report(runs: list[RunSummary], out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``out_dir``; run paths are shown relative to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    markdown.write_text(markdown_table(runs, out_dir), encoding="utf-8")
    page.write_text(html_table(runs, out_dir), encoding="utf-8")
    return markdown, page
