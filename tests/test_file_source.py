"""`--eeg file:PATH`: EDF, FIF, BrainVision, EEGLAB (written by MNE) and XDF (written here) replay to predictions."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest

from live_support import write_face_video
from milmer_app import cli as app_cli
from milmer_app.recording import RecordingReader
from milmer_app.sources.file import load_eeg_file
from milmer_app.sources.folder_scan import scan_folder
from models.errors import SourceError
from models.pipeline.eeg import GENEVA_CHANNELS
from xdf_writer import XdfStream, write_xdf

SRATE = 128.0
SECONDS = 12.0
NON_EEG = ["EOG1", "ECG", "STI 014"]


def _raw() -> mne.io.RawArray:
    """32 EEG channels (Geneva names) plus EOG, ECG and a trigger channel; two annotations, two triggers."""
    n = int(SECONDS * SRATE)
    info = mne.create_info(list(GENEVA_CHANNELS) + NON_EEG, SRATE, ["eeg"] * 32 + ["eog", "ecg", "stim"])
    data = np.random.default_rng(0).normal(scale=20e-6, size=(35, n))
    data[34] = 0
    data[34, int(2 * SRATE):int(2 * SRATE) + 5] = 5
    data[34, int(6 * SRATE):int(6 * SRATE) + 5] = (1 << 16) | 7     # a system bit above the trigger bits
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([1.0, 4.5], [0.0, 0.0], ["rest", "stimulus A"]))
    return raw


@pytest.fixture(scope="module")
def eeg_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("eegfiles")
    raw = _raw()
    files = {}
    for fmt, name in (("edf", "rec.edf"), ("brainvision", "rec.vhdr"), ("eeglab", "rec.set")):
        files[fmt] = folder / name
        mne.export.export_raw(files[fmt], raw, fmt=fmt, verbose="error")
    files["fif"] = folder / "rec_raw.fif"
    raw.save(files["fif"], verbose="error")
    return files


def _replay(args: list[str], checkpoint: Path, out: Path, record: Path | None = None) -> list[dict]:
    extra = ["--record", str(record)] if record is not None else []
    code = app_cli.main(["--headless", *args, "--checkpoint", str(checkpoint), "--device", "cpu", "--speed", "8",
                         "--hop", "1", "--predictions", str(out), *extra])
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["edf", "fif", "brainvision", "eeglab"])
def test_each_format_replays_to_predictions_without_its_non_eeg_channels(fmt, eeg_files, tiny_checkpoint,
                                                                         tmp_path):
    loaded = load_eeg_file(eeg_files[fmt])
    assert loaded.channel_names == list(GENEVA_CHANNELS) and loaded.excluded == NON_EEG
    assert loaded.srate == SRATE and loaded.duration == pytest.approx(SECONDS)
    assert 10 < float(loaded.read(0, loaded.samples).std()) < 30                           # microvolts, not volts
    texts = [text for _, text in loaded.markers]
    assert any("rest" in t for t in texts) and any("stimulus A" in t for t in texts)
    record = tmp_path / "rec"
    predictions = _replay(["--eeg", f"file:{eeg_files[fmt]}"], tiny_checkpoint, tmp_path / "p.jsonl", record)
    assert len(predictions) >= 2 and all(p["eeg_channels_used"] == 32 for p in predictions)
    reader = RecordingReader(record)
    assert reader.channel_names == list(GENEVA_CHANNELS)
    markers = [m["text"] for m in reader.markers()]
    assert any(m.endswith("rest") for m in markers) and any(m.endswith("stimulus A") for m in markers)


def test_triggers_become_markers_with_system_bits_masked(eeg_files):
    loaded = load_eeg_file(eeg_files["fif"])
    found = loaded.triggers(0, loaded.samples)
    assert [(index / SRATE, text) for index, text in found] == [(2.0, "STI 014 5"), (6.0, "STI 014 7")]
    # Read in pieces as a replay does (a piece boundary inside a trigger pulse, a seek into one): the same onsets.
    pieces = [loaded.triggers(start, min(loaded.samples, start + 100)) for start in range(0, loaded.samples, 100)]
    assert [item for piece in pieces for item in piece] == found
    assert loaded.triggers(int(2 * SRATE) + 2, int(3 * SRATE)) == []


def test_bad_file_specs_fail_before_the_model_loads(tmp_path, tiny_checkpoint, capsys):
    for args, expected in ((["--eeg", f"file:{tmp_path / 'none.edf'}"], "none.edf: EEG file not found"),
                           (["--eeg", "file:/dev/zero"], "/dev/zero: not an EEG file"),
                           (["--eeg", "brainflow:synthetic", "--video", f"file:{tmp_path},offset=1"],
                            "not a video file"),
                           (["--eeg", "file:x.edf,start=-1"], "start must be at least 0"),
                           (["--eeg", "file:x.edf,strat=1"], "did you mean 'start'?")):
        assert app_cli.main(["--headless", *args, "--checkpoint", str(tiny_checkpoint)]) == 2
        assert expected in capsys.readouterr().err


def test_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(SourceError, match="EEG file not found"):
        load_eeg_file(tmp_path / "missing.edf")
    with pytest.raises(SourceError, match="not an EEG file"):
        load_eeg_file(Path("/dev/zero"))
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"not an EDF at all" * 10)
    with pytest.raises(SourceError, match="too short for an EDF/BDF header"):
        load_eeg_file(junk)
    junk = tmp_path / "junk_raw.fif"
    junk.write_bytes(b"not a FIF at all" * 100)
    with pytest.raises(SourceError, match="MNE cannot read"):
        load_eeg_file(junk)


# -- XDF ------------------------------------------------------------------------------------------
CAM_FPS = 10.0


def _write_lab_xdf(path: Path, two_eeg: bool = False) -> Path:
    """EEG (32 Geneva channels + EOG and accelerometer, in microvolts), a marker stream and a camera's
    frame numbers; the recording machine's clock resets half way (a reboot), 6 s of gap after it."""
    n1 = n2 = int(8 * SRATE)
    t1 = 1000 + np.arange(n1) / SRATE
    t2 = 10 + np.arange(n2) / SRATE
    labels = list(GENEVA_CHANNELS) + ["EOG1", "ACC_X"]
    types = ["EEG"] * 32 + ["EOG", "ACC"]
    samples = np.random.default_rng(1).normal(scale=20.0, size=(n1 + n2, 34)).astype(np.float32)
    after_reset = (t1[-1] + 5.0 + 6.0) - 10           # synchronised: 6 s after the first part ended
    offsets = [(1000.0 + k, 5.0) for k in range(8)] + [(10.0 + k, after_reset) for k in range(8)]
    eeg = XdfStream("Cap", "EEG", "float32", SRATE, np.concatenate([t1, t2]), samples, labels, types,
                    ["microvolts"] * 34, offsets)
    markers = XdfStream("Stimuli", "Markers", "string", 0.0, np.array([1001.0, 1003.5, 12.0]),
                        [["fixation"], ["clip 1"], ["clip 2"]], clock_offsets=offsets)
    frames = np.arange(int(7 * CAM_FPS), dtype=np.float64)
    camera = XdfStream("FaceCam", "VideoFrames", "double64", CAM_FPS, 1000.5 + frames / CAM_FPS,
                       frames[:, None], clock_offsets=offsets[:8])
    streams = [eeg, markers, camera]
    if two_eeg:
        streams.append(XdfStream("Cap2", "EEG", "float32", SRATE, t1, samples[:n1, :4], labels[:4], types[:4],
                                 clock_offsets=offsets[:8]))
    return write_xdf(path, streams)


