"""What a calibrated checkpoint keeps of its base checkpoint's provenance, so that `evaluate` can score it.

Calibration trains only on the person's recordings, never on DEAP data, so the DEAP trials its
base was tested on are held out from the calibrated model too: its provenance carries a copy of
the base's test split (and what `evaluate` reads beside it), under `calibration.base.provenance`.
A calibrated base passes on its own base's copy.
"""

from __future__ import annotations

from typing import Any

# The fields of a trained checkpoint's provenance that say which DEAP windows it was tested on and how.
BASE_FIELDS = ("dataset", "protocol", "protocol_label", "fold_name", "leaky", "split", "training_data",
               "face_backbone")


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def calibration_of(provenance: dict) -> dict | None:
    """The `calibration` record of a calibrated checkpoint's provenance; None for any other checkpoint."""
    calibration = provenance.get("calibration")
    return calibration if isinstance(calibration, dict) else None


def base_lineage(base_provenance: dict) -> dict:
    """The part of the base's provenance that a checkpoint calibrated from it carries (a calibrated base:
    the copy it carries itself)."""
    tested = tested_provenance(base_provenance)
    return {key: tested[key] for key in BASE_FIELDS if key in tested}


def tested_provenance(provenance: dict) -> dict:
    """The provenance that holds the checkpoint's DEAP test split: its own, or for a calibrated checkpoint
    the copy of its base's (empty when the base recorded none)."""
    calibration = calibration_of(provenance)
    if calibration is None:
        return provenance
    return _dict(_dict(calibration.get("base")).get("provenance"))
