"""The trials' windows, as the live app would feed them: EEG through the contract's transform, face
crops from the same span.

EEG: the recording's channels mapped onto the contract's, each gap-free segment through
`models.pipeline.eeg.offline_eeg` (the offline form of the live `StreamingEEG`: offset high-pass,
resampling, band-pass), then per window the live checks (NaN/Inf near the window, flat channels
masked) and the average reference over the channels in use, as `StreamingEEG.window` does.
Windows lie inside their trial's span, `hop_s` apart. Faces: for each window, `num_instances`
times spread over it; each takes the nearest recorded frame (within half a spacing plus a frame
period), cropped by the contract's `FaceCropper`; no frame or no face masks the instance. Each
frame is read and cropped once, however many windows share it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.pipeline.eeg import EEGTransform, offline_eeg
from models.pipeline.faces import FaceCropper
from models.pipeline.streaming import SignalChecks
from training.calibration.budget import TimeBudget
from training.calibration.inputs import NO_EEG, CalibrationInputs, CalibrationRecording, CalibrationTrial

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class CalibrationWindows:
    eeg: np.ndarray            # (W, C, T) float32
    eeg_mask: np.ndarray       # (W, C) bool
    frame_ids: np.ndarray      # (W, N) int: row of `crops`, -1 = masked
    crops: np.ndarray          # (F, S, S, 3) uint8 RGB
    labels: np.ndarray         # (W,) int
    trial_of: np.ndarray       # (W,) int: index into `trials`
    trials: list[CalibrationTrial] = field(default_factory=list)
    frames_searched: int = 0   # recorded frames looked at for a face

    def of_trials(self, trials: list[CalibrationTrial]) -> np.ndarray:
        wanted = {id(t) for t in trials}
        return np.flatnonzero([id(self.trials[i]) in wanted for i in self.trial_of])

    @property
    def face_mask(self) -> np.ndarray:
        return self.frame_ids >= 0


def _segments(stamps: np.ndarray, rate: float) -> list[slice]:
    """Gap-free runs of samples (a gap: more than 1.5 sample periods, or time running backwards)."""
    steps = np.diff(stamps)
    breaks = np.flatnonzero((steps > 1.5 / rate) | (steps <= 0)) + 1
    edges = [0, *breaks.tolist(), len(stamps)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _hold_non_finite(data: np.ndarray) -> np.ndarray:
    """NaN/Inf replaced by the channel's last finite value (0 before any), as the live transform holds them."""
    bad = ~np.isfinite(data)
    for c in np.flatnonzero(bad.any(axis=1)):
        good = ~bad[c]
        last = np.maximum.accumulate(np.where(good, np.arange(len(good)), -1))
        data[c] = np.where(last >= 0, data[c, np.maximum(last, 0)], 0.0)
    return data


@dataclass
class _Segment:
    out: np.ndarray            # (C, T') transformed, not yet referenced
    times: np.ndarray          # (T',) LSL time of each output sample
    bad_times: np.ndarray      # (n_bad,) LSL times of input samples with NaN/Inf ...
    bad_rows: np.ndarray       # (n_bad, C) ... and which channels had them


class _RecordingEEG:
    """One recording's EEG in the contract's channels and rate: transformed gap-free segments."""

    def __init__(self, recording: CalibrationRecording, inputs: CalibrationInputs):
        contract = inputs.contract
        raw, stamps = recording.reader.eeg()
        mapped = recording.channels.apply(raw).astype(np.float64)   # absent channels: zeros
        meta = recording.reader.meta.get("eeg") or {}
        filtered = meta.get("already_filtered")
        transform = EEGTransform.from_contract(contract)
        self.mask = recording.channels.mask
        self.referencing = transform.needs_reference(bool(meta.get("already_referenced", False)))
        rate = recording.reader.srate
        up, down, _ = transform.resampler_taps(rate)
        self.segments: list[_Segment] = []
        for part in _segments(stamps, rate):
            data = mapped[:, part]
            bad = ~np.isfinite(data)
            # Reference later, per window, over the channels in use (as StreamingEEG.window does).
            out = offline_eeg(_hold_non_finite(data.copy()), rate, transform,
                              tuple(filtered) if filtered else None, already_referenced=True)
            times = np.interp(np.arange(out.shape[1]) * (down / up), np.arange(data.shape[1]), stamps[part])
            columns = bad.any(axis=0)
            self.segments.append(_Segment(out, times, stamps[part][columns], bad[:, columns].T))

    def window(self, start: float, samples: int, checks: SignalChecks) -> tuple[np.ndarray, np.ndarray] | None:
        """The window of `samples` output samples from the first at or after `start`, checked and referenced."""
        for segment in self.segments:
            times = segment.times
            if not times[0] <= start <= times[-1]:
                continue
            first = int(np.searchsorted(times, start - 1e-9))
            if first + samples > segment.out.shape[1]:
                return None
            eeg = segment.out[:, first:first + samples].copy()
            mask = self.mask.copy()
            near = (segment.bad_times >= times[first] - checks.non_finite_reach_s) & \
                (segment.bad_times <= times[first + samples - 1])
            mask &= ~segment.bad_rows[near].any(axis=0)
            mask &= eeg.std(axis=1) >= checks.flat_uv
            eeg[~mask] = 0.0
            if self.referencing and mask.any():
                eeg[mask] -= eeg[mask].mean(axis=0, keepdims=True)
            return eeg.astype(np.float32), mask
        return None


