"""Hostile lab files through `--headless --eeg file:`: headers that lie, data files elsewhere, dimensions that do not
fit, implausible amplitudes and rates, XDF time stamps that jump or run backwards, a file far larger than memory.
Each ends in a clear one-line error (exit 2) or is handled (corrected with a warning, replayed), never a traceback,
a hang or gigabytes of memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from milmer_app import cli as app_cli
from milmer_app.repeats import RepeatLimiter
from milmer_app.sources.file import load_eeg_file
from milmer_app.xdf_chunks import file_header_chunk, stream_chunk
from models.errors import SourceError
from models.pipeline.eeg import GENEVA_CHANNELS
from xdf_writer import XdfStream, write_xdf

RATE = 128
ROOT = Path(__file__).resolve().parents[1]


# -- writers -----------------------------------------------------------------------------------------------------
def write_edf(path: Path, data_uv: np.ndarray, rate: int = RATE, records: int | None = None, **fields: str) -> Path:
    """A 16-bit EDF of one-second records; `fields` replace header fields as written (e.g. duration="-1")."""
    channels, samples = data_uv.shape
    count = records if records is not None else samples // rate

    def text(value: object, width: int) -> bytes:
        return str(value).ljust(width)[:width].encode("ascii")

    labels = fields.pop("labels", None) or list(GENEVA_CHANNELS[:channels])
    head = (text("0", 8) + text("X X X X", 80) + text("Startdate X X X X", 80) + text("01.01.20", 8)
            + text("00.00.00", 8) + text(fields.get("header_bytes", 256 * (channels + 1)), 8) + text("", 44)
            + text(fields.get("records", count), 8) + text(fields.get("duration", 1), 8)
            + text(fields.get("signals", channels), 4))
    for values, width in ((labels, 16), (["AgAgCl"] * channels, 80), (["uV"] * channels, 8),
                          ([fields.get("physical_min", -3200)] * channels, 8), ([3200] * channels, 8),
                          ([-32768] * channels, 8), ([32767] * channels, 8), ([""] * channels, 80),
                          ([fields.get("per_record", rate)] * channels, 8), ([""] * channels, 32)):
        head += b"".join(text(v, width) for v in values)
    gain = 65535 / 6400
    digital = np.clip(np.round((data_uv + 3200) * gain - 32768), -32768, 32767).astype("<i2")
    whole = samples // rate
    body = digital[:, :whole * rate].reshape(channels, whole, rate).transpose(1, 0, 2).tobytes()
    path.write_bytes(head + body)
    return path


def noise(channels: int = 8, seconds: float = 12.0, scale: float = 20.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, (channels, int(seconds * RATE)))


def fif(path: Path, data_volts: np.ndarray, rate: float = RATE) -> Path:
    info = mne.create_info(list(GENEVA_CHANNELS[:len(data_volts)]), rate, "eeg")
    mne.io.RawArray(data_volts, info, verbose="error").save(path, verbose="error", overwrite=True)
    return path


def brainvision(folder: Path, **changes: str) -> Path:
    """A BrainVision set written by MNE, with header keys replaced (KEY=value lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = mne.create_info(list(GENEVA_CHANNELS[:16]), float(RATE), "eeg")
    raw = mne.io.RawArray(noise(16) * 1e-6, info, verbose="error")
    header = folder / "rec.vhdr"
    mne.export.export_raw(header, raw, fmt="brainvision", overwrite=True, verbose="error")
    lines = header.read_text().splitlines()
    for key, value in changes.items():
        lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in lines]
    header.write_text("\n".join(lines) + "\n")
    return header


# -- running ----------------------------------------------------------------------------------------------------
def run_headless(spec: str, checkpoint: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()      # what came before (a direct load's log lines through an earlier test's handler)
    code = app_cli.main(["--headless", "--eeg", spec, "--checkpoint", str(checkpoint), "--device", "cpu",
                         "--speed", "16", *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("milmer-app: error:")]
    assert code == 2 and len(errors) == 1, err
    for text in expected:
        assert text in errors[0], errors[0]


# -- headers that lie -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fields,expected", [
    ({"duration": "1e7"}, "too low for EEG"),                      # 1.28e-5 Hz
    ({"duration": "0.0001"}, "implausible for EEG"),               # 1.28 MHz
    ({"duration": "-1"}, "must be positive"),
    ({"duration": "fast"}, "'duration of a data record' is 'fast'"),
    ({"signals": "9999"}, "'number of signals' is 9999"),
    ({"header_bytes": "512"}, "'bytes in header' is 512"),
    ({"records": "0"}, "'number of data records' is 0"),
    ({"physical_min": "3200"}, "physical minimum = maximum"),
    ({"per_record": "-5"}, "'samples per record'"),
])
def test_edf_headers_that_lie_are_refused_naming_the_field(fields, expected, tmp_path):
    path = write_edf(tmp_path / "lie.edf", noise(4, 4), **fields)
    with pytest.raises(SourceError) as error:
        load_eeg_file(path)
    assert expected in str(error.value) and str(path) in str(error.value)


