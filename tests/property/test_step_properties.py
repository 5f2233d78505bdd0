"""Physical invariants of the step model, over random specs and random plans of their search spaces:
nothing the engine prices is negative or infinite, and a faster part (network, GEMMs, HBM) never
makes a step slower, a larger batch never lowers the throughput of a fixed plan, and recomputing
more never makes it faster.

DeepSeek-V3's DualPipe stack is left out of the compute properties: its bubble is the closed form
of the report's Table 2 with the pair's all-to-all exposure folded into the passes, not a schedule
simulation, and a faster weight gradient (or more recompute under an all-to-all-bound pair) can move
its step the wrong way by a fraction of a percent.  Weak scaling is not a property either: doubling
dp with the batch can shorten a step, because Megatron-Core's gradient buckets grow with dp
(``training.step.dp_buckets``) and larger messages reach more of the bus bandwidth."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from colossim.specs.training import load_spec
from colossim.training.estimate import TIME_KEYS, plan_space
from colossim.training.plans import RECOMPUTE_CODES
from colossim.training.step import evaluate_step

MODELS = ("llama3-8b", "llama2-13b", "nemotron4-15b", "llama3-70b", "mixtral-8x7b", "deepseek-v2",
          "grok-1")
CHIPS = ("h100-sxm", "a100-80gb-sxm", "b200")


@lru_cache(maxsize=None)
def _space(model: str, chip: str, count: int, batch: int, precision: str):
    """Step context and every plan of a spec's search space (cached: hypothesis draws them again)."""
    return plan_space(load_spec({"model": model, "hardware": {"gpu": chip, "count": count},
                                 "training": {"global_batch": batch, "precision": precision}}))


