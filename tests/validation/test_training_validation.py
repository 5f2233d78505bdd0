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
    # Reached (2025, issue 3 session 2): all 68 rows predicted, median 19.8 %, max 267 %, mean
    # signed +31.7 %; H100 median 19.2 %.  Guards = reached + a small margin.
    _, stats = results
    assert stats["all"].n == 68  # every published row is predicted (OPT and the 530B ZeRO-3 included)
    assert stats["all"].median_abs <= 0.21
    assert stats["all"].max_abs <= 2.9
    assert stats["all"].mean_signed <= 0.34
    assert stats["H100"].median_abs <= 0.21
    assert stats["H100"].max_abs <= 0.52


def test_deepspeed_zero3_throughput_falls_with_scale_at_fixed_batch(results):
    # Narayanan et al. 2021 Table 2: DeepSpeed ZeRO-3, GPT-3 175B, global batch 1536: per-GPU
    # throughput falls as GPUs double (per-submodule gathers, each with its ring latency).  The
    # model reproduces the direction, not yet the size (see README).
    by_id, _ = results
    tps = [by_id[i].predicted_tokens_per_s_per_gpu for i in ("NAR21-T2-Z3-02", "NAR21-T2-Z3-03")]
    assert tps[1] < 0.8 * tps[0]


@pytest.mark.xfail(strict=True, reason="issue 3 targets not met yet: see README validation table")
def test_issue_targets_on_trusted_rows(results):
    by_id, _ = results
    trusted = [r.error for r in by_id.values() if r.run.trust == "A" and r.error is not None]
    assert error_stats(trusted).meets_targets
