"""Markers in: a real LSL marker stream beside an EEG stream, recorded unchanged, drawn on the traces,
replayed from the recording; BrainFlow's marker channel; the marker stream found by the EEG's rules."""

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
from milmer_app.recording import RecordingReader
from models.calibration_protocol import marker_texts, rating_text, read_calibration, trial_end_text, trial_start_text
from models.contract import GENEVA_CHANNELS
from models.errors import SourceError

pytestmark = [pytest.mark.lsl]

RATE = 128.0
TEXTS = ["fixation", trial_start_text("t1"), "stimulus: ünïcode, commas, \"quotes\"", trial_end_text("t1"),
         rating_text("t1", 6.5, 3.25, stimulus="a walk by the sea")]


def _marker_outlet(name: str, stream_type: str = "Markers", source_id: str = "") -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                            source_id or f"markers-{name}")
    return pylsl.StreamOutlet(info)


def _eeg_player(name: str) -> LslPlayer:
    data = (np.random.default_rng(0).standard_normal((32, int(RATE * 20))) * 20).astype(np.float32)
    return LslPlayer(data, RATE, list(GENEVA_CHANNELS), name=name)


def _record_markers(tiny_checkpoint, folder, name: str) -> list[tuple[float, str]]:
    """Run the engine on an EEG outlet and a marker outlet, push TEXTS; (push time, text) of each."""
    player = _eeg_player(f"{name}-eeg")
    outlet = _marker_outlet(f"{name}-markers")
    engine = Engine(EngineConfig(eeg=f"lsl:name={name}-eeg", markers=f"lsl:name={name}-markers,timeout=10",
                                 checkpoint=str(tiny_checkpoint), device="cpu", record=folder))
    received: queue.Queue = queue.Queue()
    engine.add_marker_listener(lambda text, stamp, stream: received.put((text, stamp, stream)))
    pushed = []
    with player, engine:
        assert engine.marker_source is not None and engine.marker_source.connected
        assert outlet.wait_for_consumers(10.0)
        for text in TEXTS:
            stamp = local_clock()
            outlet.push_sample([text])
            pushed.append((stamp, text))
            got = next_matching(received, lambda item, text=text: item[0] == text, timeout=10)
            assert got[2] == f"LSL markers {name}-markers"
        # EEG recorded past the last marker, so that a replay reaches it.
        statuses: queue.Queue = queue.Queue()
        engine.add_status_listener(statuses.put)
        next_matching(statuses, lambda _: engine.eeg_snapshot(0.1)[1][-1] > pushed[-1][0] + 0.5, timeout=10)
    return pushed


def test_lsl_markers_are_recorded_unchanged_in_the_lsl_clock(tiny_checkpoint, tmp_path):
    folder = tmp_path / "rec"
    name = f"MilmerMk-{uuid.uuid4().hex[:6]}"
    pushed = _record_markers(tiny_checkpoint, folder, name)
    records = RecordingReader(folder).markers()
    recorded = [r for r in records if r.get("kind") == "marker"]
    assert [r["text"] for r in recorded] == TEXTS
    for (stamp, text), record in zip(pushed, recorded, strict=True):
        assert record["text"] == text and record["stream"] == f"LSL markers {name}-markers"
        assert abs(record["timestamp"] - stamp) < 0.010, (text, record["timestamp"] - stamp)
    # The protocol reads them back from the recording as the trainer will.
    log = read_calibration(marker_texts(records))
    assert [(t.trial, t.exclusion, t.rating.valence) for t in log.trials] == [("t1", None, 6.5)]
    assert not log.problems


