"""Frame features of a frozen face backbone, computed once and cached beside the prepared windows.

With the backbone frozen, every face frame's backbone tokens are the same in every fold, epoch and
run, so they are computed once per (prepared cache, backbone weights) and stored as float16:

  CACHE/<prepared key>/embeddings/<backbone digest>/
    manifest.json              what the features are (backbone, digest, dtype, token shape)
    sXX.npy                    (windows, instances, tokens, width) float16, rows as in sXX/faces.npy
    sXX.partial.npy + .json    a subject in progress (resumed where it stopped)

Frames that the face mask marks absent are stored as zeros and never run through the backbone.
`embed_bags` is the reusable part: any (W, N, 3, S, S) uint8 frames -> float16 features.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import atomic, strict_json
from models.errors import DataError
from models.milmer import Milmer, MilmerOutput

log = logging.getLogger(__name__)

FEATURE_DTYPE = np.float16
EMBEDDINGS_FOLDER = "embeddings"
# Frames per backbone call when embedding; large enough to keep a GPU busy, small enough for 2 CPU cores' RAM.
DEFAULT_FRAMES_PER_CALL = {"cpu": 32, "cuda": 256}


def backbone_digest(model: Milmer) -> str:
    """A digest of the face backbone's architecture and weights: the key of its cached features."""
    digest = hashlib.sha256()
    config = model.config
    digest.update(json.dumps({"backbone": config.backbone, "kwargs": config.backbone_kwargs,
                              "image_size": config.image_size}, sort_keys=True).encode())
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def feature_shape(model: Milmer) -> tuple[int, int]:
    """(tokens, width) of one frame's backbone features."""
    size = model.config.image_size
    with torch.no_grad():
        sample = model.frame_features(torch.zeros(1, 3, size, size, dtype=torch.uint8))
    return int(sample.shape[1]), int(sample.shape[2])


@torch.no_grad()
def embed_frames(model: Milmer, frames: np.ndarray | torch.Tensor, frames_per_call: int | None = None,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(M, 3, S, S) uint8 frames -> (M, tokens, width) float16 backbone features, computed in float32
    with the backbone in eval mode (on the model's device); ``progress(frames)`` after each backbone call."""
    device = model.device
    step = frames_per_call or DEFAULT_FRAMES_PER_CALL.get(device.type, 32)
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, len(frames), step):
            chunk = torch.as_tensor(np.asarray(frames[start:start + step]))
            out.append(model.frame_features(chunk.to(device)).to(torch.float16).cpu().numpy())
            if progress is not None:
                progress(len(chunk))
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, *feature_shape(model)), FEATURE_DTYPE)


