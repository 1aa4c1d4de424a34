"""Subcommands of the command-line tools, each in its own module.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its
top-level imports light (argparse level): heavy libraries are imported inside ``run`` so that
``--help`` starts at once.
"""

from __future__ import annotations

import argparse
import importlib
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
        p.set_defaults(_run=module.run)


def dispatch(args: argparse.Namespace) -> int:
    return int(args._run(args) or 0)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def verbosity(args: argparse.Namespace) -> int:
    return -1 if args.quiet else args.verbose