def test_xdf_replays_with_markers_and_no_window_across_the_clock_reset(tiny_checkpoint, tmp_path):
    path = _write_lab_xdf(tmp_path / "session.xdf")
    loaded = load_eeg_file(path)
    assert loaded.channel_names == list(GENEVA_CHANNELS) and loaded.excluded == ["EOG1", "ACC_X"]
    assert [text for _, text in loaded.markers] == ["Stimuli: fixation", "Stimuli: clip 1", "Stimuli: clip 2"]
    assert loaded.markers[0][0] == pytest.approx(1.0, abs=0.02)
    assert list(loaded.breaks) == [int(8 * SRATE)] and "clock reset" in loaded.breaks[int(8 * SRATE)]
    record = tmp_path / "rec"
    predictions = _replay(["--eeg", f"file:{path}"], tiny_checkpoint, tmp_path / "p.jsonl", record)
    reader = RecordingReader(record)
    _, stamps = reader.eeg()
    jump = int(np.argmax(np.diff(stamps))) + 1
    restart = stamps[jump]
    assert np.diff(stamps)[jump - 1] > 5.0 / 8 * 0.9                   # the 6 s gap, at 8x
    assert predictions and all(not (p["window_start"] < restart - 1e-6 < p["window_end"]) for p in predictions)
    assert any(p["window_start"] >= restart - 1e-6 for p in predictions)   # the second part is used too
    texts = [m["text"] for m in reader.markers()]
    data_markers = [m["text"] for m in reader.markers() if m.get("kind") == "marker"]
    assert {"Stimuli: fixation", "Stimuli: clip 1", "Stimuli: clip 2"} <= set(data_markers)
    assert any("clock reset" in t for t in texts)


