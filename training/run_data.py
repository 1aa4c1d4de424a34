"""The windows a run trains and evaluates on: prepared (and cached) for the model's input contract."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.contract import InputContract
from models.errors import DataError
from models.pipeline.labels import LabelRule
from training.dataset import DeapWindowDataset, PreparedCache
from training.distributed import DistributedContext, barrier
from training.prepare import FaceSpec, PrepareConfig, cache_key, data_identity, prepare_cache
from training.splits import Split, make_splits, trial_ids
from training.synth import SYNTHETIC_MARKER
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
                        srate=contract.sampling_rate, video_offset_s=contract.video_offset)
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

    def test_split_record(self, split: Split, leaky: bool) -> dict[str, Any]:
        """The fold's test split as stored with its checkpoint, so that `evaluate` scores only it.

        Honest protocols list the test trials ([subject, experiment_id]); the leaky paper protocol lists
        the test windows ([subject, experiment_id, window]), since the other windows of those trials trained.
        """
        if not leaky:
            return {"unit": "trials", "leaky": False, "test": self.trials_of(split.test)}
        meta = self.dataset.meta[split.test]
        windows = sorted(zip(meta["subject"].tolist(), meta["experiment_id"].tolist(), meta["window"].tolist()))
        return {"unit": "windows", "leaky": True, "test": [list(w) for w in windows]}

    def positions_of_split(self, record: dict[str, Any]) -> np.ndarray:
        """Positions of the windows a `test_split_record` names (those present in this data)."""
        if record.get("unit") == "windows":
            wanted = {tuple(int(v) for v in window) for window in record["test"]}
            meta = self.dataset.meta
            keep = [(int(s), int(e), int(w)) in wanted
                    for s, e, w in zip(meta["subject"], meta["experiment_id"], meta["window"])]
            return np.flatnonzero(np.asarray(keep, dtype=bool))
        return self.positions_of_trials(record["test"])

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
    if (cache_root / "manifest.json").is_file():
        log.info("%s is a prepared cache; looking for a compatible one beside it, in %s", cache_root, cache_root.parent)
        cache_root = cache_root.parent
    config = prepare_config_for(contract, subjects, workers)
    cache_path = cache_root / cache_key(config, data_identity(_quiet_scan(deap)))
    if context.is_main:
        _announce_cache(cache_root, cache_path, config)
        prepare_cache(deap, cache_root, config)
    barrier(context)
    dataset = DeapWindowDataset(PreparedCache(cache_path), label_rule)
    if subjects:
        dataset = dataset.subset(np.flatnonzero(np.isin(dataset.meta["subject"], list(subjects))))
    if len(dataset) == 0:
        raise DataError(f"{deap}: no windows for subjects {list(subjects or [])}")
    present = sorted({int(s) for s in dataset.meta["subject"]})
    description = {"source": "deap-layout", "synthetic": (deap / SYNTHETIC_MARKER).is_file(),
                   "root": str(deap), "cache": str(cache_path), "subjects": present,
                   "windows": len(dataset),
                   "trials": len({(int(s), int(e)) for s, e in zip(dataset.meta["subject"],
                                                                    dataset.meta["experiment_id"])})}
    counts = np.bincount(dataset.labels, minlength=label_rule.num_classes)
    log.info("%d windows of %d subject(s); classes: %s", len(dataset), len(present),
             ", ".join(f"{name} {count}" for name, count in zip(label_rule.class_names, counts)))
    return WindowData(dataset=dataset, description=description)


def _quiet_scan(deap: Path):
    """scan_deap without its summary warning: prepare_cache scans again and warns once."""
    from training.deap import scan_deap

    index_log = logging.getLogger("training.deap.index")
    level = index_log.level
    index_log.setLevel(logging.ERROR)
    try:
        return scan_deap(deap)
    finally:
        index_log.setLevel(level)


def _announce_cache(cache_root: Path, cache_path: Path, config: PrepareConfig) -> None:
    """Say which prepared cache a run uses, and why caches beside it do not fit."""
    if (cache_path / "manifest.json").is_file():
        log.info("reusing the prepared cache %s (same data, windows and face crops)", cache_path)
        return
    wanted = config.parameters()
    for manifest in sorted(cache_root.glob("*/manifest.json")):
        try:
            parameters = json.loads(manifest.read_text())["parameters"]
        except (OSError, ValueError, KeyError):
            continue
        differences = [f"{group} {key} {parameters.get(group, {}).get(key)!r} (needed: {value!r})"
                       for group in ("window", "face") for key, value in wanted[group].items()
                       if parameters.get(group, {}).get(key) != value]
        reason = ", ".join(differences) or "other data files or another milmer/OpenCV version"
        log.warning("prepared cache %s does not fit this model: %s", manifest.parent, reason)
    log.info("preparing a new cache %s", cache_path)


def face_trial_subset(data: WindowData, include_faceless: bool) -> WindowData:
    """For face models: only the windows of trials with face video (at least one detected face frame).

    With ``include_faceless`` every trial stays (the old behaviour; their frames are all masked). Either
    way the description's ``training_data`` records the subset: subjects, trials, windows, and what was left out.
    """
    meta = data.dataset.meta
    groups = trial_ids(meta)
    faces = data.dataset.faces_per_window()
    face_trials = np.unique(groups[faces > 0])
    with_face = np.isin(groups, face_trials)
    faceless_trials = len(np.unique(groups[~with_face]))
    faceless_subjects = sorted({int(s) for s in meta["subject"]} - {int(s) for s in meta["subject"][with_face]})
    if include_faceless or faceless_trials == 0:
        kept = data
        label = "all trials" + (f", including {faceless_trials} without face video (frames masked)"
                                if faceless_trials else "")
        excluded = {"subjects": [], "trials": 0, "windows": 0}
    else:
        if not with_face.any():
            raise DataError(f"{data.description.get('root')}: no trial has face video; a face model cannot train "
                            "on it", hint="use --modalities eeg, or --include-faceless to train on masked frames")
        kept = WindowData(data.dataset.subset(np.flatnonzero(with_face)), dict(data.description))
        label = "trials with face video"
        excluded = {"subjects": faceless_subjects, "trials": faceless_trials, "windows": int((~with_face).sum())}
        log.warning("face modality: training and testing on the %d trial(s) with face video; left out %d trial(s) "
                    "(%d windows) without%s (--include-faceless keeps them)", len(face_trials), faceless_trials,
                    excluded["windows"],
                    f"; subjects {', '.join(f's{s:02d}' for s in faceless_subjects)} entirely"
                    if faceless_subjects else "")
    kept_meta = kept.dataset.meta
    kept.description["training_data"] = {
        "label": label,
        "face_trials_only": not include_faceless,
        "subjects": sorted({int(s) for s in kept_meta["subject"]}),
        "trials": int(len(np.unique(trial_ids(kept_meta)))),
        "windows": int(len(kept_meta)),
        "excluded": excluded,
    }
    return kept


def all_trials(data: WindowData) -> WindowData:
    """An EEG-only model's data: every trial (recorded the same way as ``face_trial_subset``)."""
    meta = data.dataset.meta
    data.description["training_data"] = {
        "label": "all trials", "face_trials_only": False, "subjects": sorted({int(s) for s in meta["subject"]}),
        "trials": int(len(np.unique(trial_ids(meta)))), "windows": int(len(meta)),
        "excluded": {"subjects": [], "trials": 0, "windows": 0}}
    return data


def contract_for(config: TrainConfig) -> InputContract:
    """The DEAP input contract of a run: the model's windows and crops, the run's label rule and class names."""
    rule = config.label_rule()
    contract = InputContract.for_deap(config.model_config())
    # replace() runs __post_init__ again, which normalises class_names to a tuple.
    return dataclasses.replace(contract, class_names=tuple(rule.class_names), label_rule=rule.to_dict(),
                               video_offset=float(config.video_offset))


def open_window_data(config: TrainConfig, context: DistributedContext | None = None) -> WindowData:
    """The windows of a TrainConfig (its DEAP folder, cache, subjects, model contract and label rule);
    for face models only the trials with face video unless ``include_faceless``."""
    contract = contract_for(config)
    data = open_windows(config.deap, config.cache, contract, config.label_rule(), config.subjects, context,
                        workers=config.prepare_workers)
    if config.model_config().uses_face:
        return face_trial_subset(data, config.include_faceless)
    return all_trials(data)
