"""Plausible bounds for a checkpoint's model config and input contract, and a size budget.

A checkpoint's JSON decides how large a network the loader builds. Everything here runs on
the parsed JSON before any tensor is allocated: each field against a range that covers every
sensible model (the paper preset and well beyond), then the parameter count and the
activation memory of one forward pass, estimated from the config, against a budget that is
a multiple of the paper preset's. A failure names the field (or figure) and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from models.config import MilmerConfig
from models.contract import InputContract
from models.errors import CheckpointError, DataError
from models.pipeline.face_detector_spec import DetectorSpec

# How many times the paper preset's parameters / activation memory a loadable checkpoint may need.
BUDGET_MULTIPLE = 4

# field: (lowest, highest), inclusive
CONFIG_RANGES: dict[str, tuple[int, int]] = {
    "image_size": (16, 1024),
    "num_instances": (1, 64),
    "top_k": (1, 64),
    "eeg_channels": (1, 256),
    "eeg_samples": (8, 16384),
    "num_classes": (2, 64),
    "d_model": (8, 4096),
    "num_queries": (1, 1024),
    "encoder_layers": (1, 24),
    "num_heads": (1, 64),
    "ff_dim": (1, 16384),
    "mil_hidden": (1, 4096),
    "mlp_hidden": (1, 16384),
}
BACKBONE_RANGES: dict[str, tuple[float, float]] = {
    "embed_dim": (8, 512),
    "window_size": (1, 32),
    "patch_size": (1, 32),
    "mlp_ratio": (0.5, 8.0),
    "drop_path_rate": (0.0, 0.99),
}
MAX_STAGES = 4
MAX_DEPTH = 24
MAX_STAGE_HEADS = 64
DROPOUT_RANGE = (0.0, 0.99)
SAMPLING_RATE_RANGE = (1.0, 100_000.0)
WINDOW_SECONDS_RANGE = (0.01, 600.0)
FACE_EXPAND_RANGE = (0.0, 1.0)
VIDEO_OFFSET_LIMIT_S = 3600.0
LABEL_THRESHOLD_RANGE = (0.0, 10.0)
MAX_NAME_LENGTH = 64
# The EEG transform: FIR length, offset high-pass and polyphase resampler settings.
TRANSFORM_RANGES: dict[str, tuple[float, float]] = {
    "filter_taps": (1, 4097),
    "dc_highpass_hz": (0.0, 10.0),
    "dc_highpass_order": (0, 8),
    "resample_kaiser_beta": (0.0, 30.0),
    "resample_half_width": (1, 64),
}
# What timm's Swin uses when a config does not override it (swin_tiny_patch4_window7_224).
SWIN_T_DEFAULTS: dict[str, Any] = {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24),
                                   "window_size": 7, "patch_size": 4, "mlp_ratio": 4.0}


def _fail(field: str, value: Any, limit: str) -> CheckpointError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(f"{field}={shown} {limit}")


def _number_in(field: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise _fail(field, value, f"must be {'a whole number' if integer else 'a number'} in {low:g}..{high:g}")
    if not math.isfinite(value) or not low <= value <= high:
        raise _fail(field, value, f"is outside the plausible range {low:g}..{high:g}")


def _int_list(field: str, value: Any, low: int, high: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_STAGES:
        raise _fail(field, value, f"must be a list of 1..{MAX_STAGES} whole numbers")
    for i, item in enumerate(value):
        _number_in(f"{field}[{i}]", item, low, high, integer=True)
    return tuple(value)


def check_config(config: MilmerConfig | Mapping[str, Any]) -> None:
    """CheckpointError naming the first field of `config` outside its plausible range.

    Takes the JSON section itself (absent fields at their defaults), so that nothing in it has
    been computed with yet (a zero head count must be named, not divide).
    """
    values = {**MilmerConfig.paper().to_dict(),
              **(config.to_dict() if isinstance(config, MilmerConfig) else dict(config))}
    for name, (low, high) in CONFIG_RANGES.items():
        _number_in(f"config.{name}", values[name], low, high, integer=True)
    for name in ("dropout", "cls_dropout"):
        _number_in(f"config.{name}", values[name], *DROPOUT_RANGE)
    kwargs = values["backbone_kwargs"]
    if not isinstance(kwargs, dict):
        raise _fail("config.backbone_kwargs", kwargs, "must be an object")
    for name, (low, high) in BACKBONE_RANGES.items():
        if name in kwargs:
            integer = name in ("embed_dim", "window_size", "patch_size")
            _number_in(f"config.backbone_kwargs.{name}", kwargs[name], low, high, integer=integer)
    depths = _int_list("config.backbone_kwargs.depths", kwargs.get("depths", SWIN_T_DEFAULTS["depths"]), 1, MAX_DEPTH)
    heads = _int_list("config.backbone_kwargs.num_heads", kwargs.get("num_heads", SWIN_T_DEFAULTS["num_heads"]),
                      1, MAX_STAGE_HEADS)
    if len(heads) != len(depths):
        raise _fail("config.backbone_kwargs.num_heads", list(heads), f"must have one entry per stage ({len(depths)})")
    if "face" in str(values["modalities"]).split(","):
        embed = kwargs.get("embed_dim", SWIN_T_DEFAULTS["embed_dim"])
        for stage, stage_heads in enumerate(heads):
            if (embed * 2 ** stage) % stage_heads:
                raise _fail(f"config.backbone_kwargs.num_heads[{stage}]", stage_heads,
                            f"does not divide stage {stage}'s width {embed * 2 ** stage}")
        patch = kwargs.get("patch_size", SWIN_T_DEFAULTS["patch_size"])
        if values["image_size"] % (patch * 2 ** (len(depths) - 1)):
            raise _fail("config.image_size", values["image_size"],
                        f"is not a multiple of patch_size x 2^(stages-1) = {patch * 2 ** (len(depths) - 1)}")


def check_contract(contract: InputContract) -> None:
    """CheckpointError naming the first field of `contract` that is implausible or inconsistent."""
    _strings("contract.eeg_channels", contract.eeg_channels)
    _strings("contract.class_names", contract.class_names)
    _number_in("contract.sampling_rate", contract.sampling_rate, *SAMPLING_RATE_RANGE)
    _number_in("contract.window_seconds", contract.window_seconds, *WINDOW_SECONDS_RANGE)
    if contract.filter_band is not None:
        band = contract.filter_band
        nyquist = contract.sampling_rate / 2.0
        if len(band) != 2:
            raise _fail("contract.filter_band", list(band), "must be [low, high] in Hz or null")
        for i, edge in enumerate(band):
            _number_in(f"contract.filter_band[{i}]", edge, 0.0, nyquist)
        if not 0 < band[0] < band[1] < nyquist:
            raise _fail("contract.filter_band", list(band),
                        f"must satisfy 0 < low < high < Nyquist ({nyquist:g} Hz at {contract.sampling_rate:g} Hz)")
    _check_transform(contract)
    _number_in("contract.face_expand", contract.face_expand, *FACE_EXPAND_RANGE)
    _number_in("contract.video_offset", contract.video_offset, -VIDEO_OFFSET_LIMIT_S, VIDEO_OFFSET_LIMIT_S)
    try:
        DetectorSpec.from_value(contract.face_detector)
    except DataError as exc:
        raise _fail("contract.face_detector", contract.face_detector, f"is not a valid detector ({exc})") from exc
    rule = contract.label_rule
    unknown = sorted(set(rule) - {"kind", "threshold", "ties"})
    if unknown:
        raise _fail("contract.label_rule", unknown, "are unknown keys (known: kind, threshold, ties)")
    if rule.get("kind", "quadrant") not in ("quadrant", "valence", "arousal"):
        raise _fail("contract.label_rule.kind", rule.get("kind"), "is not 'quadrant', 'valence' or 'arousal'")
    _number_in("contract.label_rule.threshold", rule.get("threshold", 5.0), *LABEL_THRESHOLD_RANGE)
    if not isinstance(rule.get("ties", ""), str):
        raise _fail("contract.label_rule.ties", rule["ties"], "must be text (it describes the tie rule)")


def _check_transform(contract: InputContract) -> None:
    """The EEG transform's filter and resampler settings (fields present in this version of the contract)."""
    nyquist = contract.sampling_rate / 2.0
    for name, (low, high) in TRANSFORM_RANGES.items():
        if hasattr(contract, name):
            _number_in(f"contract.{name}", getattr(contract, name), low, high,
                       integer=name in ("filter_taps", "dc_highpass_order", "resample_half_width"))
    cutoffs = getattr(contract, "filter_cutoffs", None)
    if cutoffs is not None:
        if len(cutoffs) != 2 or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in cutoffs) \
                or not 0 < cutoffs[0] < cutoffs[1] < nyquist:
            raise _fail("contract.filter_cutoffs", list(cutoffs),
                        f"must be [low, high] with 0 < low < high < Nyquist ({nyquist:g} Hz)")
    window = getattr(contract, "filter_window", None)
    if window is not None:
        from scipy.signal import get_window

        try:
            get_window(window, 3)
        except (ValueError, TypeError):
            raise _fail("contract.filter_window", window, "is not a window scipy knows") from None


