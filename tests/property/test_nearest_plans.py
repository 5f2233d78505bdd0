"""The no-plan error's advice: the nearest GPU counts and global batches that admit a plan are the
nearest ones a scan of every count / batch finds, and the spec that takes the advice estimates."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, search
from colossim.training.search import enumerate_plans, nearest_plan_batches, nearest_plan_counts

SMALL = {"model": {"name": "llama3-8b", "seq_len": 4096}, "hardware": {"gpu": "h100-sxm", "count": 8},
         "training": {"global_batch": 64, "precision": "bf16"}}


def _admits(spec, count: int, batch: int) -> bool:
    return len(enumerate_plans(spec.model, replace(spec.hardware, count=count), spec.parallelism, batch,
                               spec.model.seq_len)) > 0


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 200), batch=st.sampled_from([6, 24, 64, 96, 250, 512]),
       fixed=st.sampled_from([{}, {"tp": 2}, {"pp": 4}, {"uneven_stages": False}, {"dp": 2}]))
def test_the_nearest_counts_and_batches_are_those_a_full_scan_finds(k, batch, fixed):
    # a count the fixed factor divides (the spec refuses any other before a search)
    count = k * max([v for v in fixed.values() if not isinstance(v, bool)], default=2)
    spec = load_spec({**SMALL, "hardware": {**SMALL["hardware"], "count": count},
                      # recompute and ZeRO fixed: they do not bear on which counts admit a plan,
                      # and they make each scanned count a twelfth as many plans to enumerate
                      "parallelism": {"recompute": "none", "zero": 1, **fixed},
                      "training": {**SMALL["training"], "global_batch": batch}})
    args = (spec.model, spec.hardware, spec.parallelism, batch, spec.model.seq_len)
    below, above = nearest_plan_counts(*args)
    scan_below = next((m for m in range(count - 1, 0, -1) if _admits(spec, m, batch)), None)
    assert below == scan_below
    if above is not None:  # the first count above that admits a plan, none skipped
        assert _admits(spec, above, batch)
        assert not any(_admits(spec, m, batch) for m in range(count + 1, above))
    lo, hi = nearest_plan_batches(*args)
    scan_lo = next((b for b in range(batch - 1, 0, -1) if _admits(spec, count, b)), None)
    assert lo == scan_lo
    if hi is not None:
        assert _admits(spec, count, hi)
        assert not any(_admits(spec, count, b) for b in range(batch + 1, hi))


def test_colossus_count_with_llama3_batch_is_refused_with_counts_and_batches_that_work():
    doc = {"model": "llama3-405b", "hardware": {"gpu": "h100-sxm", "count": 100_000},
           "training": {"global_batch": 2048, "precision": "bf16"}}
    with pytest.raises(SpecError) as e:
        search(load_spec(doc), top=1)
    msg = str(e.value)
    assert "nearest that admit a plan: hardware.count 98,304 or 102,400, or training.global_batch 2,025 or 2,050" in msg
    # 100,000 = 2^5 x 5^5: no tp x cp x pp (pp <= 126 layers) times a divisor of 2,048 makes it
    for count in (98_304, 102_400):
        assert estimate(load_spec({**doc, "hardware": {**doc["hardware"], "count": count}})).fits
    for batch in (2_025, 2_050):
        assert estimate(load_spec({**doc, "training": {**doc["training"], "global_batch": batch}})).fits


def test_the_advice_is_left_out_rather_than_built_over_millions_of_pipeline_depths():
    # 2 x 10^6 layers with uneven stages would make as many depths x every other degree: no advice, no
    # hang; the count is prime and above the layers, so no plan at all
    doc = {"model": {"name": "llama3-8b", "layers": 2 * 10**6}, "hardware": {"gpu": "h100-sxm", "count": 2_000_003},
           "training": {"global_batch": 2}}
    spec = load_spec(doc)
    args = (spec.model, spec.hardware, spec.parallelism, 2, spec.model.seq_len)
    assert nearest_plan_counts(*args) == (None, None) and nearest_plan_batches(*args) == (None, None)
    with pytest.raises(SpecError, match="no valid parallel plan") as e:
        search(spec, top=1)
    assert "nearest" not in str(e.value)


def test_a_schedule_that_rules_out_every_plan_is_named_with_plain_1f1b_as_a_way_out():
    # DeepSeek-V3 on its own stack runs DualPipe: 3,072 sequences on 2,048 H800 leave a pipeline of
    # p stages 3,072 p / 2,048 = 1.5 p micro-batches, short of the 2 p it needs at every even p
    doc = {"model": "deepseek-v3", "hardware": {"gpu": "h800", "count": 2048},
           "training": {"global_batch": 3072}}
    with pytest.raises(SpecError) as e:
        search(load_spec(doc), top=1)
    msg = str(e.value)
    assert "pipeline_schedule dualpipe needs vpp 1 and either pp 1 or an even pp with at least 2 x pp" in msg
    assert msg.endswith("or parallelism.pipeline_schedule 1f1b")
    took = estimate(load_spec({**doc, "parallelism": {"pipeline_schedule": "1f1b"}}))
    assert took.fits and took.parallelism["pipeline_schedule"] == "1f1b"
    # a batch DualPipe can run keeps DualPipe
    dualpipe = estimate(load_spec({**doc, "training": {"global_batch": 4096}}))
    assert dualpipe.parallelism["pipeline_schedule"] == "dualpipe"
