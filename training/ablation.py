"""The paper's ablation grid: modalities, MIL selection and fusion, as model-config variants.

The default grid is the published ablation's rows: the full model (EEG + face, attention-weighted
top-k, cross-attention); EEG only; face only; each other published MIL mode (first frame, learned
global weights, AMIL, attention top-k); each other balancing (none, MLP). Our own MIL modes (mean,
gated_amil) join only the full grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.config import FUSION_MODES, MIL_MODES, PUBLISHED_MIL_MODES

FULL_MODEL = {"modalities": "eeg,face", "mil": "weighted_topk", "fusion": "cross_attention"}


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict[str, Any]


def _name(model: dict[str, Any]) -> str:
    modalities = model["modalities"].replace(",", "+")
    if model["modalities"] == "eeg":
        return modalities
    return f"{modalities}_{model['mil']}_{model['fusion']}"


def ablation_grid(full_grid: bool = False) -> list[Variant]:
    """One factor at a time around the full model (the paper's tables), or every combination.

    One-factor grid: the full model; EEG only; face only; each other published MIL mode; each other fusion.
    Full grid: every MIL x fusion for eeg+face and for face, plus EEG only (where MIL and fusion
    do not apply).
    """
    models: list[dict[str, Any]] = [dict(FULL_MODEL), {**FULL_MODEL, "modalities": "eeg"},
                                    {**FULL_MODEL, "modalities": "face"}]
    if full_grid:
        models += [{"modalities": modalities, "mil": mil, "fusion": fusion}
                   for modalities in ("eeg,face", "face") for mil in MIL_MODES for fusion in FUSION_MODES]
    else:
        models += [{**FULL_MODEL, "mil": mil} for mil in PUBLISHED_MIL_MODES]
        models += [{**FULL_MODEL, "fusion": fusion} for fusion in FUSION_MODES]
    variants: dict[str, Variant] = {}
    for model in models:
        variants.setdefault(_name(model), Variant(_name(model), model))
    return list(variants.values())
