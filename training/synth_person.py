"""Simulated people for calibration: milmer_app recordings with the calibration protocol's markers.

A simulated person sits a calibration session: a rest period, then trials of
fixation (2 s) -> ``trial_start`` -> stimulus period -> ``trial_end`` -> rating (2 s later)
-> washout (3 s). The recording is written in the app's format (``meta.json``, ``eeg.f32``
+ ``eeg_ts.f64``, ``frames.mjpg`` + ``frames.idx``, ``markers.jsonl``), so that
``milmer-train calibrate`` and ``milmer-app --eeg recording:DIR`` read it like a real one.

The EEG is raw, as an amplifier sends it: pink background, per-electrode DC offsets and
drift (which the contract's transform removes), channels in another order than the model's.
During the stimulus period a person codes valence and arousal as rhythms (wandering phase,
as in `training.synth`) but their own way:

- ``inverted``: valence in temporal/central electrodes with the synthetic subjects' frequencies
  swapped (high valence 21.7 Hz, low 10.3 Hz), arousal in frontal electrodes swapped too
  (high 6.6 Hz, low 14.2 Hz). A model trained on `training.synth` subjects reads every
  quadrant as its opposite.
- ``no_information``: the same kind of rhythms with frequencies drawn at random, unrelated
  to what the person rates.
- ``missing_quadrant``: ``inverted``, but the person never feels (nor rates) LALV.

The face is the same neutral portrait in every trial (no cue).
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models import strict_json
from models.calibration_protocol import MARKER_KIND, rating_text, trial_end_text, trial_start_text
from models.contract import GENEVA_CHANNELS, QUADRANT_CLASSES
from models.errors import DataError
from training.recording_files import (
    EEG_DTYPE,
    EEG_FILE,
    EEG_TS_FILE,
    FRAMES_FILE,
    FRAMES_INDEX,
    MARKERS_FILE,
    META_FILE,
    PREDICTIONS_FILE,
    STAMP_DTYPE,
    frame_index_row,
    new_meta,
)
from training.synth import SRATE, TrialVideoComposer, pink_noise, wandering_rhythm

log = logging.getLogger(__name__)

FIXATION_S, RATING_DELAY_S, WASHOUT_S = 2.0, 2.0, 3.0


@dataclass(frozen=True)
class EmotionCode:
    """How one dimension shows in the EEG: a rhythm on these electrodes, its frequency by high/low."""

    electrodes: tuple[str, ...]
    high_hz: float
    low_hz: float


@dataclass(frozen=True)
class SimulatedPerson:
    name: str
    valence: EmotionCode | None          # None: no information (rhythms at random frequencies)
    arousal: EmotionCode | None
    never_rates: int | None = None       # a quadrant this person never feels nor rates
    strength: float = 1.0

    @property
    def quadrants(self) -> list[int]:
        return [q for q in range(4) if q != self.never_rates]


_VALENCE_SITES = ("T7", "C3", "CP5", "FC5", "T8", "C4", "CP6", "FC6")
_AROUSAL_SITES = ("Fp1", "AF3", "F3", "Fz", "Fp2", "AF4", "F4")
_INVERTED = dict(valence=EmotionCode(_VALENCE_SITES, high_hz=21.7, low_hz=10.3),
                 arousal=EmotionCode(_AROUSAL_SITES, high_hz=6.6, low_hz=14.2))
PERSONS = {
    "inverted": SimulatedPerson("inverted", **_INVERTED),
    "no_information": SimulatedPerson("no_information", valence=None, arousal=None),
    "missing_quadrant": SimulatedPerson("missing_quadrant", never_rates=2, **_INVERTED),
}


@dataclass
class SimulatedTrial:
    trial: str
    quadrant: int | None       # what the person felt (None: skipped or unrated trials still feel one)
    start: float
    end: float
    valence: float | None
    arousal: float | None
    kind: str = "rated"        # rated | skipped | tie | unrated


@dataclass
class SimulatedRecording:
    folder: Path
    person: SimulatedPerson
    trials: list[SimulatedTrial] = field(default_factory=list)

    def truth_at(self, time: float) -> int | None:
        """The quadrant felt at LSL time `time` (None outside stimulus periods)."""
        for trial in self.trials:
            if trial.start <= time <= trial.end:
                return trial.quadrant
        return None


def _rating(high: bool, rng: np.random.Generator) -> float:
    return float(np.round(rng.uniform(5.5, 9.0) if high else rng.uniform(1.0, 4.5), 2))


def _rhythm_hz(code: EmotionCode | None, high: bool, rng: np.random.Generator) -> tuple[tuple[str, ...], float]:
    if code is None:   # no information: a frequency from either list, whatever the person feels
        code = _INVERTED["valence"] if rng.random() < 0.5 else _INVERTED["arousal"]
        high = bool(rng.random() < 0.5)
    return code.electrodes, (code.high_hz if high else code.low_hz) + rng.uniform(-0.4, 0.4)


def _marker(timestamp: float, text: str) -> dict:
    """A markers.jsonl record of a data marker, as the app records one from a marker stream."""
    return {"timestamp": timestamp, "text": text, "kind": MARKER_KIND, "stream": "simulated experiment"}


def write_person_recording(out: str | Path, person: SimulatedPerson | str = "inverted", trials: int = 20,
                           trial_seconds: float = 30.0, seed: int = 0, rest_s: float = 5.0, fps: float = 10.0,
                           video_size: tuple[int, int] = (240, 192), skipped: int = 0, ties: int = 0,
                           unrated: int = 0, start_lsl: float = 1000.0, video: bool = True) -> SimulatedRecording:
    """Write one calibration session of `person` to the recording folder `out`; deterministic for a seed.

    `trials` rated trials, balanced over the quadrants the person feels and shuffled; `skipped`,
    `ties` (valence rated exactly 5) and `unrated` trials are added near the start.
    """
    if isinstance(person, str):
        if person not in PERSONS:
            raise DataError(f"unknown simulated person {person!r}; known: {', '.join(PERSONS)}")
        person = PERSONS[person]
    if trials < 0 or trial_seconds < 3 or fps <= 0:
        raise DataError(f"simulated person: bad size (trials={trials}, trial_seconds={trial_seconds}, fps={fps})")
    folder = Path(out)
    if (folder / META_FILE).exists():
        raise DataError(f"{folder} already holds a recording")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x5E5])
    felt = np.resize(np.asarray(person.quadrants), trials)
    rng.shuffle(felt)
    kinds = ["rated"] * trials
    for kind, count in (("skipped", skipped), ("tie", ties), ("unrated", unrated)):
        for _ in range(count):
            position = min(len(kinds), 1 + 2 * sum(k != "rated" for k in kinds))
            kinds.insert(position, kind)
    extra = iter(rng.choice(person.quadrants, size=len(kinds) - trials))
    felt_iter = iter(felt)
    quadrants = [int(next(felt_iter)) if kind == "rated" else int(next(extra)) for kind in kinds]

    period = FIXATION_S + trial_seconds + RATING_DELAY_S + WASHOUT_S
    total_s = rest_s + len(kinds) * period
    samples = int(round(total_s * SRATE))
    names = list(GENEVA_CHANNELS)
    eeg = pink_noise((len(names), samples), rng) * rng.uniform(10.0, 30.0, (len(names), 1))
    drift = np.cumsum(rng.normal(0.0, 0.5, (len(names), samples)), axis=1)
    eeg += rng.uniform(-300.0, 300.0, (len(names), 1)) + drift   # electrode offsets and drift, in uV
    markers: list[dict] = [_marker(start_lsl + 0.5, "rest")]
    recording = SimulatedRecording(folder, person)
    for index, (kind, quadrant) in enumerate(zip(kinds, quadrants)):
        trial_id = f"t{index + 1:02d}"
        start = rest_s + index * period + FIXATION_S
        end = start + trial_seconds
        first, last = int(round(start * SRATE)), int(round(end * SRATE))
        for code, high in ((person.valence, quadrant in (0, 1)), (person.arousal, quadrant in (0, 3))):
            electrodes, hz = _rhythm_hz(code, high, rng)
            for name in electrodes:
                amplitude = 15.0 * person.strength * rng.uniform(0.8, 1.2)
                eeg[names.index(name), first:last] += amplitude * wandering_rhythm(hz, last - first, rng)
        valence, arousal = _rating(quadrant in (0, 1), rng), _rating(quadrant in (0, 3), rng)
        if kind == "tie":
            valence = 5.0
        markers.append(_marker(start_lsl + start, trial_start_text(trial_id)))
        markers.append(_marker(start_lsl + end, trial_end_text(trial_id)))
        if kind != "unrated":
            text = rating_text(trial_id, valence, arousal, f"recall {QUADRANT_CLASSES[quadrant]}", kind == "skipped")
            markers.append(_marker(start_lsl + end + RATING_DELAY_S, text))
        recording.trials.append(SimulatedTrial(trial_id, quadrant, start_lsl + start, start_lsl + end,
                                               None if kind in ("unrated",) else valence,
                                               None if kind in ("unrated",) else arousal, kind))

    # The amplifier's channel order is not the model's.
    order = np.argsort([name.lower() for name in names], kind="stable")
    device_names = [names[i] for i in order]
    _write_folder(folder, device_names, eeg[order], start_lsl, markers, person, video, fps, video_size, rng)
    log.info("simulated person %s: %d trial(s) x %.0f s written to %s", person.name, len(kinds), trial_seconds,
             folder)
    return recording


def _write_folder(folder: Path, channels: list[str], eeg: np.ndarray, start_lsl: float, markers: list[dict],
                  person: SimulatedPerson, video: bool, fps: float, video_size: tuple[int, int],
                  rng: np.random.Generator) -> None:
    samples = eeg.shape[1]
    meta = new_meta(_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC).isoformat(timespec="seconds"), start_lsl,
                    {"channels": channels, "srate": float(SRATE), "units": "uV",
                     "source": f"simulated person {person.name}", "source_unit": "uV",
                     "source_unit_origin": "source", "already_filtered": None, "already_referenced": False},
                    {"source": f"simulated person {person.name}", "fps": fps} if video else None, {})
    strict_json.write_atomic(folder / META_FILE, meta)
    np.ascontiguousarray(eeg.T, dtype=EEG_DTYPE).tofile(folder / EEG_FILE)
    (start_lsl + np.arange(samples) / SRATE).astype(STAMP_DTYPE).tofile(folder / EEG_TS_FILE)
    (folder / MARKERS_FILE).write_text("".join(strict_json.dumps(m) + "\n" for m in markers), encoding="utf-8")
    (folder / PREDICTIONS_FILE).write_bytes(b"")
    if not video:
        return
    composer = TrialVideoComposer(0, 0.0, video_size, rng)   # strength 0: the neutral face
    count = int(samples / SRATE * fps)
    offset = 0
    with (folder / FRAMES_FILE).open("wb") as data, (folder / FRAMES_INDEX).open("wb") as index:
        for i in range(count):
            ok, jpeg = cv2.imencode(".jpg", composer.frame(i / fps), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise DataError(f"{folder}: JPEG encoding failed")
            blob = jpeg.tobytes()
            data.write(blob)
            index.write(frame_index_row(start_lsl + i / fps, offset, len(blob)))
            offset += len(blob)
