"""The inference engine's core: memory closed forms, the iteration cost's rooflines, the steady-state
estimate and the frontier."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colossim.errors import SpecError
from colossim.inference import memory as M
from colossim.inference.estimate import candidate_plans, estimate, frontier
from colossim.inference.step import (_expected_experts_touched, causal_pairs, iteration_seconds,
                                     make_context, tabulate)
from colossim.specs.model import resolve_model
from colossim.specs.serving import BYTES_PER_ELEMENT, load_serving_spec
from colossim.specs.system import resolve_hardware


def spec(model="llama3.1-70b", gpu="h100-sxm", count=8, plan=None, **serving):
    s = {"weights": "fp8", "input_tokens": 1024, "output_tokens": 256, **serving}
    return load_serving_spec({"model": model, "hardware": {"gpu": gpu, "count": count},
                              "parallelism": plan or {}, "serving": s})


def ctx_for(model="llama3.1-70b", gpu="h100-sxm", count=8, tp=8, pp=1, ep=1, weights="fp8",
            activations="fp8", kv="fp8"):
    return make_context(resolve_model(model), resolve_hardware({"gpu": gpu, "count": count}),
                        weights=weights, activations=activations, kv_cache=kv, tp=tp, pp=pp, ep=ep,
                        attention_seq_hint=1024)


# --- memory ---------------------------------------------------------------------------------
def test_kv_bytes_gqa_closed_form():
    m = resolve_model("llama3.1-70b")  # 80 layers, 8 KV heads of 128
    assert M.kv_bytes_per_token(m, "bf16") == 2 * 8 * 128 * 80 * 2 == 327_680
    assert M.kv_bytes_per_token(m, "fp8", tp=8) == 2 * 1 * 128 * 80 * 1
    # tp beyond the KV heads replicates them: the per-GPU share stops falling
    assert M.kv_bytes_per_token(m, "fp8", tp=16) == M.kv_bytes_per_token(m, "fp8", tp=8)
    assert M.kv_bytes_per_token(m, "bf16", pp=4) == 2 * 8 * 128 * 20 * 2


def test_kv_bytes_mla_is_the_latent():
    m = resolve_model("deepseek-v3")  # latent 512 + rope 64, 61 layers (DeepSeek-V3 report)
    assert M.kv_bytes_per_token(m, "bf16") == (512 + 64) * 61 * 2
    assert M.kv_bytes_per_token(m, "bf16", tp=8) == M.kv_bytes_per_token(m, "bf16")  # replicated


def test_weight_bytes_scale_with_format_and_tp():
    m = resolve_model("llama3.1-70b")
    ends = (m.params_embedding + m.params_output_head) * 2
    w8 = M.weight_bytes_per_gpu(m, "fp8", 1, 1)
    w16 = M.weight_bytes_per_gpu(m, "bf16", 1, 1)
    # the blocks double from fp8 to bf16, the 16-bit embeddings do not
    assert w16 - ends == pytest.approx(2 * (w8 - ends), rel=1e-3)
    assert M.weight_bytes_per_gpu(m, "fp8", 8, 1) == pytest.approx(w8 / 8, rel=1e-3)  # norms replicate
    assert w8 == pytest.approx(m.params_total + m.params_embedding + m.params_output_head, rel=0.01)
    assert BYTES_PER_ELEMENT["fp4"] > 0.5  # block scales are stored too


def test_max_sequences_from_kv_budget():
    m = resolve_model("llama3.1-8b")
    mem = M.serving_memory(m, 80e9, weights="fp8", kv_format="fp8", tp=1, pp=1, max_num_tokens=8192,
                           max_batch=256, kv_cache_fraction=0.9)
    budget = 0.9 * (80e9 - 2**30 - mem.weights - mem.workspace)
    assert mem.kv_tokens() == int(budget // (2 * 8 * 128 * 32))
    assert mem.max_sequences(2048) == mem.kv_tokens() // 2048


# --- iteration cost --------------------------------------------------------------------------
def test_batch1_decode_is_bound_by_weight_bytes():
    c = ctx_for(tp=1, count=1, model="llama3.1-8b")
    it = iteration_seconds(c, 1.0, 1024.0, 0.0, 1.0)
    weights = M.weight_bytes_per_gpu(c.model, "fp8", 1, 1)
    stream = weights / (c.chip.hbm_bytes_per_s * c.profile.memory_efficiency)
    assert it["memory"] > it["compute"]
    assert stream <= float(it["total"]) <= 1.6 * stream


def test_long_prefill_is_compute_bound():
    c = ctx_for(tp=1, count=1, model="llama3.1-8b")
    it = iteration_seconds(c, 8192.0, 0.0, causal_pairs(8192.0), 1.0)
    assert it["compute"] > it["memory"] + it["comm"]
    flops = 2 * 8192 * resolve_model("llama3.1-8b").params_active
    assert float(it["total"]) > flops / c.chip.peak_flops_per_s("fp8")  # never beats the peak


def test_fp8_weights_halve_batch1_decode():
    t8 = float(iteration_seconds(ctx_for(tp=1, count=1, model="llama3.1-8b"), 1.0, 0.0, 0.0, 1.0)["total"])
    t16 = float(iteration_seconds(ctx_for(tp=1, count=1, model="llama3.1-8b", weights="bf16",
                                          activations="bf16", kv="bf16"), 1.0, 0.0, 0.0, 1.0)["total"])
    assert 1.35 < t16 / t8 < 2.1  # the fixed per-kernel times do not halve


def test_iteration_time_grows_with_tokens_and_cache():
    c = ctx_for()
    T = np.array([1, 8, 64, 512, 4096], dtype=float)
    t = iteration_seconds(c, T, 0.0, 0.0, T)["total"]
    assert np.all(np.diff(t) >= 0)
    kv = iteration_seconds(c, 8.0, np.array([0.0, 1e4, 1e5, 1e6]), 0.0, 8.0)["total"]
    assert np.all(np.diff(kv) > 0)


def test_experts_touched_limits():
    assert _expected_experts_touched(16, 2, np.array(1.0)) == pytest.approx(2.0)
    assert _expected_experts_touched(16, 2, np.array(1e4)) == pytest.approx(16.0)


def test_tabulated_cost_matches_the_model():
    c = ctx_for(model="llama3.1-8b", tp=1, count=1)
    tab = tabulate(c, 4096)
    direct = float(iteration_seconds(c, 100.0, 5e4, 1e6, 100.0)["total"])
    assert tab.iteration_seconds(100, 5e4, 1e6) == pytest.approx(direct, rel=0.02)


# --- estimate ------------------------------------------------------------------------------
def test_slos_are_met_when_possible():
    e = estimate(spec(ttft_slo_s=1.0, tpot_slo_s=0.03))
    assert e.meets_slo and e.fits
    assert e.tpot_s <= 0.03 and e.ttft_s <= 1.0
    loose = estimate(spec())
    assert loose.tokens_per_s_per_gpu >= e.tokens_per_s_per_gpu


def test_throughput_identities():
    e = estimate(spec(batch=32, plan={"tp": 8}))
    assert e.batch == 32
    assert e.tokens_per_s == pytest.approx(32 / e.tpot_s, rel=1e-9)
    assert e.tokens_per_s_per_gpu == pytest.approx(e.tokens_per_s / 8)
    assert e.tokens_per_s_per_user == pytest.approx(1 / e.tpot_s)
    assert e.requests_per_s == pytest.approx(e.tokens_per_s / 256)
    assert e.cost_usd_per_million_tokens > 0 and e.energy_kwh_per_million_tokens > 0


def test_static_batching_total_time():
    e = estimate(spec(batch=16, plan={"tp": 8}, batching="static"))
    total = e.ttft_s + 255 * e.tpot_s
    assert e.tokens_per_s == pytest.approx(16 * 256 / total, rel=1e-9)


def test_gb200_serves_faster_than_h100_per_gpu():
    h = estimate(spec(count=8, tpot_slo_s=0.05))
    b = estimate(load_serving_spec({"model": "llama3.1-70b", "hardware": {"system": "gb200-nvl72", "count": 8},
                                    "serving": {"weights": "fp8", "input_tokens": 1024, "output_tokens": 256,
                                                "tpot_slo_s": 0.05}}))
    assert b.tokens_per_s_per_gpu > 1.5 * h.tokens_per_s_per_gpu


def test_disaggregated_balances_pools():
    e = estimate(spec(disaggregated=True, plan={"tp": 8}, batch=64))
    assert 0 < e.prefill_gpu_fraction < 1
    assert e.disaggregated


def test_frontier_is_pareto():
    pts = frontier(spec())
    users = [p.tokens_per_s_per_user for p in pts]
    gpus = [p.tokens_per_s_per_gpu for p in pts]
    assert len(pts) >= 3
    assert all(a >= b for a, b in zip(users, users[1:]))
    assert all(a < b for a, b in zip(gpus, gpus[1:]))


def test_candidate_plans_respect_the_domain_and_heads():
    plans = candidate_plans(spec(count=16))
    assert plans and all(p["tp"] <= 8 and 64 % p["tp"] == 0 for p in plans)
    assert all(p["tp"] * p["pp"] * p["replicas"] == 16 for p in plans)
    moe = candidate_plans(spec(model="mixtral-8x7b", count=8))
    assert {p["ep"] for p in moe} >= {1, 2, 4, 8}
    assert all(p["tp"] % p["ep"] == 0 for p in moe)


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("plan,field", [({"tp": 3}, "parallelism.tp"), ({"ep": 2}, "parallelism.ep"),
                                        ({"tp": 8, "pp": 2, "replicas": 1}, "parallelism")])
def test_bad_plans_name_the_field(plan, field):
    with pytest.raises(SpecError) as e:
        spec(plan=plan)
    assert e.value.field == field
    assert "\n" not in str(e.value)


def test_unknown_serving_field():
    with pytest.raises(SpecError, match="serving.batchsize"):
        spec(batchsize=4)


def test_a_request_longer_than_the_models_context_is_refused():
    """Llama 3 8B serves 8,192 tokens (Llama 3.1 131,072): prompt + output must fit, up to equal."""
    assert spec(model="llama3-8b", input_tokens=8192 - 256).serving.input_tokens == 7936
    with pytest.raises(SpecError, match=r"^serving\.input_tokens \+ output_tokens = 8,193 is longer than "
                                        r"llama3-8b's context of 8,192 tokens"):
        spec(model="llama3-8b", input_tokens=8192 - 255)
    assert spec(model="llama3.1-8b", input_tokens=100_000).model.max_seq_len == 131_072
    # a context-extended variant says so; a custom shape has no context to check
    assert spec(model={"name": "llama3-8b", "max_seq_len": 32768}, input_tokens=20_000)
    assert spec(model={"layers": 2, "hidden": 256, "heads": 4, "seq_len": 128}, input_tokens=100_000)
    # nor does a shape that matched a catalog model: its context is the match's, not a stated one
    by_shape = spec(model={"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8, "ffn_hidden": 14336,
                           "vocab": 128256, "activation": "swiglu"}, input_tokens=20_000)
    assert by_shape.model.name.endswith("(by shape)") and by_shape.model.max_seq_len < 20_256


def test_does_not_fit_says_how_much_and_what_helps():
    with pytest.raises(SpecError) as e:
        estimate(spec(model="llama3.1-405b", count=2))
    msg = str(e.value)
    assert "GiB" in msg and "more GPUs" in msg and "fp4" in msg


def test_weight_only_quantisation_on_a100():
    s = spec(gpu="a100-80gb-sxm")
    assert s.serving.activation_format == "bf16"
    with pytest.raises(SpecError, match="fp8 tensor cores"):
        spec(gpu="a100-80gb-sxm", activations="fp8")


def test_hours_math_is_consistent():
    e = estimate(spec(batch=8, plan={"tp": 8}))
    usd_h = e.assumptions["usd_per_gpu_hour"]
    assert e.cost_usd_per_million_tokens == pytest.approx(usd_h * 8 * 1e6 / e.tokens_per_s / 3600, rel=1e-9)
    assert math.isfinite(e.energy_kwh_per_million_tokens)


def test_pipeline_only_when_memory_needs_it():
    hgx = candidate_plans(spec(model="llama2-70b", count=8))
    assert all(p["pp"] == 1 for p in hgx)            # every tp holds 70B at fp8 on 80 GB
    nvl = candidate_plans(load_serving_spec({"model": "gpt-moe-1.8t", "hardware": {"system": "gb200-nvl72", "count": 72},
                                             "serving": {"weights": "fp4", "input_tokens": 1024, "output_tokens": 128}}))
    assert any(p["tp"] == 4 and p["pp"] == 2 for p in nvl)   # 4 GPUs cannot hold 1.8T at fp4: a pipeline inside the rack
    assert not any(p["tp"] == 24 and p["pp"] > 1 for p in nvl)  # tp 24 holds it: no pipeline needed


def test_a_grouped_gemm_pays_one_launch_for_all_its_members():
    from colossim.cost import compute as K
    from colossim.inference.step import _Acc

    ctx = ctx_for(model="qwen3-30b-a3b", tp=1)
    launch, t_c, t_m = K.gemm_roofline(2.0, 1536.0, 2048.0, ctx.compute_precision, ctx.chip, ctx.profile,
                                       weight_bytes=BYTES_PER_ELEMENT[ctx.weights])
    per = max(float(t_c), float(t_m))
    one_by_one, grouped = _Acc(()), _Acc(())
    one_by_one.gemm(ctx, 2.0, 1536.0, 2048.0, 16.0)
    grouped.gemm(ctx, 2.0, 1536.0, 2048.0, 16.0, grouped=True)
    assert sum(one_by_one.t.values()) == pytest.approx(16 * (launch + per))
    assert sum(grouped.t.values()) == pytest.approx(launch + 16 * per)


def test_a_small_moe_decodes_on_the_h200_about_as_its_bandwidth_says():
    # Qwen3-30B-A3B at batch 2 on one GPU: the touched experts' weights in one grouped kernel each
    # way; before, 16 kernels each, and the H100's 6 us per kernel (the H200 then had none) made
    # the H100 4x slower where its HBM is 1.43x slower
    h100, h200 = (float(iteration_seconds(ctx_for(model="qwen3-30b-a3b", gpu=g, tp=1), 2.0, 2 * 2048.0,
                                          0.0, 2.0)["total"]) for g in ("h100-sxm", "h200-sxm"))
    assert 1.0 < h100 / h200 < 1.43
