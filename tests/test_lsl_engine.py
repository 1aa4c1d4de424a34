"""A real LSL outlet on loopback drives the engine: channel mapping, window spans, loss and recovery."""

from __future__ import annotations

import queue
import uuid

import numpy as np
import pylsl
import pytest

from live_support import next_matching
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.lsl_player import LslPlayer
from models.contract import GENEVA_CHANNELS
from models.errors import SourceError

pytestmark = [pytest.mark.lsl, pytest.mark.slow]

RATE = 256.0


def _foreign_labels() -> list[str]:
    """20 of the 32 model channels in reversed order, old temporal names, plus two extras."""
    names = [n for n in GENEVA_CHANNELS if n not in ("AF3", "FC5", "CP5", "PO3", "AF4", "FC6", "CP6", "PO4",
                                                     "Fp2", "F8", "CP2", "P4")][::-1]
    aliases = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
    return ["EXG1", *[aliases.get(n, n) for n in names], "Trigger"]



def test_lsl_stream_in_foreign_order_drives_predictions_and_recovers_from_loss(tiny_checkpoint):
    labels = _foreign_labels()
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((len(labels), int(RATE * 10))) * 20).astype(np.float32)
    name = f"MilmerTest-{uuid.uuid4().hex[:8]}"
    player = LslPlayer(data, RATE, labels, name=name)
    player.start()
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", checkpoint=str(tiny_checkpoint), hop=0.5, device="cpu",
                                 lsl_outlet=f"{name}-emotion"))
    predictions: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    statuses: queue.Queue = queue.Queue()
    engine.add_prediction_listener(predictions.put)
    engine.add_event_listener(lambda level, message: events.put((level, message, local_clock())))
    engine.add_status_listener(statuses.put)
    with player, engine:
        assert engine.eeg_source.srate == RATE and engine.eeg_source.channel_names == labels
        found = pylsl.resolve_byprop("name", f"{name}-emotion", 1, 10.0)
        assert found, "the predictions outlet is not visible on LSL"
        inlet = pylsl.StreamInlet(found[0])
        description = inlet.info(timeout=5.0)
        assert description.type() == "Emotion" and description.channel_count() == 1 + 4 + 3
        assert description.desc().child("model").child_value("demo_model") == "false"
        inlet.open_stream(timeout=5.0)
        first = next_matching(predictions, lambda p: True, timeout=20)
        second = next_matching(predictions, lambda p: True, timeout=5)
        sample, stamp = inlet.pull_sample(timeout=5.0)
        assert sample is not None and int(sample[0]) in range(4) and sum(sample[1:5]) == pytest.approx(1.0, abs=1e-5)
        assert stamp == pytest.approx(sample[-1], abs=0.05)          # stamped with the window's end
        for p in (first, second):
            assert p.window_end - p.window_start == pytest.approx(3.0 - 1 / RATE, abs=0.02)
            assert 0 <= p.latency == pytest.approx(p.emitted - p.window_end)
            assert p.latency < 2.0        # not queued behind older windows (the bench measures the real figure)
            assert p.window_end <= player.last_timestamp + 1e-6
            assert p.eeg_channels_used == 20
            assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)
            assert not p.demo_model and p.truth is None
        hops = round((second.window_end - first.window_end) / 0.5)   # more than one if a stale bag was dropped
        assert hops >= 1 and second.window_end - first.window_end == pytest.approx(0.5 * hops, abs=0.2)
        status = next_matching(statuses, lambda s: s[0].effective_rate > 0, timeout=5)[0]
        assert status.role == "eeg" and status.connected and not status.lost
        assert status.effective_rate == pytest.approx(RATE, rel=0.1) and status.nominal_rate == RATE

        player.stop()
        stopped = local_clock()
        level, message, when = next_matching(events, lambda e: e[1].startswith("stream lost"), timeout=5)
        assert level == "warning" and name in message
        assert when - stopped <= 2.0

        player.start()
        next_matching(events, lambda e: e[1].startswith("stream back"), timeout=15)
        back = next_matching(predictions, lambda p: p.window_start >= stopped + 0.5, timeout=15)
        assert back.window_end - back.window_start == pytest.approx(3.0 - 1 / RATE, abs=0.02)
        status = next_matching(statuses, lambda s: not s[0].lost and s[0].gaps >= 1, timeout=5)[0]
        assert status.dropped >= RATE      # the outage lasted well over a second
        data_copy, times, names, srate = engine.eeg_snapshot(1.0)
        assert data_copy.shape == (len(labels), int(RATE)) and names == labels and srate == RATE


def test_unmatched_channel_labels_are_a_clear_error(tiny_checkpoint):
    name = f"MilmerBadLabels-{uuid.uuid4().hex[:8]}"
    labels = ["X1", "X2", "X3", "Cz"]
    player = LslPlayer(np.zeros((4, 256), np.float32), RATE, labels, name=name)
    player.start()
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", checkpoint=str(tiny_checkpoint), device="cpu"))
    with player, pytest.raises(SourceError) as error:
        engine.start()          # a start that fails stops what it had started
    message = str(error.value)
    assert name in message and "only 1 of the model's 32" in message and "X1, X2, X3, Cz" in message
    assert not engine.eeg_source.connected


def test_lsl_source_by_type_converts_volts_to_microvolts():
    from milmer_app.sources.lsl import LSLSource

    stream_type = f"EEGvolts{uuid.uuid4().hex[:6]}"
    data = np.full((2, 256), 2e-6, np.float32)
    player = LslPlayer(data, RATE, ["Cz", "Pz"], name="VoltsEEG", stream_type=stream_type, unit="volts")
    player.start()
    source = LSLSource(stype=stream_type)
    with player, source:
        assert source.units == ["volts", "volts"] and source.channel_names == ["Cz", "Pz"]
        assert source.buffer.wait_for(32, timeout=10)
        values, _ = source.buffer.latest(32)
        np.testing.assert_allclose(values, 2.0, rtol=1e-5)


def test_a_stream_that_comes_back_with_other_channels_ends_a_headless_run_with_a_clear_error(tiny_checkpoint,
                                                                                              tmp_path, capsys):
    import threading

    from milmer_app import cli as app_cli

    name = f"MilmerChanged-{uuid.uuid4().hex[:8]}"
    labels = list(GENEVA_CHANNELS)
    noise = (np.random.default_rng(0).standard_normal((32, 256)) * 20).astype(np.float32)   # flat EEG is masked
    first = LslPlayer(noise, RATE, labels, name=name)
    other = LslPlayer(noise[:8], RATE, labels[:8], name=name)
    first.start()
    predictions = tmp_path / "p.jsonl"
    swapped = threading.Event()

    def swap() -> None:
        deadline = local_clock() + 30.0
        while not (predictions.is_file() and predictions.stat().st_size) and local_clock() < deadline:
            swapped.wait(0.05)                 # the engine is running once a prediction is written
        first.stop()
        other.start()
        swapped.set()

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        code = app_cli.main(["--headless", "--eeg", f"lsl:name={name}", "--checkpoint", str(tiny_checkpoint),
                             "--device", "cpu", "--duration", "60", "--predictions", str(predictions)])
    finally:
        swapper.join(timeout=35)
        first.stop()
        other.stop()
    assert swapped.is_set() and predictions.stat().st_size
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("milmer-app: error:")]
    assert code == 2 and len(lines) == 1, err
    assert f"LSL {name}: stream came back with different channels or rate (8 ch at 256.0 Hz)" in lines[0]
