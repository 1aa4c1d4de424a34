"""milmer-train train: train Milmer under a protocol and write a run directory.

Several GPUs or machines: torchrun --nproc_per_node N -m training.cli train ... (one process per GPU;
--batch-size stays the global batch; on several machines RUN_DIR and the cache must be on a shared
filesystem, since rank 0 writes the checkpoints every rank reads). Ctrl-C saves a resumable state;
continue with --resume RUN_DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from models.config import FUSION_MODES, MIL_MODES, MODALITIES
from training.preflight import check_deap_folder, check_file, check_positive
from training.protocols import PROTOCOLS
from training.run_dir import RunDir
from training.train_config import (
    AMP_MODES,
    PRESETS,
    SELECT_METRICS,
    ConfigError,
    TrainConfig,
    read_config_file,
    resolve_config,
)

log = logging.getLogger(__name__)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by train and ablate; every default is None so that unset flags do not override a --config file."""
    data = parser.add_argument_group("data")
    data.add_argument("--deap", metavar="DIR", help="DEAP folder (data_preprocessed_python, metadata_csv, face_video)")
    data.add_argument("--cache", metavar="DIR",
                      help="prepared-window cache folder (default ~/.cache/milmer/prepared); prepared on first use")
    data.add_argument("--prepare-workers", type=int, help="processes that crop faces when preparing (default 1)")
    data.add_argument("--subjects", metavar="LIST", type=int_list, help="only these subjects, e.g. 1,2,5")
    data.add_argument("--include-faceless", action="store_true", default=None,
                      help="face models also train and test on trials without face video (all frames masked; "
                           "default: only trials with video, as published)")
    data.add_argument("--video-offset", type=float, metavar="S",
                      help="trial time (s, baseline included) of a video's first frame (default 0); stored in the "
                           "checkpoint's contract for evaluation and replay")
    data.add_argument("--protocol", choices=PROTOCOLS,
                      help="paper (leaky window split, trains on all of the 80 %% without validation, as published), "
                           "trial (trial-wise k-fold, default) or loso")
    data.add_argument("--folds", type=int, metavar="K",
                      help="folds of the trial protocol (default 5; paper is one split, loso one fold per subject)")
    data.add_argument("--label", choices=("quadrant", "valence", "arousal"), help="label rule (default quadrant)")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=PRESETS, help="model size (default paper)")
    model.add_argument("--modalities", choices=MODALITIES, metavar="eeg,face|eeg|face",
                       help="inputs the model uses (default eeg,face)")
    model.add_argument("--mil", choices=MIL_MODES,
                       help="face-frame selection (default weighted_topk)")
    model.add_argument("--fusion", choices=FUSION_MODES,
                       help="balancing of the selected image tokens (default cross_attention)")
    model.add_argument("--channel-embedding", action="store_true", default=None,
                       help="learned per-electrode embedding (lets one model run with channels missing)")
    model.add_argument("--backbone-weights", metavar="FILE",
                       help="Swin weights (finetune-face or convert-backbone output) to start the face backbone from")
    model.add_argument("--freeze-backbone", action="store_true", default=None,
                       help="keep the face backbone fixed: its frame features are computed once per prepared cache "
                            "and backbone weights (stored under --cache, float16) and only the layers after it "
                            "train (a protocol variant: results say 'face backbone frozen')")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, help="epochs per fold (default 100)")
    optim.add_argument("--batch-size", type=int, help="global batch size, split over DDP processes (default 14)")
    optim.add_argument("--lr", type=float, help="AdamW learning rate, cosine decay to 0.1 x lr (default 1e-4)")
    optim.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    optim.add_argument("--channel-dropout", type=float, metavar="P",
                       help="probability of masking each EEG channel of a training window (default "
                            "0.25 with --channel-embedding, else 0)")
    optim.add_argument("--seed", type=int, help="seed of initialisation, shuffling and dropout (default 0)")
    optim.add_argument("--select-metric", choices=SELECT_METRICS,
                       help="validation metric that picks each fold's best epoch (default accuracy)")
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--device", help="auto, cpu or cuda (default auto)")
    hardware.add_argument("--num-workers", type=int, help="data-loader workers (default -1: none on CPU, a few on GPU)")
    hardware.add_argument("--amp", choices=AMP_MODES,
                          help="mixed precision on CUDA (auto: bf16 where supported)")
    hardware.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    hardware.add_argument("--tensorboard", action="store_true", default=None,
                          help="also write TensorBoard logs (needs the tensorboard package)")
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON file of settings (flags override it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory to create")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (its config is used)")
    parser.add_argument("--export-best", metavar="STEM",
                        help="also copy the checkpoint of the fold with the best validation score to "
                             "STEM(.safetensors/.json)")
    parser.add_argument("--export-provenance", metavar="JSON", type=_json_object,
                        help="extra provenance facts (a JSON object) for the --export-best copy")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig overrides given as flags (None where a flag was not used)."""
    model = {key: getattr(args, key) for key in ("modalities", "mil", "fusion", "channel_embedding")
             if getattr(args, key) is not None}
    return {
        "deap": args.deap, "cache": args.cache, "subjects": args.subjects, "protocol": args.protocol,
        "include_faceless": args.include_faceless, "video_offset": args.video_offset,
        "channel_dropout": args.channel_dropout,
        "folds": args.folds, "preset": args.preset, "model": model or None,
        "label": {"kind": args.label} if args.label else None, "backbone_weights": args.backbone_weights,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "seed": args.seed, "select_metric": args.select_metric, "device": args.device,
        "num_workers": args.num_workers, "prepare_workers": args.prepare_workers, "amp": args.amp,
        "compile": args.compile,
        "freeze_backbone": args.freeze_backbone, "tensorboard": args.tensorboard,
    }


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    file_values = read_config_file(args.config) if args.config else None
    config = resolve_config(file_values, flag_values(args), source=args.config or "command line")
    if not config.deap:
        raise ConfigError("no DEAP folder given", hint="pass --deap DIR (or set deap in the --config file)")
    return config


def run(args: argparse.Namespace) -> int:
    resume = None
    if args.resume:
        run_dir = RunDir(Path(args.resume))
        config = config_of_run(run_dir)
        check_config_paths(config)
        from training.resume import load_resume_state  # torch: only once the paths are known good

        resume = load_resume_state(run_dir.resume_stem)
        log.info("resuming %s at fold %d, epoch %d", run_dir.root, resume.fold, resume.epoch + 1)
    else:
        if not args.out:
            raise ConfigError("no run directory given", hint="pass --out RUN_DIR (or --resume RUN_DIR)")
        config = config_from_args(args)
        check_config_paths(config)
        run_dir = RunDir(Path(args.out))
        from training.resume import resume_exists

        if run_dir.metrics.exists() or resume_exists(run_dir.resume_stem):
            raise ConfigError(f"{run_dir.root}: already holds a run",
                              hint=f"continue it with --resume {run_dir.root}, or choose another --out")
    return train(config, run_dir, resume, args.export_best, args.export_provenance)


def check_config_paths(config: TrainConfig) -> None:
    """The folders and files a configuration names exist: checked before torch loads."""
    check_deap_folder(config.deap)
    check_file(config.backbone_weights, "backbone weights file")
    check_positive(config.epochs, "--epochs")
    check_positive(config.batch_size, "--batch-size")


def train(config: TrainConfig, run_dir: RunDir, resume=None, export_best: str | None = None,
          export_provenance: dict | None = None) -> int:
    # Imported here, as in every command module, so that `milmer-train --help` loads no torch.
    from models.device import resolve_device
    from training.distributed import init_distributed, shutdown_distributed
    from training.run_data import open_window_data
    from training.trainer import Trainer

    device = resolve_device(config.device)
    context = init_distributed(use_cuda=device.type == "cuda")
    if context.enabled and device.type == "cuda":
        import torch

        device = torch.device("cuda", context.local_rank)
    try:
        data = open_window_data(config, context)
        trainer = Trainer(config, run_dir, data, device, context)
        if resume is None:
            run_dir.create()
            trainer.write_config()
        try:
            metrics = trainer.run(resume)
        except KeyboardInterrupt:
            if context.is_main:
                _report_interruption(run_dir)
            return 130
        if export_best and context.is_main:
            export_best_checkpoint(run_dir, metrics, Path(export_best), export_provenance or {}, config.select_metric)
    finally:
        shutdown_distributed(context)
    return 0


def estimate(config: TrainConfig, run_dir: RunDir) -> float | None:
    """Seconds the run of ``config`` would take on this machine (a few timed steps; nothing is trained)."""
    from models.device import resolve_device
    from training.run_data import open_window_data
    from training.trainer import Trainer

    device = resolve_device(config.device)
    return Trainer(config, run_dir, open_window_data(config), device).estimate_only()


def _report_interruption(run_dir: RunDir) -> None:
    from training.resume import resume_exists

    if resume_exists(run_dir.resume_stem):
        print("milmer-train: interrupted (Ctrl-C); the state of the last finished epoch is saved", file=sys.stderr)
        print(f"milmer-train: hint: continue with: milmer-train train --resume {run_dir.root}", file=sys.stderr)
    else:
        print("milmer-train: interrupted (Ctrl-C) before the first epoch finished; nothing to resume",
              file=sys.stderr)


def export_best_checkpoint(run_dir: RunDir, metrics: dict, stem: Path, extra: dict, select_metric: str) -> None:
    """Copy the checkpoint of the fold with the best selected validation score, with portable provenance."""
    from models.checkpoint import load_checkpoint, save_checkpoint
    from training.trainer import selection_score

    def score(fold: dict) -> list[float]:
        return selection_score(fold["selected_val"], select_metric) if fold.get("selected_val") else [float("-inf")]

    best = max(metrics["folds"], key=score)
    loaded = load_checkpoint(run_dir.root / best["checkpoint"])
    provenance = {**portable_provenance(loaded.provenance), "test_accuracy": best["test_accuracy"],
                  "test_trials": best["test"], **extra}
    save_checkpoint(stem, loaded.model, loaded.contract, provenance)
    log.info("exported fold %d's checkpoint to %s", best["fold"], stem)


def portable_provenance(provenance: dict) -> dict:
    """Provenance without this machine's paths (data, cache and run folders), for a checkpoint that is shipped.

    The backbone weights keep their file name, which says what they were without saying where they lay.
    """
    portable = {key: value for key, value in provenance.items() if key not in ("run_dir", "code_version")}
    if isinstance(portable.get("train_config"), dict):
        train_config = {k: v for k, v in portable["train_config"].items() if k not in ("deap", "cache")}
        if train_config.get("backbone_weights"):
            train_config["backbone_weights"] = Path(train_config["backbone_weights"]).name
        portable["train_config"] = train_config
    if isinstance(portable.get("dataset"), dict):
        portable["dataset"] = {k: v for k, v in portable["dataset"].items() if k not in ("root", "cache")}
    return portable


def config_of_run(run_dir: RunDir) -> TrainConfig:
    if not run_dir.config.is_file():
        raise ConfigError(f"{run_dir.config}: not found; {run_dir.root} is not a run directory")
    try:
        data = json.loads(run_dir.config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{run_dir.config}: not valid JSON ({exc})") from exc
    return TrainConfig.from_dict(data.get("train", {}), source=str(run_dir.config))


def int_list(text: str) -> list[int]:
    """An argparse type: "1,2,5" -> [1, 2, 5]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value
