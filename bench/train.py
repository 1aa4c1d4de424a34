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
import os
import statistics
import subprocess
import sys
import time

from training.threads import available_cores, configure_cpu_threads, prefer_passive_waiting

prefer_passive_waiting()  # as milmer-train does, before torch loads

import torch  # noqa: E402
from torch import nn  # noqa: E402

from models.config import MilmerConfig, preset_config  # noqa: E402
from models.contract import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from models.device import autocast  # noqa: E402
from models.milmer import Milmer, count_parameters  # noqa: E402
from training.batches import amp_dtype  # noqa: E402


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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
