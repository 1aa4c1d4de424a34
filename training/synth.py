"""A small synthetic dataset in exactly the DEAP layout, with class information planted in EEG and face.

Written for tests and the app's demo. Per subject: ``data_preprocessed_python/sXX.dat``
(protocol-2 pickle, dict ``data`` (trials, 40, samples) float64 and ``labels`` (trials, 4)),
optionally ``data_preprocessed_matlab/sXX.mat``, rows of the ratings CSV and face videos
``face_video/sXX/sXX_trialYY.avi`` named by presentation trial. The presentation order is a
shuffle of the Experiment_id order chosen so that every trial's neighbour under the wrong
pairing (video YY with row YY) has a different class: a pipeline that pairs by presentation
order learns nothing.

Planted information (scaled by ``strength``):
- EEG: a rhythm with a wandering phase on frontal electrodes whose frequency says valence
  (high 10.3 Hz, low 21.7 Hz) and one on parietal/occipital electrodes whose frequency says
  arousal (high 14.2 Hz, low 6.6 Hz); per-trial frequency jitter; pink-ish background.
- Face: a tint on both cheeks, one colour per quadrant, inside the face box (chroma only, so
  face detection does not depend on the class).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.contract import GENEVA_CHANNELS
from models.errors import DataError
from models.pipeline.labels import LabelRule

log = logging.getLogger(__name__)

SRATE = 128
SYNTHETIC_MARKER = "SYNTHETIC.json"  # in the dataset's root folder
BASELINE_S = 3.0
VALENCE_HZ = {True: 10.3, False: 21.7}
AROUSAL_HZ = {True: 14.2, False: 6.6}
VALENCE_ELECTRODES = ("Fp1", "AF3", "F3", "F7", "Fp2", "AF4", "F4", "F8", "Fz")
AROUSAL_ELECTRODES = ("P3", "P7", "PO3", "O1", "Oz", "Pz", "P4", "P8", "PO4", "O2")
# Cheek colours (BGR) per quadrant: HAHV, LAHV, LALV, HALV.
CUE_COLOURS_BGR = ((40, 40, 230), (40, 200, 40), (230, 60, 40), (30, 210, 230))

# The astronaut portrait (skimage.data.astronaut) cropped around the face, and where the
# face and the cheeks sit in that crop (pixels of the 200 x 200 crop).
_PORTRAIT_BOX = (125, 16, 200, 200)  # x, y, w, h in the 512 x 512 image
_FACE_IN_PORTRAIT = (52, 50, 95, 95)
_CHEEKS_IN_PORTRAIT = ((75, 115), (125, 115))
_CHEEK_RADII = (11, 8)


@dataclass(frozen=True)
class SynthTrial:
    subject: int
    experiment_id: int
    presentation_trial: int
    quadrant: int
    valence: float
    arousal: float
    video: Path | None


@dataclass
class SynthDataset:
    root: Path
    trials: list[SynthTrial] = field(default_factory=list)
    srate: int = SRATE
    seconds: float = 0.0
    fps: float = 0.0
    video_size: tuple[int, int] = (0, 0)


def _balanced_quadrants(trials: int, rng: np.random.Generator) -> np.ndarray:
    quadrants = np.arange(trials) % 4
    rng.shuffle(quadrants)
    return quadrants


def _presentation_order(quadrants: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation ``order`` (order[p] = experiment index shown at presentation p) with
    quadrants[order[p]] != quadrants[p] wherever it can be had, so pairing by presentation
    order mislabels (almost) every video."""
    n = len(quadrants)
    best, best_score = np.arange(n)[::-1].copy(), -1
    for _ in range(2000):
        order = rng.permutation(n)
        score = int((quadrants[order] != quadrants).sum())
        if score > best_score:
            best, best_score = order, score
            if score == n:
                break
    return best


