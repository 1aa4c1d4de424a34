"""Find a DEAP folder's files and pair every face video with its EEG row.

Rows of ``sXX.dat`` are in Experiment_id order; videos ``sXX_trialYY.avi`` are named by
presentation order (YY = the ``Trial`` column). The ratings CSV maps
(Participant_id, Trial) -> Experiment_id; pairing by any other route shifts labels.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.errors import DataError
from training.deap.readers import RatingRow, SubjectArrays, read_ratings, read_subject_file

log = logging.getLogger(__name__)

_SUBJECT_FILE = re.compile(r"^s(\d{2})\.(dat|mat|bdf)$")
_VIDEO_FILE = re.compile(r"^s(\d{2})_trial(\d{2})\.avi$")
_EEG_FOLDERS = (("data_preprocessed_python", ".dat"), ("data_preprocessed_matlab", ".mat"), ("data_original", ".bdf"))
RATINGS_LOCATIONS = ("metadata_csv", "Metadata", "metadata", ".")


@dataclass(frozen=True)
class TrialRecord:
    subject: int
    experiment_id: int  # 1-based row of sXX.dat
    presentation_trial: int | None  # 1-based presentation order (None when the CSV lacks this subject)
    valence: float
    arousal: float
    dominance: float
    liking: float
    video: Path | None


@dataclass
class DeapIndex:
    root: Path
    eeg_files: dict[int, Path]
    ratings_file: Path | None
    trials: list[TrialRecord]
    missing_videos: dict[int, list[int]] = field(default_factory=dict)  # subject -> presentation trials
    subjects_without_video: list[int] = field(default_factory=list)
    stray_files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> list[int]:
        return sorted(self.eeg_files)

    def subject_trials(self, subject: int) -> list[TrialRecord]:
        return sorted((t for t in self.trials if t.subject == subject), key=lambda t: t.experiment_id)

    def trial(self, subject: int, experiment_id: int | None = None, presentation_trial: int | None = None) -> TrialRecord:
        if (experiment_id is None) == (presentation_trial is None):
            raise ValueError("give exactly one of experiment_id or presentation_trial")
        for record in self.trials:
            if record.subject == subject and (
                    record.experiment_id == experiment_id if experiment_id is not None
                    else record.presentation_trial == presentation_trial):
                return record
        what = f"experiment {experiment_id}" if experiment_id is not None else f"presentation trial {presentation_trial}"
        raise DataError(f"{self.root}: no trial s{subject:02d} {what} (subjects: {self.subjects})")

    def summary_dict(self) -> dict:
        with_video = sum(t.video is not None for t in self.trials)
        return {
            "root": str(self.root),
            "subjects": self.subjects,
            "trials": len(self.trials),
            "trials_with_video": with_video,
            "subjects_without_video": self.subjects_without_video,
            "missing_videos": {f"s{s:02d}": trials for s, trials in sorted(self.missing_videos.items())},
            "stray_files": [str(p.relative_to(self.root)) for p in self.stray_files],
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        d = self.summary_dict()
        lines = [f"DEAP folder {self.root}: {len(d['subjects'])} subject(s), {d['trials']} trial(s), "
                 f"{d['trials_with_video']} with face video"]
        if d["subjects_without_video"]:
            lines.append("subjects without face video: " + ", ".join(f"s{s:02d}" for s in d["subjects_without_video"]))
        for subject, trials in d["missing_videos"].items():
            lines.append(f"{subject}: no video for presentation trial(s) {', '.join(map(str, trials))}")
        if d["stray_files"]:
            lines.append(f"ignored {len(d['stray_files'])} stray file(s): " + ", ".join(d["stray_files"][:10])
                         + (" ..." if len(d["stray_files"]) > 10 else ""))
        lines.extend(d["problems"])
        return "\n".join(lines)


def find_ratings_file(root: Path) -> Path | None:
    for folder in RATINGS_LOCATIONS:
        candidate = root / folder / "participant_ratings.csv"
        if candidate.is_file():
            return candidate
    return None


def _find_eeg_files(root: Path, stray: list[Path]) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for folder, suffix in _EEG_FOLDERS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            match = _SUBJECT_FILE.match(path.name)
            if match is None or match.group(2) != suffix[1:]:
                if path.is_file() and not path.name.startswith("."):
                    stray.append(path)
                continue
            found.setdefault(int(match.group(1)), path)  # earlier folders take precedence
    return found


def scan_deap(root: str | Path) -> DeapIndex:
    """List subjects, trials and videos; report what is missing instead of failing on it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder", hint="pass the folder that holds data_preprocessed_python/")
    stray: list[Path] = []
    problems: list[str] = []
    eeg_files = _find_eeg_files(root, stray)
    if not eeg_files:
        raise DataError(f"{root}: no sXX.dat, sXX.mat or sXX.bdf found",
                        hint="expected data_preprocessed_python/sXX.dat (or data_preprocessed_matlab/, data_original/)")
    ratings_file = find_ratings_file(root)
    ratings: list[RatingRow] = read_ratings(ratings_file) if ratings_file else []
    if ratings_file is None:
        problems.append("no participant_ratings.csv: face videos cannot be paired and are ignored")

    by_subject: dict[int, dict[int, RatingRow]] = {}
    for row in ratings:
        by_subject.setdefault(row.participant, {})[row.trial] = row

    videos, video_dirs = _find_videos(root, stray)
    index = DeapIndex(root=root, eeg_files=eeg_files, ratings_file=ratings_file, trials=[], stray_files=stray,
                      problems=problems)
    for subject in sorted(eeg_files):
        rows = by_subject.get(subject)
        if not rows:
            index.trials.extend(_records_from_file(subject, eeg_files[subject], problems))
            continue
        subject_videos = videos.get(subject, {})
        for trial in sorted(subject_videos):
            if trial not in rows:
                stray.append(subject_videos[trial])
        if subject not in video_dirs:
            index.subjects_without_video.append(subject)
        else:
            missing = sorted(t for t in rows if t not in subject_videos)
            if missing:
                index.missing_videos[subject] = missing
        for trial, row in sorted(rows.items()):
            index.trials.append(TrialRecord(
                subject=subject, experiment_id=row.experiment_id, presentation_trial=trial, valence=row.valence,
                arousal=row.arousal, dominance=row.dominance, liking=row.liking, video=subject_videos.get(trial)))
    for subject, folder in sorted(video_dirs.items()):
        if subject not in eeg_files:
            stray.append(folder)
    for subject in sorted(set(by_subject) - set(eeg_files)):
        log.debug("ratings for s%02d but no EEG file", subject)
    if index.missing_videos or index.subjects_without_video or stray or problems:
        log.warning("%s", index.summary())
    return index


