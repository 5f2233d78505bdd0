"""A power limit (``hardware.tdp_w``) lowers the clock of compute-bound kernels (cost/power.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.catalog import load_catalog
from colossim.cost import compute, default_profile
from colossim.cost.power import (DVFS_EXPONENT_ABOVE_TDP, DVFS_EXPONENT_BELOW_TDP, power_clock_fraction,
                                 power_limited_profile)
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate

H100 = load_catalog().accelerator("h100-sxm")
P = default_profile("h100-sxm")


def _spec(tdp_w=None, model="llama3.1-8b"):
    hw = {"gpu": "h100-sxm", "count": 8, **({"tdp_w": tdp_w} if tdp_w else {})}
    return load_spec({"model": model, "hardware": hw,
                      "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "zero": 3,
                                      "recompute": "none"},
                      "training": {"global_batch": 8, "precision": "bf16", "tokens": 1e9}})


def test_a_500_w_cap_slows_gemms_and_attention_by_the_power_ratio():
    capped = power_limited_profile(P, 700.0, 500.0)
    clock = (500.0 / 700.0) ** (1.0 / DVFS_EXPONENT_BELOW_TDP)
    assert clock == pytest.approx(500.0 / 700.0)  # below the TDP the clock follows the power
    for prec, g in P.gemm.items():
        assert capped.gemm[prec].max_efficiency == pytest.approx(g.max_efficiency * clock)
    assert capped.attention.max_efficiency == pytest.approx(P.attention.max_efficiency * clock)
    # HBM and the links keep their clocks
    assert capped.memory_efficiency == P.memory_efficiency and capped.collectives == P.collectives
    big = compute.gemm_seconds(8192, 8192, 8192, "bf16", H100, capped)
    # (the few microseconds of launch do not scale with the clock)
    assert float(big) == pytest.approx(float(compute.gemm_seconds(8192, 8192, 8192, "bf16", H100, P)) / clock,
                                       rel=2e-3)
    assert float(compute.memory_bound_seconds(1e9, H100, capped)) == float(compute.memory_bound_seconds(1e9, H100, P))


def test_at_the_datasheet_tdp_nothing_changes_and_above_it_gemms_stop_at_their_burst_clock():
    assert power_limited_profile(P, 700.0, 700.0) is P
    s = P.gemm["bf16"].sustained_fraction  # 0.841 at 700 W (napkin-math 8192^3 row)
    # above the TDP the power grows as the cube of the clock: the burst clock would draw 700 / s^3 W,
    # and any limit above that leaves the GEMM at burst
    assert DVFS_EXPONENT_ABOVE_TDP == 3.0
    assert power_clock_fraction(s, 700.0, 700.0 / s**3) == pytest.approx(1.0)
    assert power_clock_fraction(s, 700.0, 700.0 * 1.1) == pytest.approx(s * 1.1 ** (1 / 3))
    assert power_clock_fraction(s, 700.0, 2000.0) == 1.0
    loose = power_limited_profile(P, 700.0, 2000.0)
    assert loose.gemm["bf16"].max_efficiency == pytest.approx(P.gemm["bf16"].max_efficiency / s)
    assert loose.attention.max_efficiency == P.attention.max_efficiency  # already unthrottled at TDP


def test_a_spec_with_tdp_w_trains_slower_and_draws_less_energy_per_token():
    full, capped = estimate(_spec()), estimate(_spec(500))
    assert capped.step_time_s > full.step_time_s * 1.05
    assert capped.energy_mwh < full.energy_mwh
    # the catalog's own TDP written out changes nothing
    assert estimate(_spec(700)).step_time_s == full.step_time_s


@settings(max_examples=25, deadline=None)
@given(st.floats(200.0, 1500.0), st.floats(200.0, 1500.0), st.floats(0.5, 1.0))
def test_clock_never_falls_as_the_power_limit_rises(a, b, sustained):
    lo, hi = sorted((a, b))
    assert power_clock_fraction(sustained, 700.0, lo) <= power_clock_fraction(sustained, 700.0, hi) <= 1.0


def test_the_two_regimes_meet_at_the_tdp_and_a_cap_costs_more_clock_than_the_same_headroom_gains():
    s = 0.8
    assert power_clock_fraction(s, 700.0, 700.0) == pytest.approx(s)
    assert power_clock_fraction(s, 700.0, 700.0 * (1 - 1e-9)) == pytest.approx(s)
    assert power_clock_fraction(s, 700.0, 700.0 * (1 + 1e-9)) == pytest.approx(s)
    # 100 W less costs a seventh of the clock; 100 W more buys only a cube root's worth
    assert power_clock_fraction(s, 700.0, 600.0) == pytest.approx(s * 6 / 7)
    gain = power_clock_fraction(s, 700.0, 800.0) / s - 1.0
    loss = 1.0 - power_clock_fraction(s, 700.0, 600.0) / s
    assert gain == pytest.approx((8 / 7) ** (1 / 3) - 1) and gain < loss / 2
