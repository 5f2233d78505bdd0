"""Query/key norms (``qk_norm``: Qwen3, Gemma 3, Qwen3-Next) and norms after attention and the MLP
(``post_norms``: Gemma 2 and 3): parameters, ops, activations, step time and serving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.inference.estimate import estimate as serve_estimate
from colossim.specs.model import ModelSpec, resolve_model
from colossim.specs.serving import load_serving_spec
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.memory import ACTIVATION_BYTES, activation_bytes_per_layer
from colossim.training.ops import MemoryBound, memory_bound_ops

BASE = dict(layers=4, hidden=2048, ffn_hidden=8192, heads=16, kv_heads=4, vocab=32000, seq_len=4096,
            activation="swiglu", norm="rmsnorm", position="rope")


def test_qwen3_8b_counts_its_norms_as_the_model_card_does():
    """Qwen3-8B: 36 layers of 32 query and 8 KV heads of 128, a q and a k norm one head wide
    each: 8,190,735,360 parameters, 6,946,075,648 without the embedding and head (the model card's
    8.2B and 6.95B)."""
    m = resolve_model("qwen3-8b")
    assert m.qk_norm and not m.post_norms
    h = 4096
    attention = h * 32 * 128 + 2 * h * 8 * 128 + 32 * 128 * h + 2 * 128
    layer = attention + 2 * h + 3 * h * 12288
    assert m.params_total == 36 * layer + 2 * 151936 * h + h == 8_190_735_360
    assert m.params_total - m.params_embedding - m.params_output_head == 6_946_075_648


@given(tp=st.sampled_from([1, 2, 4]), mb=st.integers(1, 4), seq=st.sampled_from([1024, 4096]),
       sp=st.booleans(), fused=st.booleans())
@settings(max_examples=40, deadline=None)
def test_the_norms_add_exactly_their_passes(tp, mb, seq, sp, fused):
    """q/k norms add one pass over each GPU's q and k heads (read and write, bf16; as eager
    PyTorch, an RMSNorm's kernel chain); post norms make the block's norms four instead of two;
    nothing else among the memory-bound ops moves."""
    plain, qk, post = (ModelSpec(**BASE, **extra) for extra in ({}, {"qk_norm": True}, {"post_norms": True}))

    def ops(m):
        return {op.name: op for op in memory_bound_ops(m, mb, seq, tp, 1, sp, "dense", fused)
                if isinstance(op, MemoryBound)}

    a, b, c = ops(plain), ops(qk), ops(post)
    assert set(b) - set(a) == {"qk_norms"} and set(c) == set(a)
    elements = mb * seq * (16 + 4) / tp * 128
    norms = ops(ModelSpec(**BASE, qk_norm=True, post_norms=True))["norms"]
    assert float(b["qk_norms"].bytes) == pytest.approx(elements * (2 * ACTIVATION_BYTES if fused else 36))
    assert float(c["norms"].bytes) == pytest.approx(2 * float(a["norms"].bytes)) == pytest.approx(float(norms.bytes))
    assert all(float(a[k].bytes) == float(b[k].bytes) for k in a)


def test_the_norms_keep_their_inputs_for_backward():
    """Per layer and micro-batch, without recompute: q/k norms keep q and k as they came out of the
    QKV projection (2 bytes x tokens x (heads + kv_heads) x head_dim / tp); post norms keep their two
    inputs (2 x 2 bytes x tokens x hidden, / tp only with sequence parallelism)."""
    plain, qk, post = (ModelSpec(**BASE, **extra) for extra in ({}, {"qk_norm": True}, {"post_norms": True}))
    tok, tp = 2 * 4096, 4

    def act(m, sp):
        return float(activation_bytes_per_layer(m, 4096, 2, tp, 1, sp, "none", "dense"))

    for sp in (False, True):
        assert act(qk, sp) - act(plain, sp) == pytest.approx(2 * tok * (16 + 4) * 128 / tp)
        assert act(post, sp) - act(plain, sp) == pytest.approx(2 * 2 * tok * 2048 / (tp if sp else 1))
    # full recompute keeps each layer's input only, whatever its norms
    full = [float(activation_bytes_per_layer(m, 4096, 2, tp, 1, True, "full", "dense")) for m in (plain, qk, post)]
    assert full[0] == full[1] == full[2]


def test_the_norms_cost_step_time_not_flops():
    spec = {"hardware": {"gpu": "h100-sxm", "count": 8},
            "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "recompute": "none", "zero": 1},
            "training": {"global_batch": 64}}
    plain, qk, post = (estimate(load_spec({**spec, "model": {**BASE, **extra}}))
                       for extra in ({}, {"qk_norm": True}, {"post_norms": True}))
    for e in (qk, post):
        assert e.step_time_s > plain.step_time_s
        assert e.model_flops_per_token == plain.model_flops_per_token
        assert e.memory_breakdown_gib["activations"] > plain.memory_breakdown_gib["activations"]
    # a few percent at most: a norm pass against a layer's GEMMs
    assert qk.step_time_s < 1.05 * plain.step_time_s and post.step_time_s < 1.05 * plain.step_time_s


def test_serving_pays_the_qk_norms_pass():
    def serve(extra):
        return serve_estimate(load_serving_spec({"model": {**BASE, **extra},
                                                 "hardware": {"gpu": "h100-sxm", "count": 1},
                                                 "serving": {"input_tokens": 2048, "output_tokens": 256}}))

    plain, qk = serve({}), serve({"qk_norm": True})
    assert qk.tpot_s > plain.tpot_s and qk.tokens_per_s < plain.tokens_per_s


@pytest.mark.parametrize("extra,field", [
    ({"qk_norm": True, "attention": "mla", "mla_kv_lora_rank": 512, "mla_qk_rope_head_dim": 64,
      "mla_qk_nope_head_dim": 128, "mla_v_head_dim": 128}, "qk_norm"),
    ({"post_norms": True, "parallel_block": True}, "post_norms"),
    ({"post_norms": True, "hybrid_pattern": "*-*-"}, "post_norms"),
])
def test_norms_a_model_cannot_have_are_one_line_errors(extra, field):
    with pytest.raises(SpecError) as err:
        load_spec({"model": {**BASE, **extra}, "hardware": {"gpu": "h100-sxm", "count": 8}, "training": {}})
    msg = str(err.value)
    assert "\n" not in msg and field in msg and "allowed" in msg
