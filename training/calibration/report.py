"""STEM.report.json and STEM.report.md: the decision, both models' held-out figures, the trials."""

from __future__ import annotations

from pathlib import Path

from models import atomic, strict_json


def report_paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".report.json"), stem.with_name(stem.name + ".report.md")


def _figure(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict) -> str:
    names = report["class_names"]
    held = report["held_out"]
    chance = report["chance"]
    trials = report["trials"]
    lines = [f"# Calibration: {report['decision']}", ""]
    lines += [f"- {reason}" for reason in report["reasons"]]
    lines += ["", f"Base checkpoint: {report['base']['checkpoint']} ({report['base']['preset']} preset, "
              f"SHA-256 {report['base']['sha256']}). Recordings: {', '.join(report['recordings'])}.", ""]
    lines += ["## Held-out test trials", "",
              f"{chance['test_trials']} trials ({', '.join(trials['test'])}), never used for training or model "
              "selection. The trial's prediction is the majority vote of its windows.", "",
              "| | base | calibrated |", "| --- | --- | --- |"]
    rows = [("trials right (majority vote)", "trials_correct"), ("trial accuracy", "trial_majority_vote_accuracy"),
            ("window accuracy", "accuracy"), ("window balanced accuracy", "balanced_accuracy"),
            ("window macro-F1", "macro_f1"), ("windows", "windows")]
    for label, key in rows:
        lines.append(f"| {label} | {_figure(held['base'][key])} | {_figure(held['calibrated'][key])} |")
    lines += ["", f"Chance: {chance['trials_needed_p05']} of {chance['test_trials']} trials right is needed for "
              f"p < 0.05 when guessing among {chance['rated_classes']} rated classes (binomial); "
              f"majority-class baseline {chance['majority_class_baseline']:.3f}.", ""]
    if trials.get("held_out_note"):
        lines += [trials["held_out_note"] + ".", ""]
    for which in ("base", "calibrated"):
        lines += [f"Confusion of the {which} model over windows (rows true, columns predicted):", "",
                  "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(names, held[which]["confusion"])]
        lines.append("")
    lines += ["## Trials", "", f"{trials['marked']} marked, {trials['used']} used "
              f"({', '.join(f'{n}: {c}' for n, c in trials['per_class'].items())}); "
              f"{len(trials['train'])} for training.", ""]
    if trials["excluded"]:
        lines += ["Left out:", ""] + [f"- {e['trial']}: {e['reason']}" for e in trials["excluded"]] + [""]
    if report.get("never_rated_handling"):
        lines += [report["never_rated_handling"] + ".", ""]
    method = report["method"]
    lines += ["## Method", "",
              f"Trained: {method['trainable']} ({method['trained_parameters']} parameters), {method['epochs_run']} "
              f"of {method['epochs']} epochs ({method['steps']} steps planned), lr {method['lr']:g}, "
              f"batch {method['batch_size']}, L2-SP {method['l2sp']:g} toward the base weights, "
              f"class weighting {'on' if method['class_weighting'] else 'off'}; "
              f"face backbone {method['face_backbone']}; windows every {method['hop_s']:g} s."
              + (f" {method['stopped_early'][0].upper()}{method['stopped_early'][1:]}." if method.get("stopped_early")
                 else ""),
              "",
              "Written model refit on all trials after the decision: "
              + ("yes (the held-out figures describe the same method trained without the test trials)"
                 if report["refit_on_all_trials"] else "no (it is the model the held-out figures describe)") + ".",
              "", f"Time: {report['seconds']} s"
              + (f" of the {report['max_minutes']:g}-minute budget" if report.get("max_minutes") else "") + " ("
              + ", ".join(f"{name} {seconds} s" for name, seconds in report.get("seconds_by_stage", {}).items())
              + ")."]
    if report.get("checkpoint"):
        lines += ["", f"Checkpoint: {', '.join(report['checkpoint'])}."]
    else:
        lines += ["", "No checkpoint written: keep using the base model."]
    if report.get("warnings"):
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def write_report(stem: Path, report: dict) -> tuple[Path, Path]:
    json_path, md_path = report_paths(stem)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write_atomic(json_path, report)
    atomic.write_text(md_path, render_markdown(report))
    return json_path, md_path