def test_recorded_markers_are_drawn_on_the_traces_of_a_replay(tiny_checkpoint, tmp_path, qtbot, open_window):
    """Recorded live, then replayed in the window: each marker is a line with its text on the EEG."""
    from milmer_app.cli import build_parser

    folder = tmp_path / "rec"
    _record_markers(tiny_checkpoint, folder, f"MilmerMkR-{uuid.uuid4().hex[:6]}")
    window = open_window(build_parser().parse_args(["--eeg", f"recording:{folder}", "--video", "none",
                                                    "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]))
    window.eeg_view.set_span(30)
    qtbot.waitUntil(lambda: len(window.eeg_view.shown_markers()) == len(TEXTS) or window.last_error is not None,
                    timeout=60000)
    assert window.last_error is None, window.last_error
    shown = window.eeg_view.shown_markers()
    assert [text for _, text in shown] == [t if len(t) <= 48 else t[:47] + "…" for t in TEXTS]
    xs = [x for x, _ in shown]
    assert xs == sorted(xs) and all(-30 <= x <= 0 for x in xs)
    # The lines are plot items of the trace plot, where their x says.
    items = window.eeg_view.plot.getPlotItem().items
    lines = [i for i in items if type(i).__name__ == "InfiniteLine" and i.isVisible()]
    assert sorted(line.value() for line in lines) == pytest.approx(sorted(xs))


def test_marker_stream_by_type_must_be_unambiguous(tiny_checkpoint):
    stream_type = f"Mk{uuid.uuid4().hex[:6]}"
    first, second = _marker_outlet("MarkersA", stream_type), _marker_outlet("MarkersB", stream_type)
    player = _eeg_player(f"MkAmbEEG-{uuid.uuid4().hex[:6]}")
    player.start()
    engine = Engine(EngineConfig(eeg=f"lsl:name={player.name}", markers=f"lsl:type={stream_type}",
                                 checkpoint=str(tiny_checkpoint), device="cpu"))
    with player, pytest.raises(SourceError) as error:
        engine.start()          # a start that fails stops what it had started
    del first, second
    message = str(error.value)
    assert "2 LSL streams match" in message and "'MarkersA'" in message and "'MarkersB'" in message
    assert "marker spec" in error.value.hint


def test_marker_source_reconnects_only_to_the_same_stream():
    from milmer_app.sources.lsl_markers import LSLMarkerSource

    name = f"MkRe-{uuid.uuid4().hex[:6]}"
    outlet = _marker_outlet(name, source_id=f"id-{name}")
    source = LSLMarkerSource(name=name)
    received: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    source.add_marker_sink(lambda text, stamp: received.put(text))
    source.add_event_sink(lambda level, message: events.put(message))
    with source:
        assert outlet.wait_for_consumers(10.0)
        outlet.push_sample(["before"])
        assert next_matching(received, lambda t: True, timeout=10) == "before"
        del outlet
        next_matching(events, lambda m: m.startswith("stream lost"), timeout=10)
        impostor = _marker_outlet(name, source_id="another-device")     # same name, other source_id
        outlet = _marker_outlet(name, source_id=f"id-{name}")            # the same stream, restarted
        next_matching(events, lambda m: "reconnected to the same stream" in m, timeout=15)
        assert outlet.wait_for_consumers(10.0)
        outlet.push_sample(["after"])
        impostor.push_sample(["wrong"])
        assert next_matching(received, lambda t: True, timeout=10) == "after"
        with pytest.raises(queue.Empty):
            received.get(timeout=0.5)


@pytest.mark.slow
def test_brainflow_markers_arrive_as_markers(tiny_checkpoint, tmp_path):
    """insert_marker on the synthetic board's session: in the marker channel, then in the recording."""
    folder = tmp_path / "rec"
    engine = Engine(EngineConfig(eeg="brainflow:synthetic", checkpoint=str(tiny_checkpoint), device="cpu",
                                 record=folder))
    received: queue.Queue = queue.Queue()
    engine.add_marker_listener(lambda text, stamp, stream: received.put((text, stamp)))
    with engine:
        board = engine.eeg_source._board
        before = local_clock()
        board.insert_marker(3.0)
        text, stamp = next_matching(received, lambda item: True, timeout=10)
        assert text == "3" and abs(stamp - before) < 0.1
    recorded = [(r["text"], r["stream"]) for r in RecordingReader(folder).markers() if r.get("kind") == "marker"]
    assert recorded == [("3", "BrainFlow board -1")]


@pytest.mark.parametrize("spec, expected", [
    ("lsl:nmae=Stim", "unknown option 'nmae' (did you mean 'name'?)"),
    pytest.param("lsl:name=NoSuchMarkers,timeout=0.5", "no LSL stream with name=NoSuchMarkers found",
                 marks=pytest.mark.slow),
])
def test_headless_marker_spec_errors_are_one_line(tiny_checkpoint, spec, expected):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "milmer_app.cli", "--headless", "--eeg", "brainflow:synthetic",
                             "--video", "none", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                             "--duration", "5", "--markers", spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
