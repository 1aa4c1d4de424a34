"""Units, BioSemi montages, duplicate labels, the new spec options and the clock guard, without streams."""

from __future__ import annotations

import numpy as np
import pytest

from milmer_app.buffers import ClockGuard, StreamMonitor
from milmer_app.specs import parse_eeg_spec
from models.contract import GENEVA_CHANNELS
from models.errors import SourceError
from models.pipeline.channels import map_channels, montage_names
from models.pipeline.units import factor_to_microvolts, judge_unit, parse_unit


@pytest.mark.parametrize("label, unit", [
    ("microvolts", "µV"), ("Microvolt", "µV"), ("µV", "µV"), ("μV", "µV"), ("uV", "µV"), ("UV", "µV"),
    ("micro volts", "µV"), ("mV", "mV"), ("MV", "mV"), ("millivolts", "mV"), ("V", "V"), ("volts", "V"),
    ("Volt", "V"), ("nV", "nV"), ("nanovolts", "nV"),
    ("0", "V"), ("-3", "mV"), ("-6", "µV"), ("-9", "nV"), (" -6 ", "µV"),
    ("", None), (None, None), ("counts", None), ("g", None), ("-12", None), ("3", None), ("uV/m", None),
])
def test_unit_labels_as_devices_and_mne_write_them(label, unit):
    assert parse_unit(label) == unit


def test_factors_bring_every_unit_to_microvolts():
    assert [factor_to_microvolts(u) for u in ("V", "mV", "µV", "nV")] == [1e6, 1e3, 1.0, 1e-3]


