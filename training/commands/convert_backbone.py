"""milmer-train convert-backbone: a HF transformers or timm Swin-T checkpoint -> timm safetensors."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.errors import DataError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC",
                        help="HF folder (config.json + model.safetensors or pytorch_model.bin), "
                             "or a .safetensors/.bin/.pth file with HF or timm key names")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors", help="where to write the timm weights")
    parser.add_argument("--drop-head", action="store_true",
                        help="leave out the face-emotion classifier (kept as head.fc.* by default)")


def run(args: argparse.Namespace) -> int:
    if not Path(args.source).expanduser().exists():
        raise DataError(f"{args.source}: not found", hint="pass a Hugging Face model folder or a checkpoint file")
    from models.convert import convert_swin, write_timm_safetensors  # torch/timm: only when the command runs

    report = convert_swin(args.source, keep_head=not args.drop_head)
    out = write_timm_safetensors(report, Path(args.out))
    log.info("wrote %s: %d tensors from a %s checkpoint (Swin %s, %d head classes, %d unused source tensors)",
             out, len(report.state), report.source_format, report.swin_kwargs, report.num_classes,
             len(report.unused))
    return 0
