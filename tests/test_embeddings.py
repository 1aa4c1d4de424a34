"""Frozen-backbone frame features (training.embeddings) on the tiny preset, without a prepared cache."""

from __future__ import annotations

import numpy as np
import torch

from models.config import MilmerConfig
from models.milmer import Milmer
from training.embeddings import (
    FrozenBackboneNetwork,
    backbone_digest,
    embed_bags,
    embed_frames,
)


def _model(seed: int = 0) -> Milmer:
    torch.manual_seed(seed)
    return Milmer(MilmerConfig.tiny()).eval()


def _bags(windows: int, config: MilmerConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (windows, config.num_instances, 3, config.image_size, config.image_size),
                         dtype=np.uint8)
    mask = rng.random((windows, config.num_instances)) > 0.3
    mask[0] = False  # a window without any face
    return faces, mask


def test_embed_bags_stores_each_present_frame_in_float16_and_leaves_absent_ones_zero():
    model = _model()
    faces, mask = _bags(5, model.config)
    features = embed_bags(model, faces, mask, frames_per_call=3)
    assert features.dtype == np.float16 and features.shape[:2] == mask.shape
    assert not features[~mask].any()
    with torch.no_grad():
        expected = model.frame_features(torch.from_numpy(faces[mask])).numpy()
    np.testing.assert_allclose(features[mask].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(embed_frames(model, faces[mask], frames_per_call=4), features[mask])


def test_layers_after_the_backbone_on_cached_features_give_the_models_output():
    model = _model()
    faces, mask = _bags(4, model.config)
    eeg = torch.randn(4, model.config.eeg_channels, model.config.eeg_samples)
    features = torch.from_numpy(embed_bags(model, faces, mask))
    face_mask = torch.from_numpy(mask)
    with torch.no_grad():
        direct = model(eeg, torch.from_numpy(faces), face_mask=face_mask).logits
        cached = FrozenBackboneNetwork(model)(eeg, features, face_mask=face_mask).logits
    torch.testing.assert_close(cached, direct, rtol=1e-2, atol=1e-2)


def test_backbone_digest_follows_the_backbone_weights_only():
    model, same, other = _model(0), _model(0), _model(1)
    assert backbone_digest(model) == backbone_digest(same) != backbone_digest(other)
    # Layers after the backbone do not change the features, so they do not change the key.
    with torch.no_grad():
        same.head.weight.add_(1.0)
    assert backbone_digest(same) == backbone_digest(model)
    with torch.no_grad():
        next(same.backbone.parameters()).view(-1)[0] += 1e-3
    assert backbone_digest(same) != backbone_digest(model)
