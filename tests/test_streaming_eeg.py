"""The streaming EEG transform against the offline one, chunk by chunk, and its channel checks."""

from __future__ import annotations

import numpy as np
import pytest

from models.config import MilmerConfig
from models.contract import GENEVA_CHANNELS, InputContract
from models.errors import CheckpointError
from models.pipeline.channels import map_channels
from models.pipeline.eeg import EEGTransform, offline_eeg
from models.pipeline.streaming import StreamingEEG

CONTRACT = InputContract.for_deap(MilmerConfig.tiny())
NAMES = list(GENEVA_CHANNELS)
T0 = 5000.0


def _raw(rate: float, seconds: float, seed: int = 0, offset_uv: float = 50_000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    eeg = (np.cumsum(rng.standard_normal((32, n)), axis=1) * 0.5
           + 10 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, (32, 1))))
    return eeg + rng.uniform(-offset_uv, offset_uv, (32, 1)) + np.outer(rng.uniform(-100, 100, 32), t)


def _stream(prep: StreamingEEG, raw: np.ndarray, rate: float, seed: int = 1, t0: float = T0):
    """Feed `raw` in chunks of random length; yield each new window."""
    rng = np.random.default_rng(seed)
    times = t0 + np.arange(raw.shape[1]) / rate
    i, last = 0, None
    while i < raw.shape[1]:
        k = int(rng.integers(1, int(rate * 0.4)))
        prep.feed(raw[:, i:i + k].astype(np.float32), times[i:i + k])
        i += k
        window = prep.window()
        if window is not None and window.end != last:
            last = window.end
            yield window


@pytest.mark.parametrize("rate", [125.0, 128.0, 250.0, 256.0, 500.0, 512.0, 1000.0])
def test_streamed_windows_equal_the_offline_transform_of_the_whole_recording(rate):
    raw = _raw(rate, 12.0)
    offline = offline_eeg(raw, rate, EEGTransform.from_contract(CONTRACT))
    prep = StreamingEEG(CONTRACT, map_channels(NAMES, NAMES, "s"), rate)
    windows = list(_stream(prep, raw, rate))
    assert len(windows) > 10
    for w in windows:
        first = (w.start - T0) * 128.0
        assert first == pytest.approx(round(first), abs=1e-6)
        ref = offline[:, int(round(first)):int(round(first)) + 384]
        np.testing.assert_allclose(w.eeg, ref, atol=0.01)           # uV; the input carries 50 mV offsets
        # Output comes in whole 128 Hz samples as whole input samples arrive: the design delay +- one of each.
        assert abs(w.delay - prep.delay) < 1 / 128 + 1 / rate
    assert prep.delay < 0.5


def test_a_restart_starts_a_new_segment_and_no_window_spans_it():
    rate = 250.0
    first, second = _raw(rate, 6.0, seed=1), _raw(rate, 8.0, seed=2)
    prep = StreamingEEG(CONTRACT, map_channels(NAMES, NAMES, "s"), rate)
    assert list(_stream(prep, first, rate))
    prep.restart()
    assert prep.window() is None
    t1 = T0 + 100.0
    windows = list(_stream(prep, second, rate, t0=t1))
    assert windows and all(w.start >= t1 for w in windows)
    offline = offline_eeg(second, rate, EEGTransform.from_contract(CONTRACT))   # the new segment alone
    last = windows[-1]
    m0 = int(round((last.start - t1) * 128))
    np.testing.assert_allclose(last.eeg, offline[:, m0:m0 + 384], atol=0.01)


def test_bad_channels_are_masked_named_and_come_back():
    rate = 256.0
    raw = _raw(rate, 14.0, offset_uv=5_000.0)
    raw[NAMES.index("Cz"), int(3 * rate):int(5 * rate)] = np.nan          # a NaN burst
    raw[NAMES.index("O1")] = 1234.5                                         # flat
    swing = (400 * np.sin(2 * np.pi * 1.3 * np.arange(raw.shape[1]) / rate)
             + 3 * np.random.default_rng(2).standard_normal(raw.shape[1]))
    raw[NAMES.index("Pz")] = np.clip(swing, -300, 300) + 2_000                # an amplifier at its rails
    raw[NAMES.index("Fz"), int(6 * rate)] = np.inf
    prep = StreamingEEG(CONTRACT, map_channels(NAMES, NAMES, "s"), rate)
    windows = list(_stream(prep, raw, rate))
    early, late = windows[0], windows[-1]
    assert early.problems == {"Cz": "NaN/Inf", "O1": "flat", "Pz": "saturated"}
    assert late.problems == {"O1": "flat", "Pz": "saturated"}               # Cz and Fz recovered
    assert any(w.problems.get("Fz") == "NaN/Inf" for w in windows)
    for w in windows:
        assert np.isfinite(w.eeg).all()
        masked = [NAMES[i] for i in np.flatnonzero(~w.mask)]
        assert sorted(masked) == sorted(w.problems)
        assert np.all(w.eeg[~w.mask] == 0)
        assert np.allclose(w.eeg[w.mask].mean(axis=0), 0, atol=1e-3)    # referenced over the channels fed


