"""What a calibration session shows: N trials (5 per target quadrant by default, shuffled), each a
stimulus (a built-in recall or imagery prompt, a file of the user's own, or "external": experiment
software runs the trial), and the durations of its phases."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from models.contract import QUADRANT_CLASSES
from models.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
QUADRANT_WORDS = {"HAHV": "excited, joyful", "LAHV": "calm, content", "LALV": "sad, tired", "HALV": "angry, afraid"}

# Recall and guided-imagery prompts written for this project (felt states, not posed ones), one set per
# quadrant: High/Low Arousal, High/Low Valence.
PROMPTS: dict[str, tuple[str, ...]] = {
    "HAHV": (
        ("Remember a moment when you heard wonderful news and could hardly sit still. Where were you? "
         "Let the rush of it come back."),
        ("Picture yourself crossing a finish line, or winning something you worked hard for. People cheer. "
         "Feel your heart race with the joy of it."),
        ("Recall a party or a concert where you danced and laughed with friends. Hear the music, see the "
         "faces, feel the energy in the room."),
        ("Imagine opening the door to someone you love and have not seen for years. They run towards you, "
         "laughing."),
        ("Think of the most exciting trip you have taken: the first hour in a new place, everything bright "
         "and new."),
         "Remember a time you surprised someone with a gift that delighted them. See their face light up.",
    ),
    "LAHV": (
        ("Imagine lying in warm grass on a quiet summer afternoon. A light breeze, nothing to do, nowhere "
         "to be."),
         "Remember a slow Sunday morning: a warm drink, soft light through the window, time stretching out.",
         "Picture yourself floating in calm, warm water, looking up at a clear sky. Your breathing slows.",
         "Recall an evening when a long task was finally done and you could rest, satisfied and at ease.",
         "Imagine sitting by a fire with a blanket, listening to rain outside, safe and content.",
         "Think of a gentle walk with someone you trust, talking quietly, in no hurry at all.",
    ),
    "LALV": (
         "Remember saying goodbye to a place or a person you would miss. Let the heaviness of it return.",
         "Picture a grey, empty afternoon with nothing to look forward to. Everything feels slow and dull.",
         "Recall a time you felt left out or alone, watching others from a distance.",
         "Imagine waiting in a cold hospital corridor for news that does not come.",
         "Think of something you lost and could not get back: an object, a chance, a friendship.",
         "Remember a day when you were exhausted and disappointed, and the evening brought no relief.",
    ),
    "HALV": (
        ("Remember a moment when someone treated you unfairly and you could not answer back. Feel the heat "
         "of it."),
         "Imagine you are late for something important, stuck in traffic, every light turning red.",
         "Recall a time you were really frightened: a near accident, a sudden noise at night.",
         "Picture an argument where the other person will not listen and keeps raising their voice.",
         "Imagine walking alone down a dark street and hearing fast footsteps close behind you.",
         "Think of a moment when you were humiliated in front of others and your face burned.",
    ),
}


@dataclass(frozen=True)
class Timings:
    """Seconds of each phase (small values for tests and quick tries)."""

    rest_s: float = 60.0        # the rest baseline before the first trial
    fixation_s: float = 3.0
    stimulus_s: float = 30.0
    washout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("rest_s", "fixation_s", "stimulus_s", "washout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                raise DataError(f"calibration: {name} must be 0..3600 seconds, got {value!r}")
        if self.stimulus_s <= 0:
            raise DataError("calibration: the stimulus period must be longer than 0 s")


@dataclass(frozen=True)
class Stimulus:
    kind: str                   # "prompt" | "image" | "video" | "external"
    text: str                   # the prompt, or what to show as the stimulus' name
    path: Path | None = None    # image or video file

    @property
    def title(self) -> str:
        """What the rating marker records as "stimulus"."""
        if self.path is not None:
            return self.path.name
        return self.text if len(self.text) <= 60 else self.text[:59] + "…"


@dataclass(frozen=True)
class PlannedTrial:
    trial: str                  # the protocol's trial id
    target: str | None          # the quadrant the stimulus aims at (None: not known)
    stimulus: Stimulus


def _ids(plan: list[tuple[str | None, Stimulus]]) -> list[PlannedTrial]:
    return [PlannedTrial(f"t{index + 1:02d}", target, stimulus) for index, (target, stimulus) in enumerate(plan)]


def _per_quadrant(count: int) -> list[int]:
    if count < 1:
        raise DataError(f"calibration: needs at least 1 trial, got {count}")
    base, extra = divmod(count, len(QUADRANT_CLASSES))
    return [base + (1 if i < extra else 0) for i in range(len(QUADRANT_CLASSES))]


def builtin_plan(trials: int = 20, seed: int | None = None) -> list[PlannedTrial]:
    """`trials` prompts, as even over the quadrants as the count allows, shuffled."""
    rng = random.Random(seed)
    chosen: list[tuple[str | None, Stimulus]] = []
    for quadrant, count in zip(QUADRANT_CLASSES, _per_quadrant(trials), strict=True):
        prompts = list(PROMPTS[quadrant])
        rng.shuffle(prompts)
        chosen += [(quadrant, Stimulus("prompt", prompts[i % len(prompts)])) for i in range(count)]
    rng.shuffle(chosen)
    return _ids(chosen)


def external_plan(trials: int = 20) -> list[PlannedTrial]:
    """Experiment software runs the trials and sends the markers; the plan only counts them."""
    return _ids([(None, Stimulus("external", "run by the experiment software"))] * trials)


def folder_plan(folder: Path, targets_csv: Path | None = None, trials: int | None = None,
                seed: int | None = None) -> list[PlannedTrial]:
    """The folder's images and videos (sorted by name, then shuffled), with their target quadrants
    from a CSV of `file,quadrant` rows (a header row is allowed); DataError naming the file and row."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"stimulus folder {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not files:
        raise DataError(f"stimulus folder {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos "
                        f"({', '.join(VIDEO_SUFFIXES)})")
    targets = read_targets(targets_csv, {p.name for p in files}) if targets_csv is not None else {}
    chosen: list[tuple[str | None, Stimulus]] = [
        (targets.get(p.name), Stimulus("video" if p.suffix.lower() in VIDEO_SUFFIXES else "image", p.stem, p))
        for p in files]
    rng = random.Random(seed)
    rng.shuffle(chosen)
    if trials is not None:
        chosen = [chosen[i % len(chosen)] for i in range(trials)]
    return _ids(chosen)


def read_targets(path: Path, names: set[str]) -> dict[str, str]:
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the target quadrants ({exc})") from None
    targets: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells and cells[0].lower() in ("file", "filename", "name")):
            continue
        if len(cells) < 2:
            raise DataError(f"{path} row {number}: expected FILE,QUADRANT, got {','.join(cells)!r}")
        name, quadrant = cells[0], cells[1].upper()
        if quadrant not in QUADRANT_CLASSES:
            raise DataError(f"{path} row {number}: quadrant {cells[1]!r} is not one of {', '.join(QUADRANT_CLASSES)}")
        if name not in names:
            raise DataError(f"{path} row {number}: {name!r} is not an image or video in the stimulus folder")
        targets[name] = quadrant
    return targets
