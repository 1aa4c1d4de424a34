"""A small synthetic DEAP and in-process training runs on it, for the end-to-end training tests."""

from __future__ import annotations

import json
from pathlib import Path

from training import cli


def synthetic_deap(root: Path, subjects: int, *options: str) -> tuple[Path, Path]:
    """`milmer-train synth` of `subjects` x 8 trials x 15 s (strength 3, seed 1, 240x192 video, then `options`)
    into root/deap; returns that folder and root/cache for the prepared data."""
    data = root / "deap"
    assert cli.main(["-q", "synth", "--out", str(data), "--subjects", str(subjects), "--trials", "8", "--seconds",
                     "15", "--strength", "3", "--seed", "1", "--video-size", "240x192", *options]) == 0
    return data, root / "cache"


def train_metrics(deap: tuple[Path, Path], out: Path, *options: str) -> dict:
    """`milmer-train train` on `deap` (the data and cache folders) into `out`; its metrics.json."""
    data, cache = deap
    assert cli.main(["-q", "train", "--deap", str(data), "--cache", str(cache), *options, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())
