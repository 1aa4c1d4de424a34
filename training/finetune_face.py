"""Fine-tune the Swin face backbone on an image-folder facial-expression dataset.

The paper's backbone is a Swin-T fine-tuned for facial expressions before Milmer
training; this is that step. Input: ``DIR/<class>/*.png|jpg`` (one folder per
expression, faces already cropped as in FER2013, RAF-DB or AffectNet). Output: a
safetensors file of timm Swin weights (plus the classifier as ``head.fc.*``) that
``milmer-train train --backbone-weights FILE`` loads into the face backbone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
from tqdm import tqdm

from models.checkpoint import save_safetensors_atomic
from models.config import MilmerConfig, preset_config
from models.contract import IMAGENET_MEAN, IMAGENET_STD
from models.convert import load_backbone_weights
from models.device import autocast
from models.errors import DataError
from models.milmer import build_backbone
from training.batches import amp_dtype, resolve_num_workers
from training.metrics import MetricAccumulator
from training.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    images: str
    out: str
    preset: str = "paper"
    init_weights: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = -1
    amp: str = "auto"


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    classes: list[str]
    best_epoch: int
    val_accuracy: float
    val_macro_f1: float


class ExpressionClassifier(nn.Module):
    """The Milmer face backbone with a linear expression head on its pooled features."""

    def __init__(self, model_config: MilmerConfig, num_classes: int):
        super().__init__()
        self.backbone = build_backbone(model_config)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _image_transforms(size: int, train: bool) -> transforms.Compose:
    steps: list = [transforms.Resize((size, size))]
    if train:
        steps += [transforms.RandomHorizontalFlip(), transforms.ColorJitter(brightness=0.2, contrast=0.2)]
    steps += [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return transforms.Compose(steps)


def _stratified_split(targets: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(set(targets)):
        members = np.flatnonzero(np.asarray(targets) == label)
        rng.shuffle(members)
        count = int(round(len(members) * val_fraction)) if len(members) > 1 else 0
        count = max(1, count) if val_fraction > 0 and len(members) > 1 else count
        val += members[:count].tolist()
        train += members[count:].tolist()
    return sorted(train), sorted(val)


def _open_image_folder(root: Path, size: int, train: bool) -> datasets.ImageFolder:
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    try:
        return datasets.ImageFolder(str(root), transform=_image_transforms(size, train))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{root}: not an image-folder dataset ({exc})",
                        hint="expected one subfolder per expression class holding .png/.jpg images") from exc


def finetune_face(config: FinetuneConfig, device: torch.device) -> FinetuneResult:
    model_config = preset_config(config.preset)
    size = model_config.image_size
    root = Path(config.images)
    train_view = _open_image_folder(root, size, train=True)
    eval_view = _open_image_folder(root, size, train=False)
    classes = list(train_view.classes)
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s); at least 2 are needed")
    train_indices, val_indices = _stratified_split(train_view.targets, config.val_fraction, config.seed)
    if not val_indices:
        raise DataError(f"{root}: too few images for a validation split of {config.val_fraction:.0%}")
    log.info("%s: %d classes (%s), %d train and %d validation images at %d px", root, len(classes),
             ", ".join(classes), len(train_indices), len(val_indices), size)

    seed_everything(derive_seed(config.seed, 0))
    model = ExpressionClassifier(model_config, len(classes))
    if config.init_weights:
        load_backbone_weights(model, config.init_weights)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=0.1 * config.lr)
    dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    workers = resolve_num_workers(config.num_workers, device)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, 1))
    train_loader = DataLoader(Subset(train_view, train_indices), batch_size=config.batch_size, shuffle=True,
                              generator=generator, num_workers=workers, pin_memory=device.type == "cuda",
                              persistent_workers=workers > 0)
    val_loader = DataLoader(Subset(eval_view, val_indices), batch_size=config.batch_size,
                            num_workers=workers, pin_memory=device.type == "cuda")

    best_score, best_epoch, best_metrics = (-1.0, 0.0), -1, None
    out = Path(config.out)
    for epoch in range(config.epochs):
        started = time.monotonic()
        seed_everything(derive_seed(config.seed, 2, epoch))
        model.train()
        train_accumulator = MetricAccumulator(len(classes))
        for images, labels in tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                                   disable=None):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast(device, dtype):
                logits = model(images).float()
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            train_accumulator.update(logits, labels, loss.item() * len(labels))
        scheduler.step()
        val = _evaluate(model, val_loader, len(classes), device, dtype)
        train = train_accumulator.result()
        log.info("epoch %d/%d: train loss %.4f acc %.3f, val loss %.4f acc %.3f macro-F1 %.3f (%.1fs)", epoch + 1,
                 config.epochs, train.loss, train.accuracy, val.loss, val.accuracy, val.macro_f1,
                 time.monotonic() - started)
        score = (val.accuracy, -val.loss)
        if score > best_score:
            best_score, best_epoch, best_metrics = score, epoch + 1, val
            _save(model, out, config, classes, epoch + 1, val.accuracy, val.macro_f1)
    return FinetuneResult(out=out, classes=classes, best_epoch=best_epoch, val_accuracy=best_metrics.accuracy,
                          val_macro_f1=best_metrics.macro_f1)


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
              dtype: torch.dtype | None):
    model.eval()
    accumulator = MetricAccumulator(num_classes)
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(images).float()
        accumulator.update(logits, labels, nn.functional.cross_entropy(logits, labels, reduction="sum").item())
    return accumulator.result()


def _save(model: ExpressionClassifier, out: Path, config: FinetuneConfig, classes: list[str], epoch: int,
          val_accuracy: float, val_macro_f1: float) -> None:
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in model.backbone.state_dict().items()}
    tensors["head.fc.weight"] = model.head.weight.detach().cpu().contiguous().clone()
    tensors["head.fc.bias"] = model.head.bias.detach().cpu().contiguous().clone()
    metadata = {
        "format": "milmer-face-backbone",
        "preset": config.preset,
        "classes": json.dumps(classes),
        "epoch": str(epoch),
        "val_accuracy": f"{val_accuracy:.6f}",
        "val_macro_f1": f"{val_macro_f1:.6f}",
        "finetune_config": json.dumps(asdict(config)),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(tensors, out, metadata=metadata)
    log.info("saved backbone weights of epoch %d (val accuracy %.3f) to %s", epoch + 1, val_accuracy, out)
