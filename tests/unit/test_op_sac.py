"""torchtitan's per-op selective activation checkpointing and PyTorch's own FSDP stack
(ops.op_sac_recomputed_shares, step/memory/flops under selective_recompute 'ops', the
torchtitan-2024 stack and the zero3_stack rule)."""

from __future__ import annotations

import pytest

from colossim.specs.model import resolve_model
from colossim.specs.training import load_spec
from colossim.training import flops as F
from colossim.training import ops as O
from colossim.training.estimate import estimate
from colossim.training.memory import activation_bytes_per_layer, op_sac_saved_bytes

LLAMA_8B_FSDP = {"model": "llama3.1-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
                 "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 2, "zero": 3},
                 "training": {"global_batch": 16, "precision": "bf16"}}


def _llama():
    return resolve_model("llama3.1-8b")


def test_every_second_matmul_runs_again_llama_wk_wo_w3():
    """Llama's seven matmuls per block in forward order are wq wk wv wo w1 w3 w2; the policy
    recomputes the 2nd, 4th and 6th: wk (kv_heads of the fused QKV), wo whole, w3 (half the fused
    gate-and-up GEMM); w2 is kept."""
    m = _llama()
    shares = O.op_sac_recomputed_shares(["qkv", "out_proj", "mlp_up", "mlp_down"], m)
    a, g = m.heads, m.kv_heads
    assert shares == pytest.approx({"qkv": g / (a + 2 * g), "out_proj": 1.0, "mlp_up": 0.5, "mlp_down": 0.0})


def test_a_gpt_block_recomputes_k_the_output_projection_and_the_down_projection():
    """Non-gated MHA: q k v o up down; the even ones are k, o and down."""
    m = resolve_model("gpt3-175b")
    shares = O.op_sac_recomputed_shares(["qkv", "out_proj", "mlp_up", "mlp_down"], m)
    assert shares == pytest.approx({"qkv": 1 / 3, "out_proj": 1.0, "mlp_up": 0.0, "mlp_down": 1.0})


def test_grouped_expert_gemms_are_neither_counted_nor_saved():
    m = resolve_model("mixtral-8x7b")
    shares = O.op_sac_recomputed_shares(["qkv", "out_proj", "router", "expert_up", "expert_down"], m)
    # wq wk wv wo router: the router is the 5th matmul (kept); the experts run again whole
    assert shares["router"] == 0.0 and shares["expert_up"] == shares["expert_down"] == 1.0


def test_recomputed_flops_are_the_closed_form_of_wk_wo_and_w3():
    m = _llama()
    h, d, g, a, f = m.hidden, m.head_dim, m.kv_heads, m.heads, m.ffn_hidden
    per_layer = 2.0 * h * g * d + 2.0 * a * d * h + 2.0 * h * f
    got = F.recompute_flops_per_token(m, 8192, "selective", selective_recompute="ops")
    assert got == pytest.approx(m.layers * per_layer)
    # more than Megatron's selective (the attention core), less than the whole forward
    assert F.recompute_flops_per_token(m, 8192, "selective") < got < F.recompute_flops_per_token(m, 8192, "full")


def test_recompute_ops_rerun_every_memory_bound_op_but_not_the_attention():
    m = _llama()
    ops = O.layer_ops(m, 2, 8192, 1, 1, 1, False, elementwise_fusion=False)
    again = O.op_sac_recompute_ops(ops, m)
    assert not any(isinstance(o, O.Attention) for o in again)
    assert {o.name for o in again if isinstance(o, O.MemoryBound)} == \
        {o.name for o in ops if isinstance(o, O.MemoryBound)}
    gemm_flops = sum(float(o.flops) for o in again if isinstance(o, O.Gemm))
    tokens = 2 * 8192
    assert gemm_flops == pytest.approx(tokens * F.recompute_flops_per_token(m, 8192, "selective", selective_recompute="ops")
                                       / m.layers)


def test_saved_bytes_are_the_kept_matmul_outputs_the_attention_output_and_the_block_input():
    m = _llama()
    tok = 2 * 8192
    h, d, g, a, f = m.hidden, m.head_dim, m.kv_heads, m.heads, m.ffn_hidden
    # block input, wq, wv, w1 and w2 outputs, the attention output (bf16) and its fp32 log-sum-exp
    expected = 2.0 * tok * (h + a * d + g * d + f + h + a * d) + 4.0 * a * tok
    assert float(op_sac_saved_bytes(m, 8192, 2, 1, 1, False)) == pytest.approx(expected)
    kept = float(activation_bytes_per_layer(m, 8192, 2, 1, 1, False, "selective", selective_recompute="ops"))
    assert kept == pytest.approx(expected)
    none = float(activation_bytes_per_layer(m, 8192, 2, 1, 1, False, "none"))
    full = float(activation_bytes_per_layer(m, 8192, 2, 1, 1, False, "full"))
    assert full < kept < none


def test_a_spec_fixing_zero_3_on_an_h100_runs_pytorchs_own_stack():
    """Megatron-Core's 2024 runs shard with the distributed optimizer; a fixed zero 3 (FSDP) without a
    named stack is priced on torchtitan-2024: eager kernels, per-op selective recompute, no host
    sync per step."""
    e = estimate(load_spec(LLAMA_8B_FSDP))
    assert e.software == "torchtitan-2024"
    assert estimate(load_spec({**LLAMA_8B_FSDP, "parallelism": {**LLAMA_8B_FSDP["parallelism"], "zero": 1}})
                    ).software == "megatron-core-2024"
    deepspeed = {**LLAMA_8B_FSDP, "parallelism": {**LLAMA_8B_FSDP["parallelism"], "fsdp": False}}
    assert estimate(load_spec(deepspeed)).software == "megatron-core-2024"
    named = {**LLAMA_8B_FSDP, "training": {**LLAMA_8B_FSDP["training"], "software": "megatron-core-2024"}}
    assert estimate(load_spec(named)).software == "megatron-core-2024"
    a100 = {**LLAMA_8B_FSDP, "hardware": {"gpu": "a100-80gb-sxm", "count": 8}}
    assert estimate(load_spec(a100)).software == "megatron-lm-2021"
    # the same plan on Megatron-Core's fused kernels is faster
    assert estimate(load_spec(named)).step_time_s < e.step_time_s


def test_per_op_selective_recompute_costs_more_than_recomputing_the_attention_core():
    spec = {**LLAMA_8B_FSDP, "parallelism": {**LLAMA_8B_FSDP["parallelism"], "recompute": "selective",
                                             "micro_batch": 1}}
    ops = estimate(load_spec(spec))
    attention = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"],
                                                            "selective_recompute": "attention"}}))
    none = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "recompute": "none"}}))
    assert ops.time_breakdown_s["recompute"] > attention.time_breakdown_s["recompute"]
    assert ops.memory_gib_per_gpu < none.memory_gib_per_gpu
    # HFU counts the recomputed matmuls: its ratio to MFU is the FLOPs ratio
    m = _llama()
    ratio = (F.hardware_flops_per_token(m, 8192, "selective", selective_recompute="ops")
             / F.hardware_flops_per_token(m, 8192, "none"))
    assert ops.hfu / ops.mfu == pytest.approx(ratio) and ratio > 1.05
    assert none.hfu == pytest.approx(none.mfu)
    assert ops.step_time_s > attention.step_time_s > none.step_time_s
