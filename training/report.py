"""Tabulate run directories (metrics.json + config.json) as Markdown and HTML, standard library only."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import atomic
from models.config import FROZEN_BACKBONE_LABEL as FROZEN_LABEL
from models.errors import DataError

PROTOCOL_ORDER = {"paper": 0, "trial": 1, "loso": 2}
COLUMNS = ("protocol", "modalities", "MIL", "fusion", "preset", "folds", "test accuracy", "test macro-F1",
           "test balanced accuracy", "best test accuracy over epochs", "training data", "run")
SELECTION_NOTE = ("Test figures are mean ± sample standard deviation over folds; each fold's model is chosen on "
                  "its validation split and its test split is evaluated once.")
LEAKY_NOTE = (
    "The paper protocol is leaky: windows of one trial land in both train and test, so its figures (marked "
    "LEAKY) overstate how the model does on unseen trials or people. It trains on all of each subject's 80 % "
    "without validation; its test accuracy is the last epoch's, and its 'best test accuracy over epochs' picks "
    "the epoch on the test split itself, which is how the published figure was made; neither is an estimate "
    "of accuracy.")
FACE_TRIALS_NOTE = ("Face models train and test on the trials with face video only (DEAP: s01-s22) unless the "
                    "training data column says otherwise; EEG-only rows use every trial.")
FROZEN_NOTE = ("A preset marked 'face backbone frozen' kept the face backbone's weights fixed and trained only the "
               "layers after it (a cheaper protocol variant); the published model fine-tunes the backbone.")
SYNTHETIC_NOTE = ("Runs marked synthetic trained and tested on data written by milmer-train synth (class cues "
                  "planted on purpose): their figures test the software, not emotion recognition.")


def notes_for(runs: list[RunSummary]) -> list[str]:
    """Only the notes that apply to the runs tabulated."""
    notes = []
    if any(not run.leaky for run in runs):
        notes.append(SELECTION_NOTE)
    if any(run.leaky for run in runs):
        notes.append(LEAKY_NOTE)
    if any(run.uses_face and not run.synthetic for run in runs):
        notes.append(FACE_TRIALS_NOTE)
    if any(run.frozen for run in runs):
        notes.append(FROZEN_NOTE)
    if any(run.synthetic for run in runs):
        notes.append(SYNTHETIC_NOTE)
    return notes


@dataclass(frozen=True)
class RunSummary:
    path: Path
    metrics: dict[str, Any]

    @property
    def sort_key(self) -> tuple:
        m = self.metrics
        return (PROTOCOL_ORDER.get(m.get("protocol"), 9), m.get("modalities", ""), m.get("mil", ""),
                m.get("fusion", ""), str(self.path))

    @property
    def frozen(self) -> bool:
        """Its face backbone was frozen: a protocol variant, not the published fine-tuned model."""
        return self.metrics.get("face_backbone") == FROZEN_LABEL

    @property
    def leaky(self) -> bool:
        return bool(self.metrics.get("leaky", self.metrics.get("protocol") == "paper"))

    @property
    def uses_face(self) -> bool:
        return "face" in str(self.metrics.get("modalities", "face"))

    @property
    def synthetic(self) -> bool:
        dataset = self.metrics.get("dataset")
        return isinstance(dataset, dict) and bool(dataset.get("synthetic"))

    def shown_path(self, relative_to: Path | None = None) -> Path:
        try:
            return self.path.resolve().relative_to(relative_to.resolve()) if relative_to else self.path
        except ValueError:
            return self.path

    def plots(self, relative_to: Path | None = None) -> list[tuple[str, Path]]:
        """(caption, path as shown) of the run's figures that exist: learning curves, each fold's confusion."""
        found = [("learning curves", self.path / "learning_curves.png")]
        found += [(f"fold {fold.get('fold')} test confusion", self.path / f"fold_{fold.get('fold')}" / "confusion.png")
                  for fold in self.metrics.get("folds", []) if isinstance(fold, dict)]
        return [(caption, _relative(path, relative_to)) for caption, path in found if path.is_file()]

    def fold_rows(self) -> list[list[str]]:
        """Per fold: fold, name, best (or, for the paper protocol, last) epoch numbered from 1, test figures."""
        mark = "LEAKY " if self.leaky else ""
        return [[str(fold.get("fold", "?")), str(fold.get("name", "?")), str(fold.get("best_epoch", "?")),
                 mark + _percent(fold.get("test_accuracy")), mark + _percent(fold.get("test_macro_f1"))]
                for fold in self.metrics.get("folds", []) if isinstance(fold, dict)]

    def cells(self, relative_to: Path | None = None) -> list[str]:
        m = self.metrics
        best = m.get("mean_best_test_accuracy_over_epochs")
        face_used = self.uses_face
        mark = "LEAKY " if self.leaky else ""
        shown_path = self.shown_path(relative_to)
        return [
            str(m.get("protocol_label", m.get("protocol", "?"))),
            str(m.get("modalities", "?")),
            str(m.get("mil", "?")) if face_used else "—",
            str(m.get("fusion", "?")) if face_used else "—",
            str(m.get("preset", "?")) + (f", {FROZEN_LABEL}" if self.frozen else ""),
            str(m.get("num_folds", len(m.get("folds", [])))),
            mark + _mean_std(m.get("mean_test_accuracy"), m.get("std_test_accuracy")),
            mark + _mean_std(m.get("mean_test_macro_f1"), m.get("std_test_macro_f1")),
            mark + _percent(m.get("mean_test_balanced_accuracy")),
            mark + _percent(best) if best is not None else "—",
            ("synthetic " if self.synthetic else "") + _training_data(m.get("training_data")),
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


def _relative(path: Path, relative_to: Path | None) -> Path:
    try:
        return path.resolve().relative_to(relative_to.resolve()) if relative_to else path
    except ValueError:
        return path.resolve()


FOLD_COLUMNS = ("fold", "name", "best epoch", "test accuracy", "test macro-F1")


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
    lines += [""] + [f"- {note}" for note in notes_for(runs)] + [""]
    for run in runs:
        lines += [f"## {run.shown_path(relative_to)}", ""]
        rows = run.fold_rows()
        if rows:
            lines += ["| " + " | ".join(FOLD_COLUMNS) + " |", "|" + "---|" * len(FOLD_COLUMNS)]
            lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows] + [""]
        lines += [f"![{caption}]({path.as_posix()})" for caption, path in run.plots(relative_to)] + [""]
    return "\n".join(lines)


def html_table(runs: list[RunSummary], relative_to: Path | None = None) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in run.cells(relative_to)) + "</tr>"
        for run in runs)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in notes_for(runs))
    sections = "\n".join(_html_run_section(run, relative_to) for run in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>milmer-train report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; text-align: left; }}
th {{ background: #eee; }}
img {{ max-width: 100%; }}
</style></head>
<body><h1>milmer-train report</h1>
<table><thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
<ul>{notes}</ul>
{sections}
</body></html>
"""


def _html_run_section(run: RunSummary, relative_to: Path | None) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in FOLD_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in run.fold_rows())
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" if rows else ""
    figures = "".join(f'<figure><img src="{html.escape(path.as_posix())}" alt="{html.escape(caption)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                      for caption, path in run.plots(relative_to))
    return f"<h2>{html.escape(str(run.shown_path(relative_to)))}</h2>{table}{figures}"


def write_report(runs: list[RunSummary], out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``out_dir``; run paths are shown relative to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    atomic.write_text(markdown, markdown_table(runs, out_dir))
    atomic.write_text(page, html_table(runs, out_dir))
    return markdown, page
