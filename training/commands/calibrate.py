"""milmer-train calibrate: adapt a base checkpoint to one person from their calibration recordings.

Recordings, markers, ratings and channels are checked before torch is imported: unusable input
exits 2 with one line in well under a second. The report is always written; the checkpoint only
when the calibrated model beats both the base model and chance on held-out trials.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from models.errors import DataError

log = logging.getLogger(__name__)


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recording", required=True, nargs="+", metavar="DIR",
                        help="calibration recording folder(s) with the calibration protocol's markers")
    parser.add_argument("--checkpoint", required=True, metavar="BASE|demo", help="the base checkpoint to adapt")
    parser.add_argument("--out", required=True, metavar="STEM",
                        help="writes STEM.report.json and STEM.report.md, and STEM.safetensors + STEM.json "
                             "when the calibrated model is kept")
    parser.add_argument("--test-trials", type=_positive(int), default=8, metavar="N",
                        help="held-out test trials: the last N in time, spread over the rated classes [8]")
    parser.add_argument("--max-minutes", type=_positive(float), default=10.0, metavar="M",
                        help="time budget for the whole run [10]: face detection and the face backbone stop it, "
                             "exit 2 with nothing written, as soon as their pace shows they cannot end in time; "
                             "training stops early at the end of the epoch that passes it (the report says so)")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument("--refit", action="store_true",
                        help="after a 'calibrated' decision, train the written model again on all trials "
                             "(test trials included)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()   # --max-minutes bounds the whole run, loading torch and the base included
    from training.calibration.inputs import check_inputs, exclusion_counts

    out = Path(args.out)
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    inputs = check_inputs(args.recording, args.checkpoint)   # no torch yet: bad input ends here, in seconds
    for problem in inputs.problems:
        log.warning("%s", problem)
    excluded = exclusion_counts(inputs.trials)
    print(f"{len(inputs.trials)} calibration trial(s) marked, {len(inputs.usable)} rated and usable"
          + (f"; left out: {', '.join(f'{n} {why}' for why, n in excluded.items())}" if excluded else ""),
          flush=True)

    from training.calibration.run import CalibrateOptions, calibrate
    from training.threads import configure_cpu_threads

    configure_cpu_threads(0)
    options = CalibrateOptions(out=out, test_trials=args.test_trials, max_minutes=args.max_minutes,
                               seed=args.seed, refit=args.refit, device=args.device, started=started)
    report = calibrate(inputs, options, lambda text: print(text, file=sys.stderr, flush=True))
    held = report["held_out"]
    chance = report["chance"]
    print(f"held-out trials right: base {held['base']['trials_correct']}/{chance['test_trials']}, "
          f"calibrated {held['calibrated']['trials_correct']}/{chance['test_trials']} "
          f"(chance p<0.05 needs {chance['trials_needed_p05']})")
    print(f"decision: {report['decision']}: " + "; ".join(report["reasons"]))
    written = [f"{out}.report.json", f"{out}.report.md"] + [str(out.with_name(n)) for n in report.get("checkpoint", [])]
    print("wrote " + ", ".join(written))
    return 0
