"""GPU training throughput of the paper preset: today's settings against faster candidates, in one process.

Measures, on random bags (B x 10 frames of 224 px uint8 in pinned host memory, copied each step as
the trainer does; the loss's .item() each step, as the trainer's metrics do):
  1. fine-tuning at batch 14: today's settings (bf16 autocast, AdamW) against channels-last, fused
     AdamW, both, larger batches (learning rate scaled by sqrt(batch / 14), stated in the output),
     and torch.compile (default and "reduce-overhead", i.e. CUDA graphs) while the time budget lasts;
  2. a fixed-seed loss curve (the same bags, init and order): today's settings twice (the noise) and
     the fastest batch-14 settings;
  3. the live step at batch 1: the whole model on a 10-frame bag, and one new frame through the
     backbone plus the layers after it (the embedding cache), in float32 and in bf16 autocast;
  4. the frozen backbone: frame-feature embedding frames/s, and training of the layers after it on
     cached float16 features (bags/s);
  5. the data loader from uint8 windows (workers, pinned memory) alone: bags/s it can deliver.
Results are printed and written as JSON (after every section, so a run cut short keeps them).

Usage: python bench/gpu_train.py [--out DIR] [--budget SECONDS]
       python bench/gpu_train.py --quick     (tiny preset, a few steps, any device: checks the script)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.config import MilmerConfig, preset_config
from models.milmer import Milmer
from training.embeddings import FrozenBackboneNetwork, embed_frames

PAPER_BATCH = 14


@dataclass(frozen=True)
class Settings:
    name: str
    batch: int = PAPER_BATCH
    amp: bool = True
    channels_last: bool = False
    fused: bool = False
    compile: str = ""  # "", "default" or "reduce-overhead"

    def lr(self, base: float = 1e-4) -> float:
        """The learning-rate rule for larger batches: scaled by sqrt(batch / 14)."""
        return base * math.sqrt(self.batch / PAPER_BATCH)


class Bench:
    def __init__(self, config: MilmerConfig, device: torch.device, steps: int, warmup: int, out: Path,
                 budget: float):
        self.config = config
        self.device = device
        self.steps = steps
        self.warmup = warmup
        self.out = out
        self.deadline = time.monotonic() + budget
        self.results: dict = {"machine": machine(), "preset": config.preset, "steps": steps}

    # ------------------------------------------------------------ plumbing
    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_train.json").write_text(json.dumps(self.results, indent=2) + "\n")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def host_bags(self, batch: int, count: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
        cfg = self.config
        generator = torch.Generator().manual_seed(seed)
        bags = []
        for _ in range(count):
            faces = torch.randint(0, 256, (batch, cfg.num_instances, 3, cfg.image_size, cfg.image_size),
                                  dtype=torch.uint8, generator=generator)
            eeg = torch.randn(batch, cfg.eeg_channels, cfg.eeg_samples, generator=generator)
            labels = torch.randint(0, cfg.num_classes, (batch,), generator=generator)
            if self.device.type == "cuda":
                faces, eeg, labels = faces.pin_memory(), eeg.pin_memory(), labels.pin_memory()
            bags.append((eeg, faces, labels))
        return bags

    def model(self, settings: Settings, seed: int = 0) -> tuple[Milmer, nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(seed)
        model = Milmer(self.config).to(self.device).train()
        if settings.channels_last:
            model.image_memory_format = torch.channels_last
            model.backbone.to(memory_format=torch.channels_last)
        options = {"fused": True} if settings.fused else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr(), weight_decay=0.01, **options)
        network: nn.Module = model
        if settings.compile:
            network = torch.compile(model, mode=None if settings.compile == "default" else settings.compile)
        return model, network, optimizer

    def step_fn(self, network: nn.Module, optimizer: torch.optim.Optimizer, settings: Settings) -> Callable:
        device = self.device
        amp = settings.amp and device.type == "cuda"

        def step(bag) -> float:
            eeg, faces, labels = (t.to(device, non_blocking=True) for t in bag)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = network(eeg, faces).logits
            loss = nn.functional.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.item()

        return step

    def timed(self, step: Callable, bags: list, batch: int) -> dict:
        started = time.perf_counter()
        for i in range(self.warmup):
            step(bags[i % len(bags)])
        self.sync()
        warm = time.perf_counter() - started
        times = []
        for i in range(self.steps):
            t0 = time.perf_counter()
            step(bags[i % len(bags)])  # .item() inside: the step has finished on the device
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        return {"bags_per_s": batch / median, "ms_per_step": 1000 * median, "warmup_s": warm,
                "peak_gib": (torch.cuda.max_memory_allocated() / 2**30) if self.device.type == "cuda" else None}

    # ------------------------------------------------------------ sections
    def fine_tuning(self, candidates: list[Settings]) -> None:
        section = self.results.setdefault("fine_tuning", {})
        for settings in candidates:
            if settings.compile and self.left() < 150:
                section[settings.name] = {"skipped": f"{self.left():.0f} s of the time budget left"}
                print(f"  {settings.name}: skipped (time budget)", flush=True)
                continue
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            model = network = optimizer = None
            try:
                model, network, optimizer = self.model(settings)
                figures = self.timed(self.step_fn(network, optimizer, settings),
                                     self.host_bags(settings.batch, 4), settings.batch)
            except Exception as exc:
                figures = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            section[settings.name] = {**asdict(settings), "lr": settings.lr(), **figures}
            print(f"  {settings.name}: " + (figures.get("error") or
                  f"{figures['bags_per_s']:.1f} bags/s, {figures['ms_per_step']:.1f} ms/step, "
                  f"peak {figures['peak_gib'] or 0:.1f} GiB, warm-up {figures['warmup_s']:.1f} s"), flush=True)
            del model, network, optimizer
            self.free()
            self.save()

    def loss_curves(self, best: Settings, steps: int) -> None:
        bags = self.host_bags(PAPER_BATCH, 8, seed=5)
        curves = {}
        for name, settings in (("today", Settings("today")), ("today again", Settings("today")),
                               (f"best ({best.name})", best)):
            model, network, optimizer = self.model(settings, seed=1)
            step = self.step_fn(network, optimizer, settings)
            curves[name] = [step(bags[i % len(bags)]) for i in range(steps)]
            del model, network, optimizer
            self.free()
        names = list(curves)

        def tail_gap(a: str, b: str) -> float:
            return float(np.mean(np.abs(np.array(curves[a][-10:]) - np.array(curves[b][-10:]))))

        self.results["loss_curve"] = {"batch": PAPER_BATCH, "curves": curves,
                                      "noise_today_vs_today": tail_gap(names[0], names[1]),
                                      "gap_best_vs_today": tail_gap(names[0], names[2])}
        for name, curve in curves.items():
            print(f"  {name:28}: " + " ".join(f"{v:.3f}" for v in curve[::max(1, steps // 10)]) +
                  f"  (last {curve[-1]:.3f})", flush=True)
        gaps = self.results["loss_curve"]
        print(f"  mean |difference| over the last 10 steps: today vs today {gaps['noise_today_vs_today']:.4f}, "
              f"best vs today {gaps['gap_best_vs_today']:.4f}", flush=True)
        self.save()

    @torch.no_grad()
    def live_step(self, repeats: int) -> None:
        cfg = self.config
        torch.manual_seed(0)
        model = Milmer(cfg).to(self.device).eval()
        eeg = torch.randn(1, cfg.eeg_channels, cfg.eeg_samples, device=self.device)
        faces = torch.randint(0, 256, (1, cfg.num_instances, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                              device=self.device)
        cached = model.embed_frames(faces[0]).unsqueeze(0)
        section = {}
        for label, amp in (("float32", False), ("bf16 autocast", True)):
            enabled = amp and self.device.type == "cuda"
            for what, call in (
                    ("whole bag (10 frames through the backbone)", lambda: model(eeg, faces)),
                    ("one new frame + cached tokens", lambda: model.forward_embedded(
                        eeg, torch.cat([cached[:, 1:], model.embed_frames(faces[0, :1]).unsqueeze(0)], dim=1)))):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
                    for _ in range(5):
                        call()
                    self.sync()
                    times = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        call()
                        self.sync()
                        times.append(time.perf_counter() - t0)
                ms = 1000 * statistics.median(times)
                section[f"{what}, {label}"] = ms
                print(f"  {what}, {label}: {ms:.2f} ms", flush=True)
        self.results["live_step_ms"] = section
        model = None  # frees the GPU memory (the timed lambdas above hold the name, so no `del`)
        self.free()
        self.save()

    def frozen(self, batches: list[int]) -> None:
        cfg = self.config
        torch.manual_seed(0)
        model = Milmer(cfg).to(self.device)
        model.backbone.requires_grad_(False)
        frames = torch.randint(0, 256, (256 if self.device.type == "cuda" else 16, 3, cfg.image_size, cfg.image_size),
                               dtype=torch.uint8)
        section: dict = {}
        for label, amp in (("float32", False), ("bf16 autocast", True)):
            enabled = amp and self.device.type == "cuda"
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
                embed_frames(model, frames[:32])
                self.sync()
                t0 = time.perf_counter()
                for _ in range(3):
                    embed_frames(model, frames)
                self.sync()
            rate = 3 * len(frames) / (time.perf_counter() - t0)
            section[f"embedding frames/s, {label}"] = rate
            print(f"  embedding (backbone, eval, no grad), {label}: {rate:.0f} frames/s", flush=True)
        tokens = model.frame_features(frames[:1].to(self.device)).shape[1:]
        network = FrozenBackboneNetwork(model).train()
        for batch in batches:
            for label, amp, fused in (("float32", False, False), ("bf16 autocast, fused AdamW", True, True)):
                options = {"fused": True} if fused else {}
                optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, **options)
                generator = torch.Generator().manual_seed(0)
                bags = []
                for _ in range(4):
                    features = torch.randn(batch, cfg.num_instances, *tokens, generator=generator).half()
                    eeg = torch.randn(batch, cfg.eeg_channels, cfg.eeg_samples, generator=generator)
                    labels = torch.randint(0, cfg.num_classes, (batch,), generator=generator)
                    if self.device.type == "cuda":
                        features, eeg, labels = features.pin_memory(), eeg.pin_memory(), labels.pin_memory()
                    bags.append((eeg, features, labels))
                settings = Settings("frozen", batch=batch, amp=amp)
                figures = self.timed(self.step_fn(network, optimizer, settings), bags, batch)
                section[f"training bags/s, batch {batch}, {label}"] = figures["bags_per_s"]
                print(f"  frozen training, batch {batch}, {label}: {figures['bags_per_s']:.1f} bags/s "
                      f"({figures['ms_per_step']:.1f} ms/step)", flush=True)
        self.results["frozen"] = section
        del model, network
        self.free()
        self.save()

    def loader(self, windows: int, batch: int, workers: list[int]) -> None:
        from training.batches import PlannedBatchSampler, make_loader
        from training.dataset import DeapWindowDataset, WindowArrays
        from training.prepare import META_DTYPE

        cfg = self.config
        rng = np.random.default_rng(0)
        meta = np.zeros(windows, META_DTYPE)
        meta["row"] = np.arange(windows)
        meta["subject"] = 1
        meta["valence"], meta["arousal"] = 7.0, 7.0
        arrays = WindowArrays(
            eeg=rng.standard_normal((windows, cfg.eeg_channels, cfg.eeg_samples), dtype=np.float32),
            faces=rng.integers(0, 256, (windows, cfg.num_instances, 3, cfg.image_size, cfg.image_size), dtype=np.uint8),
            face_mask=np.ones((windows, cfg.num_instances), bool), meta=meta)
        dataset = DeapWindowDataset(arrays)
        section = {}
        for count in workers:
            sampler = PlannedBatchSampler()
            loader = make_loader(dataset, sampler, count, pin_memory=self.device.type == "cuda")
            sampler.plan = [list(range(i, min(i + batch, windows))) for i in range(0, windows, batch)]
            for _ in loader:  # start the workers
                break
            t0 = time.perf_counter()
            delivered = 0
            for item in loader:
                item.faces.to(self.device, non_blocking=True)
                delivered += len(item)
            self.sync()
            rate = delivered / (time.perf_counter() - t0)
            section[f"{count} workers"] = rate
            print(f"  data loader, {count} worker(s), batch {batch}, pinned={self.device.type == 'cuda'}: "
                  f"{rate:.0f} bags/s (uint8 frames to the device)", flush=True)
            del loader
        self.results["loader_bags_per_s"] = section
        self.save()

    def free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def followup(args: argparse.Namespace, device: torch.device) -> int:
    """The second look: the fixed-seed loss curve of the compiled settings and compile at a larger batch."""
    config = preset_config("tiny" if args.quick else "paper")
    bench = Bench(config, device, steps=3 if args.quick else 20, warmup=1 if args.quick else 5, out=Path(args.out),
                  budget=args.budget)
    best = Settings("channels-last + fused AdamW + torch.compile reduce-overhead (CUDA graphs)", channels_last=True,
                    fused=True, compile="reduce-overhead")
    print("loss curve (fixed seed, batch 14):", flush=True)
    bench.loss_curves(best, steps=4 if args.quick else 40)
    print("torch.compile at batch 56:", flush=True)
    batch = 28 if args.quick else 56
    bench.fine_tuning([Settings(f"channels-last + fused AdamW + torch.compile, batch {batch}", batch=batch,
                                channels_last=True, fused=True, compile="default"),
                       Settings(f"channels-last + fused AdamW + torch.compile reduce-overhead, batch {batch}",
                                batch=batch, channels_last=True, fused=True, compile="reduce-overhead")])
    bench.save()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "bench-out"), help="folder for gpu_train.json")
    parser.add_argument("--quick", action="store_true", help="tiny preset, few steps: check the script anywhere")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds; compile candidates stop when it runs low")
    parser.add_argument("--followup", action="store_true",
                        help="only the compiled candidates: their loss curve at batch 14 and their bags/s at batch 56")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    quick = args.quick
    if args.followup:
        return followup(args, device)
    config = preset_config("tiny" if quick else "paper")
    bench = Bench(config, device, steps=3 if quick else 20, warmup=1 if quick else 5, out=Path(args.out),
                  budget=args.budget)
    print(f"{config.preset} preset on {device} ({machine()})", flush=True)
    started = time.monotonic()

    print("fine-tuning:", flush=True)
    eager = [Settings("today (bf16 autocast, AdamW)"), Settings("float32 (no autocast)", amp=False),
             Settings("fused AdamW", fused=True), Settings("channels-last", channels_last=True),
             Settings("channels-last + fused AdamW", channels_last=True, fused=True)]
    bench.fine_tuning(eager)
    ok = {n: r for n, r in bench.results["fine_tuning"].items() if "bags_per_s" in r}
    best_name = max(ok, key=lambda n: ok[n]["bags_per_s"])
    best = next(s for s in eager if s.name == best_name)
    bench.results["best_eager_batch14"] = best_name
    larger = [Settings(f"{best.name}, batch {b}", batch=b, channels_last=best.channels_last, fused=best.fused,
                       amp=best.amp) for b in ((28,) if quick else (28, 56, 112))]
    bench.fine_tuning(larger)

    print("loss curve (fixed seed, batch 14):", flush=True)
    bench.loss_curves(best, steps=4 if quick else 40)
    print("live step, batch 1:", flush=True)
    bench.live_step(repeats=5 if quick else 50)
    print("frozen backbone:", flush=True)
    bench.frozen([PAPER_BATCH] if quick else [PAPER_BATCH, 112])
    print("data loader:", flush=True)
    bench.loader(windows=28 if quick else 560, batch=PAPER_BATCH, workers=[0, 2] if quick else [0, 4, 8])

    print("torch.compile:", flush=True)
    compiled = [Settings(f"{best.name} + torch.compile", channels_last=best.channels_last, fused=best.fused,
                         compile="default")]
    if not quick:
        compiled.append(Settings(f"{best.name} + torch.compile reduce-overhead (CUDA graphs)",
                                 channels_last=best.channels_last, fused=best.fused, compile="reduce-overhead"))
    bench.fine_tuning(compiled)
    bench.results["seconds"] = time.monotonic() - started
    bench.save()
    print(f"done in {bench.results['seconds']:.0f} s; wrote {Path(args.out) / 'gpu_train.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
