"""Error statistics: the compute / rest split of step-time errors (closed forms and a property)."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from colossim.errorstats import error_stats, factor_split, time_split


def test_time_split_closed_form():
    # a compute-only run 20 % slow in reality (predicted +20 %), and a half-compute run exact:
    # 1.2 = a, 1.0 = 0.5 a + 0.5 b  ->  b = 0.8
    ts = time_split([1.0, 0.5], [0.2, 0.0])
    assert ts.compute_factor == pytest.approx(1.2)
    assert ts.rest_factor == pytest.approx(0.8)
    assert ts.residual_sd == pytest.approx(0.0, abs=1e-12)
    assert ts.share_range == (0.5, 1.0)


def test_time_split_cancelling_errors_that_the_mean_hides():
    # compute 15 % too fast, the rest 30 % too slow: a run at share 2/3 comes out exact, so the
    # mean error of a set centred there says nothing; the split still finds both
    shares = [0.4, 2 / 3, 0.9]
    errors = [1.15 * s + 0.7 * (1 - s) - 1 for s in shares]
    assert abs(error_stats(errors).mean_signed) < 0.03
    ts = time_split(shares, errors)
    assert (ts.compute_factor, ts.rest_factor) == (pytest.approx(1.15), pytest.approx(0.7))


def test_time_split_needs_two_distinct_shares():
    for shares, errors in (([0.8], [0.1]), ([0.8, 0.8], [0.1, 0.2]), ([], [])):
        ts = time_split(shares, errors)
        assert math.isnan(ts.compute_factor) and math.isnan(ts.rest_factor)
        assert ts.n == len(shares)


def test_time_split_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        time_split([0.5, 0.6], [0.1])


@given(a=st.floats(0.5, 2.0), b=st.floats(0.2, 3.0),
       shares=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=30,
                       unique_by=lambda x: round(x, 3)))
def test_time_split_recovers_the_factors_that_made_the_errors(a, b, shares):
    errors = [a * s + b * (1 - s) - 1 for s in shares]
    ts = time_split(shares, errors)
    assert ts.compute_factor == pytest.approx(a, rel=1e-6, abs=1e-6)
    assert ts.rest_factor == pytest.approx(b, rel=1e-6, abs=1e-6)
    assert ts.residual_sd < 1e-6


@given(f=st.lists(st.floats(0.3, 3.0), min_size=3, max_size=3),
       raw=st.lists(st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3), min_size=6, max_size=25))
def test_factor_split_recovers_three_factors(f, raw):
    # each run's three shares add up to 1; a model off by f_k on part k gives 1 + e = sum f_k s_k
    runs = [[x / sum(r) for x in r] for r in raw]
    x = np.array(runs)
    assume(np.linalg.matrix_rank(x) == 3 and np.linalg.cond(x) < 1e4)
    errors = [sum(fk * sk for fk, sk in zip(f, r)) - 1 for r in runs]
    got = factor_split({"gemm": x[:, 0], "other": x[:, 1], "rest": x[:, 2]}, errors)
    assert [got["gemm"], got["other"], got["rest"]] == pytest.approx(f, rel=1e-6, abs=1e-6)


def test_factor_split_two_parts_is_time_split_and_degenerate_sets_are_nan():
    shares, errors = [0.4, 0.7, 0.9], [0.05, 0.1, 0.2]
    ts = time_split(shares, errors)
    f = factor_split({"compute": shares, "rest": [1 - s for s in shares]}, errors)
    assert (f["compute"], f["rest"]) == (pytest.approx(ts.compute_factor), pytest.approx(ts.rest_factor))
    same = factor_split({"a": [0.5, 0.5, 0.5], "b": [0.5, 0.5, 0.5]}, [0.1, 0.2, 0.3])
    assert all(math.isnan(v) for v in same.values())
    with pytest.raises(ValueError, match="differ in length"):
        factor_split({"a": [0.5, 0.6]}, [0.1])
