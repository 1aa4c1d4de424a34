"""Real recordings (MNE files) over a real LSL outlet: the engine's windows, read back through --dump-bags,
equal the offline transform of the whole recording over the same spans, newest samples included."""

from __future__ import annotations

import queue
import uuid
from pathlib import Path

import numpy as np
import pytest

from live_support import next_matching
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from models.config import MilmerConfig
from models.contract import GENEVA_CHANNELS, InputContract
from models.pipeline.channels import normalise_label
from models.pipeline.eeg import EEGTransform, offline_eeg
from real_signals import RecordingOutlet, eeg_microvolts, make_recording, write_and_read

pytestmark = [pytest.mark.lsl, pytest.mark.slow]

CONTRACT = InputContract.for_deap(MilmerConfig.tiny())
NEWEST = 32   # samples in the newest 0.25 s at 128 Hz



def _contract_rows(labels: list[str]) -> dict[str, int]:
    """Contract channel -> row of the recording's EEG."""
    by_label = {normalise_label(name): i for i, name in enumerate(labels)}
    return {name: by_label[normalise_label(name)] for name in GENEVA_CHANNELS if normalise_label(name) in by_label}


def _run(raw, unit_mode: str, checkpoint: Path, dumps: Path, steps: int = 6, hop: float = 0.1):
    """Stream `raw` to an engine in 1 s steps after the first window; returns (bags, predictions, statuses, t0)."""
    name = f"MilmerReal-{uuid.uuid4().hex[:8]}"
    outlet = RecordingOutlet(raw, name, unit_mode)
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", checkpoint=str(checkpoint), hop=hop, device="cpu",
                                 dump_bags=dumps, embedding_cache=False))
    predictions: queue.Queue = queue.Queue()
    statuses: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    engine.add_status_listener(statuses.put)
    got = []
    with engine:
        assert outlet.outlet.wait_for_consumers(10.0)
        outlet.start_clock(local_clock())
        first = CONTRACT.window_seconds + 1.0
        for step in range(steps):
            until = first + step * (outlet.duration - first) / max(1, steps - 1)
            outlet.push_until(until)
            # Synchronise on data: the window ending near the pushed end (less the pipeline's delay) is out.
            expected = outlet.t0 + until - 1.0
            got.append(next_matching(predictions, lambda p, expected=expected: p.window_end >= expected, timeout=20))
        status_list = []
        while not statuses.empty():
            status_list.append(statuses.get())
    bags = [dict(np.load(path)) for path in sorted(dumps.glob("bag-*.npz"))]
    return bags, got, status_list, outlet.t0


def _compare(bags: list[dict], offline: np.ndarray, rows: list[int], t0: float) -> dict[str, float]:
    """Per channel and window: correlation over the window and its newest 0.25 s, and amplitude ratio."""
    window = CONTRACT.window_samples
    worst = {"corr": 1.0, "newest": 1.0, "ratio_low": 1.0, "ratio_high": 1.0}
    for bag in bags:
        first = (bag["window_start"] - t0) * CONTRACT.sampling_rate
        m0 = int(round(first))
        assert abs(first - m0) < 0.05, f"window start {first} is not on the offline sample grid"
        assert bag["window_end"] == pytest.approx(bag["window_start"] + (window - 1) / CONTRACT.sampling_rate,
                                                  abs=1e-3)
        live = bag["eeg"][rows].astype(np.float64)
        ref = offline[:, m0:m0 + window].astype(np.float64)
        assert ref.shape == live.shape
        for a, b in zip(live, ref, strict=True):
            worst["corr"] = min(worst["corr"], float(np.corrcoef(a, b)[0, 1]))
            worst["newest"] = min(worst["newest"], float(np.corrcoef(a[-NEWEST:], b[-NEWEST:])[0, 1]))
            ratio = float(a.std() / b.std())
            worst["ratio_low"] = min(worst["ratio_low"], ratio)
            worst["ratio_high"] = max(worst["ratio_high"], ratio)
    return worst


