"""Windows of a prepared cache as a torch Dataset: ``(eeg, faces, eeg_mask, face_mask, label, meta)``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.errors import DataError
from models.pipeline.labels import LabelRule
from training.prepare import META_DTYPE, subject_complete
from training.windows import WindowSpec

log = logging.getLogger(__name__)


@dataclass
class WindowArrays:
    """In-memory windows (tests, small experiments): the same fields as a cache subject."""

    eeg: np.ndarray  # (W, C, T) float32
    faces: np.ndarray | None  # (W, N, 3, S, S) uint8, or None without video
    face_mask: np.ndarray  # (W, N) bool
    meta: np.ndarray  # (W,) META_DTYPE


class PreparedCache:
    """A ``prepare`` cache folder (``CACHE/<key>``): its manifest and complete subjects."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise DataError(f"{self.path}: not a prepared cache (no manifest.json)",
                            hint="run 'milmer-train prepare --deap DIR --cache DIR' and pass the folder it prints")
        try:
            self.manifest = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest}: unreadable manifest ({exc})") from exc
        self.window = WindowSpec.from_dict(self.manifest["parameters"]["window"])
        self.face_size = int(self.manifest["parameters"]["face"]["size"])
        self.subjects = sorted(int(p.name[1:]) for p in self.path.glob("s[0-9][0-9]")
                               if subject_complete(self.path, int(p.name[1:])))
        if not self.subjects:
            raise DataError(f"{self.path}: no complete subject in this cache", hint="run prepare again to finish it")

    def subject_files(self, subject: int) -> dict[str, Path]:
        folder = self.path / f"s{subject:02d}"
        return {name: folder / f"{name}.npy" for name in ("eeg", "faces", "face_mask", "meta")}


class DeapWindowDataset(Dataset):
    """One item per window: eeg float32 (C, T), faces uint8 (N, 3, S, S), eeg_mask bool (C,),
    face_mask bool (N,), label int64, meta dict (subject, experiment_id, presentation_trial, window, start_s).

    ``meta`` (the attribute) is the per-window table of the selected windows, usable for splits
    without touching the arrays. Arrays are opened lazily with mmap in each worker process.
    """

    def __init__(self, cache_or_arrays: str | Path | PreparedCache | WindowArrays | list[WindowArrays],
                 label_rule: LabelRule = LabelRule(), indices: np.ndarray | None = None):
        self.label_rule = label_rule
        self._paths: list[dict[str, Path]] | None = None
        self._parts: list[WindowArrays] | None = None
        if isinstance(cache_or_arrays, WindowArrays):
            cache_or_arrays = [cache_or_arrays]
        if isinstance(cache_or_arrays, list):
            self._parts = cache_or_arrays
            metas = [part.meta for part in cache_or_arrays]
            shapes = [(part.eeg.shape[1:], part.face_mask.shape[1]) for part in cache_or_arrays]
        else:
            cache = cache_or_arrays if isinstance(cache_or_arrays, PreparedCache) else PreparedCache(cache_or_arrays)
            self.cache = cache
            self._paths = [cache.subject_files(s) for s in cache.subjects]
            metas = [np.load(p["meta"]) for p in self._paths]
            eeg_shape = (len(cache.window.channels), cache.window.window_samples)
            shapes = [(eeg_shape, cache.window.num_instances)] * len(metas)
            self.face_size = cache.face_size
        if len({s for s in shapes}) > 1:
            raise DataError(f"window arrays disagree in shape: {sorted(set(shapes))}")
        (self.eeg_shape, self.num_instances) = shapes[0]
        if self._parts is not None:
            faces = next((p.faces for p in self._parts if p.faces is not None), None)
            self.face_size = faces.shape[-1] if faces is not None else 0
        full = np.concatenate(metas)
        part = np.concatenate([np.full(len(m), i, np.int32) for i, m in enumerate(metas)])
        self.indices = np.arange(len(full)) if indices is None else np.asarray(indices, np.int64)
        self.meta = full[self.indices]
        self._part = part[self.indices]
        self.labels = label_rule.apply_many(self.meta["valence"], self.meta["arousal"])
        self._open: list[dict[str, np.ndarray | None]] | None = None
        # A `training.embeddings.FrameFeatureStore`: items then carry frozen-backbone features, not frames.
        self.frame_features = None

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, positions: np.ndarray) -> DeapWindowDataset:
        """A dataset over some of this dataset's windows (positions into ``self.meta``)."""
        source = self._parts if self._parts is not None else self.cache
        subset = DeapWindowDataset(source, self.label_rule, self.indices[np.asarray(positions, np.int64)])
        subset.frame_features = self.frame_features
        return subset

    def with_frame_features(self, store) -> DeapWindowDataset:
        """This dataset whose items carry a frozen backbone's cached features (N, tokens, width) float16 in
        place of the face frames (a `training.embeddings.FrameFeatureStore` of this dataset's cache)."""
        if self._parts is not None:
            raise DataError("cached frame features need a prepared cache, not in-memory windows")
        dataset = self.subset(np.arange(len(self)))
        dataset.frame_features = store
        return dataset

    def subjects(self) -> list[int]:
        return sorted({int(s) for s in self.meta["subject"]})

    def faces_per_window(self) -> np.ndarray:
        """(W,) how many face frames each window has (detected faces; 0 for windows without video)."""
        counts = np.zeros(len(self), np.int64)
        for part in np.unique(self._part):
            chosen = np.flatnonzero(self._part == part)
            mask = self._arrays(int(part))["face_mask"]
            counts[chosen] = np.asarray(mask)[self.meta["row"][chosen]].sum(axis=1)
        return counts

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = None  # memory maps are reopened in each worker, never pickled
        return state

    def _arrays(self, part: int) -> dict[str, np.ndarray | None]:
        if self._parts is not None:
            p = self._parts[part]
            return {"eeg": p.eeg, "faces": p.faces, "face_mask": p.face_mask}
        if self._open is None:
            self._open = [None] * len(self._paths)
        if self._open[part] is None:
            paths = self._paths[part]
            self._open[part] = {
                "eeg": np.load(paths["eeg"], mmap_mode="r"),
                "faces": np.load(paths["faces"], mmap_mode="r") if paths["faces"].is_file() else None,
                "face_mask": np.load(paths["face_mask"]),
            }
        return self._open[part]

    def __getitem__(self, item: int):
        meta = self.meta[item]
        arrays = self._arrays(int(self._part[item]))
        row = int(meta["row"])
        eeg = torch.from_numpy(np.array(arrays["eeg"][row], dtype=np.float32))
        if self.frame_features is not None:
            faces = torch.from_numpy(np.array(self.frame_features.features(int(meta["subject"]))[row]))
        elif arrays["faces"] is not None:
            faces = torch.from_numpy(np.array(arrays["faces"][row], dtype=np.uint8))
        else:
            faces = torch.zeros((self.num_instances, 3, self.face_size, self.face_size), dtype=torch.uint8)
        face_mask = torch.from_numpy(np.array(arrays["face_mask"][row], dtype=bool))
        eeg_mask = torch.ones(eeg.shape[0], dtype=torch.bool)
        label = torch.tensor(int(self.labels[item]), dtype=torch.int64)
        info = {"subject": int(meta["subject"]), "experiment_id": int(meta["experiment_id"]),
                "presentation_trial": int(meta["presentation_trial"]), "window": int(meta["window"]),
                "start_s": float(meta["start_s"])}
        return eeg, faces, eeg_mask, face_mask, label, info


__all__ = ["DeapWindowDataset", "META_DTYPE", "PreparedCache", "WindowArrays"]
