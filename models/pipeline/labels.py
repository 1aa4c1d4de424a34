"""Label rules: valence/arousal ratings (1-9) to class indices."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from models.contract import QUADRANT_CLASSES
from models.errors import DataError

_KINDS = ("quadrant", "valence", "arousal")


@dataclass(frozen=True)
class LabelRule:
    """``quadrant``: the published numbering and tie rule; ``valence``/``arousal``: 1 if rating > threshold.

    Quadrants, in the order the published code tests them:
    0 HAHV if v > t and a > t; 1 LAHV if v >= t and a < t; 2 LALV if v < t and a < t;
    3 HALV otherwise, which also takes every tie the first three miss (a == t, or v == t with a > t).
    Binary rules: a rating equal to the threshold is low (class 0).
    """

    kind: str = "quadrant"
    threshold: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise DataError(f"unknown label rule {self.kind!r}; expected one of {', '.join(_KINDS)}")

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.kind == "quadrant":
            return QUADRANT_CLASSES
        return (f"low {self.kind}", f"high {self.kind}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def apply(self, valence: float, arousal: float) -> int:
        return int(self.apply_many(np.asarray([valence]), np.asarray([arousal]))[0])

    def apply_many(self, valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
        v = np.asarray(valence, dtype=np.float64)
        a = np.asarray(arousal, dtype=np.float64)
        t = self.threshold
        if self.kind == "valence":
            return (v > t).astype(np.int64)
        if self.kind == "arousal":
            return (a > t).astype(np.int64)
        quadrants = [(v > t) & (a > t), (v >= t) & (a < t), (v < t) & (a < t)]
        return np.select(quadrants, [0, 1, 2], default=3).astype(np.int64)

    def to_dict(self) -> dict:
        return {**asdict(self), "ties": "quadrant: published rule (see LabelRule); binary: rating == threshold is low"}

    @classmethod
    def from_dict(cls, data: dict) -> LabelRule:
        return cls(kind=data.get("kind", "quadrant"), threshold=float(data.get("threshold", 5.0)))
