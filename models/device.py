"""Device choice and mixed precision: CUDA when present, plain float32 on the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from models.errors import MilmerError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# The live step (one bag at a time) is launch-bound: bf16 autocast only adds casts there. On an NVIDIA H200
# (bench/gpu_train.py, 2026-12-04) a bag took 16.7 ms in float32 and 17.7 ms under bf16 autocast (one new
# frame with cached tokens: 15.9 and 16.7 ms), so the app runs float32 on every device.
LIVE_AUTOCAST: torch.dtype | None = None


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' (or 'cuda:N') without CUDA is an error."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MilmerError(f"device {spec!r} requested but CUDA is not available on this machine",
                              hint="use --device cpu or --device auto")
        return torch.device(spec)
    raise MilmerError(f"unknown device {spec!r}", hint=f"choose one of {', '.join(DEVICE_CHOICES)}")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 on CUDA; None (full precision) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None | str = "auto") -> Iterator[None]:
    """Mixed precision in ``dtype``; a no-op where ``dtype`` is None.

    The default, "auto", is `autocast_dtype(device)`: mixed precision on CUDA, a no-op elsewhere.
    """
    if isinstance(dtype, str):
        if dtype != "auto":
            raise ValueError(f"autocast dtype {dtype!r}: expected a torch.dtype, None or 'auto'")
        dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