def test_an_edf_cut_short_is_corrected_with_a_warning_and_replays(tmp_path, tiny_checkpoint, capsys, caplog):
    path = write_edf(tmp_path / "cut.edf", noise(32, 12), records=1000)
    loaded = load_eeg_file(path)
    assert loaded.samples == 12 * RATE
    assert any("the header says 1000 data records, the file holds 12" in r.message for r in caplog.records)
    predictions = tmp_path / "p.jsonl"
    code, _ = run_headless(f"file:{path}", tiny_checkpoint, capsys, "--predictions", str(predictions))
    assert code == 0 and predictions.read_text().strip()


@pytest.mark.parametrize("changes,expected", [
    ({"SamplingInterval": "0"}, "'SamplingInterval' is 0"),
    ({"SamplingInterval": "-7812.5"}, "'SamplingInterval' is -7812.5"),
    ({"DataFile": "/etc/passwd"}, "must name a file beside the header"),
    ({"DataFile": "../rec.eeg"}, "must name a file beside the header"),
    ({"DataFile": "other.eeg"}, "DataFile other.eeg not found"),
    ({"NumberOfChannels": "32"}, "NumberOfChannels=32 but [Channel Infos] names 16"),
    ({"BinaryFormat": "INT_64"}, "'BinaryFormat' is 'INT_64'"),
])
def test_brainvision_headers_that_lie_are_refused(changes, expected, tmp_path):
    header = brainvision(tmp_path / "bv", **changes)
    with pytest.raises(SourceError) as error:
        load_eeg_file(header)
    assert expected in str(error.value)


def test_a_brainvision_data_file_too_small_for_its_channels_is_refused(tmp_path):
    header = brainvision(tmp_path / "bv")
    (header.parent / "rec.eeg").write_bytes(b"\0" * 40)      # not two samples of 16 float32 channels
    with pytest.raises(SourceError, match="not two samples of 16 channels"):
        load_eeg_file(header)


def _eeglab(folder: Path, **changes) -> Path:
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    info = mne.create_info(list(GENEVA_CHANNELS[:4]), float(RATE), "eeg")
    path = folder / "rec.set"
    mne.export.export_raw(path, mne.io.RawArray(noise(4, 10) * 1e-6, info, verbose="error"), fmt="eeglab",
                          verbose="error")
    content = {k: v for k, v in scipy.io.loadmat(path, appendmat=False).items() if not k.startswith("__")}
    for key, value in changes.items():
        content[key] = value
    scipy.io.savemat(path, content, appendmat=False)
    return path


def test_eeglab_dimensions_that_do_not_fit_the_data_are_refused(tmp_path):
    with pytest.raises(SourceError, match="declares 4 channels x 1000000000 points, but its data are 4 x 1280"):
        load_eeg_file(_eeglab(tmp_path / "a", pnts=np.array([[10**9]], float)))
    fdt = _eeglab(tmp_path / "b", data=np.array(["rec.fdt"], dtype=object), pnts=np.array([[10**9]], float))
    np.zeros((4, 100), "<f4").tofile(fdt.parent / "rec.fdt")
    with pytest.raises(SourceError, match=r"declares 4 channels x 1000000000 points"):
        load_eeg_file(fdt)
    with pytest.raises(SourceError, match="sampling rate of 0 Hz|sfreq must be positive"):
        load_eeg_file(_eeglab(tmp_path / "c", srate=np.array([[0.0]])))


# -- amplitude and rate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,make,expected", [
    ("volts as microvolts", lambda: noise(32) * 1e6 * 1e-6 * 1e6 / 20, "implausible for EEG"),
    ("all NaN", lambda: np.full((32, 12 * RATE), np.nan), "no finite sample"),
    ("all flat", lambda: np.full((32, 12 * RATE), 30e-6), "flat"),
    ("all zero", lambda: np.zeros((32, 12 * RATE)), "flat"),
])
def test_unusable_files_end_with_exit_2_and_one_line(name, make, expected, tmp_path, tiny_checkpoint, capsys):
    data = make()
    path = fif(tmp_path / "bad_raw.fif", data if name != "volts as microvolts" else data * 1e-6)
    code, err = run_headless(f"file:{path}", tiny_checkpoint, capsys)
    assert_one_line_error(code, err, "no usable EEG", expected)


