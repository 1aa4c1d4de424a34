"""What `calibrate` is given, checked before anything heavy loads: the base checkpoint's contract,
the recordings, their channels and their calibration trials.

Everything here reads JSON, markers and file sizes only (no torch, no EEG transform), so an
unusable input (no ratings, too few rated trials, channels that do not map onto the base
contract) stops in well under a second with one line naming the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from models.calibration_protocol import marker_texts, read_calibration
from models.contract import InputContract
from models.errors import CheckpointError, DataError
from models.pipeline.channels import ChannelMap, map_channels
from models.pipeline.labels import LabelRule
from training.recording_files import EEG_FILE, EEG_TS_FILE, RecordingReader

MIN_RATED_TRIALS = 8
DEMO = "demo"
# Reasons a trial is left out, beside the protocol's own ("no trial_end", "unrated", "skipped (unsure)").
ON_THRESHOLD = "rated on the label threshold"
NO_EEG = "without usable EEG"


@dataclass
class CalibrationTrial:
    """One trial of one recording: its span, rating, label and why it is left out (None: used)."""

    recording: int                 # index into CalibrationInputs.recordings
    trial: str                     # the protocol's trial id
    uid: str                       # "RECORDING/ID", unique over all recordings
    start: float
    end: float | None
    valence: float | None
    arousal: float | None
    label: int | None = None
    exclusion: str | None = None
    session: int = 0               # the recording's place in time among the recordings (created_utc)

    @property
    def when(self) -> tuple[int, float]:
        """Order in time: LSL clocks of different sessions are not comparable, so session first."""
        return self.session, self.start


@dataclass
class CalibrationRecording:
    folder: Path
    reader: RecordingReader
    channels: ChannelMap


@dataclass
class CalibrationInputs:
    base: Path                      # checkpoint NAME (without suffix)
    base_label: str                 # as the user named it ("demo" or the path)
    contract: InputContract
    rule: LabelRule
    recordings: list[CalibrationRecording]
    trials: list[CalibrationTrial]
    problems: list[str] = field(default_factory=list)   # protocol markers that broke the rules

    @property
    def usable(self) -> list[CalibrationTrial]:
        return [t for t in self.trials if t.exclusion is None]


def resolve_base(checkpoint: str) -> Path:
    """`demo` -> the shipped demo model; otherwise NAME(.safetensors|.json) -> NAME."""
    if checkpoint == DEMO:
        import resources

        return Path(resources.__file__).resolve().parent / "demo" / "demo_model"
    path = Path(checkpoint)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def read_contract(base: Path) -> InputContract:
    """The base checkpoint's input contract from its JSON (the full check comes when it loads)."""
    json_path = base.with_name(base.name + ".json")
    if not json_path.is_file() or not base.with_name(base.name + ".safetensors").is_file():
        raise CheckpointError(f"{base}: checkpoint not found (NAME.safetensors and NAME.json)")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        return InputContract.from_dict(meta["contract"])
    except CheckpointError as exc:
        raise CheckpointError(f"{json_path}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{json_path}: unreadable checkpoint metadata ({type(exc).__name__}: {exc})") from None


def _on_threshold(rule: LabelRule, valence: float, arousal: float) -> bool:
    t = rule.threshold
    if rule.kind == "valence":
        return valence == t
    if rule.kind == "arousal":
        return arousal == t
    return valence == t or arousal == t


