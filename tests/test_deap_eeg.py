"""EEG helpers and windowing arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.eeg import StreamingBandpass, average_reference, bandpass, resample
from training.windows import WindowSpec


def _tones(srate: float, seconds: float, freqs: list[float]) -> np.ndarray:
    t = np.arange(int(srate * seconds)) / srate
    return np.stack([np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def test_bandpass_keeps_the_band_and_removes_the_rest():
    x = _tones(128, 10, [10.0, 1.0, 60.0])
    y = bandpass(x, 128, 4, 45)
    core = slice(256, -256)
    assert y[0, core].std() == pytest.approx(x[0, core].std(), rel=0.05)
    assert y[1, core].std() < 0.05 and y[2, core].std() < 0.05


def test_streaming_bandpass_matches_one_pass_filtering():
    x = _tones(128, 8, [10.0, 2.0]) + 3.0  # with an offset that the filter must not ring on
    whole = StreamingBandpass(2, 128, 4, 45)(x)
    chunked = StreamingBandpass(2, 128, 4, 45)
    pieces = np.concatenate([chunked(x[:, i:i + 50]) for i in range(0, x.shape[1], 50)], axis=1)
    np.testing.assert_allclose(pieces, whole, atol=1e-4)
    assert abs(whole[1, 512:]).max() < 0.1  # 2 Hz removed after settling
    with pytest.raises(DataError, match=r"expects \(2, T\)"):
        chunked(np.zeros((3, 10)))


def test_resample_and_average_reference():
    x = _tones(512, 4, [10.0, 10.0])
    y = resample(x, 512, 128)
    assert y.shape == (2, 512) and y.dtype == np.float32
    ref = average_reference(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(ref, [[-1, -2], [1, 2]])
    with pytest.raises(DataError):
        bandpass(x, 128, 10, 80)


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
    np.testing.assert_array_equal(spec.frame_indices(3.0, 50.0, 3150), [157, 172, 187, 202, 217, 232, 247, 262, 277, 292])
    # A video at another rate lands on the same times.
    np.testing.assert_array_equal(spec.frame_indices(3.0, 25.0, 1575), [78, 86, 93, 101, 108, 116, 123, 131, 138, 146])
    # Frames past the end of a short video are marked missing, not clamped.
    indices = spec.frame_indices(60.0, 50.0, 3050)
    np.testing.assert_array_equal(indices, [3007, 3022, 3037, -1, -1, -1, -1, -1, -1, -1])
    assert (WindowSpec(video_offset_s=3.0).frame_indices(3.0, 50.0, 3000)[:2] == [7, 22]).all()
