"""Units of EEG samples as devices label them, and a judgement from the amplitude when they do not.

Everything downstream works in microvolts. Labels understood (any case, singular
or plural, with or without spaces): ``V``/``volts``, ``mV``/``millivolts``,
``uV``/``µV``/``μV``/``microvolts``, ``nV``/``nanovolts``, and MNE's unit
multipliers as mne-lsl writes them: ``"0"`` (V), ``"-3"`` (mV), ``"-6"`` (µV),
``"-9"`` (nV).

When a stream says nothing usable, `judge_unit` decides between volts and
microvolts from the raw amplitude (mean not removed, so DC offsets count):

- per channel, the median |x| over a few seconds; channels that are flat zero
  or not finite are left out; then the median over channels, `m`;
- ``m < 0.5``: volts. Scalp EEG in volts is ~1e-6..1e-4, and a DC-coupled
  amplifier's electrode offsets (tens, at most a few hundred mV) keep it below
  ~0.3;
- ``m >= 0.5``: microvolts. EEG in µV is ~1..200 around its mean, DC-coupled
  offsets reach ~1e5.

Outside 1e-7..0.5 (volts) or 0.5..5e5 (µV) the amplitude looks like neither
and the caller's warning says so. Millivolts overlap both ranges and cannot be
told from the amplitude: a user sets them with ``unit=mV``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Unit symbol -> factor to microvolts.
MICROVOLTS_PER = {"V": 1e6, "mV": 1e3, "µV": 1.0, "nV": 1e-3}
# What a user may write in a spec's unit= option (parsed by `parse_unit` too).
SPEC_UNITS = ("uV", "mV", "V", "nV")

_WORDS = {"v": "V", "volt": "V", "volts": "V",
          "mv": "mV", "millivolt": "mV", "millivolts": "mV",
          "uv": "µV", "μv": "µV", "microvolt": "µV", "microvolts": "µV",
          "nv": "nV", "nanovolt": "nV", "nanovolts": "nV"}
_MNE_MULTIPLIERS = {0: "V", -3: "mV", -6: "µV", -9: "nV"}

VOLTS_BELOW = 0.5              # median |x| under this: volts; from it on: microvolts
PLAUSIBLE_VOLTS = (1e-7, VOLTS_BELOW)
PLAUSIBLE_MICROVOLTS = (VOLTS_BELOW, 5e5)


def parse_unit(label: str | None) -> str | None:
    """The unit symbol ("V", "mV", "µV", "nV") a label names, or None when missing or not a voltage."""
    if label is None:
        return None
    # casefold() maps the micro sign (U+00B5) to the Greek mu (U+03BC), so both spellings meet.
    text = "".join(label.split()).casefold()
    if not text:
        return None
    if text in _WORDS:
        return _WORDS[text]
    try:
        return _MNE_MULTIPLIERS.get(int(text))
    except ValueError:
        return None


def factor_to_microvolts(unit: str) -> float:
    return MICROVOLTS_PER[unit]


@dataclass(frozen=True)
class UnitJudgement:
    unit: str | None           # "V" or "µV"; None when no channel carried a usable signal
    median_abs: float          # the statistic `m` it was judged from (nan when unit is None)
    plausible: bool            # whether `m` lies in the judged unit's plausible band

    def describe(self) -> str:
        if self.unit is None:
            return "no usable signal to judge from"
        text = f"median |x| = {self.median_abs:.3g}"
        return text if self.plausible else text + ", which looks like neither volts nor microvolts EEG"


def judge_unit(data: np.ndarray) -> UnitJudgement:
    """Volts or microvolts, from raw samples (C, n) of channels whose unit is unknown (see module doc)."""
    medians = []
    for row in np.asarray(data, dtype=np.float64):
        finite = np.abs(row[np.isfinite(row)])
        if finite.size and finite.max() > 0:
            medians.append(float(np.median(finite)))
    if not medians:
        return UnitJudgement(None, float("nan"), False)
    m = float(np.median(medians))
    unit = "V" if m < VOLTS_BELOW else "µV"
    low, high = PLAUSIBLE_VOLTS if unit == "V" else PLAUSIBLE_MICROVOLTS
    return UnitJudgement(unit, m, low <= m <= high)
