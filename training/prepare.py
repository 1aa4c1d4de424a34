"""``prepare``: window DEAP, crop faces, and write a cache keyed by data identity + every parameter.

Layout: ``CACHE/<key>/`` with ``manifest.json`` (parameters, data identity, code version),
per subject ``sXX/eeg.npy`` (W, C, T) float32, ``sXX/faces.npy`` (W, N, 3, S, S) uint8 (only
for subjects with video), ``sXX/face_mask.npy`` (W, N) bool and ``sXX/meta.npy`` (W,)
structured (written last: its presence marks the subject complete), and
``summary.json``/``summary.txt``. Every file is written atomically (`models.atomic`), so an
interrupted run leaves no half-written file that a later run could trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from models import atomic, strict_json
from models.console import package_version
from models.errors import DataError
from models.pipeline.face_detector_spec import DetectorSpec
from models.pipeline.faces import FaceCropper, QualityFloor
from models.pipeline.labels import LabelRule
from training.deap import DeapIndex, load_subject, scan_deap
from training.process_pool import ProcessPool
from training.windows import WindowSpec, deap_trial_eeg

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
META_DTYPE = np.dtype([
    ("subject", "i2"), ("experiment_id", "i2"), ("presentation_trial", "i2"), ("window", "i2"),
    ("start_s", "f4"), ("valence", "f4"), ("arousal", "f4"), ("dominance", "f4"), ("liking", "f4"),
    ("has_video", "?"), ("row", "i4"),
])


@dataclass(frozen=True)
class FaceSpec:
    size: int = 224
    expand: float = 0.10
    # The detector's name, version and thresholds (a name is read as that detector's settings).
    detector: dict[str, Any] = field(default_factory=lambda: DetectorSpec().to_dict())
    floor: QualityFloor = field(default_factory=QualityFloor)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detector", DetectorSpec.from_value(self.detector).to_dict())

    def cropper(self) -> FaceCropper:
        return FaceCropper(self.size, expand=self.expand, detector=self.detector, floor=self.floor)


@dataclass(frozen=True)
class PrepareConfig:
    window: WindowSpec = field(default_factory=WindowSpec)
    face: FaceSpec = field(default_factory=FaceSpec)
    subjects: tuple[int, ...] | None = None  # None: every subject found
    workers: int = 1
    strict: bool = False
    seek_gap: int = 30  # seek instead of grabbing through when the next wanted frame is further ahead

    def parameters(self) -> dict:
        """Everything that changes the cache's content (not subjects/workers/strict)."""
        return {"window": self.window.to_dict(), "face": asdict(self.face)}


# ---------------------------------------------------------------------------- identity and key

