"""A small registry of lazily imported subcommands, shared by both command-line tools.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. The CLI lists every subcommand in ``--help`` even before its
module exists; invoking one that is not built yet exits non-zero saying so.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType

from models.errors import NotBuiltError


@dataclass(frozen=True)
class Subcommand:
    name: str
    module: str
    help: str


def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def add_subcommands(parser: argparse.ArgumentParser, commands: list[Subcommand]) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        module = _import(command.module)
        built = module is not None and hasattr(module, "run")
        help_text = command.help if built else f"{command.help} (not built yet)"
        p = sub.add_parser(command.name, help=help_text, description=command.help)
        if built and hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(_command=command, _run=module.run if built else None)


def dispatch(args: argparse.Namespace) -> int:
    run = getattr(args, "_run", None)
    command: Subcommand = args._command
    if run is None:
        raise NotBuiltError(f"'{command.name}' is not built yet in this version")
    return int(run(args) or 0)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def verbosity(args: argparse.Namespace) -> int:
    return -1 if args.quiet else args.verbose