def embed_bags(model: Milmer, faces: np.ndarray, face_mask: np.ndarray, frames_per_call: int | None = None,
               out: np.ndarray | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Backbone features of bags of frames: faces (W, N, 3, S, S) uint8, face_mask (W, N) bool ->
    (W, N, tokens, width) float16; absent frames stay zero and cost nothing.

    ``out`` (e.g. a memory map) receives the features in place; ``progress(frames)`` is called after
    each backbone call with the number of frames it embedded.
    """
    mask = np.asarray(face_mask, dtype=bool)
    if faces.ndim != 5 or mask.shape != faces.shape[:2]:
        raise DataError(f"faces {tuple(faces.shape)} and face_mask {tuple(mask.shape)} are not (W, N, 3, S, S) "
                        "and (W, N)")
    if out is None:
        out = np.zeros((*mask.shape, *feature_shape(model)), FEATURE_DTYPE)
    rows, instances = np.nonzero(mask)
    step = frames_per_call or DEFAULT_FRAMES_PER_CALL.get(model.device.type, 32)
    for start in range(0, len(rows), step):
        r, i = rows[start:start + step], instances[start:start + step]
        out[r, i] = embed_frames(model, faces[r, i], frames_per_call=step)
        if progress is not None:
            progress(len(r))
    return out


class FrozenBackboneNetwork(nn.Module):
    """A Milmer seen from after its backbone: forward(eeg, features, eeg_mask, face_mask) takes the cached
    frame features (B, N, tokens, width) where the model takes frames; the backbone never runs."""

    def __init__(self, model: Milmer):
        super().__init__()
        self.model = model

    def forward(self, eeg: torch.Tensor | None, features: torch.Tensor | None, eeg_mask: torch.Tensor | None = None,
                face_mask: torch.Tensor | None = None) -> MilmerOutput:
        return self.model.forward_frame_features(eeg, features, eeg_mask, face_mask)


class FrameFeatureStore:
    """The cached features of one backbone for the subjects of one prepared cache (see the module doc)."""

    def __init__(self, prepared_cache: str | Path, digest: str):
        self.prepared_cache = Path(prepared_cache)
        self.digest = digest
        self.folder = self.prepared_cache / EMBEDDINGS_FOLDER / digest[:24]
        self._open: dict[int, np.ndarray] = {}

    def path(self, subject: int) -> Path:
        return self.folder / f"s{subject:02d}.npy"

    def complete(self, subject: int) -> bool:
        return self.path(subject).is_file()

    def features(self, subject: int) -> np.ndarray:
        """A read-only memory map of one subject's features (opened once per process)."""
        if subject not in self._open:
            if not self.complete(subject):
                raise DataError(f"{self.path(subject)}: frame features not computed",
                                hint="train with --freeze-backbone computes them first")
            self._open[subject] = np.load(self.path(subject), mmap_mode="r")
        return self._open[subject]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = {}  # memory maps are reopened in each data-loader worker
        return state

    def manifest(self) -> dict[str, Any] | None:
        path = self.folder / "manifest.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def feature_store(model: Milmer, cache) -> FrameFeatureStore:
    """Where the model's backbone features for a `training.dataset.PreparedCache` are (or will be) stored."""
    return FrameFeatureStore(cache.path, backbone_digest(model))


def ensure_features(model: Milmer, cache, subjects: Sequence[int], frames_per_call: int | None = None,
                    show_progress: bool = True) -> FrameFeatureStore:
    """The model's backbone features for ``subjects`` of a `training.dataset.PreparedCache`, computing those
    not yet stored (resuming a subject that was interrupted). Writes nothing when every subject is stored."""
    from tqdm import tqdm

    store = feature_store(model, cache)
    digest = store.digest
    missing = [s for s in subjects if not store.complete(s)]
    if not missing:
        log.info("reusing the frozen face backbone's frame features in %s", store.folder)
        return store
    tokens, width = feature_shape(model)
    store.folder.mkdir(parents=True, exist_ok=True)
    if store.manifest() is None:
        strict_json.write_atomic(store.folder / "manifest.json", {
            "what": "frame features of a frozen face backbone (backbone tokens before the projection)",
            "backbone_digest": digest, "backbone": model.config.backbone,
            "backbone_kwargs": model.config.backbone_kwargs, "image_size": model.config.image_size,
            "dtype": "float16", "tokens": tokens, "width": width, "prepared_cache": cache.path.name})
    masks = {s: np.load(cache.subject_files(s)["face_mask"]) for s in missing}
    partial = {s: _rows_done(store, s) for s in missing}
    total = sum(int(m.sum()) for m in masks.values())
    done = sum(int(masks[s][:partial[s]].sum()) for s in missing)
    log.info("computing the frozen face backbone's frame features for %d subject(s) (%d frames, float16) in %s",
             len(missing), total, store.folder)
    bar = tqdm(total=total, initial=done, desc="frame features", unit="frame", disable=None if show_progress else True)
    try:
        for subject in missing:
            _embed_subject(model, cache, store, subject, masks[subject], partial[subject], (tokens, width),
                           frames_per_call, bar)
    finally:
        bar.close()
    return store


def _partial_paths(store: FrameFeatureStore, subject: int) -> tuple[Path, Path]:
    stem = store.folder / f"s{subject:02d}.partial"
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")


def _rows_done(store: FrameFeatureStore, subject: int) -> int:
    array, progress = _partial_paths(store, subject)
    if not (array.is_file() and progress.is_file()):
        return 0
    try:
        return int(json.loads(progress.read_text(encoding="utf-8"))["rows_done"])
    except (ValueError, KeyError, TypeError):
        return 0


def _embed_subject(model: Milmer, cache, store: FrameFeatureStore, subject: int, mask: np.ndarray, start_row: int,
                   frame_shape: tuple[int, int], frames_per_call: int | None, bar) -> None:
    files = cache.subject_files(subject)
    array_path, progress_path = _partial_paths(store, subject)
    shape = (*mask.shape, *frame_shape)
    if start_row and array_path.is_file():
        out = np.lib.format.open_memmap(array_path, mode="r+")
        if out.shape != shape or out.dtype != FEATURE_DTYPE:
            out, start_row = None, 0
    else:
        out, start_row = None, 0
    if out is None:
        out = np.lib.format.open_memmap(array_path, mode="w+", dtype=FEATURE_DTYPE, shape=shape)
    faces = np.load(files["faces"], mmap_mode="r") if files["faces"].is_file() else None
    step = frames_per_call or DEFAULT_FRAMES_PER_CALL.get(model.device.type, 32)
    # A few backbone calls per recorded step: the progress file is rewritten (and fsynced) per chunk.
    rows_per_chunk = max(1, 4 * step // max(1, mask.shape[1]))
    for start in range(start_row, mask.shape[0], rows_per_chunk):
        stop = min(start + rows_per_chunk, mask.shape[0])
        if faces is not None and mask[start:stop].any():
            chunk = np.zeros((stop - start, *shape[1:]), FEATURE_DTYPE)
            embed_bags(model, faces[start:stop], mask[start:stop], step, out=chunk, progress=bar.update)
            out[start:stop] = chunk
        out.flush()
        strict_json.write_atomic(progress_path, {"rows_done": stop})
    del out
    atomic.publish(array_path, store.path(subject))
    progress_path.unlink(missing_ok=True)
