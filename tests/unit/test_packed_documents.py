"""Packed documents (``training.document_tokens``): attention masked to each document runs over
documents, not the sequence.  Closed-form FLOPs, the attention op as a batch of documents, the step
with and without a fused kernel, and the spec's error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs import resolve_model
from colossim.specs.training import load_spec
from colossim.training import ops as O
from colossim.training.estimate import estimate, plan_space
from colossim.training.step import evaluate_step

GPT3 = resolve_model("gpt3-175b")
PLAN = {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "recompute": "none", "zero": 1}


def _spec(model="llama3-8b", plan=PLAN, count=8, **training):
    work = {"global_batch": 64, "seq_len": 4096, **training}
    return load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": count}, "parallelism": plan,
                      "training": work})


def test_megatron_model_flops_count_keys_within_the_document():
    # Narayanan et al. 2021's count, forward + backward: 12 l h s of attention per token (MHA,
    # every key); with documents of d tokens, 12 l h d
    plan = {"tp": 8, "pp": 8, "dp": 1, "micro_batch": 1}
    kw = dict(model="gpt3-175b", plan=plan, count=64, global_batch=8, seq_len=2048)
    whole, packed = estimate(_spec(**kw)), estimate(_spec(document_tokens=256, **kw))
    l, h = GPT3.layers, GPT3.hidden
    assert whole.model_flops_per_token - packed.model_flops_per_token == pytest.approx(12 * l * h * (2048 - 256))
    assert packed.assumptions["document_tokens"] == 256 and "document_tokens" not in whole.assumptions
    # 6nd counts no attention: the same either way
    assert packed.mfu_by_convention["6nd"] / whole.mfu_by_convention["6nd"] == pytest.approx(
        packed.tokens_per_s_per_gpu / whole.tokens_per_s_per_gpu)


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["llama3-8b", "gemma2-27b", "llama4-scout", "deepseek-v3"]),
       doc=st.sampled_from([128, 512, 1000, 4096, 8192]), cp=st.sampled_from([1, 2, 4]),
       tp=st.sampled_from([1, 4]), mb=st.sampled_from([1, 2]))
def test_packed_attention_is_a_batch_of_documents(model, doc, cp, tp, mb):
    # the core of a sequence of S tokens packing documents of d is the core of S/d sequences of d
    # tokens (sliding windows and chunks taken within the document), never more work than unpacked
    m, s = resolve_model(model), 8192
    cores = [op for op in O.attention_ops(m, mb, s, tp, cp, doc) if isinstance(op, O.Attention)]
    alone = [op for op in O.attention_ops(m, mb * s / doc, doc, tp, cp) if isinstance(op, O.Attention)]
    whole = [op for op in O.attention_ops(m, mb, s, tp, cp) if isinstance(op, O.Attention)]
    assert cores == alone if doc < s else cores == whole
    packed_flops = sum(float(op.flops) for op in cores)
    assert packed_flops <= sum(float(op.flops) for op in whole) * (1 + 1e-12)
    # the projections around the core do not change
    gemms = [op for op in O.attention_ops(m, mb, s, tp, cp, doc) if isinstance(op, O.Gemm)]
    assert gemms == [op for op in O.attention_ops(m, mb, s, tp, cp) if isinstance(op, O.Gemm)]


def test_global_attention_flops_scale_with_the_document():
    m, s = resolve_model("llama3-8b"), 8192
    flops = {d: sum(float(op.flops) for op in O.attention_ops(m, 1, s, 1, 1, d) if isinstance(op, O.Attention))
             for d in (512, 1024, s)}
    # causal attention over S/d documents of d: (S/d) d^2 / 2 pairs, linear in d
    assert flops[1024] == pytest.approx(2 * flops[512], rel=0.01)
    assert flops[s] == pytest.approx(s / 512 * flops[512], rel=0.01)


def test_packed_documents_shorten_the_step_only_through_a_fused_kernel():
    ctx, plans = plan_space(_spec(document_tokens=512))
    packed = evaluate_step(ctx, plans)
    whole = evaluate_step(dataclasses.replace(ctx, document_tokens=None), plans)
    assert np.all(packed["step_time_s"] < whole["step_time_s"])
    # only the attention core's compute moves: every communication part stays
    for part in ("dp_comm", "tp_comm", "pp_comm", "optimizer_step"):
        assert np.allclose(packed[part], whole[part])
    # a document as long as the sequence is no packing at all
    same = evaluate_step(dataclasses.replace(ctx, document_tokens=4096), plans)
    assert np.allclose(same["step_time_s"], whole["step_time_s"])
    # unfused attention computes every score of the sequence and masks: no saving
    unfused = dataclasses.replace(ctx, flash_attention=False)
    assert np.allclose(evaluate_step(unfused, plans)["step_time_s"],
                       evaluate_step(dataclasses.replace(unfused, document_tokens=None), plans)["step_time_s"])


def test_the_spec_names_what_is_wrong():
    with pytest.raises(SpecError, match=r"training.document_tokens = 8,192 .* allowed 1 ... seq_len \(4,096\)"):
        _spec(document_tokens=8192)
    with pytest.raises(SpecError, match="training.document_tokens"):
        _spec(document_tokens=0)
    assert _spec(document_tokens=4096).training.document_tokens == 4096
