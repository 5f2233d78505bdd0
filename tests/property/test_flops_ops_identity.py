"""The per-GPU op list accounts for exactly the FLOPs of flops.py, split over tp x cp, for random
shapes and vectors of plans (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.specs.model import ModelSpec
from colossim.training import flops as F
from colossim.training import ops as O


@st.composite
def models(draw):
    heads = draw(st.sampled_from([8, 16, 32]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    kind = draw(st.sampled_from(["mha", "gqa", "mqa", "mla"]))
    d = dict(layers=draw(st.integers(1, 8)), hidden=heads * head_dim, heads=heads,
             ffn_hidden=draw(st.integers(1, 64)) * 64, vocab=draw(st.integers(100, 5000)),
             seq_len=draw(st.sampled_from([256, 1024, 4096])),
             activation=draw(st.sampled_from(["gelu", "swiglu", "geglu", "relu", "relu2"])),
             position=draw(st.sampled_from(["rope", "learned"])), dropout=draw(st.booleans()))
    if kind == "gqa":
        d["kv_heads"] = heads // 4
    elif kind == "mqa":
        d["kv_heads"] = 1
    elif kind == "mla":
        d.update(mla_q_lora_rank=draw(st.sampled_from([None, 256])), mla_kv_lora_rank=128,
                 mla_qk_rope_head_dim=32, mla_qk_nope_head_dim=64, mla_v_head_dim=64)
    if draw(st.booleans()):
        experts = draw(st.sampled_from([8, 16, 64]))
        d.update(experts=experts, top_k=draw(st.integers(1, 4)), moe_ffn_hidden=draw(st.integers(1, 16)) * 64,
                 shared_experts=draw(st.integers(0, 2)), first_dense_layers=draw(st.integers(0, 1)))
        d["moe_layer_interval"] = draw(st.integers(1, max(1, d["layers"] - d["first_dense_layers"])))
    window = draw(st.sampled_from([None, 64, 1000, 2048, 8192]))
    if window is not None:  # sliding-window layers, some or all of them
        d.update(sliding_window=window, sliding_window_layers=draw(st.integers(0, d["layers"])))
    return ModelSpec(**d)


@settings(max_examples=60, deadline=None)
@given(models(), st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]),
                                    st.sampled_from([1, 2, 4, 8]), st.integers(1, 4)), min_size=1, max_size=5))
def test_op_flops_equal_model_flops_over_tp_cp(model, plans):
    tp, cp, ep, mb = (np.array(c) for c in zip(*plans))
    s = model.seq_len
    for kind, n in (("dense", model.dense_layers), ("moe", model.moe_layers)):
        if n == 0:
            continue
        ops = O.layer_ops(model, mb, s, tp, cp, ep, True, layer_kind=kind)
        got = O.gemm_and_attention_flops(ops)
        per_token = sum(F.layer_flops_per_token(model, s, kind).values())
        np.testing.assert_allclose(got, mb * s * per_token / (tp * cp), rtol=1e-12)
        for op in ops:
            if isinstance(op, O.MemoryBound):
                # ring attention's merge passes exist only where the plan splits the sequence
                moves = cp > 1 if op.name == "ring_attention_merge" else True
                assert np.all((np.asarray(op.bytes) > 0) == moves)
    head = O.gemm_and_attention_flops(O.logits_ops(model, mb, s, tp, cp, True))
    np.testing.assert_allclose(head, mb * s * F.logits_flops_per_token(model) / (tp * cp), rtol=1e-12)


def test_without_sequence_parallel_only_the_router_is_replicated():
    m = ModelSpec(layers=2, hidden=256, heads=4, vocab=100, seq_len=128, experts=8, top_k=2,
                  moe_ffn_hidden=128, activation="swiglu")
    tp = np.array([4])
    on = {op.name: op.flops for op in O.layer_ops(m, 1, 128, tp, 1, 2, True, "moe") if not isinstance(op, O.MemoryBound)}
    off = {op.name: op.flops for op in O.layer_ops(m, 1, 128, tp, 1, 2, False, "moe") if not isinstance(op, O.MemoryBound)}
    assert {k for k in on if not np.allclose(on[k], off[k])} == {"router"}
    assert off["router"] == pytest.approx(4 * on["router"])


def test_moe_expert_gemm_rows_are_tokens_routed_per_local_expert():
    m = ModelSpec(layers=1, hidden=256, heads=4, vocab=100, seq_len=1024, experts=64, top_k=8,
                  moe_ffn_hidden=128)
    ops = {op.name: op for op in O.mlp_ops(m, 2, 1024, 1, 1, 8, True, "moe")}
    up = ops["expert_up"]
    # 8 EP ranks x 2048 tokens x top 8 spread over 64 experts = 2048 rows; 64 / 8 = 8 local experts
    assert (float(up.m), float(up.count)) == (2048.0, 8.0)
