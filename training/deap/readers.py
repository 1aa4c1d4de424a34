"""Readers for the DEAP files: preprocessed ``.dat`` / ``.mat``, the ratings CSV, original BDF."""

from __future__ import annotations

import csv
import logging
import math
import struct
import zlib
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


# Preprocessed DEAP EEG is in microvolts; beyond 10 mV it is not EEG (wrong units, or a damaged file).
MAX_EEG_MICROVOLTS = 10_000.0
RATING_RANGE = (1.0, 9.0)


def validate_subject_arrays(data: object, labels: object, path: Path) -> SubjectArrays:
    """Check shapes, dtypes, finiteness and plausibility; return float32 copies."""
    if not isinstance(data, np.ndarray) or not isinstance(labels, np.ndarray):
        raise DataError(f"{path}: 'data' and 'labels' must be numpy arrays")
    for name, array in (("data", data), ("labels", labels)):
        if np.iscomplexobj(array):
            raise DataError(f"{path}: '{name}' holds complex numbers ({array.dtype}); DEAP arrays are real")
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(f"{path}: '{name}' ({array.dtype}) must be numeric")
    if data.ndim == 3 and data.shape[0] == 0:
        raise DataError(f"{path}: 'data' holds no trials (shape {data.shape})")
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
    peak = float(np.abs(eeg).max())
    if peak > MAX_EEG_MICROVOLTS:
        trial, channel = np.argwhere(np.abs(eeg) > MAX_EEG_MICROVOLTS)[0][:2]
        raise DataError(f"{path}: EEG reaches {peak:.4g} uV (first beyond {MAX_EEG_MICROVOLTS:g} uV at row "
                        f"{trial + 1}, channel {channel + 1}): not microvolt EEG",
                        hint="DEAP preprocessed EEG is in microvolts; the file is damaged or in other units")
    labels = labels[:, :4].astype(np.float32)
    if not np.isfinite(labels).all():
        row = int(np.argwhere(~np.isfinite(labels))[0][0])
        raise DataError(f"{path}: 'labels' hold NaN or Inf (first at row {row + 1})")
    low, high = RATING_RANGE
    outside = (labels < low - 1e-3) | (labels > high + 1e-3)
    if outside.any():
        row, column = np.argwhere(outside)[0]
        raise DataError(f"{path}: rating {labels[row, column]:g} at row {row + 1} lies outside the "
                        f"{low:g}-{high:g} scale")
    return SubjectArrays(data=data, labels=labels, path=path)


def _pick(container: dict, path: Path) -> tuple[object, object]:
    missing = [key for key in ("data", "labels") if key not in container]
    if missing:
        found = sorted(k for k in container if not k.startswith("__"))
        raise DataError(f"{path}: missing {', '.join(missing)}; found {found}")
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
    # A damaged file fails in many ways inside scipy (zlib, struct, sizes it cannot allocate): all are this file's.
    except (MatReadError, OSError, ValueError, TypeError, IndexError, KeyError, NotImplementedError, MemoryError,
            OverflowError, EOFError, UnicodeError, zlib.error, struct.error) as exc:
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
            raise DataError(f"{path}: an original BDF recording needs the participant's rows of "
                            "participant_ratings.csv")
        return read_bdf_trials(path, ratings)
    raise DataError(f"{path}: unknown DEAP file type {path.suffix!r}")


@dataclass(frozen=True)
class RatingProblem:
    """A ratings-CSV row that cannot be used: its trial is excluded, and named in the summary."""

    file: Path
    line: int
    participant: int | None
    trial: int | None  # presentation order
    experiment_id: int | None
    reason: str

    def __str__(self) -> str:
        who = (f"participant {self.participant}" if self.participant is not None else "unknown participant")
        trial = f" trial {self.trial}" if self.trial is not None else ""
        return f"{self.file.name}:{self.line}: {who}{trial}: {self.reason}; trial excluded"


@dataclass
class RatingsTable:
    rows: list[RatingRow]  # usable rows only
    problems: list[RatingProblem]


