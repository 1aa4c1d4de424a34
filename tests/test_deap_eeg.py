"""EEG helpers and windowing arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.eeg import EEGTransform, average_reference, offline_eeg
from training.windows import WindowSpec


def _tones(srate: float, seconds: float, freqs: list[float]) -> np.ndarray:
    t = np.arange(int(srate * seconds)) / srate
    return np.stack([np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def test_offline_transform_keeps_the_band_and_removes_offsets_drift_and_mains():
    x = _tones(512, 20, [10.0, 1.0, 50.0, 0.3]).astype(np.float64) * 10
    x += np.array([[30_000.0], [-50_000.0], [5_000.0], [0.0]])          # electrode offsets in uV
    x[3] += np.linspace(0, 2_000, x.shape[1])                            # slow drift
    transform = EEGTransform(rate=128.0, band=(4.0, 45.0), cutoffs=(4.0, 45.0), reference="none")
    y = offline_eeg(x, 512, transform)
    assert y.shape == (4, 20 * 128) and y.dtype == np.float32
    core = slice(3 * 128, -3 * 128)
    assert y[0, core].std() == pytest.approx(10 / np.sqrt(2), rel=0.02)  # 10 Hz passes
    # 1 Hz and the 50 mV offset, 50 Hz mains, 0.3 Hz and a 2 mV drift do not: 40 dB or more below 10 uV.
    assert np.abs(y[1, core]).max() < 0.1 and np.abs(y[2, core]).max() < 0.05 and np.abs(y[3, core]).max() < 0.25
    # Already band-passed and referenced data at the contract rate passes unchanged (DEAP's files).
    deap = _tones(128, 4, [10.0, 20.0])
    same = offline_eeg(deap, 128, EEGTransform.deap(), already_filtered=(4.0, 45.0), already_referenced=True)
    np.testing.assert_array_equal(same, deap)
    with pytest.raises(DataError, match="cut-offs"):
        offline_eeg(x, 512, EEGTransform(rate=128.0, band=(10.0, 80.0), cutoffs=(10.0, 80.0)))


def test_average_reference():
    ref = average_reference(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(ref, [[-1, -2], [1, 2]])


def test_deap_windows_are_the_papers():
    spec = WindowSpec()
    trial = np.arange(40 * 8064, dtype=np.float32).reshape(40, 8064)
    starts = spec.window_starts(8064)
    np.testing.assert_allclose(starts, 3 + 3 * np.arange(20))
    windows = spec.cut_eeg(trial)
    assert windows.shape == (20, 32, 384)
    np.testing.assert_array_equal(windows[0], trial[:32, 384:768])  # electrode x time, after the baseline
    np.testing.assert_array_equal(windows[19], trial[:32, 8064 - 384:])


def test_configurable_windows_and_channels():
    spec = WindowSpec(window_s=2.0, hop_s=1.0, channels=("Oz", "Fp1"), max_windows=5)
    trial = np.arange(40 * 1280, dtype=np.float32).reshape(40, 1280)  # 10 s: 6 windows fit, 5 kept
    windows = spec.cut_eeg(trial)
    assert windows.shape == (5, 2, 256)
    np.testing.assert_array_equal(windows[1, 0], trial[14, 512:768])  # Oz is row 14, window 1 starts at 4 s
    with pytest.raises(DataError, match="unknown DEAP channel"):
        WindowSpec(channels=("Cz", "M1"))


def test_frame_indices_follow_the_videos_own_rate_and_length():
    spec = WindowSpec()
    # DEAP video at 50 fps: 10 frames spread over [3, 6) s, at bin centres.
    np.testing.assert_array_equal(spec.frame_indices(3.0, 50.0, 3150),
                                  [157, 172, 187, 202, 217, 232, 247, 262, 277, 292])
    # A video at another rate lands on the same times.
    np.testing.assert_array_equal(spec.frame_indices(3.0, 25.0, 1575), [78, 86, 93, 101, 108, 116, 123, 131, 138, 146])
    # Frames past the end of a short video are marked missing, not clamped.
    indices = spec.frame_indices(60.0, 50.0, 3050)
    np.testing.assert_array_equal(indices, [3007, 3022, 3037, -1, -1, -1, -1, -1, -1, -1])
    assert (WindowSpec(video_offset_s=3.0).frame_indices(3.0, 50.0, 3000)[:2] == [7, 22]).all()


def test_training_reads_deap_through_the_offline_transform():
    from training.windows import deap_trial_eeg

    trial = np.vstack([_tones(128, 10, [10.0] * 32) * 20, np.ones((8, 1280), np.float32)])   # 32 EEG + 8 peripheral
    np.testing.assert_array_equal(deap_trial_eeg(trial, 128.0), trial[:32])   # already filtered and referenced
    faster = deap_trial_eeg(trial, 256.0)                                      # a contract at another rate: resampled
    assert faster.shape == (32, 2560)
    t = np.arange(2560) / 256.0
    np.testing.assert_allclose(faster[0, 256:-256], 20 * np.sin(2 * np.pi * 10 * t[256:-256]), atol=0.05)
