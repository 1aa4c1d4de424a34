"""Subcommands of the command-line tools, each in its own module.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its
top-level imports light (argparse level): heavy libraries are imported inside ``run`` so that
``--help`` starts at once.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    name: str
    module: str
    help: str


def add_subcommands(parser: argparse.ArgumentParser, commands: list[Subcommand]) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        module = importlib.import_module(command.module)
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, except that an unknown option is reported by the (sub)command it was given to, with the
    usage of that command and the nearest known option (argparse's own error names neither)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = getattr(args, "_parser", parser)
        owner.error(unknown_arguments_message(owner, unknown))
    return args


def unknown_arguments_message(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> str:
    known = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    message = f"unrecognized arguments: {' '.join(unknown)}"
    for word in unknown:
        if not word.startswith("-"):
            continue
        close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]}?)"
            break
    return message


def dispatch(args: argparse.Namespace) -> int:
    return int(args._run(args) or 0)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def verbosity(args: argparse.Namespace) -> int:
    return -1 if args.quiet else args.verbose