def _int_cell(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def _parse_row(path: Path, line: int, row: dict[str, str]) -> RatingRow | RatingProblem:
    participant, trial = _int_cell(row.get("Participant_id", "")), _int_cell(row.get("Trial", ""))
    experiment = _int_cell(row.get("Experiment_id", ""))

    def problem(reason: str) -> RatingProblem:
        return RatingProblem(path, line, participant, trial, experiment, reason)

    for name, value in (("Participant_id", participant), ("Trial", trial), ("Experiment_id", experiment)):
        if value is None:
            return problem(f"{name} {row.get(name, '')!r} is not a positive whole number")
    ratings = []
    for name in RATINGS_COLUMNS[3:]:
        text = row.get(name, "")
        try:
            value = float(text)
        except ValueError:
            return problem(f"{name} {text!r} is not a number")
        low, high = RATING_RANGE
        if not math.isfinite(value) or not low <= value <= high:
            return problem(f"{name} {text!r} is not a rating on the {low:g}-{high:g} scale")
        ratings.append(value)
    return RatingRow(participant, trial, experiment, *ratings)


def read_ratings_table(path: Path) -> RatingsTable:
    """``participant_ratings.csv``: usable rows, and every unusable one named (never dropped silently).

    A row with a missing, non-numeric, NaN or out-of-scale value is excluded; rows that share a
    (participant, trial) or a (participant, Experiment_id) make the video -> EEG pairing ambiguous
    and are all excluded.
    """
    path = Path(path)
    parsed: list[RatingRow | RatingProblem] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in RATINGS_COLUMNS if c not in columns]
            if missing:
                raise DataError(f"{path}: ratings CSV lacks column(s) {', '.join(missing)}; "
                                f"found {', '.join(columns) or 'none'}")
            for raw in reader:
                line = reader.line_num
                row = {str(k or "").strip(): (v if isinstance(v, str) else "").strip() for k, v in raw.items()}
                if not any(row.values()):
                    continue
                parsed.append(_parse_row(path, line, row))
                lines.append(line)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV text file ({exc})") from exc
    rows = [r for r in parsed if isinstance(r, RatingRow)]
    problems = [p for p in parsed if isinstance(p, RatingProblem)]
    line_of = {id(r): line for r, line in zip(parsed, lines)}
    by_trial: dict[tuple[int, int], list[RatingRow]] = {}
    by_experiment: dict[tuple[int, int], list[RatingRow]] = {}
    for row in rows:
        by_trial.setdefault((row.participant, row.trial), []).append(row)
        by_experiment.setdefault((row.participant, row.experiment_id), []).append(row)
    ambiguous: dict[int, str] = {}
    for (participant, trial), group in by_trial.items():
        if len(group) > 1:
            for row in group:
                ambiguous[id(row)] = f"participant {participant} trial {trial} appears {len(group)} times"
    for (participant, experiment), group in by_experiment.items():
        if len(group) > 1:
            for row in group:
                ambiguous.setdefault(id(row), f"participant {participant} has Experiment_id {experiment} "
                                              f"{len(group)} times")
    for row in rows:
        if id(row) in ambiguous:
            problems.append(RatingProblem(path, line_of[id(row)], row.participant, row.trial, row.experiment_id,
                                          ambiguous[id(row)]))
    problems.sort(key=lambda p: p.line)
    return RatingsTable([r for r in rows if id(r) not in ambiguous], problems)


def read_ratings(path: Path) -> list[RatingRow]:
    """``participant_ratings.csv``, strictly: DataError naming the first unusable row."""
    table = read_ratings_table(path)
    if table.problems:
        first = table.problems[0]
        more = f" (and {len(table.problems) - 1} more)" if len(table.problems) > 1 else ""
        raise DataError(f"{path}:{first.line}: {first.reason}{more}")
    return table.rows


# Status code that DEAP's BDF recordings use for "start of music video playback".
BDF_VIDEO_START = 4


def read_bdf_trials(path: Path, ratings: list[RatingRow], baseline_s: float = 3.0,
                    trial_s: float = 60.0, band: tuple[float, float] = (4.0, 45.0)) -> SubjectArrays:
    """Original BioSemi recording -> DEAP-like trials (128 Hz, 4-45 Hz, average reference).

    The EEG goes through `models.pipeline.eeg.offline_eeg` with the DEAP contract's transform
    (offset high-pass, resampling, linear-phase band-pass, reference), the transform the
    live app streams.
    Trials are found by the Status channel's video-start marker and are in presentation
    order in the recording; ``ratings`` (this participant's CSV rows) reorder them to
    Experiment_id order like the preprocessed files. EOG removal is not redone.
    """
    import mne

    from models.pipeline.eeg import GENEVA_CHANNELS, EEGTransform, offline_eeg

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
    transform = EEGTransform.deap()
    if tuple(band) != transform.band:
        transform = EEGTransform(rate=DEAP_RATE, band=tuple(band), cutoffs=tuple(band))
    eeg = offline_eeg(eeg, srate, transform)
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