def test_ambiguous_xdf_streams_are_listed(tmp_path, tiny_checkpoint, capsys):
    path = _write_lab_xdf(tmp_path / "two.xdf", two_eeg=True)
    with pytest.raises(SourceError) as error:
        load_eeg_file(path)
    assert "2 streams could be the EEG" in str(error.value)
    assert "'Cap'" in str(error.value) and "'Cap2'" in str(error.value) and "stream=" in error.value.hint
    assert load_eeg_file(path, stream="Cap2").channel_names == list(GENEVA_CHANNELS[:4])
    assert app_cli.main(["--headless", "--eeg", f"file:{path}", "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "2 streams could be the EEG" in capsys.readouterr().err


def test_a_video_beside_the_file_follows_its_replay(eeg_files, tiny_checkpoint, tmp_path):
    video = tmp_path / "face.avi"
    write_face_video(video, quadrant=1, seconds=SECONDS, seed=3, fps=CAM_FPS)
    predictions = _replay(["--eeg", f"file:{eeg_files['edf']}", "--video", f"file:{video},offset=0.5"],
                          tiny_checkpoint, tmp_path / "p.jsonl")
    assert predictions and any(any(p["face_mask"]) for p in predictions)
    xdf = _write_lab_xdf(tmp_path / "session.xdf")
    predictions = _replay(["--eeg", f"file:{xdf}", "--video", f"file:{video},xdf_stream=FaceCam"],
                          tiny_checkpoint, tmp_path / "q.jsonl")
    early = [p for p in predictions if any(p["face_mask"])]
    assert early
    from milmer_app.sources import build_sources
    from milmer_app.specs import parse_eeg_spec, parse_video_spec

    with pytest.raises(SourceError, match="use them with --eeg file:"):
        build_sources(parse_eeg_spec("brainflow:synthetic"), parse_video_spec(f"file:{video},offset=1"))


def test_folder_listing_shows_duration_channels_and_rate(eeg_files, tmp_path):
    from training.synth import write_synthetic_deap

    folder = eeg_files["edf"].parent
    _write_lab_xdf(folder / "session.xdf")
    entries = {entry.path.name: entry for entry in scan_folder(folder)}
    assert {"rec.edf", "rec.vhdr", "rec.set", "rec_raw.fif", "session.xdf"} <= set(entries)
    edf = entries["rec.edf"]
    assert (edf.kind, edf.channels, edf.srate) == ("file", 35, SRATE) and edf.duration == pytest.approx(SECONDS)
    assert entries["session.xdf"].channels == 34 and entries["session.xdf"].srate == SRATE
    assert entries["rec.edf"].spec == f"file:{folder / 'rec.edf'}"
    deap = write_synthetic_deap(tmp_path / "deap", subjects=1, trials=2, seconds=3.0, seed=1)
    listed = scan_folder(deap.root)
    assert any(entry.kind == "deap" and entry.spec.startswith(f"deap:{deap.root}:1:") for entry in listed)


def _first_frames(eeg, video, count: int) -> list[float]:
    """Connect the two sources on a paused replay, resume, and collect the stamps of `count` frames."""
    import threading

    stamps: list[float] = []
    enough = threading.Event()

    def on_frame(frame) -> None:
        stamps.append(frame.timestamp)
        if len(stamps) >= count:
            enough.set()

    eeg.replay.pause()
    with eeg, video:
        video.buffer.add_listener(on_frame)
        eeg.replay.resume()
        assert enough.wait(30), f"only {len(stamps)} frame(s) arrived"
    return stamps[:count]


@pytest.mark.parametrize("how", ["offset", "xdf_stream"])
def test_video_frames_are_stamped_on_the_eeg_files_replay_clock(how, eeg_files, tmp_path):
    from milmer_app.sources import build_sources
    from milmer_app.specs import parse_eeg_spec, parse_video_spec

    video = tmp_path / "face.avi"
    write_face_video(video, quadrant=2, seconds=6.0, seed=4, fps=CAM_FPS, size=(96, 80))
    if how == "offset":
        eeg_spec, video_spec, first = f"file:{eeg_files['fif']}", f"file:{video},offset=2.0", 2.0
    else:                      # FaceCam's frame k was stamped 1000.5 + k/10 on the clock whose EEG starts at 1000
        eeg_spec, video_spec = f"file:{_write_lab_xdf(tmp_path / 's.xdf')}", f"file:{video},xdf_stream=FaceCam"
        first = 0.5
    eeg, camera = build_sources(parse_eeg_spec(eeg_spec), parse_video_spec(video_spec), speed=4.0)
    stamps = _first_frames(eeg, camera, 6)
    expected = [eeg.replay.stamp(first + k / CAM_FPS) for k in range(6)]   # no seek or speed change since resume
    np.testing.assert_allclose(stamps, expected, atol=1e-6)


@pytest.mark.gui
def test_the_file_page_lists_a_folder_and_picks_what_to_replay(qtbot, eeg_files, tmp_path):
    from milmer_app.gui.sources_panel import SourcesPanel
    from training.synth import write_synthetic_deap

    folder = eeg_files["edf"].parent
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    panel.eeg_kind.setCurrentIndex(panel.eeg_kind.findData("file"))
    page = panel.file_page
    page.folder_edit.setText(str(folder))
    page.scan()
    qtbot.waitUntil(lambda: page.table.rowCount() >= 4, timeout=30000)
    rows = {page.table.item(r, 0).text(): [page.table.item(r, c).text() for c in range(5)]
            for r in range(page.table.rowCount())}
    assert rows["rec.edf"][1:] == ["file", "12.0", "35", "128"]
    page.table.selectRow(list(rows).index("rec.edf"))
    page.editors["montage"].setCurrentIndex(page.editors["montage"].findData("biosemi64"))
    assert panel.selection().eeg == f"file:{eeg_files['edf']},montage=biosemi64"
    # A DEAP folder lists its subjects; picking one switches the panel to the DEAP page.
    deap = write_synthetic_deap(tmp_path / "deap", subjects=1, trials=2, seconds=3.0, seed=1)
    page.folder_edit.setText(str(deap.root))
    page.scan()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1 and page.table.item(0, 1).text() == "deap", timeout=30000)
    page.table.selectRow(0)
    assert panel.eeg_kind.currentData() == "deap"
    qtbot.waitUntil(lambda: panel.deap_page.trial_table.rowCount() == 2, timeout=20000)
    assert panel.selection().eeg.kind == "deap"


@pytest.mark.gui
@pytest.mark.slow
def test_the_window_replays_a_file_and_shows_its_markers(qtbot, open_window, eeg_files, tiny_checkpoint):
    from milmer_app.cli import build_parser

    window = open_window(build_parser().parse_args(["--eeg", f"file:{eeg_files['fif']}", "--checkpoint",
                                                    str(tiny_checkpoint), "--device", "cpu", "--speed", "2"]))
    shown: list[str] = []
    window.bridge.event.connect(lambda level, message: shown.append(message) if level == "marker" else None)
    qtbot.waitUntil(lambda: any("stimulus A" in m for m in shown) or window.last_error is not None, timeout=90000)
    assert window.last_error is None, window.last_error
    assert window.replay_controls.replay is not None                  # the replay toolbar drives the file
    assert "rest" in " ".join(shown) and "STI 014 5" in " ".join(shown)


def test_a_biosemi_bdf_replays_with_its_montage_and_masked_status(tiny_checkpoint, tmp_path):
    from bdf_writer import write_bdf

    rate = 128
    n = rate * 10
    data = np.random.default_rng(2).normal(scale=20.0, size=(32, n))
    status = np.full(n, 0x1E0000)                  # system bits (CMS in range, battery...) set all along
    status[2 * rate:2 * rate + 10] |= 3
    status[5 * rate:5 * rate + 10] |= 250
    path = write_bdf(tmp_path / "biosemi.bdf", [f"A{i}" for i in range(1, 33)], rate, data, status)
    loaded = load_eeg_file(path)
    assert loaded.channel_names[0] == "A1" and loaded.excluded == ["Status"]
    assert [(i / rate, text) for i, text in loaded.triggers(0, loaded.samples)] == [(2.0, "Status 3"),
                                                                                    (5.0, "Status 250")]
    np.testing.assert_allclose(loaded.read(0, loaded.samples), data, atol=0.1)          # microvolts in, microvolts out
    predictions = _replay(["--eeg", f"file:{path},montage=biosemi32"], tiny_checkpoint, tmp_path / "p.jsonl")
    assert predictions and all(p["eeg_channels_used"] == 32 for p in predictions)   # A1.. read as 10-20 names


def test_a_file_replay_speaks_in_the_files_own_time(eeg_files, tiny_checkpoint, tmp_path, capsys):
    """Progress lines, prediction records and markers carry seconds from the file's start (as the file's
    own annotations do), whatever the speed and the start option; window_start/end stay in the LSL clock."""
    capsys.readouterr()
    predictions = _replay(["--eeg", f"file:{eeg_files['fif']},start=2"], tiny_checkpoint, tmp_path / "p.jsonl")
    err = capsys.readouterr().err
    assert len(predictions) >= 2
    for prediction in predictions:
        start, end = prediction["media_time"]
        assert 2.0 - 1e-3 <= start and end <= SECONDS + 1e-3
        assert end - start == pytest.approx(3.0, abs=0.05)                   # the model's 3 s window
        lsl_span = prediction["window_end"] - prediction["window_start"]
        assert lsl_span == pytest.approx(3.0 / 8, abs=0.02)                   # played 8x faster
        assert f"[{start:.2f}, {end:.2f}] {prediction['label']} " in err
    assert "marker from " in err and "at 4.50 s: stimulus A" in err      # the annotation's time in the file
