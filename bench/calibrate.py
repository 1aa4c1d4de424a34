"""Personal calibration (`milmer-train calibrate`) on simulated people: time, learning curve, methods.

    python bench/calibrate.py --timing [--presets tiny,paper]    wall time of the command, 20 trials x 30 s
    python bench/calibrate.py --curve                           held-out gain for 8, 16, 24 calibration trials
    python bench/calibrate.py --methods                         which parameters to train, measured

--timing runs `milmer-train calibrate` on one recording of the `inverted` person (20 trials x 30 s,
video 10 fps) against the demo model (tiny) and against a paper-preset checkpoint with random weights
written here (no trained paper-preset model ships; the time does not depend on the weights).
--curve trains on the first 8, 16 or 24 trials of a calibration recording and scores base and
calibrated model on a separate fresh recording of 16 trials (trial = majority vote of its windows).
--methods compares the `TRAINABLE` groups and regularisation on three simulated people, held-out
trials as in the command. Every figure depends on the machine's load: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from training.threads import prefer_passive_waiting

prefer_passive_waiting()

from training.calibration.adapt import AdaptConfig, adapt, embed_crops, predict
from training.calibration.inputs import check_inputs
from training.calibration.judge import score
from training.calibration.run import DEFAULT_METHOD
from training.calibration.split import split_trials
from training.calibration.windows import cut_windows
from training.synth_person import write_person_recording

HOP_S = 1.5


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def paper_checkpoint(folder: Path) -> Path:
    from models.checkpoint import save_checkpoint
    from models.config import MilmerConfig
    from models.contract import InputContract
    from models.milmer import Milmer

    config = MilmerConfig.paper()
    stem = folder / "paper_random"
    save_checkpoint(stem, Milmer(config), InputContract.for_deap(config), {"note": "random weights, bench only"})
    return stem


def timing(presets: list[str], work: Path, trials: int, seconds: float) -> None:
    recording = work / f"timing_{trials}x{seconds:g}"
    write_person_recording(recording, "inverted", trials=trials, trial_seconds=seconds, seed=11)
    print(f"timing: {trials} trials x {seconds:g} s", flush=True)
    for preset in presets:
        base = "demo" if preset == "tiny" else str(paper_checkpoint(work))
        started = time.monotonic()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, "-m", "training.cli", "-q", "calibrate", "--recording", str(recording),
                               "--checkpoint", base, "--out", str(work / f"timing_{preset}"), "--max-minutes", "30"],
                              capture_output=True, text=True)
        seconds = time.monotonic() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-3:-1]
        report = work / f"timing_{preset}.report.json"
        document = json.loads(report.read_text()) if report.is_file() else {}
        stages = document.get("seconds_by_stage", {})
        sizes = document.get("sizes", {})
        print(f"{preset}: {seconds:.0f} s wall, {cpu:.0f} s CPU on {os.cpu_count()} cores (load {load()}), "
              f"exit {done.returncode}; "
              + " | ".join(last) + "; " + ", ".join(f"{k} {v} s" for k, v in stages.items())
              + "; " + ", ".join(f"{k} {v}" for k, v in sizes.items()), flush=True)


def prepared(recordings: list[Path]):
    import torch

    from models.checkpoint import load_checkpoint

    inputs = check_inputs([str(r) for r in recordings], "demo")
    base = load_checkpoint(inputs.base).model
    windows = cut_windows(inputs, HOP_S)
    tokens = embed_crops(base, windows.crops)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return inputs, windows, tokens, base


def trial_accuracy(model, tokens, windows, positions) -> tuple[float, int, int]:
    held = score(predict(model, tokens, windows, positions), windows.labels[positions],
                 windows.trial_of[positions], model.config.num_classes)
    return held.trial_accuracy, held.trials_correct, held.trials["count"]


def curve(work: Path, seeds: list[int]) -> None:
    print("calibration trials | base trials right | calibrated trials right (fresh recording, 16 trials)")
    for seed in seeds:
        calibration = work / f"curve_cal_{seed}"
        fresh = work / f"curve_fresh_{seed}"
        write_person_recording(calibration, "inverted", trials=24, trial_seconds=30.0, seed=100 + seed)
        write_person_recording(fresh, "inverted", trials=16, trial_seconds=30.0, seed=200 + seed)
        inputs, windows, tokens, base = prepared([calibration, fresh])
        test = [t for t in windows.trials if t.recording == 1]
        test_pos = windows.of_trials(test)
        _, base_right, n = trial_accuracy(base, tokens, windows, test_pos)
        for count in (8, 16, 24):
            train = sorted((t for t in windows.trials if t.recording == 0), key=lambda t: t.start)[:count]
            result = adapt(base, tokens, windows, windows.of_trials(train), replace(DEFAULT_METHOD, seed=seed))
            _, right, _ = trial_accuracy(result.model, tokens, windows, test_pos)
            print(f"seed {seed}: {count:2d} | {base_right}/{n} | {right}/{n}  ({result.seconds:.0f} s training, "
                  f"load {load()})", flush=True)


METHODS = {
    "head only (default)": DEFAULT_METHOD,
    "  ... never-rated class left out of the loss": replace(DEFAULT_METHOD, absent="excluded"),
    "EEG tokenizer + head": AdaptConfig(trainable="eeg_head"),
    "EEG tokenizer + encoder + head": AdaptConfig(trainable="eeg_fusion_head", absent="excluded"),
    "  ... without L2-SP": AdaptConfig(trainable="eeg_fusion_head", absent="excluded", l2sp=0.0),
    "  ... L2-SP x10": AdaptConfig(trainable="eeg_fusion_head", absent="excluded", l2sp=0.1),
    "  ... L2-SP x10, never-rated class as a wrong answer": AdaptConfig(trainable="eeg_fusion_head", l2sp=0.1),
    "  ... without class weighting": AdaptConfig(trainable="eeg_fusion_head", absent="excluded",
                                                 class_weighting=False),
    "all but the face backbone": AdaptConfig(trainable="all_but_backbone", absent="excluded"),
}


def methods(work: Path, seeds: list[int], trials: int) -> None:
    rows: dict[str, list[str]] = {name: [] for name in METHODS}
    for person in ("inverted", "missing_quadrant", "no_information"):
        for seed in seeds:
            folder = work / f"methods_{person}_{seed}"
            write_person_recording(folder, person, trials=trials, trial_seconds=15.0, seed=300 + seed)
            inputs, windows, tokens, base = prepared([folder])
            split = split_trials(windows.trials, 8)
            train_pos, test_pos = windows.of_trials(split.train), windows.of_trials(split.test)
            _, base_right, n = trial_accuracy(base, tokens, windows, test_pos)
            for name, method in METHODS.items():
                result = adapt(base, tokens, windows, train_pos, replace(method, seed=seed))
                _, right, _ = trial_accuracy(result.model, tokens, windows, test_pos)
                rows[name].append(f"{person} s{seed}: {right}/{n} (base {base_right})")
                print(f"{person} seed {seed} | {name} | {right}/{n} | base {base_right}/{n} | "
                      f"{result.seconds:.0f} s", flush=True)
    print(f"\nheld-out trials right, {trials} trials of 15 s per recording, 8 held out (load {load()}):")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--curve", action="store_true")
    parser.add_argument("--methods", action="store_true")
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--timing-size", default="20x30", metavar="TRIALSxSECONDS",
                        help="--timing: the recording's trials and seconds per trial")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--trials", type=int, default=16, help="--methods: trials per recording")
    parser.add_argument("--work", metavar="DIR", help="keep the recordings here (default: a temporary folder)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.work or temporary)
        work.mkdir(parents=True, exist_ok=True)
        print(f"machine: {os.cpu_count()} cores, load {load()}", flush=True)
        if args.methods:
            methods(work, seeds, args.trials)
        if args.curve:
            curve(work, seeds)
        if args.timing:
            trials, seconds = args.timing_size.lower().split("x")
            timing(args.presets.split(","), work, int(trials), float(seconds))


if __name__ == "__main__":
    main()