@st.composite
def spaces(draw, models=MODELS):
    """A random spec's whole search space (the compute-speed properties check every plan: the
    plans that break them are a few in thousands)."""
    model = draw(st.sampled_from(models))
    chip = draw(st.sampled_from(CHIPS))
    count = draw(st.sampled_from([8, 16, 32, 64, 128, 256]))
    batch = max(draw(st.sampled_from([count // 4, count, 4 * count])), 1)
    precision = "bf16" if chip.startswith("a100") else draw(st.sampled_from(["bf16", "fp8"]))
    return _space(model, chip, count, batch, precision)


@st.composite
def spec_and_plans(draw, models=MODELS):
    """A random spec and a few plans of its search space."""
    ctx, plans = draw(spaces(models))
    n = len(plans.tp)
    if n == 0:
        return ctx, plans
    picks = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12, unique=True))
    return ctx, plans.take(np.array(picks))


def _step(ctx, plans) -> np.ndarray:
    return evaluate_step(ctx, plans)["step_time_s"]


def _no_slower(faster: np.ndarray, base: np.ndarray) -> bool:
    return bool(np.all(faster <= base * (1 + 1e-9) + 1e-12))


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: fewer examples where each prices a whole space
WHOLE_SPACES = settings(SETTINGS, max_examples=10)


@SETTINGS
@given(spec_and_plans())
def test_every_part_of_a_step_is_finite_and_not_negative(case):
    ctx, plans = case
    if len(plans.tp) == 0:
        return
    out = evaluate_step(ctx, plans)
    for key in ("step_time_s", *TIME_KEYS):
        v = np.asarray(out[key], dtype=float)
        assert np.all(np.isfinite(v)) and np.all(v >= 0), key
    # the parts that add up to the step are none of them longer than it
    for key in ("pipeline_bubble", "pp_comm", "dp_comm", "optimizer_step", "host_overhead"):
        assert np.all(out[key] <= out["step_time_s"] * (1 + 1e-12)), key


@SETTINGS
@given(spec_and_plans(), st.sampled_from(["scaleout_bytes_per_s_per_gpu", "scaleup_bytes_per_s_per_gpu"]))
def test_a_faster_network_never_slows_a_step(case, link):
    ctx, plans = case
    if len(plans.tp) == 0:
        return
    fast = dataclasses.replace(ctx, network=dataclasses.replace(ctx.network, **{link: 2 * getattr(ctx.network, link)}))
    assert _no_slower(_step(fast, plans), _step(ctx, plans))


#: DeepSeek-V2 (zero-bubble pipeline) on 128 H100 with a batch of 32: before the last stage was
#: balanced phase by phase and ZB-H1's drain filled only with the weight gradients there are,
#: faster GEMMs slowed 20 of its 9,582 plans, faster HBM 8.
ZB_SPACE = ("deepseek-v2", "h100-sxm", 128, 32, "bf16")
#: DeepSeek-V2 on 128 B200 in FP8 (session 37): the zero-bubble drain was filled with the weight
#: gradients of one stage while the backward was another's (the last, with the head), and the
#: backward's all-to-all hid under the shared experts' weight gradients that ZB-H1 defers; faster
#: GEMMs slowed 4 of 9,582 plans by up to 0.2 %.
ZB_SPLIT_SPACE = ("deepseek-v2", "b200", 128, 32, "fp8")


@WHOLE_SPACES
@given(spaces(), st.floats(1.05, 1.3))
@example(case=_space(*ZB_SPACE), factor=1.2)
@example(case=_space(*ZB_SPLIT_SPACE), factor=1.3)
def test_faster_gemms_or_memory_never_slow_a_step(case, factor):
    ctx, plans = case
    if len(plans.tp) == 0:
        return
    prof = ctx.profile
    gemm = {k: dataclasses.replace(v, max_efficiency=v.max_efficiency * factor) for k, v in prof.gemm.items()}
    base = _step(ctx, plans)
    assert _no_slower(_step(dataclasses.replace(ctx, profile=dataclasses.replace(prof, gemm=gemm)), plans), base)
    hbm = dataclasses.replace(prof, memory_efficiency=min(prof.memory_efficiency * factor, 1.5))
    assert _no_slower(_step(dataclasses.replace(ctx, profile=hbm), plans), base)


@SETTINGS
@given(spec_and_plans(MODELS + ("deepseek-v3",)))
def test_a_larger_batch_never_lowers_a_plans_throughput(case):
    ctx, plans = case
    if len(plans.tp) == 0:
        return
    double = dataclasses.replace(ctx, global_batch=2 * ctx.global_batch)
    # twice the tokens in at most twice the time
    assert _no_slower(_step(double, plans), 2 * _step(ctx, plans))


@WHOLE_SPACES
@given(spaces())
def test_recomputing_more_never_makes_a_plan_faster(case):
    ctx, plans = case
    order = [RECOMPUTE_CODES[r] for r in ("none", "selective", "full")]
    for less, more in zip(order, order[1:]):
        idx = np.nonzero(plans.recompute == less)[0]
        if idx.size == 0:
            continue
        same = plans.take(idx)
        again = dataclasses.replace(same, recompute=np.full_like(same.recompute, more))
        assert _no_slower(_step(ctx, same), _step(ctx, again))


def test_a_schedule_that_defers_weight_gradients_hides_no_backward_communication_under_them():
    # DeepSeek-V2's own schedule (ZB-H1) against 1F1B on the same plans: the backward's expert
    # all-to-all hides under the shared experts' input-gradient GEMMs only, so more of it is exposed
    ctx, plans = _space(*ZB_SPLIT_SPACE)
    assert ctx.pipeline_schedule == "zb1p" and ctx.ep_comm_overlap == "shared_experts"
    split = evaluate_step(ctx, plans)["ep_comm"]
    joined = evaluate_step(dataclasses.replace(ctx, pipeline_schedule="1f1b"), plans)["ep_comm"]
    assert np.all(split >= joined * (1 - 1e-12)) and np.any(split > joined * 1.01)