def check_inputs(recordings: list[str], checkpoint: str, min_rated: int = MIN_RATED_TRIALS) -> CalibrationInputs:
    """Read and check everything `calibrate` needs before training; DataError/CheckpointError/SourceError
    (one line) when the input cannot be used."""
    base = resolve_base(checkpoint)
    contract = read_contract(base)
    rule = LabelRule.from_dict(contract.label_rule)
    inputs = CalibrationInputs(base, checkpoint, contract, rule, [], [])
    seen_names: dict[str, int] = {}
    for folder_text in recordings:
        folder = Path(folder_text)
        if not folder.is_dir():
            raise DataError(f"recording {folder}: no such folder")
        reader = RecordingReader(folder)
        names = reader.channel_names
        if not names or reader.srate <= 0:
            raise DataError(f"recording {folder}: holds no EEG (meta.json names no channels or rate)")
        channels = map_channels(names, list(contract.eeg_channels), f"recording {folder}")
        index = len(inputs.recordings)
        inputs.recordings.append(CalibrationRecording(folder, reader, channels))
        eeg_span = _eeg_span(reader)
        name = folder.resolve().name
        seen_names[name] = seen_names.get(name, 0) + 1
        if seen_names[name] > 1:
            name = f"{name}#{seen_names[name]}"
        log = read_calibration(marker_texts(reader.markers()))
        inputs.problems += [f"recording {folder}: {problem}" for problem in log.problems]
        for marked in log.trials:
            rating = marked.rating
            trial = CalibrationTrial(index, marked.trial, f"{name}/{marked.trial}", marked.start, marked.end,
                                     rating.valence if rating else None, rating.arousal if rating else None)
            trial.exclusion = marked.exclusion
            if trial.exclusion is None:
                assert trial.valence is not None and trial.arousal is not None and trial.end is not None
                if _on_threshold(rule, trial.valence, trial.arousal):
                    trial.exclusion = ON_THRESHOLD
                elif eeg_span is None or trial.start < eeg_span[0] or trial.end > eeg_span[1]:
                    trial.exclusion = f"{NO_EEG} (its span is not covered by the recording's EEG)"
                elif trial.end - trial.start < contract.window_seconds:
                    trial.exclusion = f"{NO_EEG} (shorter than one {contract.window_seconds:g} s window)"
                else:
                    trial.label = rule.apply(trial.valence, trial.arousal)
            inputs.trials.append(trial)
    sessions = sorted(range(len(inputs.recordings)),
                      key=lambda i: (str(inputs.recordings[i].reader.meta.get("created_utc") or ""), i))
    for trial in inputs.trials:
        trial.session = sessions.index(trial.recording)
    _check_enough(inputs, min_rated)
    return inputs


def _eeg_span(reader: RecordingReader) -> tuple[float, float] | None:
    """First and last EEG timestamp, read without loading the samples."""
    import numpy as np

    path = reader.folder / EEG_TS_FILE
    channels = len(reader.channel_names)
    data = reader.folder / EEG_FILE
    if not path.is_file() or not data.is_file():
        return None
    count = min(path.stat().st_size // 8, data.stat().st_size // (4 * channels))
    if count == 0:
        return None
    stamps = np.memmap(path, dtype="<f8", mode="r", shape=(path.stat().st_size // 8,))
    return float(stamps[0]), float(stamps[count - 1])


def exclusion_counts(trials: list[CalibrationTrial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.exclusion is not None:
            reason = trial.exclusion.split(" (")[0]
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def _check_enough(inputs: CalibrationInputs, min_rated: int) -> None:
    folders = ", ".join(str(r.folder) for r in inputs.recordings)
    if not inputs.trials:
        raise DataError(f"{folders}: no calibration trials (no trial_start markers of the calibration protocol)",
                        hint="record a calibration session (the window's Calibrate wizard, or markers from the "
                             "experiment software as README's calibration protocol says)")
    usable = inputs.usable
    excluded = exclusion_counts(inputs.trials)
    why = "; ".join(f"{count} {reason}" for reason, count in excluded.items())
    if not any(t.valence is not None for t in inputs.trials):
        raise DataError(f"{folders}: no ratings: none of the {len(inputs.trials)} calibration trials was rated")
    if len(usable) < min_rated:
        raise DataError(f"{folders}: {len(usable)} usable rated trial(s), at least {min_rated} needed "
                        f"({len(inputs.trials)} trial(s) marked{'; left out: ' + why if why else ''})")
    if len({t.label for t in usable}) < 2:
        raise DataError(f"{folders}: every usable trial was rated in one class "
                        f"({inputs.rule.class_names[usable[0].label]}); calibration needs at least two")
