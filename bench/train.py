"""Training throughput: Milmer's batched backbone against the published per-instance loop.

Prints training samples/s (forward + backward + AdamW step on random bags) for the
`tiny` and `paper` presets on the CPU, and on CUDA when present, measured side by side
in one process (alternating step by step; medians of per-step times):

- batched: all B x N frames go through the Swin backbone in one call, normalised on
  the device (what `Milmer.forward` does);
- per-instance loop: the published design, one backbone call per instance index with
  the frames normalised on the host first (the published code ran its image processor
  on the CPU inside forward()).

Both variants share the same weights and everything after the backbone. Usage:
    python bench/train.py [--presets tiny,paper] [--devices cpu,cuda] [--steps N] [--batch-size B]

--shared-machine instead measures a tiny-preset training epoch (batched, CPU, the trainer's thread
settings) on a quiet machine and then while busy-loop processes (one per core, started by this
script) keep every core busy, and prints the slow-down; --also-spinning repeats it in a child
process with OpenMP's spinning wait policy (the behaviour before the trainer chose passive waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from training.threads import available_cores, configure_cpu_threads, prefer_passive_waiting

prefer_passive_waiting()  # as milmer-train does, before torch loads

import numpy as np
import torch
from torch import nn

from models.config import MilmerConfig, preset_config
from models.contract import IMAGENET_MEAN, IMAGENET_STD
from models.device import autocast
from models.milmer import Milmer, count_parameters
from training.batches import amp_dtype


def published_loop_logits(model: Milmer, eeg: torch.Tensor, faces_host: torch.Tensor) -> torch.Tensor:
    """Frames normalised on the host, then one backbone call per instance index."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    per_instance = []
    for i in range(faces_host.shape[1]):
        images = (faces_host[:, i].float() / 255.0 - mean) / std
        images = images.to(model.device)
        tokens = model.backbone.forward_features(images)
        per_instance.append(model.backbone_proj(tokens.flatten(1, -2)))
    frame_tokens = torch.stack(per_instance, dim=1)
    return model.forward_embedded(eeg, frame_tokens).logits


def batched_logits(model: Milmer, eeg: torch.Tensor, faces_host: torch.Tensor) -> torch.Tensor:
    return model(eeg, faces_host.to(model.device, non_blocking=True)).logits


def measure(config: MilmerConfig, device: torch.device, batch_size: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = Milmer(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = amp_dtype("auto", device)
    eeg = torch.randn(batch_size, config.eeg_channels, config.eeg_samples, device=device)
    faces = torch.randint(0, 256, (batch_size, config.num_instances, 3, config.image_size, config.image_size),
                          dtype=torch.uint8)
    if device.type == "cuda":
        faces = faces.pin_memory()
    labels = torch.randint(0, config.num_classes, (batch_size,), device=device)
    variants = {"per-instance loop": published_loop_logits, "batched": batched_logits}

    def step(forward) -> float:
        started = time.perf_counter()
        with autocast(device, dtype):
            logits = forward(model, eeg, faces)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for forward in variants.values():
        for _ in range(warmup):
            step(forward)
    # Alternate the variants step by step and take medians, so that load from other processes
    # on a shared machine hits both alike.
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(steps):
        for name, forward in variants.items():
            times[name].append(step(forward))
    results = {"parameters": count_parameters(model)}
    for name, seconds in times.items():
        results[name] = batch_size / statistics.median(seconds)
    return results


def epoch_seconds(steps: int, batch_size: int, repeats: int) -> list[float]:
    """Seconds per tiny-preset training epoch of ``steps`` batches (forward, backward, AdamW), ``repeats`` times."""
    config = MilmerConfig.tiny()
    torch.manual_seed(0)
    model = Milmer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    eeg = torch.randn(batch_size, config.eeg_channels, config.eeg_samples)
    faces = torch.randint(0, 256, (batch_size, config.num_instances, 3, config.image_size, config.image_size),
                          dtype=torch.uint8)
    labels = torch.randint(0, config.num_classes, (batch_size,))

    def epoch() -> float:
        started = time.perf_counter()
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(eeg, faces).logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    epoch()  # warm-up
    return [epoch() for _ in range(repeats)]


def shared_machine(steps: int, batch_size: int, repeats: int) -> tuple[float, float]:
    """Median epoch seconds quiet, then with one busy-loop process per core; prints both."""
    threads = configure_cpu_threads(data_workers=0)
    quiet = statistics.median(epoch_seconds(steps, batch_size, repeats))
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(available_cores())]
    try:
        time.sleep(0.5)
        loaded = statistics.median(epoch_seconds(steps, batch_size, repeats))
    finally:
        for process in load:
            process.kill()
            process.wait()
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, {threads} intra-op thread(s), "
          f"{available_cores()} core(s): epoch of {steps} x {batch_size} tiny windows: quiet {quiet:.2f} s, "
          f"with {len(load)} busy-loop process(es) {loaded:.2f} s ({loaded / quiet:.1f}x)", flush=True)
    return quiet, loaded


