"""milmer-train prepare: window DEAP, crop faces and write a cache keyed by data + parameters."""

from __future__ import annotations

import argparse
import logging
import os

from models.contract import GENEVA_CHANNELS
from training.preflight import check_deap_folder, check_positive

log = logging.getLogger(__name__)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v.strip().lstrip("sS")) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated subject numbers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deap", required=True, metavar="DIR",
                        help="DEAP folder (data_preprocessed_python/, metadata_csv/, face_video/)")
    parser.add_argument("--cache", required=True, metavar="DIR", help="cache root; the cache goes to DIR/<key>/")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes for EEG and face work (default: all cores)")
    parser.add_argument("--subjects", type=_int_list, metavar="LIST", help="only these subjects, e.g. 1,2,3")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad subject or video")
    parser.add_argument("--face-size", type=int, default=224, metavar="PX", help="face crop size (model image_size)")
    parser.add_argument("--expand", type=float, default=0.10, help="face box expansion on each side")
    parser.add_argument("--instances", type=int, default=10, metavar="N", help="face frames per window")
    parser.add_argument("--window", type=float, default=3.0, metavar="S", help="window length in seconds")
    parser.add_argument("--hop", type=float, default=3.0, metavar="S", help="seconds between window starts")
    parser.add_argument("--max-windows", type=int, metavar="N", help="at most N windows per trial (DEAP: 20 fit)")
    parser.add_argument("--channels", metavar="LIST", help="EEG channels by name, comma-separated (default: all 32)")
    parser.add_argument("--video-offset", type=float, default=0.0, metavar="S",
                        help="trial time (s, baseline included) of a video's first frame")


def run(args: argparse.Namespace) -> int:
    check_deap_folder(args.deap)
    check_positive(args.workers, "--workers")
    check_positive(args.instances, "--instances")
    check_positive(args.face_size, "--face-size")
    # numpy/OpenCV/tqdm load only once the paths are checked, so that a typo is reported at once.
    from training.prepare import FaceSpec, PrepareConfig, prepare_cache
    from training.windows import WindowSpec

    channels = tuple(c.strip() for c in args.channels.split(",")) if args.channels else GENEVA_CHANNELS
    config = PrepareConfig(
        window=WindowSpec(window_s=args.window, hop_s=args.hop, num_instances=args.instances, channels=channels,
                          max_windows=args.max_windows, video_offset_s=args.video_offset),
        face=FaceSpec(size=args.face_size, expand=args.expand),
        subjects=args.subjects, workers=args.workers, strict=args.strict)
    result = prepare_cache(args.deap, args.cache, config)
    print(result.cache)
    return 0
