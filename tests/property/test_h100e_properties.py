"""Invariants of H100-equivalents (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.catalog import load_catalog
from colossim.fleet.h100e import SPEC_METRICS, h100e, h100e_mix

CHIPS = ["a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200", "gb200", "mi300x", "tpu-v5p"]
counts = st.integers(min_value=0, max_value=10**7)


@settings(max_examples=60, deadline=None)
@given(chip=st.sampled_from(CHIPS), metric=st.sampled_from(["bf16", "fp8", "hbm_bandwidth", "power"]),
       a=counts, b=counts)
def test_linear_in_count(chip, metric, a, b):
    assert h100e(chip, a + b, metric).h100e == pytest.approx(
        h100e(chip, a, metric).h100e + h100e(chip, b, metric).h100e, rel=1e-12, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(mix=st.dictionaries(st.sampled_from(CHIPS), counts, min_size=1, max_size=5),
       metric=st.sampled_from(["bf16", "fp8"]))
def test_mix_equals_sum_of_parts(mix, metric):
    assert h100e_mix(mix, metric) == pytest.approx(sum(h100e(c, n, metric).h100e for c, n in mix.items()))


def test_reference_chip_is_one_on_every_metric():
    for m in SPEC_METRICS:
        assert h100e("h100-sxm", 1, m).h100e == pytest.approx(1.0)


def test_h200_equals_h100_on_compute():
    # same GH100 compute; differs only in memory
    for m in ("bf16", "fp8", "tf32"):
        assert h100e("h200-sxm", 1, m).h100e == pytest.approx(1.0, rel=1e-4)
    assert load_catalog().accelerator("h200-sxm").hbm_gib > 80
