"""Unbalanced MoE routing: the busiest expert-parallel rank's load (``training.moe_load_imbalance``;
training/ops.py busiest_expert_rank_ops, training/step.py expert_rank_load, moe_all_to_all_seconds,
training/memory.py activation_bytes_per_layer)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.model import resolve_model
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, make_context
from colossim.training.ops import Gemm, MemoryBound, busiest_expert_rank_ops, layer_ops
from colossim.training.plans import PlanArrays
from colossim.training.step import evaluate_step, moe_all_to_all_seconds

MIXTRAL = resolve_model("mixtral-8x7b")  # 8 experts, top-2, no shared expert
DSV3 = resolve_model("deepseek-v3")  # 256 routed experts, top-8, one shared

# NeMo's Mixtral 8x7B plan on 64 H100 (tp 1, pp 4, ep 8, vpp 8), the plan fixed so that only the
# routing changes between estimates
MIXTRAL_RUN = {"model": {"name": "mixtral-8x7b", "seq_len": 4096}, "hardware": {"gpu": "h100-sxm", "count": 64},
               "parallelism": {"tp": 1, "pp": 4, "ep": 8, "vpp": 8, "micro_batch": 1, "recompute": "none"},
               "training": {"global_batch": 256, "precision": "bf16"}}


def _run(load: float, **parallelism) -> dict:
    return {**MIXTRAL_RUN, "parallelism": {**MIXTRAL_RUN["parallelism"], **parallelism},
            "training": {**MIXTRAL_RUN["training"], "moe_load_imbalance": load}}


def _by_name(ops) -> dict:
    return {op.name: op for op in ops}


@pytest.mark.parametrize("model", [MIXTRAL, DSV3], ids=["mixtral", "deepseek-v3"])
def test_the_busiest_rank_runs_its_load_of_routed_work_and_nothing_else_changes(model):
    load = 1.5
    ops = layer_ops(model, 1, 4096, 1, 1, 8, False, layer_kind="moe")
    busy = _by_name(busiest_expert_rank_ops(ops, model, load))
    for name, op in _by_name(ops).items():
        if name in ("expert_up", "expert_down"):
            assert float(busy[name].flops) == pytest.approx(load * float(op.flops))
        elif name == "activation":
            # the routed copies of each token take the load, the shared experts' copies do not
            k, s = model.top_k, model.shared_experts
            assert float(busy[name].bytes) == pytest.approx(float(op.bytes) * (k * load + s) / (k + s))
        elif isinstance(op, Gemm):
            assert float(busy[name].flops) == pytest.approx(float(op.flops))  # router, attention, shared
        elif isinstance(op, MemoryBound):
            assert float(busy[name].bytes) == pytest.approx(float(op.bytes))
    assert busiest_expert_rank_ops(ops, model, 1.0) == ops


def test_the_all_to_all_waits_for_the_busiest_rank():
    ctx = make_context(load_spec(MIXTRAL_RUN))
    plans = PlanArrays.from_dicts([dict(tp=1, pp=4, cp=1, ep=8, dp=16, vpp=8, micro_batch=1, recompute="none",
                                        zero=1, sequence_parallel=False, tp_overlap=False)])
    hot = dataclasses.replace(ctx, moe_load_imbalance=1.5)
    for tokens in (4096.0, 4096.0 * 64):
        base, busy = (float(moe_all_to_all_seconds(c, plans, tokens)[0]) for c in (ctx, hot))
        assert base < busy <= 1.5 * base  # the latency part does not grow with the bytes
    # bandwidth-bound, the exchange takes the load's share longer
    big = 4096.0 * 4096
    assert float(moe_all_to_all_seconds(hot, plans, big)[0]) == pytest.approx(
        1.5 * float(moe_all_to_all_seconds(ctx, plans, big)[0]), rel=0.01)


def test_balanced_routing_is_the_default_and_the_model_flops_do_not_move():
    balanced = estimate(load_spec(MIXTRAL_RUN))
    assert load_spec(MIXTRAL_RUN).training.moe_load_imbalance == 1.0
    assert estimate(load_spec(_run(1.0))).step_time_s == balanced.step_time_s
    busy = estimate(load_spec(_run(1.3)))
    assert busy.model_flops_per_token == balanced.model_flops_per_token
    assert busy.step_time_s > balanced.step_time_s
    assert busy.mfu == pytest.approx(balanced.mfu * balanced.step_time_s / busy.step_time_s)
    assert busy.memory_breakdown_gib["activations"] > balanced.memory_breakdown_gib["activations"]
    assert busy.memory_breakdown_gib["weights"] == balanced.memory_breakdown_gib["weights"]
    # the estimate says what routing it assumed
    assert (balanced.assumptions, busy.assumptions) == ({"moe_load_imbalance": 1.0}, {"moe_load_imbalance": 1.3})


def test_no_expert_parallelism_or_no_experts_no_imbalance():
    # each rank holding every expert computes its own tokens' copies however they spread
    one = {"tp": 1, "pp": 4, "ep": 1, "vpp": 8}
    assert estimate(load_spec(_run(1.5, **one))).step_time_s == estimate(load_spec(_run(1.0, **one))).step_time_s
    dense = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
             "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "recompute": "none"},
             "training": {"global_batch": 64}}
    hot = {**dense, "training": {**dense["training"], "moe_load_imbalance": 2.0}}
    assert estimate(load_spec(hot)).step_time_s == estimate(load_spec(dense)).step_time_s
    assert "moe_load_imbalance" not in estimate(load_spec(hot)).assumptions


@settings(max_examples=25, deadline=None)
@given(low=st.floats(1.0, 2.0), extra=st.floats(0.0, 1.0), ep_pow=st.integers(1, 3),
       overlap=st.sampled_from(["none", "shared_experts"]))
def test_a_busier_rank_never_makes_a_step_faster(low, extra, ep_pow, overlap):
    spec = load_spec({"model": {"name": "deepseek-v3", "layers": 8, "seq_len": 4096},
                      "hardware": {"gpu": "h100-sxm", "count": 64},
                      "parallelism": {"ep_comm_overlap": overlap},
                      "training": {"global_batch": 256, "software": "megatron-core-2024"}})
    ctx = make_context(spec)
    ep = 2 ** ep_pow
    plans = PlanArrays.from_dicts([dict(tp=1, pp=2, cp=1, ep=ep, dp=32, vpp=1, micro_batch=1, recompute="full",
                                        zero=1, sequence_parallel=False, tp_overlap=False)])
    a, b = (float(evaluate_step(dataclasses.replace(ctx, moe_load_imbalance=x), plans)["step_time_s"][0])
            for x in (low, low + extra))
    assert b >= a * (1 - 1e-12)
    if extra > 0.05:
        assert b > a


def test_the_step_grows_with_the_load_at_every_step_of_a_fine_sweep():
    """The busiest rank's expert rows are an average (load x the mean): padded to whole
    EXPERT_ROWS_ALIGN rows, no load turns the weight gradient's K aligned where a smaller load left
    it misaligned.  Left fractional, DeepSeek-V3's shape at ep 2 ran 4.177 s at load 1.20 and 4.092 s
    at 1.25."""
    from colossim.training.ops import EXPERT_ROWS_ALIGN

    assert EXPERT_ROWS_ALIGN == 16
    spec = load_spec({"model": {"name": "deepseek-v3", "layers": 8, "seq_len": 4096},
                      "hardware": {"gpu": "h100-sxm", "count": 64},
                      "training": {"global_batch": 256, "software": "megatron-core-2024"}})
    ctx = make_context(spec)
    plans = PlanArrays.from_dicts([dict(tp=1, pp=2, cp=1, ep=2, dp=32, vpp=1, micro_batch=1, recompute="full",
                                        zero=1, sequence_parallel=False, tp_overlap=False)])
    times = [float(evaluate_step(dataclasses.replace(ctx, moe_load_imbalance=1.0 + 0.01 * i), plans)["step_time_s"][0])
             for i in range(101)]
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert times[-1] > times[0]


def test_a_load_below_the_mean_is_refused_with_the_field_named():
    with pytest.raises(SpecError, match="moe_load_imbalance"):
        load_spec(_run(0.8))
    assert np.isfinite(estimate(load_spec(_run(3.0))).step_time_s)


def test_serving_waits_for_the_busiest_expert_gpu_at_large_batches_only():
    from colossim.inference.step import iteration_seconds
    from colossim.inference.step import make_context as serving_context
    from colossim.specs.serving import load_serving_spec
    from colossim.specs.system import resolve_hardware

    hw = resolve_hardware({"gpu": "h100-sxm", "count": 8})

    def seconds(load: float, ep: int, tokens: float) -> float:
        ctx = serving_context(MIXTRAL, hw, weights="fp8", activations="fp8", kv_cache="fp8", tp=8, pp=1, ep=ep,
                              attention_seq_hint=1024, moe_load_imbalance=load)
        return float(iteration_seconds(ctx, tokens, sampled=tokens)["total"])

    # a prefill-sized iteration is compute-bound: the busiest GPU's extra rows cost time
    assert seconds(1.5, 8, 8192) > 1.1 * seconds(1.0, 8, 8192)
    # one decode token reads the same weights whoever is busiest
    assert seconds(1.5, 8, 1) == pytest.approx(seconds(1.0, 8, 1), rel=0.02)
    # experts split over tp on every GPU (ep 1): nothing to wait for
    assert seconds(1.5, 1, 8192) == seconds(1.0, 1, 8192)
    spec = {"model": "mixtral-8x7b", "hardware": {"gpu": "h100-sxm", "count": 8},
            "serving": {"input_tokens": 1024, "output_tokens": 256, "moe_load_imbalance": 0.9}}
    with pytest.raises(SpecError, match="moe_load_imbalance"):
        load_serving_spec(spec)