def _check_equivalence(raw, unit_mode: str, checkpoint: Path, dumps: Path, bad: tuple[str, ...] = ()) -> list:
    """Stream, then compare every dumped window with the offline transform; returns the statuses seen."""
    bags, predictions, statuses, t0 = _run(raw, unit_mode, checkpoint, dumps)
    assert len(bags) >= len(predictions) >= 6
    eeg, labels = eeg_microvolts(raw)
    mapping = {name: row for name, row in _contract_rows(labels).items() if name not in bad}
    contract_index = [list(GENEVA_CHANNELS).index(name) for name in mapping]
    for bag in bags:
        assert list(bag["channels"]) == list(CONTRACT.eeg_channels)
        assert bag["eeg"].dtype == np.float32 and bag["eeg"].shape == (32, CONTRACT.window_samples)
        assert bag["eeg_mask"].sum() == len(mapping) == 20 - len(bad)
        assert bag["eeg_mask"][contract_index].all()
        assert np.isfinite(bag["eeg"]).all()
        assert bag["source_rate"] == raw.info["sfreq"]
        assert bag["faces"].dtype == np.uint8 and not bag["face_mask"].any()   # no video source
        assert 0.3 < float(bag["delay"]) < 0.5
    order = sorted(range(len(contract_index)), key=lambda i: contract_index[i])
    rows = [contract_index[i] for i in order]
    offline = offline_eeg(eeg[[list(mapping.values())[i] for i in order]], raw.info["sfreq"],
                          EEGTransform.from_contract(CONTRACT))
    worst = _compare(bags, offline, rows, t0)
    assert worst["corr"] >= 0.99 and worst["newest"] >= 0.99, worst
    assert 0.98 <= worst["ratio_low"] and worst["ratio_high"] <= 1.02, worst
    for p in predictions:
        assert p.delay == pytest.approx(0.45, abs=0.05)
        assert p.latency == pytest.approx(p.emitted - p.window_end)
        assert p.eeg_channels_used == 20 - len(bad) and len(p.eeg_channels_masked) == 12 + len(bad)
        assert set(bad) <= set(p.eeg_channels_masked)
        record = p.to_json()
        assert record["delay"] == pytest.approx(p.delay, abs=1e-5)
        assert record["eeg_channels_masked"] == p.eeg_channels_masked
    return statuses


@pytest.fixture(scope="module")
def recording_1000(tmp_path_factory: pytest.TempPathFactory):
    """A 1000 Hz recording with +-50 mV offsets and drift, from which every rate is resampled."""
    return make_recording(rate=1000.0, seconds=16.0, seed=3, offset_mv=50.0, drift_uv_per_s=100.0)


@pytest.mark.parametrize("unit_mode", ["volts-mne", "microvolts", "none"])
def test_windows_equal_the_offline_transform_for_each_unit_labelling(unit_mode, tiny_checkpoint, tmp_path):
    raw = write_and_read(make_recording(rate=256.0, seconds=16.0, seed=1), tmp_path / "rec_raw.fif")
    _check_equivalence(raw, unit_mode, tiny_checkpoint, tmp_path / "bags")


@pytest.mark.parametrize("rate", [125, 250, 256, 500, 512, 1000])
def test_windows_equal_the_offline_transform_at_each_rate_with_50_mv_offsets(rate, recording_1000, tiny_checkpoint,
                                                                             tmp_path):
    resampled = recording_1000.copy()
    if rate != 1000:
        resampled.resample(float(rate), verbose="error")
    raw = write_and_read(resampled, tmp_path / "rec_raw.fif")
    eeg, _ = eeg_microvolts(raw)
    assert np.abs(eeg).max(axis=1).min() > 10_000          # the offsets survive in the file: >= 12.5 mV
    assert np.abs(eeg).max() > 40_000
    _check_equivalence(raw, "volts-mne" if rate % 2 else "microvolts", tiny_checkpoint, tmp_path / "bags")


