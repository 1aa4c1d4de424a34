"""Find a DEAP folder's files and pair every face video with its EEG row.

Rows of ``sXX.dat`` are in Experiment_id order; videos ``sXX_trialYY.avi`` are named by
presentation order (YY = the ``Trial`` column). The ratings CSV maps
(Participant_id, Trial) -> Experiment_id; pairing by any other route shifts labels.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.errors import DataError
from training.deap.readers import (
    RatingProblem,
    RatingRow,
    SubjectArrays,
    read_ratings_table,
    read_subject_file,
)

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
    rating_problems: list[RatingProblem] = field(default_factory=list)
    # subject -> Experiment_id -> why its .dat row must not be used (an unusable ratings-CSV row names it)
    excluded: dict[int, dict[int, str]] = field(default_factory=dict)

    @property
    def subjects(self) -> list[int]:
        return sorted(self.eeg_files)

    def subject_trials(self, subject: int) -> list[TrialRecord]:
        return sorted((t for t in self.trials if t.subject == subject), key=lambda t: t.experiment_id)

    def rated_by_csv(self, subject: int) -> bool:
        """Whether the ratings CSV covers this subject (then only the rows it pairs may be used)."""
        return (any(t.subject == subject and t.presentation_trial is not None for t in self.trials)
                or any(p.participant == subject for p in self.rating_problems))

    def trial(self, subject: int, experiment_id: int | None = None,
              presentation_trial: int | None = None) -> TrialRecord:
        if (experiment_id is None) == (presentation_trial is None):
            raise ValueError("give exactly one of experiment_id or presentation_trial")
        for record in self.trials:
            if record.subject == subject and (
                    record.experiment_id == experiment_id if experiment_id is not None
                    else record.presentation_trial == presentation_trial):
                return record
        what = (f"experiment {experiment_id}" if experiment_id is not None
                else f"presentation trial {presentation_trial}")
        for problem in self.rating_problems:
            if problem.participant == subject and (problem.experiment_id == experiment_id if experiment_id is not None
                                                   else problem.trial == presentation_trial):
                raise DataError(f"s{subject:02d} {what} is excluded: {problem}")
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
            "excluded_trials": [{"file": p.file.name, "line": p.line, "participant": p.participant,
                                 "trial": p.trial, "experiment_id": p.experiment_id, "reason": p.reason}
                                for p in self.rating_problems],
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
        lines.extend(str(p) for p in self.rating_problems)
        return "\n".join(lines)


def find_ratings_file(root: Path) -> Path | None:
    for folder in RATINGS_LOCATIONS:
        candidate = root / folder / "participant_ratings.csv"
        if candidate.is_file():
            return candidate
    return None


def unusable_file(path: Path) -> str | None:
    """Why `path` cannot be read as a data file (symlink loop, not a regular file, unreadable, empty), or None."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file" + (" (a folder)" if stat.S_ISDIR(info.st_mode) else "")
        if info.st_size == 0:
            return "empty file"
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    return None


def _listing(directory: Path, problems: list[str]) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError as exc:
        problems.append(f"{directory}: cannot list ({exc.strerror or exc})")
        return []


def _find_eeg_files(root: Path, stray: list[Path], problems: list[str]) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for folder, suffix in _EEG_FOLDERS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in _listing(directory, problems):
            match = _SUBJECT_FILE.match(path.name)
            if match is None or match.group(2) != suffix[1:]:
                if path.is_file() and not path.name.startswith("."):
                    stray.append(path)
                continue
            reason = unusable_file(path)
            if reason is not None:
                problems.append(f"{path}: {reason}; subject s{int(match.group(1)):02d} not read from it")
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
    eeg_files = _find_eeg_files(root, stray, problems)
    if not eeg_files:
        raise DataError(f"{root}: no sXX.dat, sXX.mat or sXX.bdf found"
                        + (f" ({'; '.join(problems[:3])})" if problems else ""),
                        hint="expected data_preprocessed_python/sXX.dat (or data_preprocessed_matlab/, data_original/)")
    ratings_file = find_ratings_file(root)
    table = read_ratings_table(ratings_file) if ratings_file else None
    if ratings_file is None:
        problems.append("no participant_ratings.csv: face videos cannot be paired and are ignored")

    by_subject: dict[int, dict[int, RatingRow]] = {}
    for row in table.rows if table else []:
        by_subject.setdefault(row.participant, {})[row.trial] = row
    excluded_presentations: dict[int, set[int]] = {}
    excluded: dict[int, dict[int, str]] = {}
    for problem in table.problems if table else []:
        if problem.participant is None:
            continue
        if problem.trial is not None:
            excluded_presentations.setdefault(problem.participant, set()).add(problem.trial)
        if problem.experiment_id is not None:
            excluded.setdefault(problem.participant, {}).setdefault(problem.experiment_id, str(problem))
        # A participant with an unusable row still has ratings: never fall back to the EEG file's labels.
        by_subject.setdefault(problem.participant, {})

    videos, video_dirs = _find_videos(root, stray, problems)
    index = DeapIndex(root=root, eeg_files=eeg_files, ratings_file=ratings_file, trials=[], stray_files=stray,
                      problems=problems, rating_problems=list(table.problems) if table else [], excluded=excluded)
    for subject in sorted(eeg_files):
        rows = by_subject.get(subject)
        if rows is None:
            index.trials.extend(_records_from_file(subject, eeg_files[subject], problems))
            continue
        subject_videos = videos.get(subject, {})
        for trial in sorted(subject_videos):
            if trial not in rows and trial not in excluded_presentations.get(subject, ()):
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


def _find_videos(root: Path, stray: list[Path],
                 problems: list[str]) -> tuple[dict[int, dict[int, Path]], dict[int, Path]]:
    """Face videos by subject and presentation trial; an unusable one is named in `problems` (its trial has no
    video)."""
    videos: dict[int, dict[int, Path]] = {}
    folders: dict[int, Path] = {}
    base = root / "face_video"
    if not base.is_dir():
        return videos, folders
    for folder in _listing(base, problems):
        match = re.fullmatch(r"s(\d{2})", folder.name)
        if match is not None and not folder.is_dir() and os.path.lexists(folder):
            problems.append(f"{folder}: {unusable_file(folder) or 'not a folder'}; its face videos are ignored")
            continue
        if not folder.is_dir() or match is None:
            if not folder.name.startswith("."):
                stray.append(folder)
            continue
        subject = int(match.group(1))
        folders[subject] = folder
        for path in _listing(folder, problems):
            video = _VIDEO_FILE.match(path.name)
            if video is None or int(video.group(1)) != subject:
                if not path.name.startswith("."):
                    stray.append(path)
                continue
            reason = unusable_file(path)
            if reason is not None:
                problems.append(f"{path}: {reason}; presentation trial {int(video.group(2))} of s{subject:02d} "
                                "has no face video")
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
        ratings = [r for r in read_ratings_table(index.ratings_file).rows if r.participant == subject]
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