def data_identity(index: DeapIndex) -> list[dict]:
    """Name, size and modification time of every file the cache is built from."""
    paths = list(index.eeg_files.values()) + ([index.ratings_file] if index.ratings_file else [])
    paths += [t.video for t in index.trials if t.video is not None]
    identity = []
    for path in sorted(set(paths)):
        stat = path.stat()
        identity.append({"file": str(path.relative_to(index.root)), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return identity


def cache_key(config: PrepareConfig, identity: list[dict]) -> str:
    # OpenCV decodes the frames and runs the face detector: another version may find other faces.
    # The detector's name, version and thresholds are in the parameters (config.face.detector).
    blob = json.dumps({"format": CACHE_FORMAT, "code": package_version(), "opencv": cv2.__version__,
                       "parameters": config.parameters(), "data": identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- video frames

def read_frames(path: Path, wanted: np.ndarray, seek_gap: int = 30) -> dict[int, np.ndarray]:
    """Decode only the frames in ``wanted`` (sorted, unique, >= 0): grab through short gaps, seek over long ones."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    frames: dict[int, np.ndarray] = {}
    position = 0
    try:
        for target in wanted:
            target = int(target)
            if target - position > seek_gap:
                capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                position = target
            while position < target:
                if not capture.grab():
                    return frames
                position += 1
            ok, frame = capture.read()
            position += 1
            if not ok:
                return frames
            frames[target] = frame
    finally:
        capture.release()
    return frames


def video_info(path: Path) -> tuple[float, int]:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if not (math.isfinite(fps) and fps > 0) or count <= 0:
        raise DataError(f"{path}: video reports {fps} fps and {count} frames")
    return fps, count


FACE_COUNT_KEYS = ("frames_requested", "faces", "no_face", "low_quality", "outside_video", "unreadable")


@dataclass(frozen=True)
class FaceJob:
    subject: int
    experiment_id: int
    video: Path
    first_row: int
    starts: tuple[float, ...]


@dataclass
class FaceResult:
    job: FaceJob
    crops: np.ndarray | None  # (W, N, 3, S, S) uint8
    mask: np.ndarray | None  # (W, N) bool
    counts: dict[str, int]
    error: str | None = None


def _failed_faces(job: FaceJob, spec: WindowSpec, error: str) -> FaceResult:
    frames = len(job.starts) * spec.num_instances
    return FaceResult(job, None, None, {"frames_requested": frames, "unreadable": frames}, error=error)


def crop_trial_faces(job: FaceJob, spec: WindowSpec, face: FaceSpec, seek_gap: int) -> FaceResult:
    """Face crops for every window of one trial; frames without a face are masked, not dropped."""
    try:
        fps, count = video_info(job.video)
        indices = np.stack([spec.frame_indices(start, fps, count) for start in job.starts])
        wanted = np.unique(indices[indices >= 0])
        frames = read_frames(job.video, wanted, seek_gap)
    except DataError as exc:
        return _failed_faces(job, spec, str(exc))
    cropper = face.cropper()
    crops = np.zeros((*indices.shape, 3, face.size, face.size), np.uint8)
    mask = np.zeros(indices.shape, bool)
    counts = dict.fromkeys(FACE_COUNT_KEYS, 0)
    counts.update(frames_requested=int(indices.size), outside_video=int((indices < 0).sum()))
    # The frames in time order through one tracker, as the live app follows its camera.
    tracker = cropper.tracker()
    by_frame: dict[int, np.ndarray | str | None] = {}
    for index in sorted(frames):
        _, found = cropper.crop_tracked(tracker, frames[index], index / fps)
        by_frame[index] = None if found is None else (
            found.image.transpose(2, 0, 1) if found.usable else "low_quality")
    for (w, n), index in np.ndenumerate(indices):
        if index < 0:
            continue
        if index not in frames:
            counts["unreadable"] += 1
            continue
        image = by_frame[index]
        if image is None or isinstance(image, str):
            counts["no_face" if image is None else "low_quality"] += 1
            continue
        crops[w, n] = image
        mask[w, n] = True
        counts["faces"] += 1
    return FaceResult(job, crops, mask, counts)


def _face_worker(payload: tuple[FaceJob, WindowSpec, FaceSpec, int]) -> FaceResult:
    return crop_trial_faces(*payload)


def _init_worker() -> None:
    cv2.setNumThreads(1)


# ---------------------------------------------------------------------------- subjects

def _subject_dir(cache: Path, subject: int) -> Path:
    return cache / f"s{subject:02d}"


def subject_complete(cache: Path, subject: int) -> bool:
    folder = _subject_dir(cache, subject)
    return all((folder / name).is_file() for name in ("eeg.npy", "face_mask.npy", "meta.npy"))


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic.atomic_open(path) as handle:
        np.save(handle, array)


@dataclass
class SubjectWork:
    subject: int
    meta: np.ndarray
    jobs: list[FaceJob]
    label_mismatches: int
    excluded: list[str] = field(default_factory=list)  # trials of this subject left out, each with why


def window_subject_eeg(index: DeapIndex, subject: int, cache: Path, spec: WindowSpec) -> SubjectWork:
    """Read one subject's EEG file, write its windows (temp name) and return its meta and face jobs.

    When the ratings CSV covers this subject, only rows it pairs are used: a row whose CSV entry
    is unusable, missing or points outside the file is excluded and named, never labelled from
    elsewhere.
    """
    arrays = load_subject(index, subject)
    records = {t.experiment_id: t for t in index.subject_trials(subject)}
    csv_excluded = index.excluded.get(subject, {})
    rated = index.rated_by_csv(subject)
    name, rows = arrays.path.name, len(arrays.data)
    excluded: list[str] = []
    beyond = sorted(e for e in records if e > rows)
    if beyond:
        excluded.append(f"{name} holds {rows} trial(s) but participant_ratings.csv lists "
                        f"{len(records) + len(csv_excluded)} for participant {subject}")
        for experiment_id in beyond:
            excluded.append(f"{name}: participant {subject} trial {records[experiment_id].presentation_trial}: "
                            f"Experiment_id {experiment_id} is outside the file's {rows} trial(s); trial excluded")
    eeg_parts, meta_rows, jobs = [], [], []
    mismatches = 0
    for row, trial in enumerate(arrays.data):
        experiment_id = row + 1
        record = records.get(experiment_id)
        if experiment_id in csv_excluded:
            continue  # named in the index's summary
        if record is None and rated:
            excluded.append(f"{name}: participant {subject} Experiment_id {experiment_id}: no usable row in "
                            "participant_ratings.csv pairs it; trial excluded")
            continue
        trial = deap_trial_eeg(trial, spec.srate)
        windows = spec.cut_eeg(trial)
        starts = spec.window_starts(trial.shape[-1])
        valence, arousal, dominance, liking = (float(v) for v in arrays.labels[row])
        if record is not None and (abs(record.valence - valence) > 0.01 or abs(record.arousal - arousal) > 0.01):
            mismatches += 1
        video = record.video if record is not None else None
        presentation = record.presentation_trial if record is not None and record.presentation_trial else -1
        first_row = len(meta_rows)
        for w, start in enumerate(starts):
            meta_rows.append((subject, experiment_id, presentation, w, start,
                              valence, arousal, dominance, liking, video is not None, first_row + w))
        eeg_parts.append(windows)
        if video is not None and len(starts):
            jobs.append(FaceJob(subject, experiment_id, video, first_row, tuple(float(s) for s in starts)))
    for line in excluded:
        log.warning("%s", line)
    if not eeg_parts:
        raise DataError(f"{arrays.path}: every trial is excluded"
                        + (f" ({excluded[-1]})" if excluded else f" ({next(iter(csv_excluded.values()))})"
                           if csv_excluded else ""))
    if not meta_rows:
        raise DataError(f"{arrays.path}: trials of {arrays.data.shape[-1]} samples are too short for one "
                        f"{spec.window_s} s window after the {spec.baseline_s} s baseline")
    folder = _subject_dir(cache, subject)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "eeg.tmp.npy", np.concatenate(eeg_parts))
    return SubjectWork(subject, np.asarray(meta_rows, META_DTYPE), jobs, mismatches, excluded)


def _eeg_worker(payload: tuple[DeapIndex, int, Path, WindowSpec]) -> tuple[int, SubjectWork | None, str | None]:
    index, subject, cache, spec = payload
    try:
        return subject, window_subject_eeg(index, subject, cache, spec), None
    except DataError as exc:
        return subject, None, str(exc)


class _SubjectWriter:
    """Collects one subject's face results into a memory-mapped temp array, then publishes all files."""

    def __init__(self, cache: Path, work: SubjectWork, face: FaceSpec, num_instances: int):
        self.folder = _subject_dir(cache, work.subject)
        self.work = work
        self.pending = len(work.jobs)
        self.counts = {key: 0 for key in FACE_COUNT_KEYS}
        self.video_errors: list[str] = []
        windows = len(work.meta)
        self.mask = np.zeros((windows, num_instances), bool)
        self.faces = None
        if work.jobs:
            self.faces = np.lib.format.open_memmap(self.folder / "faces.tmp.npy", mode="w+", dtype=np.uint8,
                                                   shape=(windows, num_instances, 3, face.size, face.size))

    def add(self, result: FaceResult) -> None:
        for key, value in result.counts.items():
            self.counts[key] += value
        if result.error is not None:
            self.video_errors.append(result.error)
        if result.crops is not None:
            rows = slice(result.job.first_row, result.job.first_row + len(result.crops))
            self.faces[rows] = result.crops
            self.mask[rows] = result.mask
        self.pending -= 1

    def publish(self) -> None:
        if self.faces is not None:
            self.faces.flush()
            del self.faces
            atomic.publish(self.folder / "faces.tmp.npy", self.folder / "faces.npy")
        atomic.publish(self.folder / "eeg.tmp.npy", self.folder / "eeg.npy")
        _save_atomic(self.folder / "face_mask.npy", self.mask)
        strict_json.write_atomic(self.folder / "faces.json", {"counts": self.counts, "video_errors": self.video_errors,
                                                              "excluded_trials": self.work.excluded})
        _save_atomic(self.folder / "meta.npy", self.work.meta)  # last: marks the subject complete


# ---------------------------------------------------------------------------- driver

@dataclass
class PrepareResult:
    cache: Path
    key: str
    summary: dict


def prepare_cache(deap_root: str | Path, cache_root: str | Path, config: PrepareConfig = PrepareConfig(),
                  progress: bool | None = None) -> PrepareResult:
    """Build (or resume, or reuse) the cache for ``deap_root`` under ``cache_root``.

    ``progress``: tqdm bars (None: only on a terminal).
    """
    index = scan_deap(deap_root)
    identity = data_identity(index)
    key = cache_key(config, identity)
    cache = Path(cache_root) / key
    cache.mkdir(parents=True, exist_ok=True)
    manifest = {"format": CACHE_FORMAT, "key": key, "code_version": package_version(),
                "parameters": config.parameters(), "data_root": str(index.root), "data": identity}
    atomic.write_text(cache / "manifest.json", json.dumps(manifest, indent=1))

    subjects = index.subjects if config.subjects is None else [s for s in config.subjects if s in index.eeg_files]
    absent = sorted(set(config.subjects or ()) - set(index.eeg_files))
    if absent:
        message = f"{index.root}: no EEG file for subject(s) {', '.join(f's{s:02d}' for s in absent)}"
        if config.strict:
            raise DataError(message)
        log.warning("%s", message)
    todo = [s for s in subjects if not subject_complete(cache, s)]
    reused = [s for s in subjects if s not in todo]
    if reused:
        log.info("cache %s: %d subject(s) already complete, skipped", cache, len(reused))
    failures: dict[int, str] = {}
    mismatches = 0
    writers: dict[int, _SubjectWriter] = {}
    jobs: list[FaceJob] = []
    with ProcessPool(config.workers if todo else 1, initializer=_init_worker) as workers:
        payloads = [(index, s, cache, config.window) for s in todo]
        for outcome in tqdm(workers.imap_unordered(_eeg_worker, payloads), total=len(todo),
                            desc="EEG", unit="subject", disable=_disabled(progress)):
            if outcome.death is not None:
                subject = outcome.payload[1]
                subject, work, error = subject, None, (f"{index.eeg_files[subject]}: the worker reading it "
                                                       f"{outcome.death}")
            else:
                subject, work, error = outcome.result
            if error is not None:
                if config.strict:
                    raise DataError(error)
                log.error("skipping s%02d: %s", subject, error)
                failures[subject] = error
                continue
            mismatches += work.label_mismatches
            writers[subject] = _SubjectWriter(cache, work, config.face, config.window.num_instances)
            jobs.extend(work.jobs)
        for subject in sorted(s for s, w in writers.items() if w.pending == 0):
            writers.pop(subject).publish()

        face_payloads = [(job, config.window, config.face, config.seek_gap) for job in jobs]
        total_frames = sum(len(job.starts) for job in jobs) * config.window.num_instances
        with tqdm(total=total_frames, desc="faces", unit="frame", disable=_disabled(progress)) as bar:
            for outcome in workers.imap_unordered(_face_worker, face_payloads):
                result = outcome.result
                if outcome.death is not None:
                    job = outcome.payload[0]
                    result = _failed_faces(job, config.window, f"{job.video}: the worker reading it {outcome.death}")
                if result.error is not None:
                    if config.strict:
                        raise DataError(result.error)
                    log.warning("%s (trial has no face modality)", result.error)
                writer = writers[result.job.subject]
                writer.add(result)
                bar.update(len(result.job.starts) * config.window.num_instances)
                if writer.pending == 0:
                    writers.pop(result.job.subject).publish()

    summary = summarise(cache, index, subjects, failures, mismatches)
    atomic.write_text(cache / "summary.json", strict_json.dumps(summary, indent=1))
    summary_text = format_summary(summary)
    atomic.write_text(cache / "summary.txt", summary_text)
    # The summary is news only when something was prepared; a reused cache is named once by its caller.
    log.log(logging.INFO if todo else logging.DEBUG, "prepared cache %s\n%s", cache, summary_text)
    return PrepareResult(cache=cache, key=key, summary=summary)


def _disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def summarise(cache: Path, index: DeapIndex, subjects: list[int], failures: dict[int, str],
              mismatches: int) -> dict:
    metas, masks = [], []
    face_counts = dict.fromkeys(FACE_COUNT_KEYS, 0)
    video_errors: list[str] = []
    excluded: list[str] = [str(problem) for problem in index.rating_problems]
    for subject in subjects:
        if subject_complete(cache, subject):
            folder = _subject_dir(cache, subject)
            metas.append(np.load(folder / "meta.npy"))
            masks.append(np.load(folder / "face_mask.npy"))
            report = json.loads((folder / "faces.json").read_text()) if (folder / "faces.json").is_file() else {}
            for key, value in report.get("counts", {}).items():
                face_counts[key] = face_counts.get(key, 0) + value
            video_errors.extend(report.get("video_errors", []))
            excluded.extend(report.get("excluded_trials", []))
    meta = np.concatenate(metas) if metas else np.zeros(0, META_DTYPE)
    mask = np.concatenate(masks) if masks else np.zeros((0, 1), bool)
    with_video = meta["has_video"] if len(meta) else np.zeros(0, bool)
    labels = {}
    for kind in ("quadrant", "valence", "arousal"):
        rule = LabelRule(kind)
        counts = np.bincount(rule.apply_many(meta["valence"], meta["arousal"]), minlength=rule.num_classes)
        labels[kind] = {name: int(c) for name, c in zip(rule.class_names, counts)}
    return {
        "cache": str(cache),
        "subjects": sorted({int(s) for s in meta["subject"]}),
        "failed_subjects": {f"s{s:02d}": e for s, e in sorted(failures.items())},
        "trials": int(len({(int(s), int(e)) for s, e in zip(meta["subject"], meta["experiment_id"])})),
        "windows": int(len(meta)),
        "windows_with_video": int(with_video.sum()),
        "face_frames_requested": int(mask[with_video].size) if len(meta) else 0,
        "faces_found": int(mask.sum()),
        "face_frames": face_counts,
        "video_errors": video_errors,
        "excluded_trials": excluded,
        "labels_from": "EEG files' labels (Experiment_id order)",
        "label_counts": labels,
        "csv_label_mismatches": mismatches,
        "data": index.summary_dict(),
    }


def format_summary(summary: dict) -> str:
    requested = summary["face_frames_requested"]
    found = summary["faces_found"]
    lines = [
        f"cache: {summary['cache']}",
        f"subjects: {len(summary['subjects'])} ({', '.join(f's{s:02d}' for s in summary['subjects'])})",
        f"trials: {summary['trials']}, windows: {summary['windows']} ({summary['windows_with_video']} with face video)",
        f"face frames: {found} of {requested} have a face"
        + (f" ({100.0 * found / requested:.1f} %)" if requested else ""),
    ]
    frames = summary["face_frames"]
    if frames["no_face"] or frames.get("low_quality") or frames["outside_video"] or frames["unreadable"]:
        lines.append(f"face frames masked: {frames['no_face']} without a detected face, "
                     f"{frames.get('low_quality', 0)} below the crop quality floor, {frames['outside_video']} "
                     f"outside the video's length, {frames['unreadable']} unreadable")
    for error in summary["video_errors"]:
        lines.append(f"unusable video: {error}")
    for kind, counts in summary["label_counts"].items():
        lines.append(f"{kind} windows: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    if summary["csv_label_mismatches"]:
        lines.append(f"{summary['csv_label_mismatches']} trial(s) whose ratings CSV differs from the EEG file's labels")
    for line in summary["excluded_trials"]:
        lines.append(f"excluded: {line}")
    for subject, error in summary["failed_subjects"].items():
        lines.append(f"FAILED {subject}: {error}")
    data = summary["data"]
    if data["subjects_without_video"]:
        lines.append("no face video: " + ", ".join(f"s{s:02d}" for s in data["subjects_without_video"]))
    for subject, trials in data["missing_videos"].items():
        lines.append(f"{subject}: missing video for presentation trial(s) {', '.join(map(str, trials))}")
    if data["stray_files"]:
        lines.append(f"stray files ignored: {', '.join(data['stray_files'])}")
    lines.extend(data["problems"])
    return "\n".join(lines) + "\n"
