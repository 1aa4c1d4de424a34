"""A seeded fuzz campaign over every outside input (milmer_app.fuzzing holds the cases; a longer run is
`bench/fuzz.py --cases N`): each case must end in a clear MilmerError-family error or a sound
acceptance; no other exception, hang, crash, memory blow-up, silent acceptance of an input invalid by
construction, or code execution. Every case runs in a worker process under a timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from milmer_app import fuzzing as fuzz

pytestmark = pytest.mark.fuzz

CASES = 150
LAB_FILE_CASES = 60
SEED = 20261130


def test_seeded_campaign_has_only_clear_errors_and_sound_acceptances(tmp_path):
    seeds = fuzz.make_seeds(tmp_path)
    cases = fuzz.generate(CASES, SEED, seeds, fuzz.INPUT_TARGETS)
    # Every hostile pickle, whatever the draw: each would create the marker file if it ran.
    cases += [fuzz.Case("dat", f"payload:{name}", raw, True, seeds.marker)
              for name, raw in fuzz.marker_payloads(seeds.marker)]
    results = fuzz.run_campaign(cases, workers=2, timeout=60.0)
    summary = fuzz.summarise(results)
    assert summary["bad"] == [], "\n".join(map(str, summary["bad"]))
    assert not Path(seeds.marker).exists()
    assert len(results) == len(cases)
    # The campaign is not vacuous: every target ran, and both outcomes occur.
    assert {r.case.target for r in results} == set(fuzz.INPUT_TARGETS)
    assert summary["counts"]["clear_error"] > 0 and summary["counts"]["handled"] > 0
    assert summary["peak_rss_mb"] < fuzz.RSS_LIMIT_MB


def test_lab_file_campaign_has_only_clear_errors_and_sound_acceptances(tmp_path):
    """EDF/BDF header fields, BrainVision keys, EEGLAB dimensions, XDF chunks and recording folders."""
    seeds = fuzz.make_seeds(tmp_path)
    cases = fuzz.generate(LAB_FILE_CASES, SEED, seeds, fuzz.FILE_TARGETS)
    results = fuzz.run_campaign(cases, workers=2, timeout=60.0)
    summary = fuzz.summarise(results)
    assert summary["bad"] == [], "\n".join(map(str, summary["bad"]))
    assert {r.case.target for r in results} == set(fuzz.FILE_TARGETS)
    for target in fuzz.FILE_TARGETS:          # each target both refuses and accepts something
        assert set(summary["by_target"][target]) == {"clear_error", "handled"}, (target, summary["by_target"])
    assert summary["peak_rss_mb"] < fuzz.RSS_LIMIT_MB


def test_cases_are_the_same_for_a_seed(tmp_path):
    seeds = fuzz.make_seeds(tmp_path)
    first = [(c.target, c.mutation, c.invalid) for c in fuzz.generate(40, 7, seeds)]
    assert first == [(c.target, c.mutation, c.invalid) for c in fuzz.generate(40, 7, seeds)]
    assert first != [(c.target, c.mutation, c.invalid) for c in fuzz.generate(40, 8, seeds)]
