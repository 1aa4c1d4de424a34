"""A seeded fuzz campaign over what milmer reads from outside (milmer_app.fuzzing holds the cases, the
workers and the outcomes); prints the outcome counts, by target, and every bad case.

    .venv/bin/python bench/fuzz.py --cases 2000 [--seed 0] [--workers 2] [--timeout 30] [--targets edf,xdf,...]

tests/test_fuzz.py runs a short campaign of the same cases in CI.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from milmer_app.fuzzing import OUTCOMES, TARGETS, generate, make_seeds, run_campaign, summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated targets to spread the cases over (default all: {','.join(TARGETS)})")
    args = parser.parse_args(argv)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    workdir = Path(tempfile.mkdtemp(prefix="milmer-fuzz-"))
    try:
        seeds = make_seeds(workdir)
        cases = generate(args.cases, args.seed, seeds, targets)
        started = time.monotonic()
        results = run_campaign(cases, args.workers, args.timeout)
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarise(results)
    print(f"fuzz: {summary['cases']} cases over {', '.join(targets)}, seed {args.seed}, {args.workers} workers, "
          f"{elapsed:.0f} s, "
          f"worker peak RSS {summary['peak_rss_mb']:.0f} MB")
    for outcome in OUTCOMES:
        print(f"  {outcome:<18} {summary['counts'][outcome]}")
    print("by target: " + "; ".join(f"{t}: " + ", ".join(f"{o} {c}" for o, c in sorted(counts.items()))
                                    for t, counts in summary["by_target"].items()))
    for target, mutation, outcome, detail in summary["bad"][:50]:
        print(f"  BAD {outcome}: {target} {mutation}: {detail}")
    return 1 if summary["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