def test_a_channel_at_1e6_microvolts_is_masked_loudly_and_the_rest_replays(tmp_path, caplog):
    data = noise(32) * 1e-6
    data[3] *= 5e4                                                    # ~1e6 µV
    loaded = load_eeg_file(fif(tmp_path / "one_raw.fif", data))
    assert GENEVA_CHANNELS[3] not in loaded.channel_names and len(loaded.channel_names) == 31
    warning = " ".join(r.message for r in caplog.records if r.levelname == "WARNING")
    assert "left out as unusable" in warning and "implausible" in warning and GENEVA_CHANNELS[3] in warning


def test_a_rate_that_cannot_carry_the_models_band_is_named(tmp_path, tiny_checkpoint, capsys):
    data = np.random.default_rng(1).normal(0, 20e-6, (32, 300))
    code, err = run_headless(f"file:{fif(tmp_path / 'slow_raw.fif', data, rate=16.0)}", tiny_checkpoint, capsys)
    assert_one_line_error(code, err, "16 Hz cannot carry the model's 4-45 Hz band")


# -- XDF: jumps, reversals, empty streams ----------------------------------------------------------------------
def _xdf(path: Path, stamps: np.ndarray, rate: float = RATE, channels: int = 32) -> Path:
    samples = np.random.default_rng(2).normal(0, 20, (len(stamps), channels)).astype(np.float32)
    stream = XdfStream("Cap", "EEG", "float32", rate, stamps, samples, list(GENEVA_CHANNELS[:channels]),
                       ["EEG"] * channels, ["microvolts"] * channels)
    markers = XdfStream("Stim", "Markers", "string", 0.0, np.array([stamps[0] + 1.0]), [["go"]])
    return write_xdf(path, [stream, markers])


def test_an_xdf_jump_of_a_million_seconds_does_not_hang_a_replay(tmp_path, tiny_checkpoint, capsys):
    stamps = 100 + np.arange(24 * RATE) / RATE
    stamps[20 * RATE:] += 1e6
    path = _xdf(tmp_path / "jump.xdf", stamps)
    loaded = load_eeg_file(path)
    assert loaded.duration < 24 + 61 and 20 * RATE in loaded.breaks
    # No --duration: the replay must end by itself.
    code, err = run_headless(f"file:{path},start=19", tiny_checkpoint, capsys)
    assert code == 0 and "shortened" in err


def test_xdf_time_stamps_running_backwards_are_refused_in_one_line(tmp_path, tiny_checkpoint, capsys):
    path = _xdf(tmp_path / "reversed.xdf", 100 + np.arange(12 * RATE)[::-1] / RATE)
    code, err = run_headless(f"file:{path}", tiny_checkpoint, capsys)
    assert_one_line_error(code, err, "time stamps break", "backwards")
    assert err.count("\n") < 20


@pytest.mark.parametrize("rate,count,expected", [(RATE, 0, "holds 0 sample(s)"),
                                                 (-128.0, 12 * RATE, "nominal_srate is -128 Hz")])
def test_an_unusable_xdf_eeg_stream_is_named(rate, count, expected, tmp_path):
    stamps = 100 + np.arange(count) / RATE
    samples = np.zeros((count, 4), np.float32)
    eeg = XdfStream("Cap", "EEG", "float32", rate, stamps, samples, list(GENEVA_CHANNELS[:4]), ["EEG"] * 4)
    marker = XdfStream("Stim", "Markers", "string", 0.0, np.array([100.0]), [["go"]])
    path = write_xdf(tmp_path / "empty.xdf", [eeg, marker]) if count else _write_empty(tmp_path / "empty.xdf", eeg,
                                                                                       marker)
    with pytest.raises(SourceError) as error:
        load_eeg_file(path)
    assert "EEG stream 'Cap'" in str(error.value) and expected in str(error.value)


def _write_empty(path: Path, eeg: XdfStream, marker: XdfStream) -> Path:
    """An XDF whose EEG stream has a header and no sample chunk (the test writer needs samples for a footer)."""
    out = bytearray(b"XDF:") + file_header_chunk()
    eeg.samples = np.zeros((1, 4), np.float32)                       # for the header's channel count only
    out += stream_chunk(2, 1, eeg.header().encode())
    out += stream_chunk(2, 2, marker.header().encode())
    path.write_bytes(bytes(out))
    return path


