"""The windows a run trains and evaluates on: prepared (and cached) for the model's input contract."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.contract import InputContract
from models.errors import DataError
from training.dataset import DeapWindowDataset, PreparedCache
from training.distributed import DistributedContext, barrier
from models.pipeline.labels import LabelRule
from training.prepare import FaceSpec, PrepareConfig, cache_key, data_identity, prepare_cache
from training.splits import Split, make_splits
from training.train_config import TrainConfig
from training.windows import WindowSpec

log = logging.getLogger(__name__)

FoldSplit = Split


def default_cache_root() -> Path:
    """$XDG_CACHE_HOME/milmer/prepared (~/.cache/milmer/prepared): used when no --cache is given."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "milmer" / "prepared"


def prepare_config_for(contract: InputContract, subjects: Sequence[int] | None = None,
                       workers: int = 1) -> PrepareConfig:
    """Windows, channels and face crops exactly as the contract says (hop = window, as published)."""
    window = WindowSpec(window_s=contract.window_seconds, hop_s=contract.window_seconds,
                        num_instances=contract.num_instances, channels=tuple(contract.eeg_channels),
                        srate=contract.sampling_rate)
    face = FaceSpec(size=contract.face_size, expand=contract.face_expand, detector=contract.face_detector)
    return PrepareConfig(window=window, face=face, subjects=tuple(subjects) if subjects else None, workers=workers)


@dataclass
class WindowData:
    """A window dataset with its trial identities; positions index ``dataset``."""

    dataset: DeapWindowDataset
    description: dict[str, Any]

    def __len__(self) -> int:
        return len(self.dataset)

    def splits(self, protocol: str, folds: int, seed: int) -> list[Split]:
        return make_splits(self.dataset.meta, protocol, folds=folds, seed=seed)

    def trials_of(self, positions: Sequence[int]) -> list[list[int]]:
        """The trials of some windows as sorted, unique [subject, experiment_id] pairs."""
        meta = self.dataset.meta[np.asarray(positions, dtype=np.int64)]
        pairs = {(int(s), int(e)) for s, e in zip(meta["subject"], meta["experiment_id"])}
        return [list(pair) for pair in sorted(pairs)]

    def positions_of_trials(self, trials: Sequence[Sequence[int]]) -> np.ndarray:
        """Positions of every window of the given [subject, experiment_id] trials."""
        wanted = {(int(s), int(e)) for s, e in trials}
        meta = self.dataset.meta
        keep = [(int(s), int(e)) in wanted for s, e in zip(meta["subject"], meta["experiment_id"])]
        return np.flatnonzero(np.asarray(keep, dtype=bool))


def open_windows(deap: str | Path, cache_root: str | Path | None, contract: InputContract, label_rule: LabelRule,
                 subjects: Sequence[int] | None = None, context: DistributedContext | None = None,
                 workers: int = 1) -> WindowData:
    """Prepare (or reuse) the cache of ``deap`` for ``contract`` and open its windows.

    Under DDP, rank 0 prepares while the others wait, then every rank opens the same cache.
    """
    context = context or DistributedContext()
    deap = Path(deap)
    if not deap.is_dir():
        raise DataError(f"{deap}: DEAP folder not found")
    cache_root = Path(cache_root) if cache_root else default_cache_root()
    config = prepare_config_for(contract, subjects, workers)
    if context.is_main:
        cache_path = prepare_cache(deap, cache_root, config).cache
        barrier(context)
    else:
        barrier(context)
        from training.deap import scan_deap

        cache_path = cache_root / cache_key(config, data_identity(scan_deap(deap)))
    dataset = DeapWindowDataset(PreparedCache(cache_path), label_rule)
    if subjects:
        dataset = dataset.subset(np.flatnonzero(np.isin(dataset.meta["subject"], list(subjects))))
    if len(dataset) == 0:
        raise DataError(f"{deap}: no windows for subjects {list(subjects or [])}")
    present = sorted({int(s) for s in dataset.meta["subject"]})
    description = {"source": "deap-layout", "root": str(deap), "cache": str(cache_path), "subjects": present,
                   "windows": len(dataset), "trials": len({(int(s), int(e)) for s, e in
                                                             zip(dataset.meta["subject"], dataset.meta["experiment_id"])})}
    counts = np.bincount(dataset.labels, minlength=label_rule.num_classes)
    log.info("%d windows of %d subject(s); classes: %s", len(dataset), len(present),
             ", ".join(f"{name} {count}" for name, count in zip(label_rule.class_names, counts)))
    return WindowData(dataset=dataset, description=description)


def contract_for(config: TrainConfig) -> InputContract:
    """The DEAP input contract of a run: the model's windows and crops, the run's label rule and class names."""
    rule = config.label_rule()
    contract = InputContract.for_deap(config.model_config())
    # replace() runs __post_init__ again, which normalises class_names to a tuple.
    return dataclasses.replace(contract, class_names=tuple(rule.class_names), label_rule=rule.to_dict())


def open_window_data(config: TrainConfig, context: DistributedContext | None = None) -> WindowData:
    """The windows of a TrainConfig (its DEAP folder, cache, subjects, model contract and label rule)."""
    contract = contract_for(config)
    return open_windows(config.deap, config.cache, contract, config.label_rule(), config.subjects, context,
                        workers=config.prepare_workers)
