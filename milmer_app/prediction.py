"""One prediction of the live engine and its JSON-lines record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    window_start: float            # LSL clock seconds: the first and last EEG sample of the window
    window_end: float
    emitted: float
    quadrant: int                  # the predicted class index
    label: str
    probabilities: list[float]
    instance_weights: list[float]
    face_mask: list[bool]
    latency: float                 # emitted - window_end (so it includes `delay`)
    truth: int | None
    demo_model: bool
    crops: np.ndarray | None = field(default=None, repr=False)   # (N, S, S, 3) RGB uint8, not in JSON
    model: str = ""
    eeg_channels_used: int = 0
    source: str = ""               # what was replayed, e.g. "s01 trial 3 (experiment 17)"
    delay: float = 0.0             # the EEG pipeline's delay: newest sample received - window_end
    eeg_channels_masked: list[str] = field(default_factory=list)   # model channels not fed (absent or bad)
    eeg: np.ndarray | None = field(default=None, repr=False)        # (C, T) float32 as fed, not in JSON
    eeg_mask: np.ndarray | None = field(default=None, repr=False)   # (C,) bool as fed, not in JSON
    media_time: tuple[float, float] | None = None   # replays: the window in seconds from the item's start
    # Per instance: face_px, sharpness, detector score (NaN: no crop), and why an instance was masked.
    face_quality: np.ndarray | None = field(default=None, repr=False)   # (N, 3) float32, in JSON as face_quality
    face_problems: list[str | None] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "window_start": round(self.window_start, 6),
            "window_end": round(self.window_end, 6),
            "emitted": round(self.emitted, 6),
            "latency": round(self.latency, 6),
            "delay": round(self.delay, 6),
            "quadrant": self.quadrant,
            "label": self.label,
            "probabilities": [round(p, 6) for p in self.probabilities],
            "instance_weights": [round(w, 6) for w in self.instance_weights],
            "face_mask": self.face_mask,
            "eeg_channels_used": self.eeg_channels_used,
            "eeg_channels_masked": list(self.eeg_channels_masked),
            "model": "demo" if self.demo_model else self.model,
            "demo_model": self.demo_model,
        }
        if self.face_quality is not None:
            record["face_quality"] = [None if not np.isfinite(q).all() else
                                      {"face_px": int(q[0]), "sharpness": round(float(q[1]), 1),
                                       "score": round(float(q[2]), 3)} for q in self.face_quality]
        if self.truth is not None:
            record["truth"] = self.truth
        if self.source:
            record["source"] = self.source
        if self.media_time is not None:
            record["media_time"] = [round(self.media_time[0], 6), round(self.media_time[1], 6)]
        return record
