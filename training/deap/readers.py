"""Readers for the DEAP files: preprocessed ``.dat`` / ``.mat``, the ratings CSV, original BDF."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import DataError
from training.deap.safe_pickle import load_numpy_pickle

log = logging.getLogger(__name__)

DEAP_CHANNELS = 40
EEG_CHANNELS = 32
DEAP_RATE = 128.0
RATINGS_COLUMNS = ("Participant_id", "Trial", "Experiment_id", "Valence", "Arousal", "Dominance", "Liking")


@dataclass(frozen=True)
class SubjectArrays:
    """One subject's preprocessed recording, rows in Experiment_id order."""

    data: np.ndarray  # float32 (trials, 40, samples)
    labels: np.ndarray  # float32 (trials, 4): valence, arousal, dominance, liking
    path: Path


@dataclass(frozen=True)
class RatingRow:
    participant: int
    trial: int  # presentation order, 1-based
    experiment_id: int  # the video's id = row of sXX.dat, 1-based
    valence: float
    arousal: float
    dominance: float
    liking: float


def validate_subject_arrays(data: object, labels: object, path: Path) -> SubjectArrays:
    """Check shapes, dtypes and finiteness; return float32 copies."""
    if not isinstance(data, np.ndarray) or not isinstance(labels, np.ndarray):
        raise DataError(f"{path}: 'data' and 'labels' must be numpy arrays")
    if not (np.issubdtype(data.dtype, np.number) and np.issubdtype(labels.dtype, np.number)):
        raise DataError(f"{path}: 'data' ({data.dtype}) and 'labels' ({labels.dtype}) must be numeric")
    if data.ndim != 3 or data.shape[1] != DEAP_CHANNELS or data.shape[2] < 1:
        raise DataError(f"{path}: 'data' has shape {data.shape}; expected (trials, {DEAP_CHANNELS}, samples)")
    if labels.ndim != 2 or labels.shape[0] != data.shape[0] or labels.shape[1] < 4:
        raise DataError(f"{path}: 'labels' has shape {labels.shape}; expected ({data.shape[0]}, 4)")
    data = data.astype(np.float32, copy=False)
    eeg = data[:, :EEG_CHANNELS]
    if not np.isfinite(eeg).all():
        trial, channel = np.argwhere(~np.isfinite(eeg))[0][:2]
        raise DataError(f"{path}: EEG holds NaN or Inf (first at row {trial + 1}, channel {channel + 1})",
                        hint="the file is damaged; re-download it or exclude this subject")
    labels = labels[:, :4].astype(np.float32)
    if not np.isfinite(labels).all():
        raise DataError(f"{path}: 'labels' hold NaN or Inf")
    return SubjectArrays(data=data, labels=labels, path=path)


def _pick(container: dict, path: Path) -> tuple[object, object]:
    missing = [key for key in ("data", "labels") if key not in container]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}; found {sorted(k for k in container if not k.startswith('__'))}")
    return container["data"], container["labels"]


def read_dat(path: Path) -> SubjectArrays:
    """``data_preprocessed_python/sXX.dat`` through the numpy-only unpickler."""
    path = Path(path)
    content = load_numpy_pickle(path)
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a dict with 'data' and 'labels', got {type(content).__name__}")
    return validate_subject_arrays(*_pick(content, path), path)


