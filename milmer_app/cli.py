"""milmer-app: live EEG + face emotion recognition, with a window or headless."""

from __future__ import annotations

import argparse
import importlib
import sys

from models.commands import add_verbosity, parse_arguments, verbosity
from models.console import package_version, run_cli, setup_logging


def _spec_epilog() -> str:
    """Every source kind and option, from the source registry (light: no device library is imported)."""
    from milmer_app.sources.registry import help_text

    return help_text("eeg") + "\n\n" + help_text("video") + "\n\n" + help_text("markers")


def _kinds(role: str) -> str:
    from milmer_app.sources.registry import kind_names

    return " | ".join(kind_names(role))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milmer-app", description=__doc__, epilog=_spec_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    add_verbosity(parser)
    parser.add_argument("--demo", action="store_true",
                        help="run the built-in demo: a synthetic subject replayed with its video and the demo model")
    parser.add_argument("--headless", action="store_true", help="run without a window (servers, scripts)")
    parser.add_argument("--eeg", metavar="SPEC", help=f"EEG source KIND[:...], KIND one of {_kinds('eeg')} "
                                                      "(every kind and option: below)")
    parser.add_argument("--video", metavar="SPEC", help=f"video source KIND[:...], KIND one of {_kinds('video')}")
    parser.add_argument("--markers", metavar="SPEC",
                        help="marker stream KIND[:...], e.g. lsl:type=Markers: its markers are recorded with their "
                             "text and drawn on the EEG (experiment software, the calibration protocol)")
    parser.add_argument("--checkpoint", metavar="CKPT", help="model checkpoint (.safetensors + .json) or 'demo'")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="inference device")
    parser.add_argument("--duration", type=float, metavar="S", help="headless: stop after S seconds")
    parser.add_argument("--predictions", metavar="FILE.jsonl", help="write predictions as JSON lines")
    parser.add_argument("--record", metavar="DIR", help="record EEG, frames, markers and predictions to DIR")
    parser.add_argument("--hop", type=float, default=1.0, metavar="S",
                        help="seconds between predictions (of recording time when replaying a file, DEAP or a "
                             "recording)")
    parser.add_argument("--lsl-outlet", metavar="NAME", help="publish predictions as an LSL stream named NAME")
    parser.add_argument("--dump-bags", metavar="DIR",
                        help="write every bag fed to the model (EEG window, face crops, masks, times) "
                             "as DIR/bag-NNNNNN.npz")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay speed for DEAP trials, recordings and EEG files")
    parser.add_argument("--quit-after", type=float, metavar="S", help="window: close cleanly after S seconds")
    parser.add_argument("--export", nargs=2, metavar=("RECORDING", "FILE"),
                        help="export a recording's EEG to FILE (.fif or .edf) and exit")
    return parser


def _delegate(module: str, args: argparse.Namespace) -> int:
    # Imported on demand: the window, the engine and torch are heavy, and --help must start at once.
    return int(importlib.import_module(module).run(args) or 0)


def _checked(args: argparse.Namespace) -> int:
    # Before any heavy import: a typo or a missing file is reported at once, not after torch has loaded.
    from milmer_app.preflight import check_args

    check_args(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(build_parser(), argv)
    setup_logging(verbosity(args))
    if run_cli(lambda: _checked(args), "milmer-app"):
        return 2
    if args.export:
        return run_cli(lambda: _delegate("milmer_app.export", args), "milmer-app")
    if args.headless:
        return run_cli(lambda: _delegate("milmer_app.headless", args), "milmer-app")
    return run_cli(lambda: _delegate("milmer_app.gui.app", args), "milmer-app")


if __name__ == "__main__":
    sys.exit(main())
