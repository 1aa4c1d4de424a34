"""What a folder holds that the app can replay: EEG files, recordings and DEAP subjects (the window's
folder browser), without Qt. Files are read only as far as listing needs (headers; small XDF files)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from milmer_app.sources.eeg_file import XDF_SUFFIXES
from milmer_app.sources.paths import FOLDER_FORMATS
from models.errors import SourceError

EEG_SUFFIXES = (".edf", ".bdf", ".gdf", ".fif", ".vhdr", ".set", ".cnt", ".mff", ".ds", ".egi", ".eeg.gz",
                ".nxe", ".lay", ".ahdr", ".nedf", ".snirf", ".fif.gz") + XDF_SUFFIXES
_LISTED_XDF_BYTES = 200 * 1024**2    # larger XDF files are listed without reading them through


@dataclass(frozen=True)
class FolderEntry:
    """One replayable thing in a folder: an EEG file, a recording or a DEAP subject."""

    path: Path
    kind: str                 # "file" | "recording" | "deap"
    spec: str                 # the EEG spec that replays it
    duration: float | None    # seconds (a DEAP subject: all its trials)
    channels: int | None
    srate: float | None
    detail: str = ""


def scan_folder(folder: Path, should_stop: Callable[[], bool] | None = None) -> list[FolderEntry]:
    """Every EEG file, recording and DEAP subject directly in `folder` (sorted by name); unreadable
    files are listed with what is wrong in `detail`. `should_stop()` is asked between entries (a window
    that closes meanwhile): when it says so, what was found so far is returned."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder")
    entries = _deap_entries(folder)
    for path in sorted(folder.iterdir()):
        if should_stop is not None and should_stop():
            break
        if path.is_dir() and (path / "meta.json").is_file():
            entries.append(_recording_entry(path))
        elif path.name.lower().endswith(EEG_SUFFIXES) and (path.is_file() or path.suffix.lower() in FOLDER_FORMATS):
            entries.append(_file_entry(path))
    return entries


def _file_entry(path: Path) -> FolderEntry:
    from milmer_app.sources.file_headers import check_header, check_opened

    spec = f"file:{path}"
    try:
        warnings_ = check_header(path)      # a header that lies is listed as what it is, before any reader runs
        if path.suffix.lower() in XDF_SUFFIXES:
            return _xdf_entry(path, spec)
        import mne

        raw = mne.io.read_raw(path, preload=False, verbose="error")
        check_opened(path, raw)
        detail = "; ".join([f"{len(raw.annotations)} annotation(s)"] + warnings_)
        return FolderEntry(path, "file", spec, raw.n_times / raw.info["sfreq"], len(raw.ch_names),
                           float(raw.info["sfreq"]), detail)
    except Exception as exc:   # a listing shows what is wrong with a file rather than failing
        return FolderEntry(path, "file", spec, None, None, None, f"unreadable: {exc}")


def _xdf_entry(path: Path, spec: str) -> FolderEntry:
    import pyxdf

    from milmer_app.sources.xdf import load_streams, stream_label

    if path.stat().st_size > _LISTED_XDF_BYTES:
        infos = pyxdf.resolve_streams(str(path))
        eeg = [i for i in infos if str(i.get("type", "")).lower() == "eeg"] or infos
        first = eeg[0] if eeg else {}
        return FolderEntry(path, "file", spec, None, int(first.get("channel_count", 0)) or None,
                           float(first.get("nominal_srate", 0)) or None, f"{len(infos)} stream(s)")
    streams = load_streams(path)
    signals = [s for s in streams if float(s["info"]["nominal_srate"][0]) > 0 and len(s["time_stamps"]) > 1]
    eeg = [s for s in signals if s["info"]["type"][0].lower() == "eeg"] or signals
    if not eeg:
        return FolderEntry(path, "file", spec, None, None, None, f"no EEG stream among {len(streams)}")
    stream = eeg[0]
    stamps = stream["time_stamps"]
    detail = "; ".join(stream_label(s) for s in streams)
    return FolderEntry(path, "file", spec, float(stamps[-1] - stamps[0]), int(stream["info"]["channel_count"][0]),
                       float(stream["info"]["nominal_srate"][0]), detail)


def _recording_entry(path: Path) -> FolderEntry:
    from milmer_app.recording import RecordingReader

    spec = f"recording:{path}"
    try:
        reader = RecordingReader(path)
        _, stamps = reader.eeg()
    except Exception as exc:
        return FolderEntry(path, "recording", spec, None, None, None, f"unreadable: {exc}")
    duration = float(stamps[-1] - stamps[0]) if len(stamps) > 1 else None
    return FolderEntry(path, "recording", spec, duration, len(reader.channel_names) or None, reader.srate or None,
                       f"frames: {len(reader.frame_index())}")


def _deap_entries(folder: Path) -> list[FolderEntry]:
    if not any((folder / name).is_dir() for name in ("data_preprocessed_python", "data_preprocessed_matlab")):
        return []
    from training.deap import scan_deap
    from training.deap.readers import DEAP_RATE, EEG_CHANNELS

    try:
        index = scan_deap(folder)
    except Exception as exc:
        return [FolderEntry(folder, "deap", f"deap:{folder}:1:1", None, None, None, f"unreadable: {exc}")]
    entries = []
    for subject in index.subjects:
        trials = sorted(t.presentation_trial for t in index.subject_trials(subject) if t.presentation_trial)
        if trials:
            videos = sum(1 for t in index.subject_trials(subject) if t.video)
            entries.append(FolderEntry(folder / f"s{subject:02d}", "deap", f"deap:{folder}:{subject}:{trials[0]}",
                                       None, EEG_CHANNELS, DEAP_RATE,
                                       f"{len(trials)} trial(s), {videos} face video(s)"))
    return entries
