"""milmer-train: prepare DEAP, train and evaluate Milmer, report results."""

from __future__ import annotations

import argparse
import sys

from models.commands import Subcommand, add_subcommands, add_verbosity, dispatch, parse_arguments, verbosity
from models.console import package_version, run_cli, setup_logging
from training.threads import prefer_passive_waiting

COMMANDS = [
    Subcommand("synth", "training.commands.synth", "write a small synthetic dataset in the DEAP layout"),
    Subcommand("prepare", "training.commands.prepare", "window DEAP, crop faces and write a cache"),
    Subcommand("train", "training.commands.train", "train Milmer under a protocol (paper, trial, loso)"),
    Subcommand("calibrate", "training.commands.calibrate",
               "adapt a checkpoint to one person from their calibration recordings"),
    Subcommand("evaluate", "training.commands.evaluate", "evaluate a checkpoint on DEAP"),
    Subcommand("report", "training.commands.report", "tabulate run directories as Markdown and HTML"),
    Subcommand("ablate", "training.commands.ablate", "run the paper's ablation grid and report it"),
    Subcommand("convert-backbone", "training.commands.convert_backbone",
               "convert a Hugging Face or timm Swin-T checkpoint to timm safetensors"),
    Subcommand("finetune-face", "training.commands.finetune_face",
               "fine-tune the Swin face backbone on an image-folder expression dataset"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milmer-train", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    add_verbosity(parser)
    add_subcommands(parser, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_waiting()  # before any command imports torch
    parser = build_parser()
    args = parse_arguments(parser, argv)
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging(verbosity(args))
    return run_cli(lambda: dispatch(args), "milmer-train")


if __name__ == "__main__":
    sys.exit(main())
