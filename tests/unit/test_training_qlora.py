"""QLoRA (``training.lora_base_precision: nf4``): the NF4 storage's closed-form bytes, the layers'
linear weights it covers, the dequantization before every base GEMM, the plan rules (tp 1, no
fp8) and what it buys: a 70B fine-tuning on one 80 GB GPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.cost import compute as K
from colossim.errors import SpecError
from colossim.specs import resolve_model
from colossim.specs.training import load_spec
from colossim.training import lora as L
from colossim.training import ops as O
from colossim.training.estimate import estimate, plan_space
from colossim.training.memory import memory_per_gpu
from colossim.training.step import evaluate_step

LLAMA3_70B = resolve_model("llama3-70b")
MIXTRAL = resolve_model("mixtral-8x7b")
LORA = L.Lora(rank=16)
QLORA = L.Lora(rank=16, base="nf4")
#: Llama 3 70B's linear weights per layer: QKV 8,192 x 10,240, output 8,192 x 8,192, gated fc1
#: 8,192 x 57,344, fc2 28,672 x 8,192
LLAMA3_70B_LINEAR_PER_LAYER = 8192 * 10240 + 8192 * 8192 + 8192 * 57344 + 28672 * 8192


def _spec(count=1, plan=None, **training):
    work = {"global_batch": 16, "seq_len": 4096, "lora_rank": 16, "lora_base_precision": "nf4", **training}
    doc = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": count}, "training": work}
    if plan is not None:
        doc["parallelism"] = plan
    return load_spec(doc)


def test_nf4_storage_is_qloras_4_127_bits_per_weight():
    # Dettmers et al. 2023 sec 3: double quantization leaves 8/64 + 32/(64 x 256) = 0.127 bits of
    # scales per weight beside the 4-bit code
    assert L.NF4_BYTES_PER_WEIGHT * 8 == 4 + 8 / 64 + 32 / (64 * 256)
    assert L.NF4_BYTES_PER_WEIGHT * 8 - 4 == pytest.approx(0.127, abs=5e-4)
    # a dequantization reads the code (0.5 B) and writes bf16 (2 B), plus the scales' passes
    assert 2.5 < L.NF4_DEQUANTIZE_BYTES_PER_WEIGHT < 2.5 + 0.5


def test_qlora_weights_closed_form_on_one_gpu():
    args = dict(tp=1, micro_batch=1, recompute="full", seq_len=4096)
    lora = memory_per_gpu(LLAMA3_70B, lora=LORA, **args)
    qlora = memory_per_gpu(LLAMA3_70B, lora=QLORA, **args)
    linear = 80 * LLAMA3_70B_LINEAR_PER_LAYER
    assert linear == 68_451_041_280
    assert float(lora.weights - qlora.weights) == pytest.approx((2 - L.NF4_BYTES_PER_WEIGHT) * linear)
    # the embedding and the output head stay bf16: what is left of 70.6 B weights at 2 bytes
    rest = float(qlora.weights) - L.NF4_BYTES_PER_WEIGHT * linear - 2 * L.adapter_params(LLAMA3_70B, QLORA)
    assert rest == pytest.approx(2 * (LLAMA3_70B.params_total - linear))
    # one bf16 matrix dequantized at a time, the largest: fc1's gate (or up) half, 8,192 x 28,672
    assert float(qlora.buffers - lora.buffers) == pytest.approx(2 * 8192 * 28672)
    # gradients, optimizer state and activations do not depend on how the frozen base is stored
    for part in ("gradients", "optimizer", "activations"):
        assert float(getattr(qlora, part)) == float(getattr(lora, part))


@settings(max_examples=30, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), ep=st.sampled_from([1, 2, 8]), mb=st.sampled_from([1, 2]),
       kind=st.sampled_from(["dense", "moe"]), targets=st.sets(st.sampled_from(L.DEFAULT_LORA_TARGETS),
                                                              min_size=1))
def test_every_linear_weight_is_dequantized_once_per_pass(tp, ep, mb, kind, targets):
    # whatever the adapters' targets and the split, the GPUs of a layer dequantize every one of
    # its linear weights once (the router aside), before its GEMM, forward and backward alike
    model = MIXTRAL if kind == "moe" else LLAMA3_70B
    lora = dataclasses.replace(QLORA, targets=tuple(sorted(targets)))
    ops = L.with_adapters(O.layer_ops(model, mb, model.seq_len, tp, 1, ep, False, kind), model, kind, lora)
    dequant = {op.name.split(":", 1)[1]: op for op in ops if op.name.startswith("nf4_dequantize:")}
    bases = {op.name: op for op in ops if isinstance(op, O.Gemm) and not L.is_adapter(op)}
    assert set(dequant) == set(bases) - {"router"}
    for name, op in dequant.items():
        gemm = bases[name]
        weights = float(gemm.n) * float(gemm.k) * float(gemm.count)
        assert float(op.bytes) == float(op.backward_bytes) == L.NF4_DEQUANTIZE_BYTES_PER_WEIGHT * weights
        assert ops.index(op) == ops.index(gemm) - 1
    dense, expert = L.quantized_params_local(ops, lora)
    routed = model.experts * model.params_expert if kind == "moe" else 0
    router = model.hidden * model.experts if kind == "moe" else 0
    per_layer = model.params_per_layer_moe if kind == "moe" else model.params_per_layer_dense
    norms = 2 * model.hidden  # the two RMSNorm weights
    assert float(dense) * tp == pytest.approx(per_layer - routed - router - norms)
    assert float(expert) * tp * ep == pytest.approx(routed)
    # a plain LoRA dequantizes nothing
    plain = L.with_adapters(O.layer_ops(model, mb, model.seq_len, tp, 1, ep, False, kind), model, kind,
                            dataclasses.replace(lora, base="bf16"))
    assert not any(op.name.startswith("nf4_dequantize:") for op in plain)
    assert sum(float(x) for x in L.quantized_params_local(plain, dataclasses.replace(lora, base="bf16"))) == 0


def test_qlora_step_is_lora_plus_its_dequantization():
    spec = _spec(count=2, plan={"pp": 1, "dp": 2, "micro_batch": 1, "recompute": "none", "zero": 1})
    ctx, plans = plan_space(spec)
    qlora = evaluate_step(ctx, plans)
    lora = evaluate_step(dataclasses.replace(ctx, lora=LORA), plans)
    # per micro-batch and layer: every linear weight dequantized for the forward and again for
    # the input gradient, memory-bound
    chip = ctx.system.accelerator
    per_pass = float(K.memory_bound_seconds(
        L.NF4_DEQUANTIZE_BYTES_PER_WEIGHT * LLAMA3_70B_LINEAR_PER_LAYER, chip, ctx.profile))
    n_micro = 16 / 2
    # the same bytes as four kernels, one per GEMM: priced a kernel at a time
    assert float(qlora["compute"][0] - lora["compute"][0]) == pytest.approx(n_micro * 80 * 2 * per_pass, rel=0.02)
    assert float(qlora["step_time_s"][0]) > float(lora["step_time_s"][0])


def test_llama3_70b_qlora_fits_one_h100_where_lora_does_not():
    est = estimate(_spec())
    assert est.fits and est.memory_gib_per_gpu <= 80
    assert est.parallelism["tp"] == 1
    assert est.assumptions["lora_base_precision"] == "nf4"
    assert any(c.startswith("QLoRA") for c in est.validation_evidence["caveats"])
    with pytest.raises(SpecError, match="does not fit"):
        estimate(_spec(lora_base_precision="bf16"))


def test_fsdp_gathers_the_nf4_storage():
    plan = {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "recompute": "full", "zero": 3}
    spec = _spec(count=8, plan=plan, global_batch=64)
    ctx, plans = plan_space(spec)
    qlora = evaluate_step(ctx, plans)
    lora = evaluate_step(dataclasses.replace(ctx, lora=LORA), plans)
    assert np.all(qlora["dp_comm"] < lora["dp_comm"] / 2)


def test_the_spec_names_what_is_wrong():
    with pytest.raises(SpecError, match="lora_base_precision needs lora_rank"):
        _spec(lora_rank=None)
    with pytest.raises(SpecError, match="training.*precision must be bf16 or fp16, not fp8"):
        _spec(precision="fp8")
    with pytest.raises(SpecError, match="parallelism.tp = 2 .* allowed tp: 1"):
        _spec(count=8, plan={"tp": 2})
    with pytest.raises(SpecError, match="training.lora_base_precision.*nf4"):
        _spec(lora_base_precision="int4")
    # left open, tp is 1, and the search keeps it there
    spec = _spec(count=8, global_batch=64)
    assert spec.parallelism.tp == 1
    assert set(plan_space(spec)[1].tp.tolist()) == {1}
    # a plain LoRA, or full training, keeps tp open
    assert _spec(count=8, lora_base_precision="bf16").parallelism.tp is None
