"""milmer-train report: one table (protocol x modality x MIL x fusion) over run directories."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from training.report import find_runs, write_report

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run directories, or folders holding run directories (e.g. an ablate --out)")
    parser.add_argument("--out", metavar="DIR", default=".", help="where report.md and report.html go (default .)")


def run(args: argparse.Namespace) -> int:
    runs = find_runs([Path(path) for path in args.runs])
    markdown, page = write_report(runs, Path(args.out))
    log.info("tabulated %d run(s): %s, %s", len(runs), markdown, page)
    print(markdown.read_text(encoding="utf-8"))
    return 0
