"""The training engine's claim check (meta-llama3)."""

from __future__ import annotations

import pytest

from colossim.fleet.claims.registry import claim, load_engine_evaluators, registered


def test_meta_llama3_is_checked_by_the_training_engine():
    load_engine_evaluators()
    check = registered()["meta-llama3"](claim("meta-llama3"))
    assert check.verdict == "consistent"
    days = check.number("time_to_train_days")
    # Llama 3 paper: a 54-day pre-training snapshot on 16,384 H100; a realistic engine lands in months, not years
    assert 30 < days < 180
    assert check.number("time_to_train_days_with_failures") > days
    assert check.number("fleet_days") == pytest.approx(days * 16384 / 600_000, rel=1e-6)
    # 600k H100e for 90 days is ~1e28 FLOPs: a compute-optimal model of a few trillion parameters
    assert 1e12 < check.number("compute_optimal_params_90d") < 2e13
