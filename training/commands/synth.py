"""milmer-train synth: write a small synthetic dataset in the DEAP layout."""

from __future__ import annotations

import argparse
import logging

from models.errors import DataError

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (DEAP layout)")
    parser.add_argument("--subjects", type=int, default=2, metavar="N")
    parser.add_argument("--trials", type=int, default=8, metavar="M", help="trials per subject (4 classes, balanced)")
    parser.add_argument("--seconds", type=float, default=12.0, metavar="S",
                        help="seconds per trial after the 3 s baseline (60 = DEAP's real length)")
    parser.add_argument("--strength", type=float, default=1.0, metavar="X", help="strength of the planted class cues")
    parser.add_argument("--seed", type=int, default=0, metavar="K")
    parser.add_argument("--video-size", type=_size, default=(360, 288), metavar="WxH", help="DEAP's is 720x576")
    parser.add_argument("--fps", type=float, default=10.0, help="video frame rate (DEAP's is 50)")
    parser.add_argument("--mat", action="store_true", help="also write data_preprocessed_matlab/sXX.mat")
    parser.add_argument("--video-subjects", type=int, metavar="N",
                        help="only subjects 1..N get face video (DEAP: 22)")


def run(args: argparse.Namespace) -> int:
    from training.synth import write_synthetic_deap  # numpy/OpenCV: only when the command runs

    if args.video_subjects is not None and args.video_subjects < 0:
        raise DataError("--video-subjects must be 0 or more")
    dataset = write_synthetic_deap(args.out, subjects=args.subjects, trials=args.trials, seconds=args.seconds,
                                   strength=args.strength, seed=args.seed, video_size=args.video_size, fps=args.fps,
                                   write_mat=args.mat, video_subjects=args.video_subjects)
    print(f"wrote {len(dataset.trials)} synthetic trial(s) to {dataset.root}")
    return 0
