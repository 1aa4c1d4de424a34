"""milmer-train finetune-face: fine-tune the Swin face backbone on an image-folder expression dataset."""

from __future__ import annotations

import argparse
import logging

from training.preflight import check_file, check_folder, check_positive
from training.train_config import AMP_MODES, PRESETS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", metavar="DIR", required=True, help="one subfolder of face images per class")
    parser.add_argument("--out", metavar="FILE", required=True, help="output .safetensors (for --backbone-weights)")
    parser.add_argument("--preset", choices=PRESETS, default="paper", help="backbone size (default paper)")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="start from these Swin weights (e.g. convert-backbone output of an ImageNet Swin-T)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="stratified validation share (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-workers", type=int, default=-1)
    parser.add_argument("--amp", choices=AMP_MODES, default="auto")


def run(args: argparse.Namespace) -> int:
    check_folder(args.images, "image folder")
    check_file(args.init_weights, "initial weights file")
    check_positive(args.epochs, "--epochs")
    check_positive(args.batch_size, "--batch-size")
    from models.device import resolve_device
    from training.finetune_face import FinetuneConfig, finetune_face

    config = FinetuneConfig(
        images=args.images, out=args.out, preset=args.preset, init_weights=args.init_weights, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
        seed=args.seed, device=args.device, num_workers=args.num_workers, amp=args.amp,
    )
    result = finetune_face(config, resolve_device(config.device))
    log.info("best epoch %d: validation accuracy %.3f, macro-F1 %.3f; weights in %s", result.best_epoch,
             result.val_accuracy, result.val_macro_f1, result.out)
    return 0
