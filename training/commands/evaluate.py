"""milmer-train evaluate: a checkpoint's accuracy, macro-F1 and confusion on DEAP-layout data.

The data is windowed and cropped as the checkpoint's input contract says. By default every
window of the selected subjects counts; --run RUN_DIR [--fold K] restricts it to the test
trials that fold of a training run held out (the fold defaults to the checkpoint's own).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from models.errors import DataError
from training.commands.train import int_list

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="NAME(.safetensors) with NAME.json beside it")
    parser.add_argument("--deap", required=True, metavar="DIR", help="DEAP-layout folder")
    parser.add_argument("--cache", metavar="DIR", help="prepared-window cache folder (default ~/.cache/milmer/prepared)")
    parser.add_argument("--subjects", metavar="LIST", type=int_list, help="only these subjects, e.g. 1,2,5")
    parser.add_argument("--run", metavar="RUN_DIR", help="evaluate on the test trials of a training run's fold")
    parser.add_argument("--fold", type=int, metavar="K", help="which fold of --run (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prepare-workers", type=int, default=1)
    parser.add_argument("--out", metavar="FILE", help="also write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from models.checkpoint import load_checkpoint
    from models.device import resolve_device
    from training.evaluation import evaluate_windows
    from models.pipeline.labels import LabelRule
    from training.run_data import open_windows

    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device=device)
    contract = checkpoint.contract
    rule = LabelRule.from_dict(contract.label_rule)
    data = open_windows(args.deap, args.cache, contract, rule, args.subjects, workers=args.prepare_workers)
    positions = np.arange(len(data))
    scope = "all windows"
    if args.run:
        fold = args.fold if args.fold is not None else checkpoint.provenance.get("fold")
        trials = _test_trials(Path(args.run), fold)
        positions = data.positions_of_trials(trials)
        scope = f"test trials of fold {fold} of {args.run}"
        if len(positions) == 0:
            raise DataError(f"{args.deap}: none of the {len(trials)} test trials of fold {fold} are in this data")
    elif args.fold is not None:
        raise DataError("--fold needs --run RUN_DIR (the run whose fold it is)")
    metrics = evaluate_windows(checkpoint.model, checkpoint.config, data.dataset, positions, device, args.batch_size)
    print(f"{args.checkpoint}: {metrics.count} windows ({scope})")
    print(f"accuracy {metrics.accuracy:.4f}  macro-F1 {metrics.macro_f1:.4f}  "
          f"balanced accuracy {metrics.balanced_accuracy:.4f}  loss {metrics.loss:.4f}")
    names = list(contract.class_names)
    width = max(len(name) for name in names)
    print("confusion (rows true, columns predicted): " + " ".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, metrics.confusion):
        print(f"  {name:>{width}} " + " ".join(f"{count:>{width}d}" for count in row))
    if args.out:
        document = {"checkpoint": str(args.checkpoint), "deap": str(args.deap), "scope": scope,
                    "trials": data.trials_of(positions), **metrics.to_dict(), "class_names": names}
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _test_trials(run_dir: Path, fold: int | None) -> list[list[int]]:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DataError(f"{metrics_path}: not found; --run needs a finished training run")
    folds = json.loads(metrics_path.read_text(encoding="utf-8")).get("folds", [])
    if fold is None:
        raise DataError("the checkpoint does not say which fold it belongs to", hint="pass --fold K")
    matching = [entry for entry in folds if entry.get("fold") == fold]
    if not matching:
        raise DataError(f"{metrics_path}: no fold {fold} (folds: {[entry.get('fold') for entry in folds]})")
    return matching[0]["test"]
