"""What a checkpoint's provenance says about its model, in words (read defensively: any key may be missing or odd)."""

from __future__ import annotations

from pathlib import Path

from models.config import FROZEN_BACKBONE_LABEL


def describe_model(preset: str, provenance: dict, demo: bool = False) -> str:
    """A model named by what it is: preset, protocol, fold, training data, and "LEAKY" where its
    provenance says test data leaked into training."""
    parts = ["demo" if demo else "", f"{preset} preset" if preset else ""]
    protocol = provenance.get("protocol")
    if isinstance(protocol, str) and protocol:
        parts.append(f"{protocol} protocol")
    fold, fold_name = provenance.get("fold"), provenance.get("fold_name")
    if isinstance(fold_name, str) and fold_name:
        parts.append(fold_name if "fold" in fold_name.lower() else f"fold {fold_name}")
    elif isinstance(fold, int) and not isinstance(fold, bool):
        parts.append(f"fold {fold + 1}")
    if provenance.get("face_backbone") == FROZEN_BACKBONE_LABEL:
        parts.append(FROZEN_BACKBONE_LABEL)
    calibration = provenance.get("calibration")
    if isinstance(calibration, dict):
        created = calibration.get("created_utc")
        parts.append(f"calibrated {created[:10]}" if isinstance(created, str) and created else "calibrated")
    else:
        parts.append(_dataset_text(provenance.get("dataset")))
    # Paper-protocol checkpoints written before the flag existed are leaky all the same.
    if provenance.get("leaky") or protocol == "paper":
        parts.append("LEAKY")
    return " · ".join(p for p in parts if p) or "no provenance"


def _dataset_text(dataset: object) -> str:
    if isinstance(dataset, dict):
        root, subjects = dataset.get("root"), dataset.get("subjects")
        text = Path(str(root)).name if root else str(dataset.get("source") or "")
        if isinstance(subjects, list) and subjects:
            text += f" ({len(subjects)} subject{'s' if len(subjects) > 1 else ''})"
        dataset = text
    if not isinstance(dataset, str) or not dataset:
        return ""
    return "trained on " + (dataset if len(dataset) <= 40 else dataset[:39] + "…")
