"""Milmer model figures: parameters, latency of one bag, batched vs looped backbone, cached live step, memory.

Usage: .venv/bin/python bench/model.py [--device auto|cpu|cuda] [--repeats 5] [--presets paper tiny] [--threads N]
Ratios are measured side by side in the same run, on the same device.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from models.config import MilmerConfig
from models.device import autocast, resolve_device
from models.factory import create_model, preset_config
from models.milmer import Milmer, count_parameters


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: list[Callable[[], object]], device: torch.device, repeats: int) -> list[float]:
    """Median seconds per function; the functions run interleaved so that load on a shared
    machine affects all of them alike (one warm-up each first)."""
    samples: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    _sync(device)
    for _ in range(repeats):
        for fn, bucket in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in samples]


def bag(config: MilmerConfig, device: torch.device, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    eeg = torch.randn(batch, config.eeg_channels, config.eeg_samples, device=device)
    faces = torch.randint(0, 256, (batch, config.num_instances, 3, config.image_size, config.image_size),
                          dtype=torch.uint8, device=device)
    return eeg, faces


def published_scorer_parameters(config: MilmerConfig, tokens: int) -> int:
    features = tokens * config.d_model
    return features * features + features


def bench_preset(name: str, device: torch.device, repeats: int) -> None:
    torch.manual_seed(0)
    model: Milmer = create_model(name).to(device).eval()
    cfg = model.config
    eeg, faces = bag(cfg, device)
    n = cfg.num_instances
    with torch.inference_mode(), autocast(device):
        tokens = model.embed_frames(faces[0, :1]).shape[1]
        scorer = sum(p.numel() for p in model.mil.parameters())
        print(f"[{name}] parameters: {count_parameters(model):,} (backbone {count_parameters(model.backbone):,}, "
              f"MIL scorer {scorer:,}; a published-style ({tokens}*{cfg.d_model})^2 scorer alone would be "
              f"{published_scorer_parameters(cfg, tokens):,})")

        frames = faces[0]
        new = math.ceil(n / 3)  # a 3 s window of N frames advancing by 1 s brings ceil(N/3) new frames
        cached_tokens = model.embed_frames(frames).unsqueeze(0)

        def live_step() -> None:
            fresh = model.embed_frames(frames[:new])
            window = torch.cat([cached_tokens[:, new:], fresh.unsqueeze(0)], dim=1)
            model.forward_embedded(eeg, window)

        full, batched, looped, cached = timed([
            lambda: model(eeg, faces),
            lambda: model.embed_frames(frames),
            lambda: [model.embed_frames(frames[i:i + 1]) for i in range(n)],
            live_step,
        ], device, repeats)
        print(f"[{name}] one bag (B=1, N={n}, {cfg.image_size} px) full forward: {full * 1e3:.1f} ms")
        print(f"[{name}] backbone on {n} frames: batched {batched * 1e3:.1f} ms, per-instance loop "
              f"{looped * 1e3:.1f} ms -> loop / batched = {looped / batched:.2f}x")
        print(f"[{name}] live step with embedding cache ({new} new of {n} frames per 1 s hop): "
              f"{cached * 1e3:.1f} ms vs {full * 1e3:.1f} ms without cache -> {full / cached:.2f}x faster")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_memory_child(name: str, device_name: str, threads: int, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = create_model(name).to(device).eval()
    eeg, faces = bag(model.config, device)
    resident = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), autocast(device):
        model(eeg, faces)
    gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    queue.put((resident, _status_kib("VmHWM"), gpu))


def bench_memory(name: str, device: torch.device) -> None:
    """Peak memory of one bag's forward in a fresh process that has just built the model (Linux)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_memory_child, args=(name, str(device), torch.get_num_threads(), queue))
    child.start()
    resident, peak, gpu = queue.get()
    child.join()
    line = (f"[{name}] memory: process RSS {resident / 1024:.0f} MiB with the model built, "
            f"peak {peak / 1024:.0f} MiB during one bag forward (+{(peak - resident) / 1024:.0f} MiB)")
    if gpu:
        line += f"; peak GPU memory allocated {gpu / 2**20:.0f} MiB"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda (default cpu)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: torch's choice); on a machine shared with other "
                             "work, 1 avoids threads spinning against each other")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    for name in args.presets:
        preset_config(name)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.presets:
        bench_preset(name, device, args.repeats)
        bench_memory(name, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