def cut_windows(inputs: CalibrationInputs, hop_s: float, progress: Progress | None = None,
                checks: SignalChecks = SignalChecks(), min_fraction: float = 0.25,
                faces: bool = True, budget: TimeBudget | None = None) -> CalibrationWindows:
    """Every window of every usable trial; trials none of whose windows has enough usable EEG are
    marked excluded (`NO_EEG`) in `inputs.trials`. `faces=False` (a model without a face path):
    no frame is read, every instance masked. `budget`: raises `BudgetError` when a recording's EEG
    transform cannot start or its face detection cannot end in time."""
    contract = inputs.contract
    samples = contract.window_samples
    n = contract.num_instances
    needed = max(1, math.ceil(min_fraction * len(contract.eeg_channels)))
    # The detector the live app runs (the bundled default), following the face as the app does.
    cropper = FaceCropper(contract.face_size, contract.face_expand)
    eeg, masks, frame_ids, labels, trial_of = [], [], [], [], []
    crops: list[np.ndarray] = []
    trials: list[CalibrationTrial] = []
    searched = 0
    for index, recording in enumerate(inputs.recordings):
        mine = [t for t in inputs.usable if t.recording == index]
        if not mine:
            continue
        if progress:
            progress(f"{recording.folder}: EEG through the contract's transform")
        if budget is not None:
            budget.check(f"{recording.folder.name}: EEG through the contract's transform")
        signal = _RecordingEEG(recording, inputs)
        frames = recording.reader.frame_index() if faces else np.zeros((0, 3))
        crop_of_row: dict[int, int] = {}
        pending: list[tuple[int, list[int]]] = []   # (window position, frame rows or -1)
        for trial in mine:
            assert trial.end is not None and trial.label is not None
            count_before = len(eeg)
            start = trial.start
            while start + contract.window_seconds <= trial.end + 1e-6:
                window = signal.window(start, samples, checks)
                if window is not None and int(window[1].sum()) >= needed:
                    eeg.append(window[0])
                    masks.append(window[1])
                    labels.append(trial.label)
                    trial_of.append(len(trials))
                    pending.append((len(eeg) - 1, _frame_rows(frames, start, contract.window_seconds, n)))
                start += hop_s
            if len(eeg) == count_before:
                trial.exclusion = f"{NO_EEG} (fewer than {needed} usable channels in every window)"
            else:
                trials.append(trial)
        wanted = sorted({row for _, rows in pending for row in rows if row >= 0})
        searched += len(wanted)
        if progress and wanted:
            progress(f"{recording.folder}: finding faces in {len(wanted)} frames")
        if wanted:
            clock = None if budget is None else \
                budget.stage(f"{recording.folder.name}: finding faces", len(wanted), "frames")
            tracker = cropper.tracker()
            rows = iter(wanted)
            for stamp, image in recording.reader.read_frames(frames[wanted]):
                # Frames that do not decode are skipped by the reader: pair each image by its stamp.
                row = next(r for r in rows if frames[r, 0] == stamp)
                _, crop = cropper.crop_tracked(tracker, image, stamp)
                if crop is not None and crop.usable:
                    crop_of_row[row] = len(crops)
                    crops.append(crop.image)
                if clock is not None:
                    clock.advance()
        ids = np.full((len(eeg) - len(frame_ids), n), -1, np.int64)
        offset = len(frame_ids)
        for position, rows in pending:
            ids[position - offset] = [crop_of_row.get(row, -1) for row in rows]
        frame_ids.extend(ids)
    size = contract.face_size
    return CalibrationWindows(
        eeg=np.stack(eeg) if eeg else np.zeros((0, len(contract.eeg_channels), samples), np.float32),
        eeg_mask=np.stack(masks) if masks else np.zeros((0, len(contract.eeg_channels)), bool),
        frame_ids=np.asarray(frame_ids, np.int64).reshape(-1, n),
        crops=np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        labels=np.asarray(labels, np.int64), trial_of=np.asarray(trial_of, np.int64), trials=trials,
        frames_searched=searched)


def _frame_rows(frames: np.ndarray, start: float, window_s: float, n: int) -> list[int]:
    """Row of `frames` (frame index) nearest each instance time of the window, -1 when none is near."""
    if len(frames) == 0:
        return [-1] * n
    stamps = frames[:, 0]
    spacing = window_s / n
    period = float(np.median(np.diff(stamps))) if len(stamps) > 1 else spacing
    rows = []
    for time in start + (np.arange(n) + 0.5) * spacing:
        i = int(np.searchsorted(stamps, time))
        near = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        best = min(near, key=lambda j: abs(stamps[j] - time))
        rows.append(best if abs(stamps[best] - time) <= spacing / 2 + period else -1)
    return rows
