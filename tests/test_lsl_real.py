"""Real pylsl outlets on loopback as real devices behave: units, wrong rates, clock jumps, several matches."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable

import numpy as np
import pylsl
import pytest

from live_support import next_matching
from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.lsl_player import LslPlayer
from milmer_app.sources.lsl import LSLSource
from models.contract import GENEVA_CHANNELS
from models.errors import SourceError

pytestmark = [pytest.mark.lsl, pytest.mark.slow]

RATE = 256.0
LABELS = list(GENEVA_CHANNELS)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _signal(n: int, start: int = 0, channels: int = 32) -> np.ndarray:
    """Microvolt EEG-like samples (C, n): a 10 Hz rhythm of 20 µV per channel on DC offsets of a few mV."""
    t = (start + np.arange(n)) / RATE
    offsets = np.linspace(-5000, 5000, channels)[:, None]
    return (offsets + 20 * np.sin(2 * np.pi * 10 * t + np.arange(channels)[:, None])).astype(np.float64)


class StampedOutlet:
    """An LSL outlet pushing `sent_rate` samples per second of the LSL clock with per-sample timestamps
    from `stamp(index, start)`, so a test can declare one rate and send another, or make the clock jump."""

    def __init__(self, name: str, units: list[str] | None, declared: float = RATE, sent_rate: float = RATE,
                 stamp: Callable[[np.ndarray, float], np.ndarray] | None = None, scale: float = 1.0,
                 labels: list[str] = LABELS, stream_type: str = "EEG", source_id: str = ""):
        info = pylsl.StreamInfo(name, stream_type, len(labels), declared, pylsl.cf_float32, source_id)
        channels = info.desc().append_child("channels")
        for i, label in enumerate(labels):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            if units is not None:
                channel.append_child_value("unit", units[i])
            channel.append_child_value("type", "EEG")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
        self.sent_rate = sent_rate
        self.stamp = stamp or (lambda index, start: start + index / sent_rate)
        self.scale = scale
        self.channels = len(labels)
        self.pushed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = local_clock()
        while not self._stop.wait(0.02):
            due = int((local_clock() - start) * self.sent_rate)
            if due <= self.pushed:
                continue
            index = np.arange(self.pushed, due)
            data = (_signal(len(index), self.pushed, self.channels) * self.scale).T.astype(np.float32)
            self.outlet.push_chunk(np.ascontiguousarray(data), list(self.stamp(index, start)))
            self.pushed = due

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.outlet = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _events(source) -> queue.Queue:
    events: queue.Queue = queue.Queue()
    source.add_event_sink(lambda level, message: events.put((level, message)))
    return events



# -- units ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("units, scale, unit, origin, warned", [
    (["0"] * 32, 1e-6, "V", "stream", False),                 # mne-lsl's PlayerLSL: volts, labelled "0"
    (["microvolts"] * 32, 1.0, "µV", "stream", False),        # the LSL convention
    (["-3"] * 32, 1e-3, "mV", "stream", False),
    (None, 1.0, "µV", "amplitude", True),                     # no unit, µV-scale data
    (None, 1e-6, "V", "amplitude", True),                     # no unit, volt-scale data
])
def test_units_arrive_three_ways_and_are_pushed_as_microvolts(units, scale, unit, origin, warned):
    name = f"MilmerUnits-{_uid()}"
    outlet = StampedOutlet(name, units, scale=scale)
    source = LSLSource(name=name)
    events = _events(source)
    with outlet, source:
        assert source.unit == unit and source.unit_origin == origin and source.unit_assumed == warned
        assert source.buffer.wait_for(int(3 * RATE), timeout=20)
        data, _ = source.buffer.latest(int(2 * RATE))
        # Whatever unit it came in, the buffer holds the microvolt signal (float32 carries ~7 digits).
        expected_offsets = np.linspace(-5000, 5000, 32)
        np.testing.assert_allclose(np.median(data, axis=1), expected_offsets, atol=1.0)
        centred = data - data.mean(axis=1, keepdims=True)
        assert np.sqrt((centred ** 2).mean()) == pytest.approx(20 / np.sqrt(2), rel=0.05)
        warnings = [m for level, m in list(events.queue) if level == "warning"]
        if warned:
            assert len(warnings) == 1, warnings
            assert "no unit" in warnings[0] and ("assuming volts" if unit == "V" else "assuming microvolts") \
                in warnings[0] and "unit=uV|mV|V" in warnings[0] and name in warnings[0]
        else:
            assert not warnings, warnings


def test_a_spec_unit_overrides_what_the_stream_says():
    name = f"MilmerForced-{_uid()}"
    outlet = StampedOutlet(name, ["microvolts"] * 32, scale=1e-3)     # mislabelled: really millivolts
    source = LSLSource(name=name, unit="mV")
    with outlet, source:
        assert source.unit == "mV" and source.unit_origin == "spec" and source.unit_text() == "mV (set by spec)"
        assert source.buffer.wait_for(int(RATE), timeout=20)
        data, _ = source.buffer.latest(int(RATE))
        np.testing.assert_allclose(np.median(data, axis=1), np.linspace(-5000, 5000, 32), atol=1.0)


def test_the_unit_in_use_shows_in_status_summary_and_recording(tiny_checkpoint, tmp_path, capsys):
    from milmer_app import cli as app_cli

    name = f"MilmerVolts-{_uid()}"
    outlet = StampedOutlet(name, None, scale=1e-6)
    record = tmp_path / "rec"
    with outlet:
        code = app_cli.main(["--headless", "--eeg", f"lsl:name={name}", "--checkpoint", str(tiny_checkpoint),
                             "--device", "cpu", "--duration", "1", "--record", str(record)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"EEG LSL {name}: samples in V (assumed), converted to µV" in out
    meta = json.loads((record / "meta.json").read_text())
    assert meta["eeg"]["units"] == "uV" and meta["eeg"]["source_unit"] == "V"
    assert meta["eeg"]["source_unit_origin"] == "amplitude"


# -- rates and clocks ----------------------------------------------------------------------------------

def test_a_stream_sending_four_times_its_declared_rate_is_stopped_with_a_clear_error():
    name = f"MilmerFast-{_uid()}"
    outlet = StampedOutlet(name, ["microvolts"] * 32, declared=128.0, sent_rate=512.0)
    source = LSLSource(name=name)
    with outlet, source:
        assert source.finished.wait(30), "the source kept running"
        message = source.error
        assert message is not None and name in message and "declares 128 Hz but sends" in message
        measured = float(message.split("sends ")[1].split(" Hz")[0])
        assert measured == pytest.approx(512, rel=0.02)


def test_a_stream_stamping_its_declared_rate_while_sending_four_times_as_fast_is_stopped():
    name = f"MilmerAhead-{_uid()}"
    outlet = StampedOutlet(name, ["microvolts"] * 32, declared=128.0, sent_rate=512.0,
                           stamp=lambda index, start: start + index / 128.0)     # runs ahead 3 s per second
    source = LSLSource(name=name)
    events = _events(source)
    with outlet, source:
        assert source.finished.wait(30), "the source kept running"
        assert name in source.error and "timestamps broke 3 times within 10 s" in source.error
        ahead = [m for level, m in list(events.queue) if level == "warning" and "ahead" in m]
        assert len(ahead) == 3


def test_a_stream_delivering_a_quarter_of_its_stamped_rate_is_stopped():
    name = f"MilmerSlow-{_uid()}"
    outlet = StampedOutlet(name, ["microvolts"] * 32, declared=RATE, sent_rate=RATE / 4,
                           stamp=lambda index, start: start + index / RATE)      # falls ever further behind
    source = LSLSource(name=name)
    with outlet, source:
        assert source.finished.wait(40), "the source kept running"
        message = source.error
        assert message is not None and name in message and "declares 256 Hz but delivers" in message
        delivered = float(message.split("delivers ")[1].split(" samples")[0])
        assert delivered == pytest.approx(64, rel=0.05)


def test_a_rate_a_little_off_is_a_warning_and_a_status_flag():
    name = f"MilmerSlightlyFast-{_uid()}"
    outlet = StampedOutlet(name, ["microvolts"] * 32, declared=RATE, sent_rate=RATE * 1.1)
    source = LSLSource(name=name)
    events = _events(source)
    with outlet, source:
        _, message = next_matching(events, lambda e: e[0] == "warning" and "declares" in e[1], timeout=30)
        assert "declares 256 Hz but sends 28" in message and "+10 %" in message
        report, _ = source.monitor.check()
        assert report.rate_off and source.error is None


@pytest.mark.parametrize("jump, said", [(-10.0, "backwards"), (3600.0, "ahead of this machine's clock")])
def test_clock_jumps_are_reported_and_no_window_spans_them(tiny_checkpoint, jump, said):
    name = f"MilmerJump-{_uid()}"
    jump_at = [np.inf]     # the outlet's clock jumps from this sample on (set once windows are coming)

    def stamp(index: np.ndarray, start: float) -> np.ndarray:
        return start + index / RATE + np.where(index >= jump_at[0], jump, 0.0)

    outlet = StampedOutlet(name, ["microvolts"] * 32, stamp=stamp)
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}", checkpoint=str(tiny_checkpoint), hop=0.25,
                                 device="cpu"))
    predictions: queue.Queue = queue.Queue()
    seen: list = []
    events: queue.Queue = queue.Queue()
    engine.add_prediction_listener(seen.append)
    engine.add_prediction_listener(predictions.put)
    engine.add_event_listener(lambda level, message: events.put((level, message)))
    with outlet, engine:
        next_matching(predictions, lambda p: True, timeout=30)
        jump_at[0] = outlet.pushed + RATE / 2
        level, message = next_matching(events, lambda e: said in e[1], timeout=30)
        assert level == "warning" and name in message and "no window spans" in message
        cut = engine.eeg_source.segment_start
        after = next_matching(predictions, lambda p: p.window_start >= cut, timeout=20)
        windows = list(seen)
        assert any(p.window_end < cut for p in windows)              # windows before the break, and after it
        assert all(p.window_end < cut or p.window_start >= cut for p in windows)
        # The re-anchored stream stays on this machine's clock.
        assert abs(after.window_end - local_clock()) < 2.0
        assert engine.eeg_source.error is None


# -- stream identity -----------------------------------------------------------------------------------

def test_several_matching_streams_are_an_error_listing_each_unless_pick_first():
    stream_type = f"EEG{_uid()}"
    first = LslPlayer(_signal(512, channels=4).astype(np.float32), RATE, LABELS[:4], name="MilmerTwinA",
                      stream_type=stream_type, source_id="twin-a")
    second = LslPlayer(_signal(512, channels=8).astype(np.float32), RATE, LABELS[:8], name="MilmerTwinB",
                       stream_type=stream_type, source_id="twin-b")
    first.start()
    with second, first:
        with pytest.raises(SourceError) as error:
            LSLSource(stype=stream_type).connect()
        message = str(error.value)
        assert message.startswith(f"2 LSL streams match type={stream_type}")
        assert "'MilmerTwinA' (type " in message and "source_id 'twin-a'" in message and "4 ch at 256 Hz" in message
        assert "'MilmerTwinB' (type " in message and "source_id 'twin-b'" in message and "8 ch at 256 Hz" in message
        assert "host " in message and "source_id=" in error.value.hint and "pick=first" in error.value.hint
        picked = LSLSource(stype=stream_type, pick_first=True)
        with picked:
            assert picked.source_id == "twin-a"


def test_with_source_id_the_engine_never_reads_the_other_stream_even_after_its_own_drops(tiny_checkpoint):
    stream_type, name = f"EEG{_uid()}", f"MilmerTwin-{_uid()}"
    mine_id, other_id = f"mine-{_uid()}", f"other-{_uid()}"

    def player(value: float, source_id: str) -> LslPlayer:     # contents tell the streams apart
        return LslPlayer(np.full((32, 256), value, np.float32), RATE, LABELS, name=name, stream_type=stream_type,
                         source_id=source_id)

    mine, other = player(10.0, mine_id), player(20.0, other_id)
    mine.start()
    other.start()
    engine = Engine(EngineConfig(eeg=f"lsl:source_id={mine_id}", checkpoint=str(tiny_checkpoint), hop=0.5,
                                 device="cpu"))
    events: queue.Queue = queue.Queue()
    engine.add_event_listener(lambda level, message: events.put((level, message)))
    engine.start()
    restarted = None
    try:
        source = engine.eeg_source
        assert source.source_id == mine_id and source.buffer.wait_for(int(RATE), timeout=20)
        mine.stop()
        next_matching(events, lambda e: e[1].startswith("stream lost"), timeout=10)
        restarted = player(30.0, mine_id)                      # the same device, back with other content
        restarted.start()
        _, message = next_matching(events, lambda e: "reconnected to the same stream" in e[1], timeout=20)
        assert f"source_id '{mine_id}'" in message and name in message
        deadline = local_clock() + 20
        while local_clock() < deadline:
            data, _ = source.buffer.latest(source.buffer.count)
            if (data == 30.0).any():
                break
            source.buffer.wait_for(source.buffer.count + 1, timeout=1.0)
        data, _ = source.buffer.latest(source.buffer.count)
        assert set(np.unique(data)) == {10.0, 30.0}           # never a sample of the other stream (20)
        assert source.source_id == mine_id
    finally:
        engine.stop()
        other.stop()
        if restarted is not None:
            restarted.stop()


# -- a stream that is not there -------------------------------------------------------------------------

def test_a_mistyped_stream_name_lists_the_streams_there_within_the_timeout_before_the_model_loads(
        tiny_checkpoint, capsys):
    from milmer_app import cli as app_cli

    suffix = _uid()
    outlet = StampedOutlet(f"NewcomerEEG{suffix}", ["microvolts"] * 32, source_id=f"cap-{suffix}")
    with outlet:
        started = local_clock()
        code = app_cli.main(["--headless", "--eeg", f"lsl:name=NewcomerEG{suffix},timeout=2",
                             "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--duration", "1"])
        seconds = local_clock() - started
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("milmer-app: error:")]
    assert f"no LSL stream with name=NewcomerEG{suffix} found within 2 s" in line
    assert f"'NewcomerEEG{suffix}' (type EEG, source_id 'cap-{suffix}')" in line
    assert f"(did you mean name=NewcomerEEG{suffix}?)" in line
    # Answered from the stream search: the model, loading meanwhile, was never waited for.
    assert "on cpu" not in err and seconds < 2 + 1.5, (seconds, err)