def _find_videos(root: Path, stray: list[Path]) -> tuple[dict[int, dict[int, Path]], dict[int, Path]]:
    videos: dict[int, dict[int, Path]] = {}
    folders: dict[int, Path] = {}
    base = root / "face_video"
    if not base.is_dir():
        return videos, folders
    for folder in sorted(base.iterdir()):
        match = re.fullmatch(r"s(\d{2})", folder.name)
        if not folder.is_dir() or match is None:
            if not folder.name.startswith("."):
                stray.append(folder)
            continue
        subject = int(match.group(1))
        folders[subject] = folder
        for path in sorted(folder.iterdir()):
            video = _VIDEO_FILE.match(path.name)
            if video is None or int(video.group(1)) != subject or path.stat().st_size == 0:
                if not path.name.startswith("."):
                    stray.append(path)
                continue
            videos.setdefault(subject, {})[int(video.group(2))] = path
    return videos, folders


def _records_from_file(subject: int, path: Path, problems: list[str]) -> list[TrialRecord]:
    """Without ratings-CSV rows, take the labels from the EEG file itself; no video can be paired."""
    problems.append(f"s{subject:02d}: not in the ratings CSV; labels from {path.name}, face videos ignored")
    try:
        labels = read_subject_file(path).labels
    except DataError as exc:
        problems.append(f"s{subject:02d}: {exc}")
        return []
    return [TrialRecord(subject=subject, experiment_id=i + 1, presentation_trial=None, valence=float(v),
                        arousal=float(a), dominance=float(d), liking=float(lk), video=None)
            for i, (v, a, d, lk) in enumerate(labels)]


def _as_index(root_or_index: str | Path | DeapIndex) -> DeapIndex:
    return root_or_index if isinstance(root_or_index, DeapIndex) else scan_deap(root_or_index)


def load_subject(root_or_index: str | Path | DeapIndex, subject: int) -> SubjectArrays:
    """A subject's preprocessed arrays: data (trials, 40, samples) float32 and labels, Experiment_id order."""
    index = _as_index(root_or_index)
    if subject not in index.eeg_files:
        raise DataError(f"{index.root}: no EEG file for s{subject:02d} (have {index.subjects})")
    path = index.eeg_files[subject]
    ratings = None
    if path.suffix == ".bdf" and index.ratings_file is not None:
        ratings = [r for r in read_ratings(index.ratings_file) if r.participant == subject]
    return read_subject_file(path, ratings)


def load_subject_eeg(root_or_index: str | Path | DeapIndex, subject: int) -> np.ndarray:
    """(trials, 40, samples) float32 in Experiment_id row order."""
    return load_subject(root_or_index, subject).data


def load_trial_eeg(root_or_index: str | Path | DeapIndex, subject: int, experiment_id: int) -> np.ndarray:
    """One trial's (40, samples) float32, including the 3 s baseline."""
    data = load_subject_eeg(root_or_index, subject)
    if not 1 <= experiment_id <= len(data):
        raise DataError(f"s{subject:02d}: experiment id {experiment_id} outside 1..{len(data)}")
    return np.ascontiguousarray(data[experiment_id - 1])


@dataclass(frozen=True)
class TrialData:
    record: TrialRecord
    eeg: np.ndarray  # (40, samples) float32 with the 3 s baseline
    srate: float
    video: Path | None


def get_trial(root_or_index: str | Path | DeapIndex, subject: int, experiment_id: int | None = None,
              presentation_trial: int | None = None) -> TrialData:
    """One trial by (subject, experiment id) or (subject, presentation trial): EEG, ratings and video path."""
    from training.deap.readers import DEAP_RATE

    index = _as_index(root_or_index)
    record = index.trial(subject, experiment_id=experiment_id, presentation_trial=presentation_trial)
    eeg = load_trial_eeg(index, subject, record.experiment_id)
    return TrialData(record=record, eeg=eeg, srate=DEAP_RATE, video=record.video)