def test_nan_channels_are_masked_and_named_and_the_rest_still_equal_offline(tiny_checkpoint, tmp_path):
    raw = make_recording(rate=500.0, seconds=16.0, seed=5, offset_mv=20.0)
    data = raw.get_data()
    for name in ("Cz", "O1"):
        data[raw.ch_names.index(name)] = np.nan
    raw._data[:] = data
    raw = write_and_read(raw, tmp_path / "rec_raw.fif")
    statuses = _check_equivalence(raw, "microvolts", tiny_checkpoint, tmp_path / "bags", bad=("Cz", "O1"))
    eeg_status = [s[0] for s in statuses if s and s[0].role == "eeg" and s[0].masked]
    assert eeg_status and eeg_status[-1].masked == {"Cz": "NaN/Inf", "O1": "NaN/Inf"}
    assert eeg_status[-1].problem == ""


def test_all_channels_nan_gives_no_prediction_and_a_status_reason(tiny_checkpoint, tmp_path):
    raw = make_recording(rate=256.0, seconds=10.0, seed=6)
    raw._data[[raw.ch_names.index(name) for name in raw.ch_names if raw.get_channel_types([name])[0] == "eeg"]] = np.nan
    raw = write_and_read(raw, tmp_path / "rec_raw.fif")
    name = f"MilmerNaN-{uuid.uuid4().hex[:8]}"
    outlet = RecordingOutlet(raw, name, "volts-mne")
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", checkpoint=str(tiny_checkpoint), hop=0.1, device="cpu",
                                 dump_bags=tmp_path / "bags"))
    predictions: queue.Queue = queue.Queue()
    statuses: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    engine.add_status_listener(statuses.put)
    engine.add_event_listener(lambda level, message: events.put((level, message)))
    with engine:
        assert outlet.outlet.wait_for_consumers(10.0)
        outlet.start_clock(local_clock())
        outlet.push_until(outlet.duration)
        status = next_matching(statuses, lambda s: s and s[0].problem, timeout=20)[0]
        level, message = next_matching(events, lambda e: "no usable EEG" in e[1], timeout=5)
    assert status.problem.startswith("no usable EEG: 0 of 32 model channels usable")
    assert "Fp1 (NaN/Inf)" in status.problem and len(status.masked) == 20
    assert level == "warning" and name in message
    assert predictions.empty() and not list((tmp_path / "bags").glob("*.npz"))


def test_deap_replay_feeds_the_model_exactly_the_training_windows(tiny_checkpoint, tmp_path):
    """DEAP's preprocessed EEG is already band-passed and referenced: replay, like training, only cuts it."""
    from training.deap import load_subject
    from training.synth import write_synthetic_deap

    data = write_synthetic_deap(tmp_path / "deap", subjects=1, trials=2, seconds=6.0, seed=7, video_size=(64, 48))
    engine = Engine(EngineConfig(eeg=f"deap:{data.root}:1:1", checkpoint=str(tiny_checkpoint), hop=0.25, speed=2.0,
                                 device="cpu", dump_bags=tmp_path / "bags"))
    with engine:
        assert engine.finished.wait(timeout=60), "the replay did not end"
    trials = load_subject(data.root, 1).data[:, :32]             # (trials, 32, samples), as training reads them
    bags = [dict(np.load(path)) for path in sorted((tmp_path / "bags").glob("bag-*.npz"))]
    assert len(bags) >= 6
    for bag in bags:
        eeg = bag["eeg"]
        assert bag["delay"] == 0.0 and bag["eeg_mask"].all() and bag["source_rate"] == 128.0
        found = [(t, k) for t in range(len(trials)) for k in np.flatnonzero((trials[t] == eeg[:, :1]).all(axis=0))]
        assert any(k + 384 <= trials.shape[2] and np.array_equal(trials[t, :, k:k + 384], eeg) for t, k in found)
