"""Invariants of the reliability engine (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.reliability.interval import (IntervalModel, daly_interval, optimal_interval, wall_per_work,
                                           young_interval)
from colossim.reliability.montecarlo import simulate

pos = st.floats(min_value=1.0, max_value=1e5)


@given(d=pos, mttf=st.floats(min_value=10.0, max_value=1e7))
def test_daly_is_positive_and_near_young_when_d_small(d, mttf):
    tau = daly_interval(d, mttf)
    assert 0 < tau <= max(mttf, young_interval(d, mttf) * 1.25)
    if d < 0.001 * mttf:
        assert math.isclose(tau, young_interval(d, mttf), rel_tol=0.05)


@given(d=st.floats(min_value=0.1, max_value=600), mttf=st.floats(min_value=600, max_value=1e6),
       r=st.floats(min_value=0, max_value=3600))
@settings(max_examples=40)
def test_optimum_is_no_worse_than_young_or_daly(d, mttf, r):
    m = IntervalModel(d, 1 / mttf, r)
    best = wall_per_work(optimal_interval(m), m)
    assert best >= 1
    for tau in (young_interval(d, mttf), daly_interval(d, mttf)):
        assert best <= wall_per_work(tau, m) * (1 + 1e-9)


@given(mttf_h=st.floats(min_value=0.5, max_value=100), tau_min=st.floats(min_value=1, max_value=120),
       r_min=st.floats(min_value=0, max_value=30), seed=st.integers(0, 2**31))
@settings(max_examples=25, deadline=None)
def test_monte_carlo_conservation(mttf_h, tau_min, r_min, seed):
    work = 200 * 3600.0
    mc = simulate(work, tau_min * 60, 20, 1 / (mttf_h * 3600), r_min * 60, rate_planned_per_s=1 / 360000,
                  recovery_planned_seconds=300, trials=50, seed=seed)
    assert mc.wall_seconds_p10 <= mc.wall_seconds_p50 <= mc.wall_seconds_p90
    assert mc.wall_seconds_mean >= work
    assert 0 < mc.ettr <= 1
    assert mc.lost_work_seconds_mean >= 0 and mc.checkpoint_seconds_mean >= 0
    parts = work + mc.checkpoint_seconds_mean + mc.lost_work_seconds_mean + mc.recovery_seconds_mean
    assert math.isclose(parts, mc.wall_seconds_mean, rel_tol=1e-6)


@given(n=st.integers(1, 200000))
def test_more_failures_never_help(n):
    a = IntervalModel(10, n * 2e-5 / 3600, 600)
    b = IntervalModel(10, 2 * n * 2e-5 / 3600, 600)
    assert wall_per_work(optimal_interval(b), b) >= wall_per_work(optimal_interval(a), a)
