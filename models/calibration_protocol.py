"""The calibration protocol: marker texts that mark a person's calibration trials and their ratings.

The contract between experiment software (or the window's calibration wizard) and
`milmer-train calibrate`. Each marker's text is one JSON object:

- ``{"calibration": "trial_start", "trial": "ID"}`` and ``{"calibration": "trial_end", "trial": "ID"}``:
  the span whose EEG and frames belong to trial ID;
- ``{"calibration": "rating", "trial": "ID", "valence": V, "arousal": A}`` with V and A numbers in
  1..9 (continuous); it may arrive after ``trial_end``. Optional ``"stimulus": "TEXT"`` (what was
  shown) and ``"skip": true`` (the person was unsure: the trial is kept out, valence and arousal
  may then be left out or null).

Rules for a sequence of markers (in time order):

- ``trial_start`` for an ID seen before starts that trial again: its earlier span and rating are
  dropped (a redone trial);
- ``trial_start`` while another trial is open leaves that one without an end (excluded);
- a later rating of the same trial replaces the earlier one;
- markers that are not JSON objects with a ``"calibration"`` key are not part of the protocol and
  are ignored; a protocol marker that breaks these rules is named in `CalibrationLog.problems`.

Recordings keep markers in ``markers.jsonl``; `marker_texts` picks the data markers (those that
arrived from a source or the wizard) out of its records. No Qt, torch or app imports here: the
window writes these texts and the trainer reads them with this same module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from models.errors import DataError

KEY = "calibration"
TRIAL_START, TRIAL_END, RATING = "trial_start", "trial_end", "rating"
EVENTS = (TRIAL_START, TRIAL_END, RATING)
RATING_MIN, RATING_MAX = 1.0, 9.0
MARKER_KIND = "marker"      # markers.jsonl: "kind" of a record that is a data marker (not an app event)
_LEGACY_PREFIX = "marker: "  # recordings written before "kind" existed stored data markers so


class ProtocolError(DataError):
    """A calibration marker whose text breaks the protocol (the message says how)."""


@dataclass(frozen=True)
class TrialStart:
    trial: str


@dataclass(frozen=True)
class TrialEnd:
    trial: str


@dataclass(frozen=True)
class Rating:
    trial: str
    valence: float | None        # 1..9; None only when skipped
    arousal: float | None
    stimulus: str | None = None
    skip: bool = False


CalibrationMarker = TrialStart | TrialEnd | Rating


# -- writing ---------------------------------------------------------------------------------------
def _text(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(", ", ": "))


def trial_start_text(trial: str) -> str:
    return _text({KEY: TRIAL_START, "trial": _trial_id(trial)})


def trial_end_text(trial: str) -> str:
    return _text({KEY: TRIAL_END, "trial": _trial_id(trial)})


def rating_text(trial: str, valence: float | None, arousal: float | None, stimulus: str | None = None,
                skip: bool = False) -> str:
    """The rating marker; checked as a reader would check it (ProtocolError otherwise)."""
    payload: dict = {KEY: RATING, "trial": _trial_id(trial)}
    if not skip or valence is not None:
        payload["valence"] = valence
    if not skip or arousal is not None:
        payload["arousal"] = arousal
    if stimulus is not None:
        payload["stimulus"] = stimulus
    if skip:
        payload["skip"] = True
    text = _text(payload)
    parse_marker(text)
    return text


def _trial_id(trial: object) -> str:
    if isinstance(trial, bool) or not isinstance(trial, (str, int)) or str(trial).strip() == "":
        raise ProtocolError(f"calibration marker: \"trial\" must be a non-empty text, got {trial!r}")
    return str(trial)


# -- reading ---------------------------------------------------------------------------------------
def parse_marker(text: str) -> CalibrationMarker | None:
    """The calibration marker in `text`; None when the text is not one (not a JSON object with a
    "calibration" key); ProtocolError, naming the field, when it is one but breaks the protocol."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        payload = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or KEY not in payload:
        return None
    event = payload[KEY]
    if event not in EVENTS:
        raise ProtocolError(f"calibration marker {stripped!r}: \"calibration\" must be one of "
                            f"{', '.join(EVENTS)}, got {event!r}")
    if "trial" not in payload:
        raise ProtocolError(f"calibration marker {stripped!r}: no \"trial\"")
    try:
        trial = _trial_id(payload["trial"])
    except ProtocolError as exc:
        raise ProtocolError(f"calibration marker {stripped!r}: {str(exc).split(': ', 1)[1]}") from None
    if event == TRIAL_START:
        return TrialStart(trial)
    if event == TRIAL_END:
        return TrialEnd(trial)
    skip = payload.get("skip", False)
    if not isinstance(skip, bool):
        raise ProtocolError(f"calibration marker {stripped!r}: \"skip\" must be true or false, got {skip!r}")
    stimulus = payload.get("stimulus")
    if stimulus is not None and not isinstance(stimulus, str):
        raise ProtocolError(f"calibration marker {stripped!r}: \"stimulus\" must be a text, got {stimulus!r}")
    values = {}
    for name in ("valence", "arousal"):
        value = payload.get(name)
        if value is None and skip:
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not RATING_MIN <= value <= RATING_MAX:
            raise ProtocolError(f"calibration marker {stripped!r}: \"{name}\" must be a number in "
                                f"{RATING_MIN:g}..{RATING_MAX:g}, got {value!r}")
        values[name] = float(value)
    return Rating(trial, values["valence"], values["arousal"], stimulus, skip)


