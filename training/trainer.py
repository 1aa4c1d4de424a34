"""The training loop: folds of a protocol, epochs, model selection on validation, one test pass per fold.

One `Trainer.run()` trains every fold of the protocol in turn, writing the run
directory described in `training.run_dir`. It runs alone or as one process of a
torchrun group (see `training.distributed`); only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models.checkpoint import load_checkpoint, save_checkpoint
from models.config import FROZEN_BACKBONE_LABEL as FROZEN_LABEL
from models.console import package_version
from models.milmer import Milmer, build_backbone, count_parameters
from training.augment import drop_channels
from training.batches import PlannedBatchSampler, amp_dtype, make_loader, model_logits, resolve_num_workers
from training.cost import RunShape, StepCosts, duration, estimate_record
from training.distributed import (
    DistributedContext,
    barrier,
    plan_train_batches,
    reduce_accumulator,
)
from training.embeddings import FrozenBackboneNetwork, ensure_features, feature_store
from training.evaluation import evaluate_windows
from training.metrics import ClassificationMetrics, MetricAccumulator
from training.plots import plot_confusion, plot_learning_curves
from training.resume import ResumeState, interrupts_deferred, remove_resume_state, save_resume_state
from training.run_data import FoldSplit, WindowData, contract_for
from training.run_dir import EpochLog, RunDir, read_epoch_rows, write_json
from training.seeding import derive_seed, seed_everything
from training.splits import PAPER_LEAKY_LABEL, split_problems
from training.threads import configure_cpu_threads
from training.train_config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

# Purposes mixed into derived seeds, so that streams for different jobs never coincide.
_INIT, _EPOCH, _SHUFFLE = 1, 2, 3
# A frozen backbone without --backbone-weights starts from this seed in every fold and run (not the
# run's seed), so that its cached frame features serve them all.
FROZEN_BACKBONE_SEED = 0


@dataclass
class FoldProgress:
    """Model-selection state of the fold in progress (kept in the resume state)."""

    best_score: list[float] | None = None
    best_epoch: int = 0  # 1-based, as everywhere a person reads it; 0: none yet
    best_val: dict[str, Any] = field(default_factory=dict)
    best_test_over_epochs: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_val": self.best_val,
                "best_test_over_epochs": self.best_test_over_epochs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldProgress:
        return cls(**data) if data else cls()


def selection_score(metrics: Mapping[str, Any], metric: str) -> list[float]:
    """Larger is better, compared as a list: the chosen metric first, lower loss breaks ties.

    ``metrics`` is a `ClassificationMetrics.to_dict()` (as kept in ``selected_val`` of metrics.json).
    """
    if metric == "loss":
        return [-metrics["loss"]]
    return [metrics[metric], -metrics["loss"]]


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: RunDir, data: WindowData, device: torch.device,
                 context: DistributedContext | None = None):
        self.config = config
        self.model_config = config.model_config()
        self.run_dir = run_dir
        self.data = data
        self.device = device
        self.context = context or DistributedContext()
        self.amp = amp_dtype(config.amp, device)
        self.num_workers = resolve_num_workers(config.num_workers, device)
        configure_cpu_threads(self.num_workers, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        self.contract = contract_for(config)
        self.epoch_log = EpochLog(run_dir.epochs_csv)
        self.epochs_run = 0  # by this process, for the ETA
        self.epochs_done_before = 0  # by the interrupted process(es) this run resumes
        self.total_epochs = 0
        self.started = time.monotonic()
        self.shape: RunShape | None = None
        self.costs: StepCosts | None = None
        self.estimate: dict[str, Any] | None = None
        self.tensorboard = None
        self.split_warnings: list[str] = []
        self.channel_dropout = config.channel_dropout_rate() if self.model_config.uses_eeg else 0.0
        self.protocol_label = PAPER_LEAKY_LABEL if config.leaky else f"{config.protocol} protocol"
        self.frozen = config.frozen_backbone
        if self.model_config.uses_face:
            self.backbone_label = FROZEN_LABEL if self.frozen else "face backbone fine-tuned"
        else:
            self.backbone_label = None

    # ----------------------------------------------------------------- whole run
    def write_config(self) -> None:
        if not self.context.is_main:
            return
        write_json(self.run_dir.config, {
            "train": self.config.to_dict(),
            "model": self.model_config.to_dict(),
            "contract": self.contract.to_dict(),
            "milmer_version": package_version(),
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "world_size": self.context.world_size,
            "device": str(self.device),
        })

    def run(self, resume: ResumeState | None = None) -> dict[str, Any]:
        """Train every fold (continuing from ``resume``) and return the contents of metrics.json."""
        splits = self.data.splits(self.config.protocol, self.config.folds, self.config.seed)
        self.split_warnings = [problem for split in splits for problem in split_problems(
            self.data.dataset.meta, self.data.dataset.labels, split, self.model_config.num_classes,
            self.contract.class_names)]
        if self.context.is_main:
            for problem in self.split_warnings:
                log.warning("%s", problem)
            self.run_dir.create()
            self.epoch_log.start(keep_before=(resume.fold, resume.epoch) if resume else None)
            self._open_tensorboard()
        if self.frozen:
            self._use_frozen_features()
        completed = list(resume.completed_folds) if resume else []
        self.total_epochs = len(splits) * self.config.epochs
        self.epochs_done_before = (resume.fold * self.config.epochs + resume.epoch) if resume else 0
        log.info("%s protocol: %d fold(s), %d windows, %s preset, device %s, %d process(es)",
                 self.config.protocol, len(splits), len(self.data), self.model_config.preset, self.device,
                 self.context.world_size)
        self._estimate_cost(splits, resume)
        self.started = time.monotonic()
        try:
            for fold_index, split in enumerate(splits):
                if fold_index < len(completed):
                    continue
                fold_resume = resume if resume is not None and resume.fold == fold_index and resume.epoch > 0 else None
                completed.append(self._run_fold(fold_index, split, fold_resume, completed))
                if self.context.is_main and fold_index + 1 < len(splits):
                    with interrupts_deferred():
                        save_resume_state(self.run_dir.resume_stem, ResumeState(
                            fold=fold_index + 1, epoch=0, model={}, optimizer={"state": {}, "param_groups": []},
                            scheduler={}, completed_folds=completed))
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        metrics = self._summarise(completed)
        if self.estimate is not None:
            metrics["cost"] = {**self.estimate, "measured_seconds": time.monotonic() - self.started}
        if self.context.is_main:
            write_json(self.run_dir.metrics, metrics)
            plot_learning_curves(read_epoch_rows(self.run_dir.epochs_csv), self.run_dir.learning_curves,
                                 title=f"{self.protocol_label}, {self.model_config.modalities}")
            remove_resume_state(self.run_dir.resume_stem)
            leaky = "LEAKY " if self.config.leaky else ""
            log.info("%smean test accuracy %.4f (std %.4f), %smean test macro-F1 %.4f over %d fold(s); wrote %s",
                     leaky, metrics["mean_test_accuracy"], metrics["std_test_accuracy"], leaky,
                     metrics["mean_test_macro_f1"], len(completed), self.run_dir.metrics)
            if self.config.leaky:
                log.info("LEAKY best test accuracy over epochs (as published) %.4f",
                         metrics["mean_best_test_accuracy_over_epochs"])
        barrier(self.context)
        return metrics

    def _open_tensorboard(self) -> None:
        if not self.config.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("TensorBoard logging was requested but the tensorboard package is not installed",
                              hint="pip install tensorboard, or leave out --tensorboard") from exc
        self.tensorboard = SummaryWriter(str(self.run_dir.tensorboard))

    def estimate_only(self) -> float | None:
        """The estimated wall time of this run (seconds), measured as `run` does first, without training."""
        splits = self.data.splits(self.config.protocol, self.config.folds, self.config.seed)
        if self.frozen:
            self._use_frozen_features()
        self._estimate_cost(splits, None, quiet=True)
        return self.estimate["estimated_seconds"] if self.estimate else None

    def _estimate_cost(self, splits: list[FoldSplit], resume: ResumeState | None, quiet: bool = False) -> None:
        """Time a few training steps, evaluations and saves of this run's model on its own data, and say what
        the whole run will cost (folds x epochs x windows) before paying it."""
        if self.context.enabled:
            log.info("no cost estimate under torchrun: the progress line's ETA follows the measured epochs")
            return
        started = time.monotonic()
        split = splits[0]
        model = self._build_model(0)
        fold_setup = time.monotonic() - started
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=self.config.lr, weight_decay=self.config.weight_decay,
                                      **self._optimizer_options())
        network = self._network(model)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp is torch.float16)
        sampler = PlannedBatchSampler()
        loader = make_loader(self.data.dataset, sampler, 0, pin_memory=self.device.type == "cuda")
        batch = self.config.batch_size
        order = np.random.default_rng(0).permutation(split.train)
        sampler.plan = [[int(i) for i in order[start:start + batch]] for start in range(0, len(order), batch)][:9]
        # The first step warms up (allocations, kernels); later ones are timed (median) until there are three
        # and two seconds of them, or eight: a few steps of a large model, more of a small one, whose time
        # varies more under other processes' load.
        timings, first, rng_state = [], None, torch.random.get_rng_state()
        network.train()
        step_started = time.monotonic()
        for position, window_batch in enumerate(loader):  # each timing includes reading the batch
            self._step(network, optimizer, scaler, window_batch, 1.0 / len(window_batch))
            self._synchronise()
            seconds = (time.monotonic() - step_started) * batch / len(window_batch)
            if position:
                timings.append(seconds)
            else:
                first = seconds
            step_started = time.monotonic()
            if len(timings) >= 8 or (len(timings) >= 3 and sum(timings) > 2.0):
                break
        evaluated = split.val if len(split.val) else split.test
        evaluated = evaluated[:max(batch, 2 * batch)]
        eval_started = time.monotonic()
        self._evaluate(model, evaluated)
        eval_window = (time.monotonic() - eval_started) / max(1, len(evaluated))
        # Saving, loading back and plotting once, in a folder removed straight after.
        probe = self.run_dir.root / ".cost-probe"
        probe.mkdir(parents=True, exist_ok=True)
        save_started = time.monotonic()
        save_checkpoint(probe / "best", model, self.contract, {})
        save_resume_state(probe / "resume", ResumeState(
            fold=0, epoch=1, model=model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler={}, scaler=scaler.state_dict(), fold_progress={}, completed_folds=[]))
        epoch_saving = time.monotonic() - save_started
        finish_started = time.monotonic()
        load_checkpoint(probe / "best", device=self.device)
        plot_confusion([[0] * self.model_config.num_classes] * self.model_config.num_classes,
                       self.contract.class_names, probe / "confusion.png", title="cost probe")
        fold_finish = time.monotonic() - finish_started
        for path in probe.iterdir():
            path.unlink()
        probe.rmdir()
        torch.random.set_rng_state(rng_state)
        del network, model, optimizer
        if not timings:  # a single batch per epoch: its warm-up step is all there is to go by
            if first is None:
                return
            timings = [first]
        self.costs = StepCosts(train_batch=float(np.median(timings)), eval_window=eval_window,
                               epoch_saving=epoch_saving, fold_setup=fold_setup + fold_finish,
                               run_finish=fold_finish)
        self.shape = RunShape.of(splits, self.config.epochs, batch, test_every_epoch=self.config.leaky)
        from_fold, from_epoch = (resume.fold, resume.epoch) if resume else (0, 0)
        seconds = self.shape.seconds(self.costs, from_fold, from_epoch)
        self.estimate = estimate_record(self.shape, self.costs, seconds, str(self.device))
        if self.context.is_main and not quiet:
            log.info("estimated wall time of the %s: %s (%s; %.3f s per training batch, %.4f s per evaluated "
                     "window, %.2f s saving per epoch, on %s; timing took %.1f s)",
                     "rest of the run" if resume else "whole run", duration(seconds), self.shape.describe(),
                     self.costs.train_batch, eval_window, epoch_saving, self.device, time.monotonic() - started)

    def _synchronise(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _use_frozen_features(self) -> None:
        """Compute (rank 0) or reuse the frozen backbone's frame features; the data then carries them."""
        reference = self._build_model(0)
        dataset = self.data.dataset
        if self.context.is_main:
            store = ensure_features(reference, dataset.cache, dataset.subjects())
        else:
            store = feature_store(reference, dataset.cache)
        barrier(self.context)
        self.data = WindowData(dataset.with_frame_features(store), self.data.description)
        self.data.description["face_backbone"] = FROZEN_LABEL
        del reference

    # ----------------------------------------------------------------- one fold
    def _build_model(self, fold: int) -> Milmer:
        torch.manual_seed(derive_seed(self.config.seed, fold, _INIT))
        model = Milmer(self.model_config)
        log.debug("model of %s parameters", f"{count_parameters(model):,}")
        if self.frozen and not self.config.backbone_weights:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(FROZEN_BACKBONE_SEED)
                model.backbone.load_state_dict(build_backbone(self.model_config).state_dict())
        if self.config.backbone_weights:
            from models.convert import load_backbone_weights

            load_backbone_weights(model, self.config.backbone_weights)
        if self.frozen:
            model.backbone.requires_grad_(False)
        elif self.device.type == "cuda" and self.model_config.uses_face:
            # Channels-last patch embedding: 184 against 164 bags/s fine-tuning the paper preset on an H200
            # (198 with fused AdamW; bench/gpu_train.py). The CPU keeps the default layout.
            model.image_memory_format = torch.channels_last
            model.backbone.to(memory_format=torch.channels_last)
        return model.to(self.device)

    def _optimizer_options(self) -> dict[str, Any]:
        """Fused AdamW on CUDA (measured faster on an H200, bench/gpu_train.py); the default elsewhere."""
        return {"fused": True} if self.device.type == "cuda" else {}

    def _network(self, model: Milmer) -> nn.Module:
        """What a batch goes through: the model, or with a frozen backbone the layers after it."""
        return FrozenBackboneNetwork(model) if self.frozen else model

    def _run_fold(self, fold: int, split: FoldSplit, resume: ResumeState | None,
                  completed: list[dict[str, Any]]) -> dict[str, Any]:
        config = self.config
        model = self._build_model(fold)
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay,
                                      **self._optimizer_options())
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.lr * config.min_lr_ratio)
        progress = FoldProgress()
        start_epoch = 0
        if resume is not None:
            model.load_state_dict(resume.model)
            optimizer.load_state_dict(resume.optimizer)
            scheduler.load_state_dict(resume.scheduler)
            progress = FoldProgress.from_dict(resume.fold_progress)
            start_epoch = resume.epoch
            log.info("resuming fold %d at epoch %d", fold, start_epoch + 1)
        network: nn.Module = self._network(model)
        network = torch.compile(network) if config.compile else network
        if self.context.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            network = DistributedDataParallel(network, device_ids=device_ids)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp is torch.float16)
        if resume is not None and resume.scaler:
            scaler.load_state_dict(resume.scaler)
        sampler = PlannedBatchSampler()
        loader = make_loader(self.data.dataset, sampler, self.num_workers, pin_memory=self.device.type == "cuda")
        # One evaluation loader per fold: its workers persist while each evaluation sets its own plan.
        eval_loader = make_loader(self.data.dataset, PlannedBatchSampler(), self.num_workers,
                                  pin_memory=self.device.type == "cuda")
        log.info("fold %d (%s): %d train, %d val, %d test windows", fold, split.name,
                 len(split.train), len(split.val), len(split.test))
        if not len(split.val) and not config.leaky:
            log.warning("fold %d has no validation windows: the last epoch's model is kept", fold)
        best_stem = self.run_dir.best_checkpoint(fold)

        for epoch in range(start_epoch, config.epochs):
            epoch_started = time.monotonic()
            seed_everything(derive_seed(config.seed, fold, epoch, _EPOCH, self.context.rank))
            plan = plan_train_batches(len(split.train), config.batch_size,
                                      derive_seed(config.seed, fold, epoch, _SHUFFLE), self.context)
            sampler.plan = [[int(split.train[i]) for i in batch.indices] for batch in plan]
            lr = optimizer.param_groups[0]["lr"]
            train = self._train_epoch(network, optimizer, scaler, loader, [b.weight for b in plan],
                                      f"fold {fold} epoch {epoch + 1}/{config.epochs}")
            val = self._evaluate(model, split.val, eval_loader) if len(split.val) else None
            test = self._evaluate(model, split.test, eval_loader) if config.protocol == "paper" else None
            scheduler.step()

            score = selection_score(val.to_dict(), config.select_metric) if val else None
            # Without validation (the paper protocol) the last epoch's model is kept: save it once, at the end.
            improved = (epoch + 1 == config.epochs if val is None
                        else progress.best_score is None or score > progress.best_score)
            if improved:
                progress.best_score = score
                progress.best_epoch = epoch + 1
                progress.best_val = val.to_dict() if val else {}
            if test is not None:
                progress.best_test_over_epochs = max(progress.best_test_over_epochs or 0.0, test.accuracy)
            seconds = time.monotonic() - epoch_started
            self.epochs_run += 1
            if self.context.is_main:
                with interrupts_deferred():
                    if improved:
                        save_checkpoint(best_stem, model, self.contract, self._provenance(fold, split, epoch, val))
                    self._log_epoch(fold, epoch, lr, train, val, test, seconds)
                    save_resume_state(self.run_dir.resume_stem, ResumeState(
                        fold=fold, epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                        fold_progress=progress.to_dict(), completed_folds=completed))
            barrier(self.context)

        barrier(self.context)
        best = load_checkpoint(best_stem, device=self.device).model
        test = self._evaluate(best, split.test, eval_loader)
        result = self._fold_result(fold, split, progress, test)
        if self.context.is_main:
            test_name = "test (leaky)" if config.leaky else "test"
            plot_confusion(test.confusion, self.contract.class_names, self.run_dir.confusion_plot(fold),
                           title=f"fold {fold} {test_name}: accuracy {test.accuracy:.3f}")
            log.info("fold %d: %s epoch %d (saved as %s), %s accuracy %.4f, macro-F1 %.4f", fold,
                     "last" if config.leaky else "best", progress.best_epoch, best_stem.with_suffix(".safetensors"),
                     test_name, test.accuracy, test.macro_f1)
        return result

    def _train_epoch(self, network: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     loader, weights: list[float], description: str) -> ClassificationMetrics:
        network.train()
        accumulator = MetricAccumulator(self.model_config.num_classes)
        bar = tqdm(total=len(weights), desc=description, unit="batch", leave=False,
                   disable=None if self.context.is_main else True)
        eta = self._run_eta()
        if eta:
            bar.set_postfix_str(f"run ETA {eta}")
        for batch, weight in zip(loader, weights, strict=True):
            logits, labels, loss_sum = self._step(network, optimizer, scaler, batch, weight)
            if weight > 0:
                accumulator.update(logits, labels, loss_sum.item())
            bar.update(1)
        bar.close()
        reduce_accumulator(accumulator, self.context)
        return accumulator.result()

    def _step(self, network: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch,
              weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch; returns (logits, labels, summed loss) for the metrics."""
        if self.channel_dropout > 0:
            batch.eeg_mask = drop_channels(batch.eeg_mask, self.channel_dropout)
        logits = model_logits(network, self.model_config, batch, self.device, self.amp)
        labels = batch.labels.to(logits.device)
        loss_sum = nn.functional.cross_entropy(logits, labels, reduction="none").sum()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss_sum * weight).backward()
        scaler.step(optimizer)
        scaler.update()
        return logits, labels, loss_sum

    def _evaluate(self, model: nn.Module, indices: np.ndarray, loader=None) -> ClassificationMetrics:
        return evaluate_windows(self._network(model), self.model_config, self.data.dataset, indices, self.device,
                                self.config.batch_size, self.context, self.num_workers, self.amp, loader=loader)

    # ----------------------------------------------------------------- records
    def _provenance(self, fold: int, split: FoldSplit, epoch: int, val: ClassificationMetrics | None) -> dict:
        return {
            "dataset": self.data.description,
            "training_data": self.data.description.get("training_data"),
            "protocol": self.config.protocol,
            "protocol_label": self.protocol_label,
            "leaky": self.config.leaky,
            "split": self.data.test_split_record(split, self.config.leaky),
            "fold": fold,
            "fold_name": split.name,
            "epoch": epoch + 1,
            "val_accuracy": val.accuracy if val else None,
            "val_macro_f1": val.macro_f1 if val else None,
            "seed": self.config.seed,
            "face_backbone": self.backbone_label,
            "train_config": self.config.to_dict(),
        }

    def _log_epoch(self, fold: int, epoch: int, lr: float, train: ClassificationMetrics,
                   val: ClassificationMetrics | None, test: ClassificationMetrics | None, seconds: float) -> None:
        row = {
            "fold": fold, "epoch": epoch + 1, "lr": lr,
            "train_loss": train.loss, "train_accuracy": train.accuracy, "train_macro_f1": train.macro_f1,
            "val_loss": val.loss if val else None, "val_accuracy": val.accuracy if val else None,
            "val_macro_f1": val.macro_f1 if val else None,
            "leaky_test_accuracy": test.accuracy if test else None, "seconds": round(seconds, 3),
            "face_backbone": self.backbone_label,
        }
        self.epoch_log.append(row)
        if self.tensorboard is not None:
            step = fold * self.config.epochs + epoch
            for key, value in row.items():
                if key not in ("fold", "epoch") and value is not None:
                    self.tensorboard.add_scalar(f"fold_{fold}/{key}", value, step)
        done = self.epochs_done_before + self.epochs_run
        val_text = f", val acc {val.accuracy:.3f} loss {val.loss:.3f}" if val else ""
        log.info("fold %d epoch %d/%d: train loss %.4f acc %.3f%s, %.1fs (%d/%d epochs, ETA %s)", fold, epoch + 1,
                 self.config.epochs, train.loss, train.accuracy, val_text, seconds, done, self.total_epochs,
                 self._run_eta(fold, epoch + 1) or "?")

    def _run_eta(self, fold: int | None = None, next_epoch: int = 0) -> str:
        """Time left for the whole run (every fold): the estimate's remaining work, scaled by how the
        measured time so far compares with what the estimate said it would take; without an estimate,
        the mean epoch time so far times the epochs left."""
        if fold is None:
            done = self.epochs_done_before + self.epochs_run
            fold, next_epoch = divmod(done, self.config.epochs)
        elapsed = time.monotonic() - self.started
        if self.shape is None or self.costs is None:
            if not self.epochs_run:
                return ""
            left = self.total_epochs - self.epochs_done_before - self.epochs_run
            return duration(elapsed / self.epochs_run * left)
        start_fold, start_epoch = divmod(self.epochs_done_before, self.config.epochs)
        planned = self.shape.seconds(self.costs, start_fold, start_epoch)
        remaining = self.shape.seconds(self.costs, fold, next_epoch) if fold < len(self.shape.train) else 0.0
        expected_so_far = planned - remaining
        scale = elapsed / expected_so_far if self.epochs_run and expected_so_far > 0 else 1.0
        return duration(remaining * scale)

    def _fold_result(self, fold: int, split: FoldSplit, progress: FoldProgress,
                     test: ClassificationMetrics) -> dict[str, Any]:
        result = {
            "fold": fold,
            "name": split.name,
            "test_accuracy": test.accuracy,
            "test_macro_f1": test.macro_f1,
            "test_balanced_accuracy": test.balanced_accuracy,
            "test_loss": test.loss,
            "confusion": test.confusion,
            "best_epoch": progress.best_epoch,
            "selected_val": progress.best_val,
            "windows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
            "checkpoint": str(self.run_dir.best_checkpoint(fold).relative_to(self.run_dir.root)) + ".safetensors",
            "trials": {name: self.data.trials_of(getattr(split, name)) for name in ("train", "val", "test")},
        }
        if self.config.leaky:
            result["best_test_accuracy_over_epochs"] = progress.best_test_over_epochs
        return result

    def _summarise(self, folds: list[dict[str, Any]]) -> dict[str, Any]:
        def stats(key: str) -> tuple[float, float]:
            values = np.array([fold[key] for fold in folds], dtype=np.float64)
            return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

        accuracy, accuracy_std = stats("test_accuracy")
        macro_f1, macro_f1_std = stats("test_macro_f1")
        balanced, _ = stats("test_balanced_accuracy")
        summary: dict[str, Any] = {
            "protocol": self.config.protocol,
            "protocol_label": PAPER_LEAKY_LABEL if self.config.leaky else self.config.protocol,
            "leaky": self.config.leaky,
            "preset": self.model_config.preset,
            "modalities": self.model_config.modalities,
            "mil": self.model_config.mil,
            "fusion": self.model_config.fusion,
            "face_backbone": self.backbone_label,
            "label_rule": self.config.label_rule().to_dict(),
            "class_names": list(self.contract.class_names),
            "dataset": self.data.description,
            "training_data": self.data.description.get("training_data"),
            "split_warnings": self.split_warnings,
            "channel_dropout": self.channel_dropout,
            "seed": self.config.seed,
            "epochs": self.config.epochs,
            "world_size": self.context.world_size,
            "num_folds": len(folds),
            "mean_test_accuracy": accuracy,
            "std_test_accuracy": accuracy_std,
            "mean_test_macro_f1": macro_f1,
            "std_test_macro_f1": macro_f1_std,
            "mean_test_balanced_accuracy": balanced,
            "std_kind": "sample standard deviation over folds (ddof=1)",
            "selection": f"best validation {self.config.select_metric}; the test split is evaluated once per fold",
        }
        if self.config.leaky:
            best = [fold["best_test_accuracy_over_epochs"] for fold in folds]
            summary["selection"] = ("none: the last epoch's model, trained on the whole 80 % of each subject's "
                                    "windows without a validation split, as published")
            summary["mean_best_test_accuracy_over_epochs"] = float(np.mean(best))
            summary["test_accuracy_note"] = (
                "LEAKY: windows of every test trial were trained on. mean_test_accuracy is the last epoch's test "
                "accuracy; mean_best_test_accuracy_over_epochs is the maximum of the per-epoch test accuracy, as "
                "the published figure was made (the test split also picks the epoch). Neither estimates accuracy "
                "on unseen trials or people: use the trial or loso protocol for that.")
        summary["folds"] = [
            {**{k: v for k, v in fold.items() if k != "trials"}, **fold["trials"]} for fold in folds
        ]
        return summary

