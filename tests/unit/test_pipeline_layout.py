"""How a stack may split layers over pipeline stages (``pipeline_layout``): a search keeps to the
depths it can run at ceil(layers / pp) a stage, the pace every estimate prices; a written depth it
cannot is priced at that pace with a caveat."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, plan_space, search
from colossim.training.pipeline import layout_reaches_even_pace


@pytest.mark.parametrize("layers,pp,first_last", [
    (126, 16, True),   # Llama 3 405B: 7 + 14 x 8 + 7
    (80, 16, True), (96, 10, True), (80, 79, True), (80, 2, True), (81, 2, True),
    (80, 31, False),   # 29 x 2 leave 11 on each end; 29 x 3 are too many
    (80, 32, False), (80, 63, False), (80, 33, False),
])
def test_first_last_splits(layers, pp, first_last):
    assert bool(layout_reaches_even_pace(layers, pp, "first_last")) is first_last
    assert bool(layout_reaches_even_pace(layers, pp, "even")) is (layers % pp == 0)
    assert bool(layout_reaches_even_pace(layers, pp, "any"))


@given(st.integers(1, 400), st.integers(1, 400))
def test_a_first_last_split_exists_exactly_when_the_check_says(layers, pp):
    # brute force: a middle share m and two end shares f, l >= 1, none above ceil(L / p)
    if pp > layers:
        return
    n = -(-layers // pp)
    if pp <= 2:
        exists = True
    else:
        exists = any(1 <= layers - m * (pp - 2) - f <= n for m in range(1, n + 1) for f in range(1, n + 1))
    assert bool(layout_reaches_even_pace(layers, pp, "first_last")) is exists


DOC = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 992},
       "training": {"global_batch": 512, "seq_len": 8192}}


def test_megatron_core_has_no_plan_on_31_stages_and_torchtitan_has():
    # 992 = 31 x 32 GPUs: only pp 31 takes the 31; the search had priced it at 3 layers a stage
    with pytest.raises(SpecError, match="pipeline_layout is first_last") as e:
        search(load_spec(DOC), top=1)
    assert "hardware.count 960 or 1,024" in str(e.value)
    _, plans = plan_space(load_spec({**DOC, "training": {**DOC["training"], "software": "torchtitan-2024"}}))
    assert 31 in set(plans.pp.tolist())


def test_a_written_depth_the_stack_cannot_split_evenly_says_so():
    e = estimate(load_spec({**DOC, "parallelism": {"tp": 2, "pp": 31, "cp": 4, "dp": 4}}))
    assert any(c.startswith("pp 31: megatron-core-2024 cannot split 80 layers over 31 stages with at most 3")
               for c in e.validation_evidence["caveats"])
    fine = estimate(load_spec({**DOC, "hardware": {"gpu": "h100-sxm", "count": 1024},
                               "parallelism": {"tp": 8, "pp": 16, "dp": 8}}))
    assert not any(c.startswith("pp 16") for c in fine.validation_evidence["caveats"])


def test_megatron_lm_searches_only_depths_that_divide_the_layers():
    spec = load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 1024},
                      "training": {"global_batch": 1536}})
    _, plans = plan_space(spec)
    assert all(96 % p == 0 for p in set(plans.pp.tolist()))
