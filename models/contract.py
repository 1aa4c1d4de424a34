"""The input contract: what the live app must do to raw signals to match training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.config import MilmerConfig, field_type_problems
from models.errors import CheckpointError, DataError
from models.pipeline.face_detector_spec import DetectorSpec

# The 32 DEAP EEG electrodes in Geneva order (rows 0-31 of the preprocessed files).
GENEVA_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
QUADRANT_CLASSES: tuple[str, ...] = ("HAHV", "LAHV", "LALV", "HALV")


@dataclass(frozen=True)
class InputContract:
    """Preprocessing a checkpoint was trained with; the app reproduces it on live data."""

    eeg_channels: tuple[str, ...]
    sampling_rate: float
    window_seconds: float
    filter_band: tuple[float, float] | None
    reference: str
    # The face detector's name, version and thresholds (DetectorSpec.to_dict()); a bare name ("haar",
    # as checkpoints before CenterFace stored it) is read as that detector's settings of this version.
    face_detector: dict[str, Any]
    face_expand: float
    face_size: int
    num_instances: int
    class_names: tuple[str, ...] = QUADRANT_CLASSES
    label_rule: dict[str, Any] = field(default_factory=lambda: {"kind": "quadrant", "threshold": 5.0,
                                                                 "ties": "published"})
    # Seconds the face video starts after the EEG (frame time = EEG time - video_offset); the
    # same value is used by prepare, training and replay.
    video_offset: float = 0.0
    # The EEG transform (models.pipeline.eeg.EEGTransform), applied to raw signals offline and live:
    # 1. offset/drift removal at the source rate, before resampling: a causal Butterworth high-pass
    #    of `dc_highpass_order` at `dc_highpass_hz` started in its steady state (0 Hz: none);
    # 2. polyphase resampling to `sampling_rate` with scipy's resample_poly filter: Kaiser window of
    #    beta `resample_kaiser_beta`, half length `resample_half_width` x max(up, down);
    # 3. the band-pass `filter_band`: a `filter_kind` FIR ("fir": scipy firwin) of `filter_taps` taps,
    #    window `filter_window`, -6 dB at `filter_cutoffs` Hz (default: the band's edges, where a
    #    zero-phase Butterworth band-pass has its -6 dB points), `filter_phase` "linear": applied
    #    zero-phase offline, live with a delay of (taps - 1) / 2 samples;
    # 4. `reference`.
    # Checkpoints older than these fields were trained on already-filtered data (DEAP's preprocessed
    # files or synthetic data in their layout), which training reads as is; they get these defaults.
    filter_kind: str = "fir"
    filter_window: str = "hamming"
    filter_taps: int = 97
    filter_cutoffs: tuple[float, float] | None = None     # None: filter_band
    filter_phase: str = "linear"
    dc_highpass_hz: float = 0.1
    dc_highpass_order: int = 2
    resample_kaiser_beta: float = 5.0
    resample_half_width: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.face_detector, (str, DetectorSpec)):
            try:
                object.__setattr__(self, "face_detector", DetectorSpec.from_value(self.face_detector).to_dict())
            except DataError as exc:
                raise ValueError(str(exc)) from exc
        problems = field_type_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        # JSON gives lists; keep tuples so contracts compare and hash the same either way.
        object.__setattr__(self, "eeg_channels", tuple(self.eeg_channels))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.filter_band is not None:
            object.__setattr__(self, "filter_band", tuple(float(f) for f in self.filter_band))
            if self.filter_cutoffs is None:
                object.__setattr__(self, "filter_cutoffs", self.filter_band)
        if self.filter_cutoffs is not None:
            object.__setattr__(self, "filter_cutoffs", tuple(float(f) for f in self.filter_cutoffs))
        if self.reference not in ("average", "none"):
            raise ValueError(f"reference={self.reference!r} must be 'average' or 'none'")
        if self.filter_kind != "fir" or self.filter_phase != "linear":
            raise ValueError(f"filter {self.filter_kind!r} with {self.filter_phase!r} phase is not supported "
                             "(this version knows filter_kind 'fir', filter_phase 'linear')")
        if self.filter_taps < 3 or self.filter_taps % 2 == 0:
            raise ValueError(f"filter_taps={self.filter_taps} must be odd and at least 3 (a linear-phase FIR)")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sampling_rate))

    @classmethod
    def for_deap(cls, config: MilmerConfig) -> InputContract:
        """DEAP preprocessed data: 32 Geneva-order channels at 128 Hz, 3 s windows, 4-45 Hz, average reference."""
        return cls(
            eeg_channels=GENEVA_CHANNELS[: config.eeg_channels],
            sampling_rate=128.0,
            window_seconds=config.eeg_samples / 128.0,
            filter_band=(4.0, 45.0),
            reference="average",
            face_detector=DetectorSpec().to_dict(),
            face_expand=0.10,
            face_size=config.image_size,
            num_instances=config.num_instances,
        )

    def check_matches(self, config: MilmerConfig) -> None:
        """Raise CheckpointError when this contract cannot feed a model built from `config`."""
        problems = []
        if len(self.eeg_channels) != config.eeg_channels:
            problems.append(f"{len(self.eeg_channels)} EEG channel names for a {config.eeg_channels}-channel model")
        if self.window_samples != config.eeg_samples:
            problems.append(f"window of {self.window_samples} samples for a model of {config.eeg_samples}")
        if self.face_size != config.image_size:
            problems.append(f"face_size {self.face_size} for a model of image_size {config.image_size}")
        if self.num_instances != config.num_instances:
            problems.append(f"{self.num_instances} instances for a model of {config.num_instances}")
        if len(self.class_names) != config.num_classes:
            problems.append(f"{len(self.class_names)} class names for a model of {config.num_classes} classes")
        if problems:
            raise CheckpointError("input contract does not match the model config: " + "; ".join(problems))

    @property
    def detector(self) -> DetectorSpec:
        return DetectorSpec.from_value(self.face_detector)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputContract:
        data = dict(data)
        # Older checkpoints stored the face-image normalisation. The model always normalises with the
        # ImageNet mean/std its Swin backbone was trained with, so only those values can be honoured.
        for key, expected in (("image_mean", IMAGENET_MEAN), ("image_std", IMAGENET_STD)):
            if key in data:
                value = data.pop(key)
                if (not isinstance(value, list) or len(value) != 3 or
                        any(isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v - e) <= 1e-6
                            for v, e in zip(value, expected))):
                    raise CheckpointError(f"input contract field {key}={value!r}: the model normalises face images "
                                          f"with the ImageNet {key.split('_')[1]} {list(expected)} only")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"input contract is invalid: {exc}") from exc