# -- speed, warnings, video ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("speed", ["1e6", "0.0001", "nan"])
def test_speeds_that_can_give_no_prediction_are_refused(speed, tmp_path, tiny_checkpoint, capsys):
    code = app_cli.main(["--headless", "--eeg", f"file:{tmp_path / 'x.edf'}", "--checkpoint", str(tiny_checkpoint),
                         "--speed", speed])
    assert_one_line_error(code, capsys.readouterr().err, "--speed must be between")


def test_a_repeated_warning_is_shown_once_per_interval_with_a_count():
    now = [0.0]
    limiter = RepeatLimiter(interval=10.0, clock=lambda: now[0])
    shown = []
    for step in range(200):
        now[0] = step * 0.1
        shown.append(limiter.admit(f"file x.xdf: gap at {step * 0.1:.1f} s"))
    passed = [s for s in shown if s is not None]
    assert len(passed) == 2 and "(and 99 more like it" in passed[1]
    assert limiter.admit("something else") == "something else"
    assert limiter.held_back() == ["file x.xdf: gap at 19.9 s (99 like it in the last 10 s)"]


def test_a_video_that_never_overlaps_the_eeg_is_an_error(tmp_path, tiny_checkpoint, capsys):
    from live_support import write_face_video

    video = tmp_path / "face.avi"
    write_face_video(video, quadrant=1, seconds=3.0, seed=3, fps=10.0, size=(96, 80))
    path = write_edf(tmp_path / "rec.edf", noise(32, 6))
    code, err = run_headless(f"file:{path}", tiny_checkpoint, capsys, "--video", f"file:{video},offset=-86400")
    assert code == 2 and "never overlap" in err


# -- memory: a file far larger than what is read ----------------------------------------------------------------
def test_a_large_sparse_edf_replays_in_bounded_memory_and_starts_at_once(tmp_path, tiny_checkpoint):
    """A valid header over 2 GiB of samples (sparse: only the first minute written): the replay starts and
    predicts without reading the file whole; the process stays far below 2 GB."""
    channels, seconds = 32, 60
    path = write_edf(tmp_path / "big.edf", noise(channels, seconds), records=2**31 // (channels * RATE * 2))
    with path.open("r+b") as handle:
        handle.truncate(256 * (channels + 1) + (2**31 // (channels * RATE * 2)) * channels * RATE * 2)
    assert path.stat().st_size > 2**31 and os.stat(path).st_blocks * 512 < 64 * 2**20
    predictions = tmp_path / "p.jsonl"
    code = ("import resource, sys; from milmer_app import cli; code = cli.main(sys.argv[1:]); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, "--headless", "--eeg", f"file:{path}", "--checkpoint",
                             str(tiny_checkpoint), "--device", "cpu", "--duration", "8", "--speed", "4",
                             "--predictions", str(predictions)], check=False, capture_output=True, text=True,
                            timeout=240,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    peak_mb = int(result.stdout.split("PEAK")[1].split()[0]) / 1024
    assert peak_mb < 2048, f"peak RSS {peak_mb:.0f} MB"
    assert predictions.read_text().strip()                        # it started and predicted within 8 s


def test_a_recording_replay_maps_its_eeg_instead_of_reading_it_whole(tmp_path):
    from milmer_app.recording import Recorder
    from milmer_app.sources.recorded import RecordingReplay

    recorder = Recorder(tmp_path / "rec", {"channels": list(GENEVA_CHANNELS[:4]), "srate": float(RATE),
                                           "units": "uV", "source": "test"}, None)
    recorder.start()
    data = noise(4, 3).astype(np.float32)
    recorder.add_eeg(data, 100 + np.arange(data.shape[1]) / RATE)
    recorder.stop()
    replay = RecordingReplay(tmp_path / "rec")
    assert isinstance(replay.eeg.base, np.memmap) or isinstance(replay.eeg, np.memmap)
    np.testing.assert_array_equal(np.asarray(replay.eeg), data)


def test_a_replay_too_short_for_a_prediction_says_why(tmp_path, tiny_checkpoint, capsys):
    path = fif(tmp_path / "short_raw.fif", noise(32, 2.5) * 1e-6)
    capsys.readouterr()
    code = app_cli.main(["--headless", "--eeg", f"file:{path}", "--checkpoint", str(tiny_checkpoint), "--device",
                         "cpu", "--speed", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "no prediction: the replay ended (2.5 s of data at --speed 4)" in out


def test_more_values_per_second_than_a_replay_keeps_is_refused_before_reading(tmp_path):
    labels = [f"E{i}" for i in range(128)]
    path = write_edf(tmp_path / "dense.edf", np.zeros((128, 40_000)), rate=40_000, labels=labels)
    with pytest.raises(SourceError, match="128 EEG channels at 40000 Hz are 5.12e\\+06 values per second"):
        load_eeg_file(path)
