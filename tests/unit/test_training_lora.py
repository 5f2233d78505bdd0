"""LoRA fine-tuning (``training.lora_rank``): the adapters' closed-form parameter and FLOP counts,
their split over tensor parallelism, the frozen weights' missing gradients in FLOPs, time and
memory, and the spec's errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs import resolve_model
from colossim.specs.training import load_spec
from colossim.training import flops as F
from colossim.training import lora as L
from colossim.training import ops as O
from colossim.training.estimate import estimate, plan_space
from colossim.training.memory import GRAD_BYTES, OPTIMIZER_BYTES, memory_per_gpu
from colossim.training.step import evaluate_step, ops_seconds

LLAMA2_7B = resolve_model("llama2-7b")
LLAMA3_70B = resolve_model("llama3-70b")
GPT3 = resolve_model("gpt3-175b")
MIXTRAL = resolve_model("mixtral-8x7b")
ALL = L.Lora(rank=16)


def _spec(model="llama3-70b", count=8, lora_rank=16, plan=None, **training):
    work = {"global_batch": 32, "seq_len": 4096, **training}
    if lora_rank is not None:
        work["lora_rank"] = lora_rank
    return load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": count},
                      "parallelism": plan or {"tp": 4, "pp": 2, "dp": 1}, "training": work})


def test_trainable_parameters_closed_form():
    # r (k + n) per adapted matrix: Llama 2 7B's fused QKV is 4,096 -> 3 x 4,096 (MHA)
    qkv = L.Lora(rank=8, targets=("linear_qkv",))
    assert L.adapter_params(LLAMA2_7B, qkv) == 32 * 8 * (4096 + 3 * 4096) == 4_194_304
    # Llama 3 70B, all four targets: QKV 8,192 -> 10,240 (GQA, 8 KV heads), output 8,192 -> 8,192,
    # gated fc1 8,192 -> 2 x 28,672, fc2 28,672 -> 8,192
    per_layer = 16 * ((8192 + 10240) + (8192 + 8192) + (8192 + 57344) + (28672 + 8192))
    assert L.adapter_params(LLAMA3_70B, ALL) == 80 * per_layer == 175_636_480


def test_routed_experts_each_get_an_adapter_and_tokens_pass_top_k_of_them():
    fc = L.Lora(rank=8, targets=("linear_fc1", "linear_fc2"))
    h, f, e, k = MIXTRAL.hidden, MIXTRAL.moe_ffn_hidden, MIXTRAL.experts, MIXTRAL.top_k
    per_expert = 8 * ((h + 2 * f) + (f + h))
    assert L.adapter_params(MIXTRAL, fc) == MIXTRAL.layers * e * per_expert
    assert L.adapter_flops_per_token(MIXTRAL, fc) == MIXTRAL.layers * k * 2 * per_expert


@settings(max_examples=40, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), sp=st.booleans(), rank=st.integers(1, 256),
       targets=st.sets(st.sampled_from(L.DEFAULT_LORA_TARGETS), min_size=1))
def test_adapters_split_exactly_over_tensor_parallelism(tp, sp, rank, targets):
    # whatever the split, the tp GPUs together hold every adapter weight once and run its FLOPs once
    lora = L.Lora(rank=rank, targets=tuple(sorted(targets)))
    model, mb, seq = LLAMA3_70B, 2, 4096
    ops = L.with_adapters(O.layer_ops(model, mb, seq, tp, 1, 1, sp), model, "dense", lora, sp)
    dense, expert = L.adapter_params_local(ops)
    assert float(expert) == 0.0
    assert float(dense) * tp * model.layers == pytest.approx(L.adapter_params(model, lora))
    flops = sum(float(op.flops) for op in ops if isinstance(op, O.Gemm) and L.is_adapter(op))
    assert flops * tp / (mb * seq) * model.layers == pytest.approx(L.adapter_flops_per_token(model, lora))
    # every base GEMM is frozen, every adapter GEMM trained
    assert all(op.frozen != L.is_adapter(op) for op in ops if isinstance(op, O.Gemm))


def test_megatron_model_flops_drop_the_weight_gradients_closed_form():
    # GPT-3: the weight matmuls' forward is 24 l h^2 + 2 h V per token; a LoRA does not run their
    # gradients and runs 3 x its adapters' forward instead
    s, l, h, v = GPT3.seq_len, GPT3.layers, GPT3.hidden, GPT3.vocab
    full = F.model_flops_per_token(GPT3, s, "megatron")
    lora = F.model_flops_per_token(GPT3, s, "megatron", lora=ALL)
    adapters = L.adapter_flops_per_token(GPT3, ALL)
    assert full - lora == pytest.approx(24 * l * h * h + 2 * h * v - 3 * adapters)
    # 6nd: 6 N -> 4 N + 3 x the adapters' forward
    assert F.model_flops_per_token(GPT3, s, "6nd", lora=ALL) == pytest.approx(
        4 * GPT3.params_active + 3 * adapters)
    # without recompute the hardware runs the model FLOPs (causal attention halved)
    assert F.hardware_flops_per_token(GPT3, s, lora=ALL) == pytest.approx(
        F.hardware_flops_per_token(GPT3, s) - (24 * l * h * h + 2 * h * v) + 3 * adapters)


def test_a_frozen_gemm_has_no_weight_gradient():
    spec = _spec()
    ctx = plan_space(spec)[0]
    gemm = O.Gemm("mlp_up", 8192, 7168, 8192)
    trained, frozen = ops_seconds([gemm], ctx), ops_seconds([dataclasses.replace(gemm, frozen=True)], ctx)
    assert float(frozen["wgrad"]) == 0.0 and float(trained["wgrad"]) > 0
    assert float(frozen["bwd"]) == pytest.approx(float(trained["bwd"]) - float(trained["wgrad"]))
    assert float(frozen["fwd"]) == float(trained["fwd"])


def test_lora_model_state_covers_the_adapters_only():
    tp, pp = 4, 2
    full = memory_per_gpu(LLAMA3_70B, tp=tp, pp=pp, sequence_parallel=True, seq_len=4096)
    lora = memory_per_gpu(LLAMA3_70B, tp=tp, pp=pp, sequence_parallel=True, seq_len=4096, lora=ALL)
    adapters = L.adapter_params(LLAMA3_70B, ALL) / (tp * pp)  # 40 of the 80 layers per stage
    assert float(lora.gradients) == pytest.approx(GRAD_BYTES * adapters)
    assert float(lora.optimizer) == pytest.approx(OPTIMIZER_BYTES * adapters)
    assert float(lora.weights) == pytest.approx(float(full.weights) + 2 * adapters)
    assert float(lora.activations) == float(full.activations)
    assert float(lora.total) < float(full.total) / 3


def test_llama3_70b_lora_fits_eight_h100_where_full_fine_tuning_does_not():
    est = estimate(_spec())
    assert est.fits
    assert est.assumptions["trainable_params"] == 175_636_480
    assert est.assumptions["lora_targets"] == list(L.DEFAULT_LORA_TARGETS)
    assert any("LoRA" in c for c in est.validation_evidence["caveats"])
    with pytest.raises(SpecError, match="does not fit"):
        estimate(_spec(lora_rank=None))


def test_lora_step_against_full_training_on_the_same_plans():
    spec = _spec(plan={"tp": 4, "pp": 2, "dp": 1, "vpp": 1, "micro_batch": 1})
    ctx, plans = plan_space(spec)
    lora, full = evaluate_step(ctx, plans), evaluate_step(dataclasses.replace(ctx, lora=None), plans)
    # the optimizer steps 0.2 B adapter weights instead of 8.8 B
    assert np.all(lora["optimizer_step"] < full["optimizer_step"] / 20)
    # frozen weight gradients save more compute than the adapters cost
    assert np.all(lora["compute"] < full["compute"])
    # ... and the adapters' collectives, and the base collectives no weight gradient hides, cost TP time
    assert np.all(lora["tp_comm"] > full["tp_comm"])


@settings(max_examples=15, deadline=None)
@given(rank=st.sampled_from([4, 8, 16, 64]), mb=st.sampled_from([1, 2, 4]),
       targets=st.sets(st.sampled_from(L.DEFAULT_LORA_TARGETS), min_size=1))
def test_without_tensor_parallelism_lora_is_faster_and_leaner(rank, mb, targets):
    # on one GPU nothing is communicated: the frozen weights' gradients always outweigh the adapters
    work = {"lora_rank": rank, "lora_targets": sorted(targets)}
    spec = load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 1},
                      "parallelism": {"tp": 1, "pp": 1, "dp": 1, "micro_batch": mb, "recompute": "full"},
                      "training": {"global_batch": 8, "seq_len": 4096, **work}})
    ctx, plans = plan_space(spec)
    full_ctx = dataclasses.replace(ctx, lora=None)
    lora, full = evaluate_step(ctx, plans), evaluate_step(full_ctx, plans)
    assert np.all(lora["step_time_s"] < full["step_time_s"])
    args = dict(tp=1, micro_batch=mb, recompute="full", seq_len=4096)
    assert float(memory_per_gpu(ctx.model, lora=ctx.lora, **args).total) < float(
        memory_per_gpu(ctx.model, **args).total)


def test_the_spec_names_what_is_wrong():
    with pytest.raises(SpecError, match="lora_targets needs lora_rank"):
        _spec(lora_rank=None, lora_targets=["linear_qkv"])
    with pytest.raises(SpecError, match="training.lora_targets.0.*linear_qkv"):
        _spec(lora_targets=["q_proj"])
    with pytest.raises(SpecError, match="training.lora_rank"):
        _spec(lora_rank=0)
    with pytest.raises(SpecError, match="training.lora_targets"):
        _spec(lora_targets=[])
    # targets read like any choice, case and duplicates aside
    assert _spec(lora_targets=["LINEAR_QKV", "linear_qkv"]).training.lora.targets == ("linear_qkv",)


def test_a_lora_checkpoints_its_adapters_only():
    # the reliability engine's state size: 14 bytes (bf16 weight, fp32 master, Adam m and v) per
    # adapter weight, not per base weight
    from colossim.planning.realistic import job_from_training
    from colossim.reliability.checkpoint import BYTES_PER_PARAM_MIXED_ADAM

    doc = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 8},
           "parallelism": {"tp": 4, "pp": 2, "dp": 1},
           "training": {"global_batch": 32, "seq_len": 4096, "lora_rank": 16, "tokens": 1e9}}
    job, est = job_from_training(doc)
    assert job.checkpoint_bytes_total == BYTES_PER_PARAM_MIXED_ADAM * 175_636_480
    assert job.checkpoint_bytes_per_gpu * job.n_gpus >= job.checkpoint_bytes_total
    full_doc = {**doc, "hardware": {"gpu": "h100-sxm", "count": 32}, "parallelism": {"tp": 4, "pp": 2},
                "training": {k: v for k, v in doc["training"].items() if k != "lora_rank"}}
    assert job_from_training(full_doc)[0].checkpoint_bytes_total > 300 * job.checkpoint_bytes_total
