"""Channel dropout: a model trained with it keeps working when channels are masked, as they are live.

The data plants a shortcut: electrode 0 carries the class as a clean rhythm, electrodes 1-8 carry it
buried in noise. Trained without channel dropout, the model leans on the shortcut; trained with it,
electrode 0 is often missing, so it also learns the noisy electrodes. At test time 25 % of the channels
(electrode 0 among them) are masked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.config import MilmerConfig
from models.milmer import Milmer
from models.pipeline.labels import LabelRule
from training.augment import drop_channels
from training.dataset import WindowArrays
from training.prepare import META_DTYPE
from training.train_config import DEFAULT_CHANNEL_DROPOUT, TrainConfig

SRATE, SAMPLES, CHANNELS = 128, 384, 32
# One rhythm per quadrant (non-integer cycles per window); the noisy electrodes use other frequencies, so
# the features learnt for the shortcut do not read them for free.
SHORTCUT_HZ = (5.3, 9.7, 14.1, 19.9)
BACKUP_HZ = (7.1, 12.3, 16.7, 22.9)
VALENCE_AROUSAL = ((7.0, 7.0), (7.0, 3.0), (3.0, 3.0), (3.0, 7.0))  # quadrants 0-3 under the published rule
MASKED = [0, *range(25, 32)]  # 8 of 32 channels: the shortcut and seven noise-only electrodes


def _windows(subjects: int = 2, trials: int = 16, windows: int = 8, seed: int = 0,
             backup: float = 0.45) -> WindowArrays:
    rng = np.random.default_rng(seed)
    count = subjects * trials * windows
    meta = np.zeros(count, META_DTYPE)
    eeg = rng.normal(0.0, 1.0, (count, CHANNELS, SAMPLES)).astype(np.float32)
    t = np.arange(SAMPLES) / SRATE
    row = 0
    for subject in range(1, subjects + 1):
        for trial in range(1, trials + 1):
            quadrant = (trial + subject) % 4
            for window in range(windows):
                phase = rng.uniform(0, 2 * np.pi)
                eeg[row, 0] = np.sin(2 * np.pi * SHORTCUT_HZ[quadrant] * t + phase) + rng.normal(0.0, 0.05, SAMPLES)
                backup_wave = np.sin(2 * np.pi * BACKUP_HZ[quadrant] * t + phase)
                eeg[row, 1:9] = backup * backup_wave + rng.normal(0.0, 1.0, (8, SAMPLES))
                valence, arousal = VALENCE_AROUSAL[quadrant]
                meta[row] = (subject, trial, trial, window, 3.0 * window, valence, arousal, 5.0, 5.0, False, row)
                row += 1
    return WindowArrays(eeg=eeg, faces=None, face_mask=np.zeros((count, 4), bool), meta=meta)


def _train_and_score(rate: float, seed: int = 0, steps: int = 300, batch: int = 32) -> dict[str, float]:
    """Train an EEG-only tiny model (channel embedding on) on subject 1 with `drop_channels` at ``rate``
    as the trainer applies it; accuracy on subject 2 with every channel and with MASKED masked."""
    windows = _windows(subjects=2, seed=seed)
    labels = torch.as_tensor(LabelRule().apply_many(windows.meta["valence"], windows.meta["arousal"]))
    eeg = torch.from_numpy(windows.eeg)
    train, test = np.flatnonzero(windows.meta["subject"] == 1), np.flatnonzero(windows.meta["subject"] == 2)
    torch.manual_seed(seed)
    model = Milmer(MilmerConfig.tiny().replace(modalities="eeg", channel_embedding=True)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    order = np.random.default_rng(seed)
    for _ in range(steps):
        chosen = order.choice(train, batch, replace=False)
        mask = drop_channels(torch.ones(batch, CHANNELS, dtype=torch.bool), rate, generator)
        loss = torch.nn.functional.cross_entropy(model(eeg[chosen], None, mask).logits, labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    scores = {}
    for name, masked in (("all", []), ("masked", MASKED)):
        mask = torch.ones(len(test), CHANNELS, dtype=torch.bool)
        mask[:, masked] = False
        with torch.no_grad():
            predicted = model(eeg[test], None, mask).logits.argmax(dim=1)
        scores[name] = float((predicted == labels[test]).float().mean())
    return scores


def test_drop_channels_keeps_a_channel_and_the_absent_ones_absent():
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(1000, CHANNELS, dtype=torch.bool)
    mask[:, 5] = False
    dropped = drop_channels(mask, 0.25, generator)
    assert not dropped[:, 5].any() and dropped.any(dim=1).all()
    assert dropped[:, :5].float().mean().item() == pytest.approx(0.75, abs=0.02)
    assert drop_channels(mask, 0.99, generator).any(dim=1).all()
    assert drop_channels(mask, 0.0) is mask


@pytest.mark.slow
def test_a_model_trained_with_channel_dropout_degrades_less_when_channels_are_masked():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical on any machine
    try:
        without, with_dropout = _train_and_score(0.0), _train_and_score(0.5)
    finally:
        torch.set_num_threads(threads)
    assert without["all"] >= 0.9 and with_dropout["all"] >= 0.9, (without, with_dropout)  # both learn the task
    loss_without = without["all"] - without["masked"]
    loss_with = with_dropout["all"] - with_dropout["masked"]
    assert loss_without > loss_with + 0.15, (without, with_dropout)
    assert with_dropout["masked"] >= 0.65, with_dropout


def test_the_trainer_applies_channel_dropout_by_default_with_a_channel_embedding():
    embedded = TrainConfig(preset="tiny", model={"channel_embedding": True})
    assert embedded.channel_dropout_rate() == DEFAULT_CHANNEL_DROPOUT > 0
    assert TrainConfig(preset="tiny").channel_dropout_rate() == 0.0
    assert embedded.replace(channel_dropout=0.1).channel_dropout_rate() == 0.1