def _eeg(seconds: float = 2.0, rate: float = 256.0, offset_uv: float = 0.0, seed: int = 0) -> np.ndarray:
    """Microvolt-scale EEG-like signal (C=8): alpha plus noise, optional DC offsets."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    alpha = 20 * np.sin(2 * np.pi * 10 * t)
    data = alpha + 10 * rng.standard_normal((8, t.size))
    return data + offset_uv * rng.uniform(-1, 1, (8, 1))


@pytest.mark.parametrize("offset_uv", [0.0, 5e3, 5e4])       # none, several mV, ±50 mV DC offsets
def test_amplitude_tells_volts_from_microvolts_with_and_without_dc_offsets(offset_uv):
    microvolts = _eeg(offset_uv=offset_uv)
    judged = judge_unit(microvolts)
    assert judged.unit == "µV" and judged.plausible
    judged = judge_unit(microvolts * 1e-6)
    assert judged.unit == "V" and judged.plausible
    assert "median |x|" in judged.describe()


def test_amplitude_judgement_ignores_dead_channels_and_says_when_it_cannot_judge():
    data = _eeg() * 1e-6
    data[:3] = 0.0
    data[3] = np.nan
    assert judge_unit(data).unit == "V"
    flat = judge_unit(np.zeros((4, 512)))
    assert flat.unit is None and "no usable signal" in flat.describe()
    odd = judge_unit(np.full((4, 512), 3e7))
    assert odd.unit == "µV" and not odd.plausible and "neither" in odd.describe()


def test_spec_options_unit_montage_pick_are_validated_when_parsed():
    options = parse_eeg_spec("lsl:type=EEG,unit=uV,montage=BioSemi64,pick=first").options
    assert parse_unit(options.unit) == "µV" and options.montage == "biosemi64" and options.pick == "first"
    assert parse_unit(parse_eeg_spec("lsl:type=EEG,unit=V").options.unit) == "V"
    assert parse_unit(parse_eeg_spec("brainflow:synthetic,unit=mV").options.unit) == "mV"
    plain = parse_eeg_spec("lsl:type=EEG").options
    assert plain.unit is None and plain.montage is None and plain.pick != "first"
    for bad, named in (("unit=furlongs", "unit 'furlongs'"), ("montage=biosemi128", "montage 'biosemi128'"),
                       ("pick=last", "pick 'last'")):
        with pytest.raises(SourceError) as error:
            parse_eeg_spec(f"lsl:type=EEG,{bad}")
        assert named in str(error.value) and error.value.hint.startswith("use one of:")


def test_biosemi_codes_map_to_10_20_positions_through_mne_montages():
    codes64 = montage_names("biosemi64")
    assert len(codes64) == 64 and set(codes64) == {f"{b}{i}" for b in "AB" for i in range(1, 33)}
    # Spot checks against the BioSemi 64 cap layout: A1 Fp1, A32 CPz, B1 Fpz, B16 Cz, B32 O2.
    assert [codes64[c] for c in ("A1", "A15", "A32", "B1", "B16", "B20", "B32")] == \
        ["Fp1", "T7", "CPz", "Fpz", "Cz", "T8", "O2"]
    codes32 = montage_names("biosemi32")
    assert len(codes32) == 32 and codes32["A1"] == "Fp1" and codes32["A32"] == "Cz"
    # BioSemi 32 layout (DEAP's original BDF order): A3 F7, A13 Pz, A16 Oz, A24 T8, A31 Fz.
    assert [codes32[c] for c in ("A3", "A13", "A16", "A24", "A31")] == ["F7", "Pz", "Oz", "T8", "Fz"]
    assert sorted(codes32.values()) == sorted(GENEVA_CHANNELS)

    device = [f"{b}{i}" for b in "AB" for i in range(1, 33)] + ["EXG1", "Status"]
    mapping = map_channels(device, list(GENEVA_CHANNELS), "LSL BioSemi", montage="biosemi64")
    assert mapping.present == 32
    for j, name in enumerate(GENEVA_CHANNELS):
        assert codes64[device[mapping.source_index[j]]] == name
    # Without the montage, position codes are not electrode names.
    with pytest.raises(SourceError) as error:
        map_channels(device, list(GENEVA_CHANNELS), "LSL BioSemi")
    assert "montage=biosemi64" in error.value.hint


def test_duplicate_labels_are_an_error_naming_them():
    device = ["EEG Fp1-REF", "Fp1", "Cz", "Pz", "Oz"]
    with pytest.raises(SourceError) as error:
        map_channels(device, ["Fp1", "Cz", "Pz", "Oz"], "LSL Dup")
    assert "duplicate channel labels" in str(error.value) and "'EEG Fp1-REF', 'Fp1'" in str(error.value)
    # A code and the name it stands for are the same electrode twice.
    with pytest.raises(SourceError) as error:
        map_channels(["A1", "Fp1", "A2"], list(GENEVA_CHANNELS), "LSL Dup", montage="biosemi32")
    assert "'A1' (Fp1), 'Fp1'" in str(error.value)
    # Duplicates among channels the model does not read are only a warning.
    mapping = map_channels(["Aux", "aux", "Cz", "Pz"], ["Cz", "Pz"], "LSL Aux")
    assert mapping.present == 2


def test_clock_guard_reanchors_backward_runs_and_jumps_ahead_and_lets_jitter_pass():
    rate = 100.0
    guard = ClockGuard(rate)
    now = 1000.0
    first = now - 1.0 + np.arange(100) / rate
    times, breaks = guard.correct(first, now)
    assert not breaks and np.array_equal(times, first)
    jitter = first[-1] - 0.05 + np.arange(1, 11) / rate       # 50 ms backwards: chunk jitter, not a break
    times, breaks = guard.correct(jitter, now + 0.1)
    assert not breaks
    # 10 s backwards in the middle of a chunk: break at the first sample of the new piece.
    chunk = np.concatenate([times[-1] + np.arange(1, 6) / rate, times[-1] - 10 + np.arange(5) / rate])
    times, breaks = guard.correct(chunk, now + 0.2)
    assert [b.index for b in breaks] == [5] and "10 s backwards" in breaks[0].message
    assert np.all(np.diff(times) > 0) and times[-1] <= now + 0.2 + 1e-9
    assert np.allclose(np.diff(times[5:]), 1 / rate)
    # An hour ahead: re-anchored onto this clock, and it stays so for the stream's next chunks.
    ahead = chunk[-1] + 3600 + np.arange(1, 11) / rate
    times, breaks = guard.correct(ahead, now + 0.3)
    assert [b.index for b in breaks] == [0] and "ahead of this machine's clock" in breaks[0].message
    assert times[-1] == pytest.approx(now + 0.3) and times[0] > guard.last - 1
    more, breaks = guard.correct(ahead[-1] + np.arange(1, 11) / rate, now + 0.4)
    assert not breaks and more[0] == pytest.approx(times[-1] + 1 / rate)


def test_monitor_measures_the_rate_over_a_full_window_and_restarts_after_a_break():
    monitor = StreamMonitor(128.0)
    base = 50.0
    for second in range(4):
        monitor.record(base + second + np.arange(512) / 512)
    assert monitor.rate_ratio() is None                       # under 5 s seen
    for second in range(4, 7):
        monitor.record(base + second + np.arange(512) / 512)
    assert monitor.rate_ratio() == pytest.approx(4.0, rel=0.01)
    monitor.restart()
    assert monitor.rate_ratio() is None


def test_status_bar_text_shows_the_unit_and_a_rate_mismatch():
    from milmer_app.engine import StreamStatus
    from milmer_app.gui.status_bar import stream_text

    status = StreamStatus("LSL Cap", "eeg", True, False, 256.0, 281.6, 0, 0, 0.1, unit="V (assumed)", rate_off=True)
    text, lost = stream_text(status)
    assert text == "EEG LSL Cap: V (assumed) · 281.6/256 Hz · RATE MISMATCH" and not lost


def test_clock_guard_lets_go_of_the_offset_when_a_burst_of_old_samples_is_over():
    rate = 100.0
    guard = ClockGuard(rate)
    now = 500.0
    guard.correct(now - 1.0 + np.arange(100) / rate, now)
    # A burst of samples stamped 1.5 s in the past (a player re-sending old data) ...
    times, breaks = guard.correct(now - 1.5 + np.arange(10) / rate, now + 0.02)
    assert len(breaks) == 1 and "backwards" in breaks[0].message and guard.offset > 1.0
    # ... then the stream's own clock again: re-anchored back instead of staying 1.5 s ahead.
    resumed = now + 0.04 + np.arange(1, 5) / rate
    times, breaks = guard.correct(resumed, now + 0.08)
    assert len(breaks) == 1 and "ahead" in breaks[0].message
    assert abs(guard.offset) < 0.2 and times[0] > guard.last - 0.1 and np.all(np.diff(times) > 0)


def test_a_replay_at_speed_is_not_taken_for_a_stream_with_a_wrong_rate():
    from milmer_app.sources import build_sources
    from milmer_app.specs import parse_video_spec

    eeg, _ = build_sources(parse_eeg_spec("demo"), parse_video_spec("none"), speed=4.0)
    warnings: list[str] = []
    eeg.add_event_sink(lambda level, message: warnings.append(message) if level != "info" else None)
    with eeg:
        # At 4x, timestamps run at 4x the nominal rate: more than a full 5 s rate window of them.
        assert eeg.buffer.wait_for(int(eeg.srate * 4 * 5.5), timeout=30)
        assert eeg.clock is None and eeg.error is None and not warnings


def test_monitor_measures_delivery_per_second_of_this_clock_and_restarts_after_a_pause(monkeypatch):
    import milmer_app.buffers as buffers

    clock = [100.0]
    monkeypatch.setattr(buffers, "local_clock", lambda: clock[0])
    monitor = StreamMonitor(256.0)
    stamp = 0.0
    for _ in range(110):                      # 11 s of chunks of 16 samples every 0.1 s: 160 samples/s
        monitor.record(stamp + np.arange(16) / 256.0)
        stamp += 16 / 256.0
        clock[0] += 0.1
    assert monitor.delivery_ratio() == pytest.approx(160 / 256, rel=0.02)
    clock[0] += 2.0                           # a pause longer than lost_after: measure again
    monitor.record(stamp + np.arange(16) / 256.0)
    assert monitor.delivery_ratio() is None