def marker_texts(records: Iterable[dict]) -> list[tuple[float, str]]:
    """(timestamp, text) of the data markers among markers.jsonl records, in time order: records
    with "kind": "marker" (and, from older recordings, texts stored as "marker: TEXT")."""
    found = []
    for record in records:
        text, stamp = record.get("text"), record.get("timestamp")
        if not isinstance(text, str) or isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            continue
        if record.get("kind") == MARKER_KIND:
            found.append((float(stamp), text))
        elif "kind" not in record and text.startswith(_LEGACY_PREFIX):
            found.append((float(stamp), text[len(_LEGACY_PREFIX):]))
    found.sort(key=lambda item: item[0])
    return found


@dataclass
class CalibrationTrial:
    trial: str
    start: float                  # LSL time of its trial_start
    end: float | None = None      # LSL time of its trial_end; None: never ended
    rating: Rating | None = None

    @property
    def exclusion(self) -> str | None:
        """Why the protocol alone keeps this trial out ("no trial_end", "unrated", "skipped (unsure)"),
        else None. Ratings on the label threshold are the label rule's business, not the protocol's."""
        if self.end is None:
            return "no trial_end"
        if self.rating is None:
            return "unrated"
        if self.rating.skip:
            return "skipped (unsure)"
        return None


@dataclass
class CalibrationLog:
    trials: list[CalibrationTrial] = field(default_factory=list)   # in the order they (last) started
    problems: list[str] = field(default_factory=list)              # protocol markers that broke the rules

    def trial(self, trial_id: str) -> CalibrationTrial | None:
        return next((t for t in self.trials if t.trial == trial_id), None)


def read_calibration(markers: Iterable[tuple[float, str]]) -> CalibrationLog:
    """The trials marked in a sequence of (LSL time, marker text), following the module's rules."""
    log = CalibrationLog()
    by_id: dict[str, CalibrationTrial] = {}
    open_trial: CalibrationTrial | None = None
    for stamp, text in sorted(markers, key=lambda item: item[0]):
        try:
            marker = parse_marker(text)
        except ProtocolError as exc:
            log.problems.append(f"at {stamp:.3f}: {exc}")
            continue
        if marker is None:
            continue
        if isinstance(marker, TrialStart):
            if open_trial is not None and open_trial.trial != marker.trial:
                log.problems.append(f"at {stamp:.3f}: trial {marker.trial!r} started while trial "
                                    f"{open_trial.trial!r} was open; {open_trial.trial!r} has no end")
            if marker.trial in by_id:
                log.trials.remove(by_id[marker.trial])
            open_trial = by_id[marker.trial] = CalibrationTrial(marker.trial, stamp)
            log.trials.append(open_trial)
        elif isinstance(marker, TrialEnd):
            if open_trial is None or open_trial.trial != marker.trial:
                log.problems.append(f"at {stamp:.3f}: trial_end of {marker.trial!r}, which is not the open trial "
                                    f"({open_trial.trial if open_trial else 'none'}); ignored")
                continue
            open_trial.end = stamp
            open_trial = None
        else:
            target = by_id.get(marker.trial)
            if target is None:
                log.problems.append(f"at {stamp:.3f}: rating of trial {marker.trial!r}, which never started; ignored")
                continue
            if target.rating is not None:
                log.problems.append(f"at {stamp:.3f}: trial {marker.trial!r} rated again; the later rating counts")
            target.rating = marker
    return log
