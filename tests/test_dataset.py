"""DeapWindowDataset over in-memory arrays and over a prepared cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.errors import DataError
from models.pipeline.labels import LabelRule
from training.dataset import DeapWindowDataset, PreparedCache, WindowArrays
from training.prepare import META_DTYPE, FaceSpec, PrepareConfig, prepare_cache
from training.synth import write_synthetic_deap
from training.windows import WindowSpec


def _arrays(subject: int, windows: int = 6, with_faces: bool = True) -> WindowArrays:
    rng = np.random.default_rng(subject)
    meta = np.zeros(windows, META_DTYPE)
    meta["subject"] = subject
    meta["experiment_id"] = np.arange(windows) // 2 + 1
    meta["window"] = np.arange(windows) % 2
    meta["row"] = np.arange(windows)
    meta["valence"] = np.tile([7.0, 7.0, 2.0], windows // 3 + 1)[:windows]
    meta["arousal"] = np.tile([7.0, 2.0, 2.0], windows // 3 + 1)[:windows]
    meta["has_video"] = with_faces
    faces = rng.integers(0, 255, (windows, 3, 3, 16, 16), dtype=np.uint8) if with_faces else None
    return WindowArrays(eeg=rng.standard_normal((windows, 4, 32)).astype(np.float32), faces=faces,
                        face_mask=np.full((windows, 3), with_faces), meta=meta)


def test_items_from_arrays():
    parts = [_arrays(1), _arrays(2, with_faces=False)]
    dataset = DeapWindowDataset(parts, LabelRule())
    assert len(dataset) == 12
    eeg, faces, eeg_mask, face_mask, label, meta = dataset[7]
    assert eeg.dtype == torch.float32 and eeg.shape == (4, 32)
    assert faces.dtype == torch.uint8 and faces.shape == (3, 3, 16, 16) and not faces.any()
    assert eeg_mask.dtype == torch.bool and eeg_mask.all() and not face_mask.any()
    assert label.dtype == torch.int64 and int(label) == 1  # valence 7, arousal 2 -> LAHV
    assert meta == {"subject": 2, "experiment_id": 1, "presentation_trial": 0, "window": 1, "start_s": 0.0}
    np.testing.assert_array_equal(eeg.numpy(), parts[1].eeg[1])
    np.testing.assert_array_equal(dataset[0][1].numpy(), parts[0].faces[0])
    np.testing.assert_array_equal(dataset.labels, [0, 1, 2] * 4)
    assert list(DeapWindowDataset(parts, LabelRule("arousal")).labels[:3]) == [1, 0, 0]


def test_indices_and_subset_keep_meta_aligned():
    dataset = DeapWindowDataset([_arrays(1), _arrays(2)])
    subset = dataset.subset(np.array([11, 0]))
    assert list(subset.meta["subject"]) == [2, 1]
    np.testing.assert_array_equal(subset[0][0].numpy(), dataset[11][0].numpy())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("deap")
    write_synthetic_deap(root, subjects=1, trials=4, seconds=3, fps=4)
    config = PrepareConfig(face=FaceSpec(size=24), window=WindowSpec(num_instances=2))
    return prepare_cache(root, tmp_path_factory.mktemp("cache"), config, progress=False).cache


def test_cache_dataset_batches_and_pickles(cache):
    dataset = DeapWindowDataset(cache)
    assert len(dataset) == 4 and dataset.face_size == 24
    dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))  # what DataLoader workers receive: no memory maps
    assert clone._open is None
    eeg, faces, eeg_mask, face_mask, label, meta = next(iter(DataLoader(dataset, batch_size=4)))
    assert eeg.shape == (4, 32, 384) and faces.shape == (4, 2, 3, 24, 24) and face_mask.all()
    assert sorted(label.tolist()) == [0, 1, 2, 3]
    assert meta["subject"].tolist() == [1, 1, 1, 1]


def test_not_a_cache(tmp_path):
    with pytest.raises(DataError, match="not a prepared cache"):
        PreparedCache(tmp_path)
