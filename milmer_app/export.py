"""milmer-app --export RECORDING FILE: a recording's EEG as FIF or EDF, through MNE.

Samples are written back to back at the nominal rate; events and markers become
annotations, and gaps in the timestamps (a stream that was lost) become "BAD_gap"
annotations at the place they occurred.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from milmer_app.recording import RecordingReader
from models.errors import DataError

log = logging.getLogger(__name__)


def recording_to_raw(folder: Path):
    import mne

    reader = RecordingReader(folder)
    data, stamps = reader.eeg()
    if data.shape[1] == 0:
        raise DataError(f"{folder}: the recording holds no EEG samples")
    srate = reader.srate
    info = mne.create_info(reader.channel_names, srate, ch_types="eeg")
    raw = mne.io.RawArray(data.astype(np.float64) * 1e-6, info, verbose="error")
    onsets, durations, descriptions = [], [], []
    period = 1.0 / srate
    steps = np.diff(stamps)
    for i in np.flatnonzero(steps > 3 * period):
        onsets.append((i + 1) / srate)
        durations.append(0.0)
        descriptions.append(f"BAD_gap {steps[i]:.3f} s")
    for marker in reader.markers():
        position = int(np.searchsorted(stamps, float(marker.get("timestamp", stamps[0]))))
        onsets.append(min(position, len(stamps) - 1) / srate)
        durations.append(0.0)
        descriptions.append(str(marker.get("text", ""))[:200])
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, durations, descriptions))
    return raw


def export_recording(folder: Path, target: Path) -> Path:
    import mne

    raw = recording_to_raw(folder)
    suffix = target.suffix.lower()
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".fif" or target.name.endswith(".fif.gz"):
        raw.save(target, overwrite=True, verbose="error")
    elif suffix == ".edf":
        mne.export.export_raw(target, raw, fmt="edf", overwrite=True, verbose="error")
    else:
        raise DataError(f"{target}: unknown export format '{suffix}'", hint="use a .fif or .edf file name")
    log.info("exported %d channels x %.1f s to %s", len(raw.ch_names), raw.times[-1], target)
    return target


def run(args: argparse.Namespace) -> int:
    recording, target = args.export
    export_recording(Path(recording), Path(target))
    return 0
