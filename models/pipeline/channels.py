"""Map a device's channel labels onto the model's channel names.

Matching is by label, case-insensitive, after stripping common decorations
("EEG Fp1-REF" -> "fp1") and translating the old 10-20 temporal names
(T3/T4/T5/T6) to the new ones (T7/T8/P7/P8) and back. Contract channels
without a match are masked; device channels the model does not know are
ignored. Too few matches is an error naming what was found and what is needed.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np

from models.errors import SourceError

log = logging.getLogger(__name__)

# Old 10-20 name -> 10-10 name; both directions are accepted.
_ALIASES = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
_PREFIX = re.compile(r"^(eeg|ch|chan)[\s_:-]*", re.IGNORECASE)


def normalise_label(label: str) -> str:
    """Canonical form of a channel label: lower case, no decorations, new 10-20 names."""
    text = _PREFIX.sub("", label.strip())
    # "Fp1-REF", "Fp1_A1", "Fp1 LE": keep the active electrode.
    head = re.split(r"[\s_-]+", text, maxsplit=1)[0]
    text = (head or text).lower()
    return _ALIASES.get(text, text)


@dataclass(frozen=True)
class ChannelMap:
    """For each contract channel, the device channel index feeding it (-1: missing)."""

    contract_names: tuple[str, ...]
    device_names: tuple[str, ...]
    source_index: np.ndarray     # (C_contract,) int
    mask: np.ndarray             # (C_contract,) bool, True = present

    @property
    def present(self) -> int:
        return int(self.mask.sum())

    @property
    def missing(self) -> list[str]:
        return [n for n, ok in zip(self.contract_names, self.mask, strict=True) if not ok]

    @property
    def ignored(self) -> list[str]:
        used = set(int(i) for i in self.source_index if i >= 0)
        return [n for i, n in enumerate(self.device_names) if i not in used]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Device data (C_dev, T) -> contract order (C_contract, T), zeros where missing."""
        out = np.zeros((len(self.contract_names), data.shape[1]), dtype=np.float32)
        out[self.mask] = data[self.source_index[self.mask]]
        return out


def map_channels(device_names: list[str], contract_names: list[str], stream: str,
                 min_fraction: float = 0.25, by_position: bool = False) -> ChannelMap:
    """Match device labels to contract names (or take them in order when `by_position`).

    Raises SourceError when fewer than ceil(min_fraction * len(contract_names)) match.
    """
    n_contract = len(contract_names)
    index = np.full(n_contract, -1, dtype=np.int64)
    if by_position:
        count = min(n_contract, len(device_names))
        index[:count] = np.arange(count)
    else:
        lookup: dict[str, int] = {}
        for i, name in enumerate(device_names):
            lookup.setdefault(normalise_label(name), i)
        for j, name in enumerate(contract_names):
            index[j] = lookup.get(normalise_label(name), -1)
    mask = index >= 0
    needed = max(1, math.ceil(min_fraction * n_contract))
    result = ChannelMap(tuple(contract_names), tuple(device_names), index, mask)
    if result.present < needed:
        raise SourceError(
            f"{stream}: only {result.present} of the model's {n_contract} EEG channels found "
            f"(need at least {needed}); stream labels: {', '.join(device_names) or '(none)'}; "
            f"model expects: {', '.join(contract_names)}",
            hint="label the stream's channels with 10-20 names, "
                 "or map them by position (add ',map=position' to the EEG spec)",
        )
    if result.missing:
        log.warning("%s: %d of %d model channels missing, masked: %s", stream, len(result.missing),
                    n_contract, ", ".join(result.missing))
    if result.ignored:
        log.info("%s: ignoring channels the model does not use: %s", stream, ", ".join(result.ignored))
    return result
