"""Replay controls on a DEAP replay: pause, resume, seek, speed and next trial, as the GUI drives them."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from milmer_app.clock import local_clock
from milmer_app.engine import Engine, EngineConfig
from milmer_app.replay import ReplayControl
from training.synth import write_synthetic_deap


def test_replay_clock_maps_positions_monotonically():
    control = ReplayControl(10.0, speed=2.0)
    start = local_clock()
    assert control.stamp(4.0) == pytest.approx(control.stamp(0.0) + 2.0)
    control.pause()
    held = control.position
    assert control.paused and control.position == held
    control.seek(8.0)
    assert control.position == 8.0 and control.generation == 1
    control.resume()
    control.set_speed(0.5)
    assert control.speed == 0.5 and 8.0 <= control.position <= 10.0
    assert control.stamp(control.position) >= start        # stamps after a backwards seek never run back
    control.seek(100.0)
    assert control.position == 10.0 and control.at_end()
    assert control.next_trial() is False                    # no items to move to
    with pytest.raises(ValueError):
        control.set_speed(0)


def test_media_time_tells_lsl_moments_in_the_replayed_items_time_across_seeks_and_speed_changes():
    control = ReplayControl(100.0, speed=4.0)
    first = control.stamp(0.0)
    played = control.position
    halfway = control.stamp(played / 2)           # a moment already played under the first map
    control.seek(50.0)
    sought = control.stamp(50.0)                  # the moment of the seek, under the second map
    control.set_speed(0.5)
    ahead = control.stamp(control.position + 2.0)
    assert control.media_time(first) == pytest.approx(0.0)
    assert control.media_time(halfway) == pytest.approx(played / 2)    # an older moment keeps its own map
    assert control.media_time(sought) == pytest.approx(50.0)
    assert control.media_time(ahead) == pytest.approx(control.position + 2.0, abs=1e-3)
    replay = ReplayControl(10.0, speed=8.0)
    for position in (0.0, 3.25, 7.5):
        assert replay.media_time(replay.stamp(position)) == pytest.approx(position)


@pytest.mark.slow
def test_engine_replay_controls(tmp_path: Path, tiny_checkpoint: Path):
    data = write_synthetic_deap(tmp_path / "deap", subjects=1, trials=3, seconds=6.0, seed=11)
    engine = Engine(EngineConfig(eeg=f"deap:{data.root}:1:1", video="deap", checkpoint=str(tiny_checkpoint),
                                 device="cpu"))
    events: queue.Queue = queue.Queue()
    engine.add_event_listener(lambda level, message: events.put(message))
    stages: list[str] = []   # what the start says it is doing (a window shows it in its empty panes)
    engine.add_event_listener(lambda level, message: stages.append(message) if level == "progress" else None)
    with engine:
        assert stages[0] == "loading the model…" and stages[-1] == "loading the model…"
        assert any(stage.startswith(f"connecting deap:{data.root}:1:1… (the model loads meanwhile)")
                   for stage in stages), stages
        replay, buffer = engine.replay, engine.eeg_source.buffer
        by_trial = {t.presentation_trial: t for t in data.trials}
        assert replay.description == f"s01 trial 1 (experiment {by_trial[1].experiment_id})"
        assert replay.truth == by_trial[1].quadrant and replay.duration == pytest.approx(6.0)
        assert replay.ratings["valence"] == pytest.approx(by_trial[1].valence, abs=0.01)
        assert buffer.wait_for(64, timeout=5)

        replay.pause()
        paused, paused_at = local_clock(), buffer.count
        # A read already under way may still deliver what played before the pause (< 0.1 s).
        assert not buffer.wait_for(paused_at + 13, timeout=2.0), "EEG kept coming while paused"
        assert buffer.last_timestamp() <= paused + 0.01
        assert all(not m.startswith("stream lost") for m in list(events.queue)), "a pause is not a lost stream"
        replay.resume()
        assert buffer.wait_for(paused_at + 1, timeout=2.0)

        before_seek = buffer.count
        replay.seek(4.0)
        assert replay.position == pytest.approx(4.0, abs=0.2)
        assert buffer.wait_for(before_seek + 32, timeout=3.0)
        _, after_seek, _ = buffer.since(before_seek)
        assert engine.eeg_source.segment_start in after_seek     # windows start again after the seek

        assert replay.next_trial() is True
        assert replay.truth == by_trial[2].quadrant and replay.description.startswith("s01 trial 2 ")
        frame_count = engine.video_source.buffer.count
        assert engine.video_source.buffer.wait_for(frame_count + 2, timeout=3.0)   # the new trial's video plays
        replay.set_speed(4.0)
        assert replay.speed == 4.0
        assert replay.next_trial() is True and replay.next_trial() is False   # trial 3 is the last
        assert engine.finished.wait(timeout=10), "the end of the last trial was not reported"
        # A pause, a seek, a speed change and a trial change are events of the replay, not gaps of its streams.
        for source in engine.sources:
            report, _ = source.monitor.check()
            assert report.gaps == 0 and report.dropped == 0, (source.name, report)
        seen = list(events.queue)
        for expected in ("replay paused", "replay resumed", "replay: seek to 4.0 s", "replay: s01 trial "):
            assert any(message.startswith(expected) for message in seen), (expected, seen)
