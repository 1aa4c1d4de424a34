"""`milmer-train calibrate`: checked inputs -> windows -> held-out split -> adapted model -> decision -> files.

Nothing is written until the decision is made: the report (`STEM.report.json`, `STEM.report.md`)
always, the checkpoint (`STEM.safetensors` + `STEM.json`) only for "calibrated". A Ctrl-C before
then leaves nothing behind, nor does a stage before training that cannot end within --max-minutes
(`budget`); training cut short by it says so in the report.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.errors import DataError
from training.calibration.adapt import AdaptConfig, adapt, embed_crops, predict
from training.calibration.budget import TimeBudget
from training.calibration.inputs import MIN_RATED_TRIALS, CalibrationInputs, exclusion_counts
from training.calibration.judge import decide, score
from training.calibration.lineage import base_lineage
from training.calibration.report import write_report
from training.calibration.split import split_trials
from training.calibration.windows import cut_windows

log = logging.getLogger(__name__)

Say = Callable[[str], None]

# The method chosen by measurement (README, "`milmer-train calibrate`"): the head alone trains, on CLS outputs
# computed once; a class never rated is in the softmax only as a wrong answer.
DEFAULT_METHOD = AdaptConfig()


@dataclass(frozen=True)
class CalibrateOptions:
    out: Path
    test_trials: int = 8
    max_minutes: float = 10.0
    seed: int = 0
    refit: bool = False
    hop_s: float = 1.5
    device: str = "cpu"
    method: AdaptConfig = DEFAULT_METHOD
    started: float | None = None    # time.monotonic() when the command began: --max-minutes counts from it


def calibrate(inputs: CalibrationInputs, options: CalibrateOptions, say: Say) -> dict:
    """Run the whole calibration; returns the report (also written to disk)."""
    from models.checkpoint import checkpoint_paths, file_sha256, load_checkpoint, save_checkpoint

    started = time.monotonic()
    budget = TimeBudget(options.max_minutes, options.started if options.started is not None else started)
    stages: dict[str, float] = {}
    lap = [started]

    def stage(name: str) -> None:
        now = time.monotonic()
        stages[name] = round(now - lap[0], 1)
        lap[0] = now

    base = load_checkpoint(inputs.base, device=options.device)
    base_tensors, _ = checkpoint_paths(inputs.base)
    base_sha = file_sha256(base_tensors)
    model = base.model
    classes = base.config.num_classes
    names = tuple(base.contract.class_names)

    stage("load base checkpoint")
    windows = cut_windows(inputs, options.hop_s, progress=say, faces=base.config.uses_face, budget=budget)
    stage("windows: EEG transform, face detection and cropping")
    usable = windows.trials
    if len(usable) < MIN_RATED_TRIALS:
        raise DataError(f"{len(usable)} rated trial(s) with usable EEG, at least {MIN_RATED_TRIALS} needed "
                        f"(left out: {exclusion_counts(inputs.trials)})")
    split = split_trials(usable, options.test_trials)
    if split.note:
        say(split.note)
    say(f"{len(split.train)} training trial(s), {len(split.test)} held-out test trial(s): "
        + ", ".join(t.uid for t in split.test))
    say(f"embedding {len(windows.crops)} face crop(s) once with the frozen backbone")
    tokens = embed_crops(model, windows.crops, budget)
    stage("face backbone, once per crop")
    train_pos, test_pos = windows.of_trials(split.train), windows.of_trials(split.test)
    test_labels = [int(t.label) for t in split.test]
    rated = sorted({int(t.label) for t in usable})
    absent = [names[c] for c in range(classes) if c not in rated]
    train_rated = sorted({int(t.label) for t in split.train})

    budget.check("scoring the base model and adapting it")
    base_score = score(predict(model, tokens, windows, test_pos), windows.labels[test_pos],
                       windows.trial_of[test_pos], classes)
    method = replace(options.method, seed=options.seed)
    say(f"adapting ({method.trainable}, {method.steps} steps, lr {method.lr:g}, L2-SP {method.l2sp:g}) on "
        f"{len(train_pos)} windows of {len(split.train)} trials")

    def epoch_done(epoch: int, total: int, loss: float) -> None:
        say(f"epoch {epoch}/{total}  loss {loss:.4f}  ({time.monotonic() - started:.0f} s)")

    result = adapt(model, tokens, windows, train_pos, method, budget.deadline, epoch_done)
    stage("base scoring and adaptation")
    calibrated_score = score(predict(result.model, tokens, windows, test_pos), windows.labels[test_pos],
                             windows.trial_of[test_pos], classes)
    decision = decide(base_score, calibrated_score, test_labels, len(rated), names)
    if result.stopped_early:
        decision.reasons.append(result.stopped_early)
    final, refit = result, False
    if decision.decision == "calibrated" and options.refit:
        say("refitting on all usable trials (train + test) with the same method")
        refitted = adapt(model, tokens, windows, np.concatenate([train_pos, test_pos]), method, budget.deadline,
                         epoch_done)
        if refitted.stopped_early:   # a refit cut short is not the better model: keep the one the figures describe
            decision.reasons.append(f"refit on all trials not kept: {refitted.stopped_early}; the written model is "
                                    "the one the held-out figures describe")
        else:
            final, refit = refitted, True
    stage("calibrated scoring" + (" and refit" if refit else ""))
    seconds = time.monotonic() - started
    report = {
        "decision": decision.decision,
        "reasons": decision.reasons,
        "base": {"checkpoint": inputs.base_label, "name": inputs.base.name, "sha256": base_sha,
                 "preset": str(base.config.preset)},
        "recordings": [r.folder.name for r in inputs.recordings],
        "class_names": list(names),
        "held_out": {"base": base_score.to_dict(), "calibrated": calibrated_score.to_dict()},
        "chance": {"test_trials": len(split.test), "rated_classes": decision.chance_classes,
                   "trials_needed_p05": decision.chance_trials,
                   "accuracy_needed_p05": decision.chance_trials / max(1, len(split.test)),
                   "majority_class_baseline": decision.majority_baseline},
        "trials": {
            "marked": len(inputs.trials), "used": len(usable), "train": [t.uid for t in split.train],
            "test": [t.uid for t in split.test], "test_labels": [names[c] for c in test_labels],
            "held_out_note": split.note,
            "excluded": [{"trial": t.uid, "reason": t.exclusion} for t in inputs.trials if t.exclusion],
            "excluded_counts": exclusion_counts(inputs.trials),
            "per_class": {names[c]: sum(t.label == c for t in usable) for c in range(classes)},
        },
        "never_rated": absent,
        "never_rated_handling": (f"{', '.join(absent)} never rated: " + (
            "nothing trains toward it; it stays in the softmax only as a wrong answer, so the calibrated model "
            "learns that this person's calibration windows are not it (it will rarely predict it), and its "
            "held-out accuracy is unknown" if method.absent == "negative" else
            "the loss covers only the rated classes, so nothing trains toward it; its head row keeps the base "
            "model's weights, and its held-out accuracy is unknown") if absent else None),
        "train_classes_missing": [names[c] for c in rated if c not in train_rated],
        "method": {**method.to_dict(), "face_backbone": "frozen; each face crop embedded once",
                   "hop_s": options.hop_s, "trained_parameters": result.trained_parameters,
                   "epochs_run": result.epochs_run, "epochs": result.epochs, "stopped_early": result.stopped_early},
        "refit_on_all_trials": refit,
        "warnings": inputs.problems,
        "seconds": round(seconds, 1),
        "max_minutes": options.max_minutes,
        "seconds_by_stage": stages,
        "sizes": {"windows": int(len(windows.labels)), "frames_searched": windows.frames_searched,
                  "face_crops": int(len(windows.crops))},
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if decision.decision == "calibrated":
        provenance = {
            "dataset": f"calibration: {', '.join(report['recordings'])}",
            "protocol": "calibration",
            "calibration": {**{key: report[key] for key in ("recordings", "trials", "method", "held_out", "chance",
                                                             "decision", "reasons", "refit_on_all_trials",
                                                             "never_rated", "created_utc")},
                            # The base's DEAP test split travels along: evaluate scores the calibrated model on it.
                            "base": {**report["base"], "provenance": base_lineage(base.provenance)}},
            "seed": options.seed,
        }
        paths = save_checkpoint(options.out, final.model, base.contract, provenance)
        report["checkpoint"] = [p.name for p in paths]
    write_report(options.out, report)
    return report
