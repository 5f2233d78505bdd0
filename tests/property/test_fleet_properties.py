"""Invariants of fleet accounting (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.fleet.accounting import point_at, series
from colossim.fleet.costs import capex, power
from colossim.fleet.dates import quarter_label
from colossim.fleet.growth import growth
from colossim.fleet.holdings import fleet

CHIPS = ["a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200", "gb200", "mi300x", "tpu-v5p", "dojo-d1"]
PRICED = ["a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200", "gb200", "mi300x", "tpu-v5p"]
counts = st.integers(min_value=0, max_value=10**6)
F = fleet()
ORGS = sorted({h.org for h in F})
METRICS = ["bf16", "fp8", "tf32", "hbm_bandwidth", "power", "price", "epoch-clusters"]


@settings(max_examples=60, deadline=None)
@given(chip=st.sampled_from(CHIPS), a=counts, b=counts)
def test_power_is_linear_in_count(chip, a, b):
    assert power({chip: a + b}).mw == pytest.approx(power({chip: a}).mw + power({chip: b}).mw, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(chip=st.sampled_from(PRICED), a=counts, b=counts)
def test_capex_is_linear_in_count(chip, a, b):
    for field in ("chips_usd", "all_in_usd"):
        assert getattr(capex({chip: a + b}), field) == pytest.approx(
            getattr(capex({chip: a}), field) + getattr(capex({chip: b}), field), rel=1e-12, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(mix=st.dictionaries(st.sampled_from(CHIPS), counts, min_size=1, max_size=4),
       pue=st.floats(min_value=1.0, max_value=2.0))
def test_power_of_a_mix_is_the_sum_and_scales_with_pue(mix, pue):
    total = power(mix, pue=pue).mw
    assert total == pytest.approx(sum(power({c: n}, pue=pue).mw for c, n in mix.items()), rel=1e-9, abs=1e-12)
    assert total == pytest.approx(power(mix, pue=1.0).mw * pue, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(org=st.sampled_from(ORGS), metric=st.sampled_from(METRICS), planned=st.booleans())
def test_series_h100e_is_never_negative(org, metric, planned):
    s = series(F, org, metric, "planned" if planned else "existing")
    assert all(p.h100e >= 0 and p.computed >= 0 and p.reported >= 0 for p in s.points)
    assert all(p.h100e == pytest.approx(p.computed + p.reported) for p in s.points)


@settings(max_examples=40, deadline=None)
@given(org=st.sampled_from(ORGS), month=st.integers(min_value=2020 * 12, max_value=2028 * 12))
def test_a_point_is_the_larger_of_total_and_clusters_never_their_sum(org, month):
    q = quarter_label(month)
    p = point_at(F, org, q)
    total = point_at(F, org, q, rule="total")
    clusters = point_at(F, org, q, rule="clusters")
    parts = [x.h100e for x in (total, clusters) if x is not None]
    if p is None:
        assert not parts
    else:
        assert p.h100e == pytest.approx(max(parts))


@settings(max_examples=40, deadline=None)
@given(value=st.floats(min_value=1e-3, max_value=1e9), n=st.integers(min_value=2, max_value=20))
def test_growth_of_a_constant_series_is_zero(value, n):
    qs = [quarter_label(2020 * 12 + 3 * i) for i in range(n)]
    g = growth([(q, value) for q in qs])
    assert g.cagr == pytest.approx(0.0, abs=1e-12)
    assert all(p.qoq == pytest.approx(0.0, abs=1e-12) for p in g.points[1:])


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(min_value=0.01, max_value=10.0), years=st.integers(min_value=1, max_value=6))
def test_cagr_recovers_a_constant_annual_rate(rate, years):
    qs = [quarter_label(2020 * 12 + 3 * i) for i in range(4 * years + 1)]
    g = growth([(q, (1 + rate) ** (i / 4)) for i, q in enumerate(qs)])
    assert g.cagr == pytest.approx(rate, rel=1e-9)
    assert (1 + rate) ** g.doubling_time_years == pytest.approx(2.0, rel=1e-9)