def _ratings(quadrant: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
    high_valence = quadrant in (0, 1)
    high_arousal = quadrant in (0, 3)

    def rating(high: bool) -> float:
        return float(np.round(rng.uniform(5.5, 9.0) if high else rng.uniform(1.0, 4.5), 2))

    return (rating(high_valence), rating(high_arousal), float(np.round(rng.uniform(1, 9), 2)),
            float(np.round(rng.uniform(1, 9), 2)))


def pink_noise(shape: tuple[int, ...], rng: np.random.Generator, low: float = 4.0, high: float = 45.0) -> np.ndarray:
    """Noise with a 1/f power spectrum inside [low, high] Hz (DEAP's band), unit variance."""
    samples = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(samples, 1.0 / SRATE)
    gain = np.where((freqs >= low) & (freqs <= high), 1.0 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
    noise = np.fft.irfft(spectrum * gain, n=samples, axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def wandering_rhythm(freq: float, samples: int, rng: np.random.Generator, phase_step: float = 0.08) -> np.ndarray:
    """A sinusoid whose phase takes a small random walk: no window sees the same waveform twice."""
    increments = 2 * np.pi * freq / SRATE + rng.normal(0.0, phase_step, samples)
    phase = rng.uniform(0, 2 * np.pi) + np.cumsum(increments)
    envelope = 1.0 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * np.arange(samples) / SRATE
                                   + rng.uniform(0, 6.3))
    return envelope * np.sin(phase)


def synth_trial_eeg(quadrant: int, seconds: float, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One trial (40, samples): 3 s baseline + ``seconds``; µV-scaled like DEAP's preprocessed data."""
    samples = int(round((BASELINE_S + seconds) * SRATE))
    eeg = pink_noise((32, samples), rng) * rng.uniform(10.0, 30.0, (32, 1))
    eeg -= eeg.mean(axis=0, keepdims=True)  # DEAP is average-referenced
    stimulus = slice(int(BASELINE_S * SRATE), samples)
    planted = samples - stimulus.start
    names = list(GENEVA_CHANNELS)
    for electrodes, freq in ((VALENCE_ELECTRODES, VALENCE_HZ[quadrant in (0, 1)]),
                             (AROUSAL_ELECTRODES, AROUSAL_HZ[quadrant in (0, 3)])):
        freq += rng.uniform(-0.4, 0.4)
        for name in electrodes:
            amplitude = 15.0 * strength * rng.uniform(0.8, 1.2)
            eeg[names.index(name), stimulus] += amplitude * wandering_rhythm(freq, planted, rng)
    return np.concatenate([eeg, _peripheral(samples, rng)]).astype(np.float64)


def _peripheral(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Channels 33-40: hEOG, vEOG, zEMG, tEMG, GSR, respiration, plethysmograph, temperature."""
    t = np.arange(samples) / SRATE
    eog = np.cumsum(rng.normal(0, 2.0, (2, samples)), axis=1)
    eog -= eog.mean(axis=1, keepdims=True)
    blinks = np.zeros(samples)
    for onset in rng.uniform(0, t[-1], max(1, int(t[-1] / 4))):
        blinks += 150.0 * np.exp(-0.5 * ((t - onset) / 0.08) ** 2)
    eog[1] += blinks
    emg = rng.normal(0, 5.0, (2, samples))
    gsr = 3000.0 + np.cumsum(rng.normal(0, 2.0, samples))
    respiration = 400.0 * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t)
    pleth = 2000.0 * np.sin(2 * np.pi * rng.uniform(1.0, 1.4) * t) ** 8
    temperature = 32.0 + 0.2 * np.sin(2 * np.pi * t / 60.0) + rng.normal(0, 0.01, samples)
    return np.vstack([eog, emg, gsr, respiration, pleth, temperature])


@functools.lru_cache(maxsize=1)
def _portrait_bgr() -> np.ndarray:
    """The 200 x 200 portrait, read once per process (callers only read it: paint_cue returns a new array)."""
    from skimage import data

    x, y, w, h = _PORTRAIT_BOX
    return cv2.cvtColor(np.ascontiguousarray(data.astronaut()[y:y + h, x:x + w]), cv2.COLOR_RGB2BGR)


def paint_cue(portrait_bgr: np.ndarray, quadrant: int, strength: float) -> np.ndarray:
    """Tint both cheeks of the 200 x 200 portrait with the quadrant's colour.

    Only chroma changes (luma is kept), so the grey image that the face detector sees
    is the same for every class: detection cannot fail more often for one class and
    leak the label through the face mask.
    """
    mask = np.zeros(portrait_bgr.shape[:2], np.uint8)
    for centre in _CHEEKS_IN_PORTRAIT:
        cv2.ellipse(mask, centre, _CHEEK_RADII, 0, 0, 360, 255, -1)
    mask = cv2.GaussianBlur(mask, (7, 7), 0).astype(np.float32)[..., None] / 255.0
    alpha = float(np.clip(0.8 * strength, 0.0, 1.0)) * mask
    ycrcb = cv2.cvtColor(portrait_bgr, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    target = cv2.cvtColor(np.asarray([[CUE_COLOURS_BGR[quadrant]]], np.uint8), cv2.COLOR_BGR2YCrCb)[0, 0]
    ycrcb[..., 1:] = (1 - alpha) * ycrcb[..., 1:] + alpha * target[1:].astype(np.float32)
    return cv2.cvtColor(np.clip(ycrcb, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR)


def cue_box(portrait_box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The cheeks' bounding box (x, y, w, h) in frame pixels for a portrait placed at ``portrait_box``."""
    px, py, pw, ph = portrait_box
    scale = pw / _PORTRAIT_BOX[2]
    xs = [c[0] + s * _CHEEK_RADII[0] for c in _CHEEKS_IN_PORTRAIT for s in (-1, 1)]
    ys = [c[1] + s * _CHEEK_RADII[1] for c in _CHEEKS_IN_PORTRAIT for s in (-1, 1)]
    x0, y0 = px + min(xs) * scale, py + min(ys) * scale
    return int(x0), int(y0), int(np.ceil((max(xs) - min(xs)) * scale)), int(np.ceil((max(ys) - min(ys)) * scale))


def face_box(portrait_box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Where the face sits in frame pixels for a portrait placed at ``portrait_box``."""
    px, py, pw, _ = portrait_box
    scale = pw / _PORTRAIT_BOX[2]
    fx, fy, fw, fh = _FACE_IN_PORTRAIT
    return int(px + fx * scale), int(py + fy * scale), int(fw * scale), int(fh * scale)


class TrialVideoComposer:
    """Frames of one trial: the painted portrait on a background, drifting slightly over time."""

    def __init__(self, quadrant: int, strength: float, size: tuple[int, int], rng: np.random.Generator):
        width, height = size
        side = int(round(0.7 * height))
        self.size = size
        self.portrait = cv2.resize(paint_cue(_portrait_bgr(), quadrant, strength), (side, side),
                                   interpolation=cv2.INTER_AREA if side < _PORTRAIT_BOX[2] else cv2.INTER_CUBIC)
        gradient = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        base = rng.uniform(90, 170, 3).astype(np.float32)
        background = base * (0.8 + 0.4 * gradient) + rng.normal(0, 4, (height, width, 3)).astype(np.float32)
        self.background = np.clip(np.broadcast_to(background, (height, width, 3)), 0, 255).astype(np.uint8)
        self.centre = (width / 2 + rng.uniform(-0.08, 0.08) * width, height / 2 + rng.uniform(-0.04, 0.04) * height)
        self.drift = (rng.uniform(0.02, 0.05) * width, rng.uniform(0.01, 0.03) * height)
        self.periods = rng.uniform(3.0, 7.0, 2)
        self.phases = rng.uniform(0, 2 * np.pi, 2)

    def portrait_box(self, t: float) -> tuple[int, int, int, int]:
        side = self.portrait.shape[0]
        width, height = self.size
        cx = self.centre[0] + self.drift[0] * np.sin(2 * np.pi * t / self.periods[0] + self.phases[0])
        cy = self.centre[1] + self.drift[1] * np.sin(2 * np.pi * t / self.periods[1] + self.phases[1])
        x = int(np.clip(round(cx - side / 2), 0, width - side))
        y = int(np.clip(round(cy - side / 2), 0, height - side))
        return x, y, side, side

    def frame(self, t: float) -> np.ndarray:
        frame = self.background.copy()
        x, y, side, _ = self.portrait_box(t)
        frame[y:y + side, x:x + side] = self.portrait
        return frame


def write_trial_video(path: Path, composer: TrialVideoComposer, seconds: float, fps: float) -> int:
    """Write ``seconds`` of the composer's frames as MJPG .avi; returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, composer.size)
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot open an MJPG video writer")
    frames = int(round(seconds * fps))
    try:
        for i in range(frames):
            writer.write(composer.frame(i / fps))
    finally:
        writer.release()
    return frames


def write_synthetic_deap(out: str | Path, subjects: int = 2, trials: int = 8, seconds: float = 12.0,
                         strength: float = 1.0, seed: int = 0, video_size: tuple[int, int] = (360, 288),
                         fps: float = 10.0, write_mat: bool = False, video_subjects: int | None = None,
                         missing_videos: dict[int, list[int]] | None = None,
                         progress: Callable[[int, int], None] | None = None) -> SynthDataset:
    """Write a DEAP-layout dataset under ``out``; deterministic for a seed.

    ``seconds`` excludes the 3 s baseline (``seconds=60`` gives DEAP's 8064 samples).
    ``video_subjects``: only subjects 1..N get face video (DEAP: 22); ``missing_videos``:
    subject -> presentation trials whose video is not written; ``progress(trials written, trials)``
    after each trial.
    """
    if subjects < 1 or trials < 1 or seconds <= 0 or fps <= 0 or strength < 0:
        raise DataError(f"synthetic DEAP: bad size (subjects={subjects}, trials={trials}, seconds={seconds}, "
                        f"fps={fps}, strength={strength})")
    root = Path(out)
    (root / "data_preprocessed_python").mkdir(parents=True, exist_ok=True)
    (root / "metadata_csv").mkdir(parents=True, exist_ok=True)
    if write_mat:
        (root / "data_preprocessed_matlab").mkdir(parents=True, exist_ok=True)
    missing_videos = missing_videos or {}
    result = SynthDataset(root=root, seconds=seconds, fps=fps, video_size=tuple(video_size))
    csv_rows = []
    rule = LabelRule()
    for subject in range(1, subjects + 1):
        rng = np.random.default_rng([seed, subject])
        quadrants = _balanced_quadrants(trials, rng)
        order = _presentation_order(quadrants, rng)
        ratings = np.asarray([_ratings(int(q), rng) for q in quadrants], np.float64)
        assert all(rule.apply(v, a) == q for (v, a, _, _), q in zip(ratings, quadrants))
        data = np.stack([synth_trial_eeg(int(q), seconds, strength, rng) for q in quadrants])
        name = f"s{subject:02d}"
        with (root / "data_preprocessed_python" / f"{name}.dat").open("wb") as handle:
            pickle.dump({"labels": ratings, "data": data}, handle, protocol=2)
        if write_mat:
            from scipy import io as sio

            sio.savemat(root / "data_preprocessed_matlab" / f"{name}.mat", {"labels": ratings, "data": data})
        has_video = video_subjects is None or subject <= video_subjects
        for presentation, experiment_index in enumerate(order, start=1):
            quadrant = int(quadrants[experiment_index])
            valence, arousal, dominance, liking = ratings[experiment_index]
            video = None
            if has_video and presentation not in missing_videos.get(subject, []):
                video = root / "face_video" / name / f"{name}_trial{presentation:02d}.avi"
                composer = TrialVideoComposer(quadrant, strength, video_size, rng)
                write_trial_video(video, composer, BASELINE_S + seconds, fps)
            elif has_video:
                (root / "face_video" / name).mkdir(parents=True, exist_ok=True)
            csv_rows.append([subject, presentation, experiment_index + 1, presentation * 100,
                             valence, arousal, dominance, liking, int(rng.integers(1, 6))])
            result.trials.append(SynthTrial(subject, experiment_index + 1, presentation, quadrant,
                                            float(valence), float(arousal), video))
            if progress is not None:
                progress(len(result.trials), subjects * trials)
    with (root / "metadata_csv" / "participant_ratings.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Participant_id", "Trial", "Experiment_id", "Start_time", "Valence", "Arousal",
                         "Dominance", "Liking", "Familiarity"])
        writer.writerows(csv_rows)
    # Says what the folder is, so that reports of runs on it never read as DEAP results (run_data reads it).
    (root / SYNTHETIC_MARKER).write_text(json.dumps({
        "generator": "milmer-train synth", "subjects": subjects, "trials": trials, "seconds": seconds,
        "strength": strength, "seed": seed}, indent=1) + "\n", encoding="utf-8")
    log.info("wrote synthetic DEAP: %d subject(s) x %d trial(s) x %.0f s under %s", subjects, trials, seconds, root)
    return result
