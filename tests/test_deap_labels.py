"""Label rules: the published quadrant numbering and its ties; binary valence/arousal."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import DataError
from models.pipeline.labels import LabelRule


@pytest.mark.parametrize("valence, arousal, quadrant", [
    (7, 7, 0), (7, 2, 1), (5, 2, 1), (2, 2, 2), (2, 7, 3),
    # ties the first three cases miss go to 3 (HALV), as in the published code
    (5, 7, 3), (7, 5, 3), (5, 5, 3), (2, 5, 3),
])
def test_quadrants_follow_the_published_rule(valence, arousal, quadrant):
    assert LabelRule().apply(valence, arousal) == quadrant


def test_binary_rules_and_threshold():
    v = np.array([1.0, 5.0, 5.1, 9.0])
    a = np.array([9.0, 5.0, 1.0, 6.0])
    np.testing.assert_array_equal(LabelRule("valence").apply_many(v, a), [0, 0, 1, 1])
    np.testing.assert_array_equal(LabelRule("arousal").apply_many(v, a), [1, 0, 0, 1])
    np.testing.assert_array_equal(LabelRule("valence", threshold=4.5).apply_many(v, a), [0, 1, 1, 1])
    assert LabelRule("arousal").class_names == ("low arousal", "high arousal")
    assert LabelRule().num_classes == 4


def test_round_trip_and_bad_kind():
    rule = LabelRule("valence", 6.0)
    assert LabelRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(DataError, match="unknown label rule"):
        LabelRule("dominance")
