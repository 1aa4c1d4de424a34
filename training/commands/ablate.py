"""milmer-train ablate: train every variant of the paper's ablation grid and report them side by side.

Each variant is a run directory OUT/<variant>; finished variants are skipped and interrupted
ones resumed, so the command can simply be started again after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from training.ablation import ablation_grid
from training.commands.train import (
    add_config_arguments,
    check_config_paths,
    config_from_args,
    config_of_run,
    estimate,
    train,
)
from training.report import find_runs, write_report
from training.run_dir import RunDir
from training.train_config import ConfigError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", required=True, help="folder for one run directory per variant")
    parser.add_argument("--full-grid", action="store_true",
                        help="every MIL x fusion combination instead of one factor at a time")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated variant names to run (see --list)")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")


def run(args: argparse.Namespace) -> int:
    variants = ablation_grid(full_grid=args.full_grid)
    if args.list:
        for variant in variants:
            print(f"{variant.name}: {variant.model}")
        return 0
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {variant.name for variant in variants}
        if unknown:
            raise ConfigError(f"unknown ablation variants {sorted(unknown)}", hint="see milmer-train ablate --list")
        variants = [variant for variant in variants if variant.name in wanted]
    if any(getattr(args, key) is not None for key in ("modalities", "mil", "fusion")):
        raise ConfigError("--modalities, --mil and --fusion are set by the ablation grid", hint="leave them out")
    base = config_from_args(args)
    check_config_paths(base)
    from training.resume import load_resume_state, resume_exists  # torch: only once the paths are known good

    out = Path(args.out)
    _announce_cost(base, variants, out)
    for position, variant in enumerate(variants, start=1):
        run_dir = RunDir(out / variant.name)
        if run_dir.metrics.exists():
            log.info("[%d/%d] %s: already done", position, len(variants), variant.name)
            continue
        resume = load_resume_state(run_dir.resume_stem) if resume_exists(run_dir.resume_stem) else None
        log.info("[%d/%d] %s%s", position, len(variants), variant.name, " (resuming)" if resume else "")
        config = config_of_run(run_dir) if resume else base.replace(model={**base.model, **variant.model})
        status = train(config, run_dir, resume)
        if status != 0:
            return status
    markdown, page = write_report(find_runs([out / variant.name for variant in variants]), out)
    print(markdown.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", markdown, page)
    return 0


def _announce_cost(base, variants: list, out: Path) -> None:
    """Time a few steps of every variant still to run and log the estimated wall time of the whole ablation
    (each variant's own run logs its estimate again when it starts)."""
    from training.cost import duration

    pending = [v for v in variants if not RunDir(out / v.name).metrics.exists()]
    total, parts = 0.0, []
    for variant in pending:
        seconds = estimate(base.replace(model={**base.model, **variant.model}), RunDir(out / variant.name))
        if seconds is None:
            return
        total += seconds
        parts.append(f"{variant.name} {duration(seconds)}")
    if pending:
        log.info("estimated wall time of the whole ablation (%d variant(s) to run): %s (%s)", len(pending),
                 duration(total), ", ".join(parts))