def test_already_filtered_sources_pass_unchanged():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((32, 128 * 6)).astype(np.float32) * 20
    prep = StreamingEEG(CONTRACT, map_channels(NAMES, NAMES, "s"), 128.0, already_filtered=(4.0, 45.0),
                        already_referenced=True)
    assert prep.delay == 0.0
    prep.feed(data, T0 + np.arange(data.shape[1]) / 128.0)
    window = prep.window()
    np.testing.assert_array_equal(window.eeg, data[:, -384:])
    assert window.end == T0 + (data.shape[1] - 1) / 128.0 and window.delay == 0.0


def test_contract_records_the_transform_and_old_contracts_load_with_defaults():
    record = CONTRACT.to_dict()
    for key, value in {"filter_kind": "fir", "filter_window": "hamming", "filter_taps": 97,
                       "filter_cutoffs": [4.0, 45.0], "filter_phase": "linear", "dc_highpass_hz": 0.1,
                       "dc_highpass_order": 2, "resample_kaiser_beta": 5.0, "resample_half_width": 10}.items():
        assert record[key] == value, key
    assert InputContract.from_dict(record) == CONTRACT
    old = {k: v for k, v in record.items() if k not in ("filter_kind", "filter_window", "filter_taps", "filter_cutoffs",
                                                        "filter_phase", "dc_highpass_hz", "dc_highpass_order",
                                                        "resample_kaiser_beta", "resample_half_width", "video_offset")}
    assert InputContract.from_dict(old) == CONTRACT
    with pytest.raises(CheckpointError, match="filter 'iir'"):
        InputContract.from_dict({**record, "filter_kind": "iir"})
    with pytest.raises(CheckpointError, match="filter_taps=96"):
        InputContract.from_dict({**record, "filter_taps": 96})


def test_the_assembler_restarts_the_transform_at_a_discontinuity():
    from types import SimpleNamespace

    from milmer_app.bags import BagAssembler
    from milmer_app.buffers import SampleBuffer

    rate = 256.0
    source = SimpleNamespace(buffer=SampleBuffer(32, int(rate * 60)), segment_start=float("-inf"), replay=None,
                             name="eeg")
    prep = StreamingEEG(CONTRACT, map_channels(NAMES, NAMES, "s"), rate)
    events = []
    assembler = BagAssembler(CONTRACT, source, prep, None, None, min_usable=8,
                             on_event=lambda level, message: events.append((level, message)))
    first, second = _raw(rate, 6.0, seed=1), _raw(rate, 8.0, seed=2)
    source.buffer.write(first.astype(np.float32), T0 + np.arange(first.shape[1]) / rate)
    assert assembler.assemble() is not None
    # The clock jumps; the source marks the new segment and keeps pushing. Half of it arrives first.
    t1 = T0 + 3600.0
    times = t1 + np.arange(second.shape[1]) / rate
    source.segment_start = t1
    half = int(2.0 * rate)
    source.buffer.write(second[:, :half].astype(np.float32), times[:half])
    assert assembler.assemble() is None                 # 2 s of the new segment: no window, none across the jump
    source.buffer.write(second[:, half:].astype(np.float32), times[half:])
    bag = assembler.assemble()
    assert bag is not None and bag.window_start >= t1
    offline = offline_eeg(second, rate, EEGTransform.from_contract(CONTRACT))
    m0 = int(round((bag.window_start - t1) * 128))
    np.testing.assert_allclose(bag.eeg, offline[:, m0:m0 + 384], atol=0.01)
    # All channels NaN: no bag, and the reason, once.
    nan = np.full((32, int(rate * 4)), np.nan, np.float32)
    source.buffer.write(nan, times[-1] + (1 + np.arange(nan.shape[1])) / rate)
    assert assembler.assemble() is None and assembler.assemble() is None
    assert assembler.problem.startswith("no usable EEG: 0 of 32 model channels usable, 8 needed")
    assert [m for _, m in events if "no usable EEG" in m] == [f"eeg: {assembler.problem}"]
