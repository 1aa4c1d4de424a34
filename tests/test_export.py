"""--export: the app's own recordings to FIF, EDF and BDF whatever they hold (DC channels at -12 V, constant
channels, NaN/Inf, any label text, markers), read back by MNE with their start time and length; malformed
recordings and impossible targets are one line and exit 2."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mne
import numpy as np
import pytest

from milmer_app import cli as app_cli
from milmer_app.export import channel_scale, record_layout
from milmer_app.recording import Recorder

SRATE = 128.0
LABELS = ["Fp1", "DC 1\nNK", "µV chan with a very long name", "Fp1", "Cz"]


def _record(folder: Path, data: np.ndarray, labels: list[str], markers=(), start: float = 1000.0) -> Path:
    recorder = Recorder(folder, {"channels": labels, "srate": SRATE, "units": "uV", "source": "test"}, None)
    recorder.start()
    stamps = start + np.arange(data.shape[1]) / SRATE
    for begin in range(0, data.shape[1], 64):
        recorder.add_eeg(data[:, begin:begin + 64], stamps[begin:begin + 64])
    for stamp, text in markers:
        recorder.add_marker(text, stamp)
    recorder.stop()
    return folder


def _hostile_data(samples: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.normal(0, 25, (5, samples))
    data[1] += -12.0029e6                   # a Nihon Kohden DC channel at -12 V
    data[2] = 4.5                           # constant
    data[3, 100:110] = np.nan
    data[3, 300] = np.inf
    return data.astype(np.float32)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, np.ndarray, dict]:
    folder = tmp_path_factory.mktemp("export") / "rec"
    data = _hostile_data(1280)
    markers = [(1000.5, "trial 1"), (1003.25, '{"calibration": "trial_start", "trial": "a"}'), (1005.0, "bell\x07\nx")]
    _record(folder, data, LABELS, markers)
    meta = json.loads((folder / "meta.json").read_text())
    return folder, data, meta


def _start_time(meta: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(meta["created_utc"]) + dt.timedelta(seconds=1000.0 - meta["created_lsl"])


@pytest.mark.parametrize("suffix", ["edf", "bdf", "fif"])
def test_a_hostile_recording_exports_exactly_with_its_markers_and_start(suffix, hostile, tmp_path, capsys):
    folder, data, meta = hostile
    target = tmp_path / f"out.{suffix}"
    assert app_cli.main(["--export", str(folder), str(target)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    raw = mne.io.read_raw(target, preload=True, verbose="error")
    assert raw.n_times == 1280 and raw.info["sfreq"] == SRATE           # the recording's length, no filler
    back = raw.get_data() * 1e6
    levels = {"edf": 2**16, "bdf": 2**24, "fif": None}[suffix]
    for index in (0, 1, 2, 4):
        if levels is None:
            tolerance = 1e-6 * max(1.0, float(np.abs(data[index]).max()))
        else:   # half a step of the channel's own range
            scale = channel_scale(float(data[index].min()), float(data[index].max()), levels)
            tolerance = scale.resolution_uv / 2 * 1.001 + 1e-9 * abs(float(data[index].max()))
        np.testing.assert_allclose(back[index], data[index], atol=tolerance, rtol=0)
    finite = np.isfinite(data[3])
    np.testing.assert_allclose(back[3][finite], data[3][finite], atol=0.01)
    if suffix == "fif":
        assert np.isnan(back[3, 100]) and np.isinf(back[3, 300])     # FIF keeps them as they were
        assert raw.info["meas_date"] == _start_time(meta)
        assert json.loads(raw.info["description"].split(": ", 1)[1]) == LABELS
    else:
        assert raw.info["meas_date"] == _start_time(meta).replace(microsecond=0)   # EDF: whole seconds
        sidecar = json.loads((tmp_path / f"out.{suffix}.labels.json").read_text())
        assert sidecar["labels"] == LABELS and sidecar["written_as"] == raw.ch_names
    assert len(set(raw.ch_names)) == 5 and all(name.isprintable() for name in raw.ch_names)
    annotations = list(zip(raw.annotations.onset, raw.annotations.duration, raw.annotations.description,
                           strict=True))
    texts = [text for _, _, text in annotations]
    assert "trial 1" in texts and '{"calibration": "trial_start", "trial": "a"}' in texts and "bell  x" in texts
    assert [round(onset, 3) for onset, _, text in annotations if text == "trial 1"] == [0.5]
    spans = [(round(onset * SRATE), round(duration * SRATE)) for onset, duration, text in annotations
             if text == "BAD_non_finite"]
    assert spans == [(100, 10), (300, 1)]


def test_edf_filler_is_marked_when_no_record_length_fits(tmp_path, capsys):
    folder = _record(tmp_path / "rec", _hostile_data(1001)[[0, 4]], ["Fp1", "Cz"])
    target = tmp_path / "odd.edf"
    assert app_cli.main(["--export", str(folder), str(target)]) == 0
    assert "BAD_ACQ_SKIP" in capsys.readouterr().err                      # said, not silent
    raw = mne.io.read_raw(target, verbose="error")
    assert raw.n_times == 1002
    skip = [(onset, duration) for onset, duration, text in zip(raw.annotations.onset, raw.annotations.duration,
                                                               raw.annotations.description, strict=True)
            if text == "BAD_ACQ_SKIP"]
    assert skip == [(pytest.approx(1001 / SRATE), pytest.approx(1 / SRATE))]


@pytest.mark.parametrize("samples,rate", [(1280, 128.0), (1001, 250.0), (12345, 500.0), (7, 1000.0), (999, 256.0)])
def test_record_layout_keeps_the_length_where_the_format_allows(samples, rate):
    per_record, duration, filler = record_layout(samples, rate)
    assert (samples + filler) % per_record == 0 and per_record / duration == pytest.approx(rate, rel=1e-12)
    assert len(str(duration)) <= 8 and filler < per_record
    if rate in (128.0, 250.0, 500.0, 1000.0) and samples % 2 == 0 or rate in (250.0, 500.0, 1000.0):
        assert filler == 0


def _write_meta(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "meta.json").write_text(text)
    (folder / "eeg.f32").write_bytes(np.zeros(64, "<f4").tobytes())
    (folder / "eeg_ts.f64").write_bytes(np.arange(32, dtype="<f8").tobytes())
    return folder


def _meta(**eeg) -> str:
    fields = {"channels": ["Fp1", "Cz"], "srate": 128.0, **eeg}
    return json.dumps({"format": "milmer-recording", "version": 1, "created_utc": "2026-01-02T03:04:05+00:00",
                       "created_lsl": 0.0, "eeg": fields})


@pytest.mark.parametrize("name,text,expected", [
    ("deep", '{"format": "milmer-recording", "version": 1, "eeg": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "nested too deeply"),
    ("list", "[1, 2, 3]", "holds a JSON list"),
    ("srate zero", _meta(srate=0), "'eeg.srate'"),
    ("srate negative", _meta(srate=-128), "'eeg.srate'"),
    ("srate text", _meta(srate="fast"), "got 'fast'"),
    ("channels string", _meta(channels="Fp1,AF3"), "'eeg.channels' must be a list"),
    ("channels numbers", _meta(channels=[1, 2]), "'eeg.channels' must be a list"),
    ("eeg string", json.dumps({"format": "milmer-recording", "version": 1, "eeg": "x"}), "field 'eeg'"),
    ("not json", "{nope", "unreadable"),
])
def test_a_malformed_recording_is_one_line_and_exit_2(name, text, expected, tmp_path, capsys):
    folder = _write_meta(tmp_path / "rec", text)
    assert app_cli.main(["--export", str(folder), str(tmp_path / "out.edf")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "meta.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2                 # the error and at most a hint


def test_targets_that_cannot_be_written_are_one_line(hostile, tmp_path, capsys):
    folder = hostile[0]
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for target, expected in ((tmp_path, "unknown export format"), (tmp_path / "dir.edf", "is a folder"),
                             (blocker / "out.edf", "cannot create the folder"),
                             (tmp_path / "out.txt", "unknown export format")):
        if target.name == "dir.edf":
            target.mkdir()
        assert app_cli.main(["--export", str(folder), str(target)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
