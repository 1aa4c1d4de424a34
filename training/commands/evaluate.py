"""milmer-train evaluate: a checkpoint's accuracy, macro-F1 and confusion on DEAP-layout data.

The data is windowed and cropped as the checkpoint's input contract says. Only the windows the
checkpoint neither trained nor validated on count: the test split that `train` stored with it
(its test trials; for the leaky paper protocol its test windows, reported as leaky). --all-windows
scores every window of the selected subjects instead, training windows included, and says so.
A checkpoint made by `calibrate` trained on no DEAP data beyond its base's training windows: it is
scored on the test split of its base (copied into its provenance), or refused with a line that
says where its own held-out figures are.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models import strict_json
from models.errors import DataError
from training.calibration.lineage import calibration_of, tested_provenance
from training.commands.train import int_list
from training.preflight import check_checkpoint, check_deap_folder, check_positive

log = logging.getLogger(__name__)

ALL_WINDOWS_LABEL = "all windows (may include windows the checkpoint trained or validated on)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="NAME(.safetensors) with NAME.json beside it")
    parser.add_argument("--deap", required=True, metavar="DIR", help="DEAP-layout folder")
    parser.add_argument("--cache", metavar="DIR",
                        help="prepared-window cache folder (default ~/.cache/milmer/prepared)")
    parser.add_argument("--subjects", metavar="LIST", type=int_list, help="only these subjects, e.g. 1,2,5")
    parser.add_argument("--all-windows", action="store_true",
                        help="score every window of the data, not only the checkpoint's test split (the figure then "
                             "includes windows it trained on; use it for data the checkpoint never saw)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prepare-workers", type=int, default=1)
    parser.add_argument("--freeze-backbone", action="store_true",
                        help="score through the face backbone's cached frame features (float16, computed once "
                             "under --cache), as training with --freeze-backbone did; the default for a "
                             "checkpoint whose face backbone was frozen")
    parser.add_argument("--out", metavar="FILE", help="also write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    check_checkpoint(args.checkpoint)
    check_deap_folder(args.deap)
    check_positive(args.batch_size, "--batch-size")
    import numpy as np

    from models.checkpoint import load_checkpoint
    from models.config import FROZEN_BACKBONE_LABEL as FROZEN_LABEL
    from models.device import resolve_device
    from models.pipeline.labels import LabelRule
    from training.embeddings import FrozenBackboneNetwork, ensure_features
    from training.evaluation import evaluate_windows
    from training.run_data import face_trial_subset, open_windows

    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device=device)
    contract = checkpoint.contract
    calibration = calibration_of(checkpoint.provenance)
    # A calibrated checkpoint never trained on DEAP data beyond its base's training windows: its base's test split.
    provenance = tested_provenance(checkpoint.provenance)
    split = provenance.get("split")
    if not args.all_windows and not (isinstance(split, dict) and split.get("test")):
        if calibration is not None:
            raise DataError(_calibrated_without_split(args.checkpoint, calibration),
                            hint="--all-windows scores it on every window of the DEAP data (windows its base "
                                 "trained on included)")
        raise DataError(f"{args.checkpoint}: the checkpoint does not record which windows it was tested on, so "
                        "evaluate cannot keep its training windows out",
                        hint="retrain it with this version, or pass --all-windows for data it never saw")
    rule = LabelRule.from_dict(contract.label_rule)
    data = open_windows(args.deap, args.cache, contract, rule, args.subjects, workers=args.prepare_workers)
    leaky = False
    if args.all_windows:
        if checkpoint.config.uses_face:
            training_data = provenance.get("training_data") or {}
            data = face_trial_subset(data, include_faceless=not training_data.get("face_trials_only", True))
        positions = np.arange(len(data))
        scope = ALL_WINDOWS_LABEL
        log.warning("--all-windows: the figure counts every window, including any the checkpoint trained on")
    else:
        positions = data.positions_of_split(split)
        leaky = bool(split.get("leaky"))
        scope = ("test windows of the paper protocol (LEAKY: the other windows of their trials were trained on)"
                 if leaky else f"test trials of {provenance.get('fold_name') or 'its fold'}")
        if calibration is not None:
            scope += (f" of its base checkpoint {_base_name(calibration)}; a calibrated checkpoint, never trained "
                      "on them: its held-out figures on its own person are in its calibration report")
        if len(positions) == 0:
            raise DataError(f"{args.deap}: none of the checkpoint's {len(split['test'])} test {split.get('unit')} "
                            "are in this data", hint="pass the data it was trained on, or --all-windows")
        if len(positions) < len(split["test"]) and split.get("unit") == "windows":
            log.warning("%d of the checkpoint's %d test windows are in this data", len(positions), len(split["test"]))
    model, dataset = checkpoint.model, data.dataset
    frozen = checkpoint.config.uses_face and (args.freeze_backbone or provenance.get("face_backbone") == FROZEN_LABEL)
    if frozen:
        store = ensure_features(model, dataset.cache, dataset.subjects())
        model, dataset = FrozenBackboneNetwork(model), dataset.with_frame_features(store)
        scope += f", {FROZEN_LABEL}: cached frame features"
    metrics = evaluate_windows(model, checkpoint.config, dataset, positions, device, args.batch_size)
    print(f"{args.checkpoint}: {metrics.count} windows ({scope})")
    prefix = "LEAKY " if leaky else ""
    print(f"{prefix}accuracy {metrics.accuracy:.4f}  macro-F1 {metrics.macro_f1:.4f}  "
          f"balanced accuracy {metrics.balanced_accuracy:.4f}  loss {metrics.loss:.4f}")
    names = list(contract.class_names)
    width = max(len(name) for name in names)
    print("confusion (rows true, columns predicted): " + " ".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, metrics.confusion):
        print(f"  {name:>{width}} " + " ".join(f"{count:>{width}d}" for count in row))
    if args.out:
        document = {"checkpoint": str(args.checkpoint), "deap": str(args.deap), "scope": scope, "leaky": leaky,
                    "all_windows": bool(args.all_windows), "protocol": provenance.get("protocol"),
                    "calibrated_from": None if calibration is None else _base_name(calibration),
                    "trials": data.trials_of(positions), **metrics.to_dict(), "class_names": names,
                    "face_backbone": FROZEN_LABEL if frozen else provenance.get("face_backbone")}
        strict_json.write_atomic(Path(args.out), document)
    return 0


def _base_name(calibration: dict) -> str:
    base = calibration.get("base") if isinstance(calibration.get("base"), dict) else {}
    return str(base.get("checkpoint") or base.get("name") or "(unnamed)")


def _calibrated_without_split(checkpoint: str, calibration: dict) -> str:
    from models.checkpoint import checkpoint_paths

    report = checkpoint_paths(checkpoint)[1].with_suffix(".report.json")
    recordings = calibration.get("recordings")
    person = f" on {', '.join(map(str, recordings))}" if isinstance(recordings, list) and recordings else ""
    return (f"{checkpoint}: a calibrated checkpoint (base {_base_name(calibration)}, calibrated{person}) whose base "
            "recorded no DEAP test split, so evaluate cannot keep out the DEAP windows the base trained on; its "
            f"held-out figures on its person's own trials are in its provenance and in {report.name}")
