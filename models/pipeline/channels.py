"""Map a device's channel labels onto the model's channel names.

Matching is by label, case-insensitive, after stripping common decorations
("EEG Fp1-REF" -> "fp1") and translating the old 10-20 temporal names
(T3/T4/T5/T6) to the new ones (T7/T8/P7/P8) and back. BioSemi caps label
electrodes by position code (A1..A32, B1..B32); with a `montage` (biosemi32,
biosemi64) those codes are first translated to the 10-20 names of the cap's
layout as MNE's standard montage gives it (the montage lists its 10-20 names in
A1..A32, B1..B32 order). Contract channels without a match are masked; device
channels the model does not know are ignored. Too few matches is an error
naming what was found and what is needed, and so are two device channels that
would feed the same model channel.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import numpy as np

from models.errors import SourceError

log = logging.getLogger(__name__)

# Old 10-20 name -> 10-10 name; both directions are accepted.
_ALIASES = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
_PREFIX = re.compile(r"^(eeg|ch|chan)[\s_:-]*", re.IGNORECASE)
# Cap layouts whose position codes (A1.., B1..) MNE's standard montage names in 10-20 terms.
MONTAGES = ("biosemi32", "biosemi64")
_BANK = 32   # electrodes per BioSemi bank (A, B, ...)


@cache
def montage_names(montage: str) -> dict[str, str]:
    """BioSemi position code ("A1".."B32") -> 10-20 name, from MNE's standard montage of that cap."""
    if montage not in MONTAGES:
        raise SourceError(f"unknown montage '{montage}'", hint=f"use one of: {', '.join(MONTAGES)}")
    import mne

    names = mne.channels.make_standard_montage(montage).ch_names
    return {f"{chr(ord('A') + i // _BANK)}{i % _BANK + 1}": name for i, name in enumerate(names)}


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


def device_labels(device_names: list[str], montage: str | None) -> list[str]:
    """The device's labels as 10-20 names: BioSemi position codes translated through `montage`."""
    if montage is None:
        return list(device_names)
    codes = montage_names(montage)
    return [codes.get(normalise_label(name).upper(), name) for name in device_names]


def map_channels(device_names: list[str], contract_names: list[str], stream: str,
                 min_fraction: float = 0.25, by_position: bool = False, montage: str | None = None) -> ChannelMap:
    """Match device labels to contract names (or take them in order when `by_position`).

    Raises SourceError when fewer than ceil(min_fraction * len(contract_names)) match, or when
    two device channels have the same label (after normalisation) and the model uses that label.
    """
    n_contract = len(contract_names)
    index = np.full(n_contract, -1, dtype=np.int64)
    if by_position:
        count = min(n_contract, len(device_names))
        index[:count] = np.arange(count)
    else:
        labels = device_labels(device_names, montage)
        lookup: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(labels):
            lookup[normalise_label(name)].append(i)
        wanted = {normalise_label(name) for name in contract_names}
        _check_duplicates(lookup, device_names, labels, wanted, stream)
        for j, name in enumerate(contract_names):
            index[j] = lookup.get(normalise_label(name), [-1])[0]
    mask = index >= 0
    needed = max(1, math.ceil(min_fraction * n_contract))
    result = ChannelMap(tuple(contract_names), tuple(device_names), index, mask)
    if result.present < needed:
        translated = f" (read through montage {montage})" if montage and not by_position else ""
        raise SourceError(
            f"{stream}: only {result.present} of the model's {n_contract} EEG channels found "
            f"(need at least {needed}); stream labels{translated}: {', '.join(device_names) or '(none)'}; "
            f"model expects: {', '.join(contract_names)}",
            hint="label the stream's channels with 10-20 names, name the cap for BioSemi codes "
                 "(add ',montage=biosemi32' or ',montage=biosemi64'), "
                 "or map them by position (add ',map=position' to the EEG spec)",
        )
    if result.missing:
        log.warning("%s: %d of %d model channels missing, masked: %s", stream, len(result.missing),
                    n_contract, ", ".join(result.missing))
    if result.ignored:
        log.info("%s: ignoring channels the model does not use: %s", stream, ", ".join(result.ignored))
    return result


def _check_duplicates(lookup: dict[str, list[int]], device_names: list[str], labels: list[str], wanted: set[str],
                      stream: str) -> None:
    """Two device channels that would feed one model channel: an error naming them (a warning if unused)."""
    clashes = {label: where for label, where in lookup.items() if len(where) > 1}
    used = {label: where for label, where in clashes.items() if label in wanted}
    unused = [label for label in clashes if label not in wanted]
    if unused:
        log.warning("%s: duplicate channel labels the model does not use: %s", stream, ", ".join(unused))
    if used:
        def named(i: int) -> str:
            return repr(device_names[i]) + (f" ({labels[i]})" if labels[i] != device_names[i] else "")

        listed = "; ".join(f"{', '.join(named(i) for i in where)} all read as {label}" for label, where in used.items())
        raise SourceError(f"{stream}: duplicate channel labels: {listed}",
                          hint="give each electrode its own label, or map channels by position "
                               "(add ',map=position' to the EEG spec)")