def _strings(field: str, values: Sequence[Any]) -> None:
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
            raise _fail(f"{field}[{i}]", value, f"must be a non-empty name of at most {MAX_NAME_LENGTH} characters")
    seen: set[str] = set()
    for value in values:
        if value.lower() in seen:
            raise _fail(field, value, "appears twice (names must be distinct)")
        seen.add(value.lower())


# ------------------------------------------------------------------------- size estimates

def _swin(config: MilmerConfig) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """(parameters, output width, per stage (width, depth, heads, tokens per frame)) of the Swin backbone."""
    kw = {**SWIN_T_DEFAULTS, **config.backbone_kwargs}
    embed, patch, window, ratio = int(kw["embed_dim"]), int(kw["patch_size"]), int(kw["window_size"]), kw["mlp_ratio"]
    params = 3 * patch * patch * embed + embed + 2 * embed  # patch embedding + its norm
    tokens = (config.image_size // patch) ** 2
    stages = []
    for stage, (depth, heads) in enumerate(zip(kw["depths"], kw["num_heads"])):
        width = embed * 2 ** stage
        if stage:
            params += 4 * (width // 2) * 2 + 4 * (width // 2) * width  # patch merging: norm + reduction
            tokens //= 4
        block = 4 * width + 4 * width * width + 4 * width + (2 * window - 1) ** 2 * heads
        block += int(2 * ratio * width * width + ratio * width + width)
        params += depth * block
        stages.append((width, depth, heads, tokens))
    width = embed * 2 ** (len(stages) - 1)
    return params + 2 * width, width, stages


def estimate_parameters(config: MilmerConfig) -> int:
    """Parameters of `Milmer(config)`, from the config alone."""
    d = config.d_model
    params = d + 2 * d  # CLS token, token types
    if config.uses_face:
        backbone, width, _ = _swin(config)
        params += backbone + (0 if width == d else width * d + d)
        if config.mil == "global_weights":
            params += config.num_instances
        elif config.mil not in ("first", "mean"):  # an attention scorer, gated except in "amil"
            params += (1 if config.mil == "amil" else 2) * (d * config.mil_hidden + config.mil_hidden)
            params += config.mil_hidden
        if config.fusion == "cross_attention":
            params += config.num_queries * d + 4 * d * d + 4 * d
        elif config.fusion == "mlp":
            params += 2 * d * config.mlp_hidden + config.mlp_hidden + d
    if config.uses_eeg:
        t = config.eeg_samples
        params += 2 * t + t * d + d + (config.eeg_channels * d if config.channel_embedding else 0)
    layer = 4 * d * d + 4 * d + 2 * d * config.ff_dim + config.ff_dim + d + 4 * d
    return params + config.encoder_layers * layer + d * config.num_classes + config.num_classes


def estimate_activation_bytes(config: MilmerConfig) -> int:
    """Rough float32 bytes held by one forward pass of one bag (the same formula for every config)."""
    d = config.d_model
    floats = 0
    sequence = 1
    if config.uses_face:
        kw = {**SWIN_T_DEFAULTS, **config.backbone_kwargs}
        window, ratio = int(kw["window_size"]), float(kw["mlp_ratio"])
        _, _, stages = _swin(config)
        for width, depth, heads, tokens in stages:
            floats += config.num_instances * depth * tokens * (width * (6 + 2 * ratio) + window * window * heads)
        selected = config.selected_instances * stages[-1][3]
        if config.fusion == "cross_attention":
            floats += config.num_queries * selected * config.num_heads + config.num_queries * d * 4
            sequence += config.num_queries
        else:
            floats += selected * (d + config.mlp_hidden)
            sequence += selected
    if config.uses_eeg:
        floats += config.eeg_channels * (2 * config.eeg_samples + d)
        sequence += config.eeg_channels
    floats += config.encoder_layers * (sequence * sequence * config.num_heads + sequence * (6 * d + config.ff_dim))
    return int(floats * 4)


def check_budget(config: MilmerConfig) -> None:
    """CheckpointError when building or running `config` would cost more than BUDGET_MULTIPLE x the paper preset."""
    paper = MilmerConfig.paper()
    for what, estimate, unit in (("parameters", estimate_parameters, 1),
                                 ("activation memory", estimate_activation_bytes, 2 ** 20)):
        need, limit = estimate(config), BUDGET_MULTIPLE * estimate(paper)
        if need > limit:
            suffix = " MiB" if unit > 1 else ""
            raise CheckpointError(
                f"config describes a model with {need / unit:,.0f}{suffix} of {what}, over the limit of "
                f"{limit / unit:,.0f}{suffix} ({BUDGET_MULTIPLE} x the paper preset); refused before allocating",
                hint="the checkpoint's JSON has been altered or is not a milmer model")
