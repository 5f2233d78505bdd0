"""Divisors in O(sqrt n): the same list as the definition; an integer spec field beyond
``MAX_SPEC_INTEGER`` is refused by name, and the largest layer counts allowed are still searched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.arith import DIVISORS_LISTED, divisors, divisors_text
from colossim.errors import SpecError
from colossim.specs._validation import MAX_SPEC_INTEGER
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate


@given(st.integers(min_value=-5, max_value=5000))
def test_divisors_are_the_definition_s_in_order(n):
    assert divisors(n) == [d for d in range(1, n + 1) if n % d == 0]


@given(st.integers(min_value=1, max_value=10**6))
def test_error_messages_list_the_divisors_or_the_first_of_them(n):
    ds, text = divisors(n), divisors_text(n).split(", ")
    if len(ds) <= DIVISORS_LISTED + 1:
        assert text == [str(d) for d in ds]
    else:
        assert text == [str(d) for d in ds[:DIVISORS_LISTED]] + ["..."]


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=10**12))
def test_divisors_of_large_numbers_divide_and_pair_up(n):
    ds = divisors(n)
    assert ds == sorted(set(ds)) and ds[0] == 1 and ds[-1] == n
    assert all(n % d == 0 and n // d in ds for d in ds)


@pytest.mark.parametrize("field, value", [("layers", 10**12), ("vocab", 10**30), ("seq_len", 2**31)])
def test_an_integer_beyond_the_spec_limit_is_refused_by_name(field, value):
    # 10^12 layers hung the search (its pipeline candidates are divisors of the layers), 10^30
    # tokens per sequence overflowed numpy with a traceback
    spec = {"model": {"name": "llama3-8b", field: value}, "hardware": {"gpu": "h100-sxm", "count": 64},
            "training": {"global_batch": 256}}
    with pytest.raises(SpecError, match=rf"^model.{field}: Input should be less than or equal to "
                                        rf"{MAX_SPEC_INTEGER} \(got {value}\)$"):
        load_spec(spec)


def test_the_largest_layer_count_allowed_is_searched_and_found_not_to_fit():
    spec = {"model": {"name": "llama3-8b", "layers": 2**30}, "hardware": {"gpu": "h100-sxm", "count": 64},
            "parallelism": {"tp": 2}, "training": {"global_batch": 256}}
    with pytest.raises(SpecError, match="^model does not fit: the leanest plan") as e:
        estimate(load_spec(spec))
    # its leanest plan already recomputes, shards with ZeRO-3 and runs flash attention on 1 sequence
    assert str(e.value).endswith("; nothing tried fits: up to 1,024x the GPUs (hardware.count 65,536) or 1/16 of "
                                 "the sequence (training.seq_len 512)")