def read_mat(path: Path) -> SubjectArrays:
    """``data_preprocessed_matlab/sXX.mat`` (MATLAB v5, scipy.io)."""
    from scipy import io as sio
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        content = sio.loadmat(path)
    except (MatReadError, OSError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
        raise DataError(f"{path}: cannot read MATLAB file ({exc})", hint="re-download or re-extract the file") from exc
    return validate_subject_arrays(*_pick(content, path), path)


def read_subject_file(path: Path, ratings: list[RatingRow] | None = None) -> SubjectArrays:
    """Any of the three EEG files; a BDF needs the participant's ratings rows to order and label its trials."""
    path = Path(path)
    if path.suffix == ".dat":
        return read_dat(path)
    if path.suffix == ".mat":
        return read_mat(path)
    if path.suffix == ".bdf":
        if not ratings:
            raise DataError(f"{path}: an original BDF recording needs the participant's rows of participant_ratings.csv")
        return read_bdf_trials(path, ratings)
    raise DataError(f"{path}: unknown DEAP file type {path.suffix!r}")


def read_ratings(path: Path) -> list[RatingRow]:
    """``participant_ratings.csv``: one row per (participant, presentation trial)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in RATINGS_COLUMNS if c not in columns]
            if missing:
                raise DataError(f"{path}: ratings CSV lacks column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}")
            rows = []
            for line, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
                try:
                    rows.append(RatingRow(
                        participant=int(row["Participant_id"]), trial=int(row["Trial"]),
                        experiment_id=int(row["Experiment_id"]), valence=float(row["Valence"]),
                        arousal=float(row["Arousal"]), dominance=float(row["Dominance"]), liking=float(row["Liking"])))
                except ValueError as exc:
                    raise DataError(f"{path}:{line}: unreadable value ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV text file ({exc})") from exc
    # Either duplicate makes the video -> EEG row pairing ambiguous.
    seen_trials: set[tuple[int, int]] = set()
    seen_experiments: set[tuple[int, int]] = set()
    for row in rows:
        if (row.participant, row.trial) in seen_trials:
            raise DataError(f"{path}: participant {row.participant} trial {row.trial} appears twice")
        if (row.participant, row.experiment_id) in seen_experiments:
            raise DataError(f"{path}: participant {row.participant} has Experiment_id {row.experiment_id} twice")
        seen_trials.add((row.participant, row.trial))
        seen_experiments.add((row.participant, row.experiment_id))
    return rows


# Status code that DEAP's BDF recordings use for "start of music video playback".
BDF_VIDEO_START = 4


def read_bdf_trials(path: Path, ratings: list[RatingRow], baseline_s: float = 3.0,
                    trial_s: float = 60.0, band: tuple[float, float] = (4.0, 45.0)) -> SubjectArrays:
    """Original BioSemi recording -> DEAP-like trials (128 Hz, 4-45 Hz, average reference).

    Trials are found by the Status channel's video-start marker and are in presentation
    order in the recording; ``ratings`` (this participant's CSV rows) reorder them to
    Experiment_id order like the preprocessed files. EOG removal is not redone.
    """
    import mne

    from models.pipeline.eeg import GENEVA_CHANNELS, average_reference, bandpass, resample

    path = Path(path)
    try:
        raw = mne.io.read_raw_bdf(path, preload=True, verbose="error")
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot read BDF ({exc})") from exc
    names = {name.lower(): name for name in raw.ch_names}
    missing = [ch for ch in GENEVA_CHANNELS if ch.lower() not in names]
    if missing:
        raise DataError(f"{path}: BDF lacks EEG channel(s) {', '.join(missing)}")
    try:
        # Mask before finding changes: BioSemi's system bits (16-23) flip on their own, and a flip
        # while a trigger code is held would otherwise read as a second onset of that code.
        events = mne.find_events(raw, stim_channel="Status", shortest_event=1, mask=0xFF, mask_type="and",
                                 verbose="error")
    except ValueError as exc:
        raise DataError(f"{path}: no usable Status channel ({exc})") from exc
    srate = float(raw.info["sfreq"])
    eeg = raw.get_data(picks=[names[ch.lower()] for ch in GENEVA_CHANNELS]) * 1e6  # volts -> microvolts
    eeg = average_reference(bandpass(resample(eeg, srate, DEAP_RATE), DEAP_RATE, *band))
    starts = events[events[:, 2] == BDF_VIDEO_START][:, 0] / srate
    samples = int(round((baseline_s + trial_s) * DEAP_RATE))
    trials = []
    for onset in starts:
        first = int(round((onset - baseline_s) * DEAP_RATE))
        if first >= 0 and first + samples <= eeg.shape[1]:
            trials.append(eeg[:, first:first + samples])
    if not trials:
        raise DataError(f"{path}: no complete trial found (Status code {BDF_VIDEO_START} = video start)")
    data = np.zeros((len(trials), DEAP_CHANNELS, samples), np.float32)
    data[:, :EEG_CHANNELS] = np.stack(trials)
    by_trial = {r.trial: r for r in ratings}
    if sorted(by_trial) != list(range(1, len(trials) + 1)):
        raise DataError(f"{path}: {len(trials)} trials in the recording but ratings for presentation trials "
                        f"{sorted(by_trial)}")
    # Recording order is presentation order; rows go to Experiment_id order like the preprocessed files.
    order = np.argsort([by_trial[p].experiment_id for p in range(1, len(trials) + 1)])
    data = data[order]
    labels = np.asarray([[by_trial[p + 1].valence, by_trial[p + 1].arousal, by_trial[p + 1].dominance,
                          by_trial[p + 1].liking] for p in order], np.float32)
    return validate_subject_arrays(data, labels, path)
