"""The calibration protocol's marker texts: written, parsed, checked, folded into trials."""

from __future__ import annotations

import json

import pytest

from models.calibration_protocol import (
    ProtocolError,
    Rating,
    TrialEnd,
    TrialStart,
    marker_texts,
    parse_marker,
    rating_text,
    read_calibration,
    trial_end_text,
    trial_start_text,
)


def test_written_texts_are_the_documented_json_and_parse_back():
    assert json.loads(trial_start_text("t1")) == {"calibration": "trial_start", "trial": "t1"}
    assert json.loads(trial_end_text("t1")) == {"calibration": "trial_end", "trial": "t1"}
    text = rating_text("t1", 7.25, 2.5, stimulus="a walk by the sea")
    assert json.loads(text) == {"calibration": "rating", "trial": "t1", "valence": 7.25, "arousal": 2.5,
                                "stimulus": "a walk by the sea"}
    assert parse_marker(text) == Rating("t1", 7.25, 2.5, "a walk by the sea", False)
    assert parse_marker(trial_start_text("t1")) == TrialStart("t1")
    assert parse_marker(trial_end_text("t1")) == TrialEnd("t1")
    skipped = rating_text("t2", None, None, skip=True)
    assert json.loads(skipped) == {"calibration": "rating", "trial": "t2", "skip": True}
    assert parse_marker(skipped) == Rating("t2", None, None, None, True)


@pytest.mark.parametrize("text", ["hello", "stimulus 3", "[1, 2]", '{"other": 1}', "{not json", ""])
def test_texts_outside_the_protocol_are_not_markers_of_it(text):
    assert parse_marker(text) is None


@pytest.mark.parametrize("payload, field", [
    ({"calibration": "begin", "trial": "a"}, "calibration"),
    ({"calibration": "trial_start"}, "trial"),
    ({"calibration": "trial_start", "trial": ""}, "trial"),
    ({"calibration": "trial_start", "trial": True}, "trial"),
    ({"calibration": "rating", "trial": "a", "valence": 0.5, "arousal": 5}, "valence"),
    ({"calibration": "rating", "trial": "a", "valence": 5, "arousal": 9.5}, "arousal"),
    ({"calibration": "rating", "trial": "a", "valence": "5", "arousal": 5}, "valence"),
    ({"calibration": "rating", "trial": "a", "arousal": 5}, "valence"),
    ({"calibration": "rating", "trial": "a", "valence": 5, "arousal": 5, "skip": "yes"}, "skip"),
    ({"calibration": "rating", "trial": "a", "valence": 5, "arousal": 5, "stimulus": 3}, "stimulus"),
])
def test_broken_protocol_markers_name_the_field(payload, field):
    with pytest.raises(ProtocolError, match=f'"{field}"'):
        parse_marker(json.dumps(payload))


def test_numeric_trial_ids_are_read_as_text():
    assert parse_marker('{"calibration": "trial_start", "trial": 3}') == TrialStart("3")


def test_trials_folded_with_redo_late_ratings_and_problems():
    markers = [
        (1.0, "replay: something else"),
        (2.0, trial_start_text("a")), (5.0, trial_end_text("a")),
        (6.0, trial_start_text("b")), (7.0, trial_end_text("b")),
        (8.0, rating_text("b", 8, 8)),
        (9.0, rating_text("a", 2, 3)),                  # after the next trial: still a's rating
        (10.0, trial_start_text("b")),                 # b redone: its earlier span and rating dropped
        (12.0, trial_end_text("b")),
        (13.0, trial_start_text("c")),                  # never ended
        (14.0, trial_start_text("d")), (15.0, trial_end_text("d")),
        (16.0, rating_text("d", None, None, skip=True)),
        (17.0, '{"calibration": "rating", "trial": "e", "valence": 5, "arousal": 5}'),   # e never started
        (18.0, '{"calibration": "rating", "trial": "d", "valence": 12, "arousal": 5}'),  # broken
        (19.0, trial_end_text("zz")),
    ]
    log = read_calibration(reversed(markers))     # any order in, time order out
    assert [t.trial for t in log.trials] == ["a", "b", "c", "d"]
    a, b, c, d = log.trials
    assert (a.start, a.end, a.rating.valence, a.rating.arousal, a.exclusion) == (2.0, 5.0, 2.0, 3.0, None)
    assert (b.start, b.end, b.rating, b.exclusion) == (10.0, 12.0, None, "unrated")
    assert c.exclusion == "no trial_end"
    assert d.exclusion == "skipped (unsure)"
    assert len(log.problems) == 4
    assert any("'c' has no end" in p for p in log.problems)
    assert any("'e', which never started" in p for p in log.problems)
    assert any('"valence" must be a number' in p for p in log.problems)
    assert any("trial_end of 'zz'" in p for p in log.problems)


def test_marker_texts_pick_data_markers_out_of_recorded_events():
    records = [
        {"timestamp": 3.0, "text": trial_end_text("a"), "kind": "marker", "stream": "LSL Markers"},
        {"timestamp": 1.0, "text": "info: recording started"},
        {"timestamp": 2.0, "text": "marker: " + trial_start_text("a")},     # an older recording
        {"timestamp": 2.5, "text": "replay: trial 3", "truth": 1},
        {"timestamp": "x", "text": "junk", "kind": "marker"},
    ]
    assert marker_texts(records) == [(2.0, trial_start_text("a")), (3.0, trial_end_text("a"))]
