"""The training engine against published measured runs (catalog/data/validation/training_runs.csv).

Citations are in each run's ``source``.  The issue's targets (median |error| <= 7 %, max <= 20 %,
mean signed within +-3 %) are not met yet: the strict xfail below turns red the day they are, so
the tolerance can be tightened.  The regression guards pin what the model achieves today.
"""

from __future__ import annotations

import pytest

from colossim.cli.validate import run_training_validation
from colossim.training.validate import error_stats


@pytest.fixture(scope="module")
def results():
    res, stats = run_training_validation(show_progress=False)
    return {r.run.id: r for r in res}, stats


def test_megatron_selective_and_full_recompute_runs(results):
    # Korthikanti et al. 2022 Table 5 (A100, TP 8, sequence parallel + selective / full recompute)
    by_id, _ = results
    ids = ["KOR22-T5-01", "KOR22-T5-02", "KOR22-T5-03", "KOR22-T5-04", "KOR22-T5-FULL-01",
           "KOR22-T5-FULL-02", "KOR22-T5-FULL-03"]
    errs = [by_id[i].error for i in ids]
    assert all(e is not None and abs(e) <= 0.20 for e in errs), errs
    assert error_stats(errs).median_abs <= 0.12


def test_megatron_weak_scaling_small_models(results):
    # Narayanan et al. 2021 Table 1, 1.7B-7.5B on 32-128 A100 (no interleaving needed)
    by_id, _ = results
    for i in ("NAR21-T1-01", "NAR21-T1-02", "NAR21-T1-03"):
        assert abs(by_id[i].error) <= 0.10, (i, by_id[i].error)


def test_regression_guard_overall(results):
    _, stats = results
    assert stats["all"].n >= 60
    assert stats["all"].median_abs <= 0.25


@pytest.mark.xfail(strict=True, reason="issue 3 targets not met yet: see README validation table")
def test_issue_targets_on_trusted_rows(results):
    by_id, _ = results
    trusted = [r.error for r in by_id.values() if r.run.trust == "A" and r.error is not None]
    assert error_stats(trusted).meets_targets