# ------------------------------------------------------------------ frozen backbone against fine-tuning

def frozen_against_fine_tuning(preset: str, batch_size: int, steps: int, frozen_batch: int) -> dict:
    """Training bags/s on this machine: fine-tuning against the frozen backbone, whose frame features are
    computed once (their cost is counted once, as in a single epoch) and then only the layers after it train."""
    from training.embeddings import FrozenBackboneNetwork, embed_bags

    config = preset_config(preset)
    torch.manual_seed(0)

    def bags(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.randn(batch, config.eeg_channels, config.eeg_samples),
                torch.randint(0, 256, (batch, config.num_instances, 3, config.image_size, config.image_size),
                              dtype=torch.uint8),
                torch.randint(0, config.num_classes, (batch,)))

    def timed_steps(network: nn.Module, parameters, eeg, inputs, labels) -> float:
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)

        def step() -> None:
            loss = nn.functional.cross_entropy(network(eeg, inputs).logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # warm-up
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return statistics.median(times) / len(labels)  # seconds per bag

    model = Milmer(config).train()
    eeg, faces, labels = bags(batch_size)
    fine_tuning = timed_steps(model, model.parameters(), eeg, faces, labels)
    eeg, faces, labels = bags(frozen_batch)
    started = time.perf_counter()
    features = torch.from_numpy(embed_bags(model, faces.numpy(), np.ones(faces.shape[:2], bool)))
    embedding = (time.perf_counter() - started) / frozen_batch
    model.backbone.requires_grad_(False)
    frozen = timed_steps(FrozenBackboneNetwork(model), [p for p in model.parameters() if p.requires_grad], eeg,
                         features, labels)
    return {"fine_tuning_bags_per_s": 1 / fine_tuning, "frozen_step_bags_per_s": 1 / frozen,
            "embedding_frames_per_s": config.num_instances / embedding,
            "frozen_with_embedding_bags_per_s": 1 / (frozen + embedding)}


def frozen_accuracy(out: Path, epochs: int, frozen_epochs: int) -> dict:
    """Test accuracy of fine-tuning and of the frozen backbone on synthetic data with planted face cues
    (tiny preset, face only, trial protocol, seed 0): the frozen variant's cost in accuracy."""
    from training import cli

    data, cache = out / "deap", out / "cache"
    if not data.is_dir():
        assert cli.main(["-q", "synth", "--out", str(data), "--subjects", "4", "--trials", "8", "--seconds", "15",
                         "--strength", "3", "--seed", "1", "--video-size", "240x192"]) == 0
    results = {}
    for name, extra, run_epochs in (("fine-tuned", [], epochs), ("frozen", ["--freeze-backbone"], frozen_epochs)):
        run = out / f"{name}-{run_epochs}"
        if not (run / "metrics.json").is_file():
            assert cli.main(["-q", "train", "--deap", str(data), "--cache", str(cache), "--protocol", "trial",
                             "--folds", "2", "--preset", "tiny", "--modalities", "face", "--epochs", str(run_epochs),
                             "--lr", "2e-3", "--batch-size", "8", "--device", "cpu", "--seed", "0", *extra,
                             "--out", str(run)]) == 0
        metrics = json.loads((run / "metrics.json").read_text())
        results[name] = {"accuracy": metrics["mean_test_accuracy"], "seconds": metrics["cost"]["measured_seconds"]}
    return results


def estimate_check(out: Path, epochs: int) -> dict:
    """The estimate printed before a short synthetic run (tiny preset, fine-tuned, 2 folds) against its
    measured wall time; the target is within 25 %."""
    from training import cli

    data, cache = out / "deap", out / "cache"
    if not data.is_dir():
        assert cli.main(["-q", "synth", "--out", str(data), "--subjects", "3", "--trials", "8", "--seconds", "15",
                         "--strength", "3", "--seed", "1", "--video-size", "240x192"]) == 0
    run = out / f"estimate-{time.time_ns()}"
    assert cli.main(["-q", "train", "--deap", str(data), "--cache", str(cache), "--protocol", "trial", "--folds", "2",
                     "--preset", "tiny", "--epochs", str(epochs), "--lr", "2e-3", "--batch-size", "8",
                     "--device", "cpu", "--out", str(run)]) == 0
    return json.loads((run / "metrics.json").read_text())["cost"]


# DEAP with face video: s01-s22, 40 trials each less the missing videos (s03, s05, s14: 39; s11: 37),
# 20 windows of 3 s per trial.
DEAP_FACE_WINDOWS = (22 * 40 - 3 - 3) * 20
DEAP_FACE_SUBJECTS = 22


def deap_shapes(epochs: int = 100, batch: int = 14) -> dict:
    """Window counts of trial-wise 5-fold (test 1/5, validation 10 % of the rest) and LOSO (one subject
    tests, the next validates) over DEAP's face trials, as training.splits cuts them."""
    from training.cost import RunShape

    windows = DEAP_FACE_WINDOWS
    test = windows / 5
    val = round((windows - test) * 0.1)
    per_subject = windows / DEAP_FACE_SUBJECTS
    return {
        "trial-wise 5-fold": RunShape([round(windows - test - val)] * 5, [val] * 5, [round(test)] * 5, epochs, batch,
                                      False),
        "LOSO (22 folds)": RunShape([round(windows - 2 * per_subject)] * 22, [round(per_subject)] * 22,
                                    [round(per_subject)] * 22, epochs, batch, False),
    }


def deap_estimate(rates: dict[str, dict[str, float]]) -> None:
    """Print the wall time of DEAP-size runs (paper preset, 100 epochs, batch 14) from measured rates:
    ``rates[machine] = {"train": bags/s, "eval": bags/s, "embedding_frames": frames/s (frozen only)}``."""
    from training.cost import StepCosts, duration

    print(f"DEAP face trials: {DEAP_FACE_WINDOWS} windows of 10 frames; paper preset, 100 epochs, batch 14")
    for machine, rate in rates.items():
        costs = StepCosts(train_batch=14 / rate["train"], eval_window=1 / rate["eval"], epoch_saving=0.0,
                          fold_setup=0.0)
        embedding = DEAP_FACE_WINDOWS * 10 / rate["embedding_frames"] if rate.get("embedding_frames") else 0.0
        for protocol, shape in deap_shapes().items():
            seconds = shape.seconds(costs) + embedding
            extra = f" (frame features once: {duration(embedding)})" if embedding else ""
            print(f"  {machine:45} {protocol:18} {duration(seconds):>14}{extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-machine", action="store_true",
                        help="tiny-preset epoch time quiet vs with every core kept busy by other processes")
    parser.add_argument("--also-spinning", action="store_true",
                        help="with --shared-machine: repeat with OMP_WAIT_POLICY=ACTIVE in a child process")
    parser.add_argument("--epoch-steps", type=int, default=10, help="batches per epoch for --shared-machine")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per condition (median)")
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default: 20 tiny, 3 paper on CPU)")
    parser.add_argument("--batch-size", type=int, default=0, help="bags per step (default 14; 2 for paper on CPU)")
    parser.add_argument("--frozen", action="store_true",
                        help="frozen backbone against fine-tuning (bags/s, the preset(s) of --presets, CPU)")
    parser.add_argument("--frozen-accuracy", metavar="DIR",
                        help="test accuracy fine-tuned against frozen on synthetic face cues (tiny preset; "
                             "runs kept in DIR)")
    parser.add_argument("--estimate", metavar="DIR", help="the cost estimate against a short synthetic run's wall time")
    parser.add_argument("--frozen-batch", type=int, default=0,
                        help="--frozen: bags per frozen training step (default 14; fine-tuning uses --batch-size)")
    parser.add_argument("--frozen-epochs", type=int, default=0, help="epochs of the frozen run (default --epochs)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the --frozen-accuracy / --estimate runs")
    parser.add_argument("--deap-estimate", metavar="GPU_JSON", nargs="?", const="",
                        help="after --frozen: DEAP-size wall times for these CPU rates (and the GPU rates of a "
                             "bench/gpu_train.py JSON, if given)")
    args = parser.parse_args()
    if args.frozen:
        rates = {}
        for preset in args.presets.split(","):
            on_paper = preset == "paper"
            result = frozen_against_fine_tuning(preset, args.batch_size or (2 if on_paper else 14),
                                                args.steps or (2 if on_paper else 10), args.frozen_batch or 14)
            fine = result["fine_tuning_bags_per_s"]
            one_epoch = result["frozen_with_embedding_bags_per_s"] / fine
            # Over a run of E epochs the features are computed once: per bag and epoch, step + embedding / E.
            embed_per_bag = config_instances(preset) / result["embedding_frames_per_s"]
            hundred = (1 / (1 / result["frozen_step_bags_per_s"] + embed_per_bag / 100)) / fine
            print(f"{preset}: fine-tuning {fine:.3f} bags/s; frozen {result['frozen_step_bags_per_s']:.2f} bags/s "
                  f"training ({result['frozen_step_bags_per_s'] / fine:.1f}x), {result['embedding_frames_per_s']:.1f} "
                  f"frames/s embedding; embedding included once: {hundred:.1f}x over a 100-epoch run, "
                  f"{one_epoch:.1f}x for a single epoch ({torch.get_num_threads()} threads, load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
            if on_paper:
                rates = {"2 CPU cores, fine-tuned": {"train": result["fine_tuning_bags_per_s"],
                                                     "eval": 3 * result["fine_tuning_bags_per_s"]},
                         "2 CPU cores, frozen": {"train": result["frozen_step_bags_per_s"],
                                                 "eval": 3 * result["frozen_step_bags_per_s"],
                                                 "embedding_frames": result["embedding_frames_per_s"]}}
        if args.deap_estimate is not None and rates:
            if args.deap_estimate:
                rates.update(gpu_rates(Path(args.deap_estimate)))
            deap_estimate(rates)
        return
    if args.frozen_accuracy:
        frozen_epochs = args.frozen_epochs or args.epochs
        result = frozen_accuracy(Path(args.frozen_accuracy), args.epochs, frozen_epochs)
        gap = result["frozen"]["accuracy"] - result["fine-tuned"]["accuracy"]
        print(f"face-only tiny preset, synthetic face cues, trial 2-fold, seed 0: fine-tuned {args.epochs} epochs "
              f"{result['fine-tuned']['accuracy']:.3f} ({result['fine-tuned']['seconds']:.0f} s), frozen "
              f"{frozen_epochs} epochs {result['frozen']['accuracy']:.3f} ({result['frozen']['seconds']:.0f} s): "
              f"difference {gap:+.3f} "
              f"({'within' if abs(gap) <= 0.05 else 'outside'} 0.05)", flush=True)
        return
    if args.estimate:
        cost = estimate_check(Path(args.estimate), args.epochs)
        ratio = cost["measured_seconds"] / cost["estimated_seconds"]
        print(f"estimated {cost['estimated_seconds']:.1f} s, measured {cost['measured_seconds']:.1f} s "
              f"({cost['shape']}): measured/estimated {ratio:.2f} ({'within' if abs(ratio - 1) <= 0.25 else 'outside'}"
              f" 25 %; load {os.getloadavg()[0]:.1f})", flush=True)
        return
    if args.shared_machine:
        shared_machine(args.epoch_steps, args.batch_size or 14, args.repeats)
        if args.also_spinning:
            child = [sys.executable, __file__, "--shared-machine", "--epoch-steps", str(args.epoch_steps),
                     "--repeats", str(args.repeats), "--batch-size", str(args.batch_size or 14)]
            subprocess.run(child, env={**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}, check=True)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA"))
    print(f"{'preset':6} {'device':6} {'batch':>5} {'params':>12} {'loop samples/s':>15} {'batched samples/s':>18} "
          f"{'ratio':>6}")
    for preset in args.presets.split(","):
        config = preset_config(preset)
        for device_name in args.devices.split(","):
            device = torch.device(device_name)
            on_cpu = device.type == "cpu"
            batch = args.batch_size or (2 if preset == "paper" and on_cpu else 14)
            steps = args.steps or (3 if preset == "paper" and on_cpu else 20)
            result = measure(config, device, batch, steps, warmup=1 if on_cpu and preset == "paper" else 3)
            ratio = result["batched"] / result["per-instance loop"]
            print(f"{preset:6} {device_name:6} {batch:5d} {result['parameters']:12,d} "
                  f"{result['per-instance loop']:15.2f} {result['batched']:18.2f} {ratio:5.2f}x", flush=True)


def config_instances(preset: str) -> int:
    return preset_config(preset).num_instances


def gpu_rates(path: Path) -> dict[str, dict[str, float]]:
    """Paper-preset rates from a bench/gpu_train.py JSON. Evaluation runs at the backbone's measured eval rate
    (frames/s / 10; the layers after it are small); frozen evaluation at the frozen training rate (an upper bound)."""
    results = json.loads(path.read_text())
    gpu = results["machine"].get("gpu", "GPU")
    fine = results["fine_tuning"]
    today = fine["today (bf16 autocast, AdamW)"]["bags_per_s"]
    default = fine["channels-last + fused AdamW"]["bags_per_s"]
    embed = results["frozen"]["embedding frames/s, float32"]
    frozen = results["frozen"]["training bags/s, batch 14, bf16 autocast, fused AdamW"]
    rates = {f"{gpu}, fine-tuned (before)": {"train": today, "eval": embed / 10},
             f"{gpu}, fine-tuned (CUDA defaults now)": {"train": default, "eval": embed / 10}}
    compiled = fine.get("channels-last + fused AdamW + torch.compile", {})
    if "bags_per_s" in compiled:  # what --compile does (torch.compile's default mode)
        rates[f"{gpu}, fine-tuned, --compile"] = {"train": compiled["bags_per_s"], "eval": embed / 10}
    rates[f"{gpu}, frozen"] = {"train": frozen, "eval": frozen, "embedding_frames": embed}
    return rates


if __name__ == "__main__":
    main()
