"""Sliding-window attention (Mistral 7B, Gemma 2): the keys a query sees, the FLOPs, the kernels
that skip the band's outside and the ones that do not, the catalog rows and the importer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.cost.compute import causal_keys_per_query
from colossim.errors import SpecError
from colossim.specs._validation import validate_model
from colossim.specs.hf_import import hf_config_to_fields
from colossim.specs.model import ModelSpec, load_model_catalog
from colossim.specs.training import load_spec
from colossim.training import flops as F
from colossim.training import ops as O
from colossim.training.estimate import estimate


def _exact_mean_keys(s: int, w: int) -> float:
    """Keys per query counted one query at all: query i (from 1) sees min(i, w) keys."""
    return float(np.minimum(np.arange(1, s + 1), w).mean())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 10000))
def test_keys_per_query_is_the_bands_mean_in_the_half_triangles_count(s, w):
    # The engine counts a causal triangle as s / 2 keys per query (FlashAttention's convention),
    # half a key under the exact (s + 1) / 2; the band's mean keeps that count: at most half a key
    # under the exact one, and equal to s / 2 once the window covers the sequence.
    got = float(causal_keys_per_query(s, w))
    gap = _exact_mean_keys(s, w) - got
    assert 0.0 < gap <= 0.5 + 1e-9
    assert got <= min(w, s / 2 if w >= s else w)
    if w >= s:
        assert got == pytest.approx(s / 2)


def test_keys_per_query_without_a_window_is_half_the_sequence_and_grows_with_it():
    assert float(causal_keys_per_query(8192)) == 4096
    ws = np.array([1, 256, 1024, 4096, 8192, 16384])
    keys = causal_keys_per_query(8192, ws)
    assert np.all(np.diff(keys) >= 0) and keys[-1] == keys[-2] == 4096
    # 4,096 of 8,192: the first half a triangle (2,048 on average), the second 4,096 each
    assert float(causal_keys_per_query(8192, 4096)) == 3072


def test_catalog_rows_window_as_their_configs_do():
    cat = load_model_catalog()
    assert (cat.spec("mistral-7b").sliding_window, cat.spec("mistral-7b").windowed_layers) == (4096, 32)
    for name, layers in (("gemma2-2b", 26), ("gemma2-9b", 42), ("gemma2-27b", 46)):
        m = cat.spec(name)
        assert m.layers == layers and m.windowed_layers == (layers + 1) // 2 and m.sliding_window == 4096
    assert cat.spec("llama3-8b").windowed_layers == 0 and cat.spec("mixtral-8x7b").windowed_layers == 0


def test_attention_flops_are_the_mean_over_global_and_windowed_layers():
    cat = load_model_catalog()
    g = cat.spec("gemma2-27b")  # 23 windowed + 23 global layers, 4,096-token window
    assert F.attention_keys_per_query(g, 8192) == pytest.approx((3072 + 4096) / 2)
    assert F.attention_keys_per_query(g, 4096) == 2048  # a window as long as the sequence changes nothing
    # the conventions' count without the mask: every key a query could see, the window's in half the layers
    assert F.attention_keys_per_query(g, 8192, causal=False) == (4096 + 8192) / 2
    full = g.model_copy(update={"sliding_window": None, "sliding_window_layers": None})
    ratio = (F.attention_flops_per_token(g, 8192)["attn_scores"]
             / F.attention_flops_per_token(full, 8192)["attn_scores"])
    assert ratio == pytest.approx(3584 / 4096)
    assert F.hardware_flops_per_token(g, 8192) < F.hardware_flops_per_token(full, 8192)
    # MFU conventions: the attention term shrinks by the keys beyond the window, 6ND not at all
    fwd_attn = 2 * g.layers * g.heads * (g.qk_head_dim + g.v_head_dim)  # per key of every query
    cut = fwd_attn * (8192 - 6144)
    assert F.model_flops_per_token(full, 8192, "megatron") - F.model_flops_per_token(g, 8192, "megatron") \
        == pytest.approx(3 * cut)
    assert F.model_flops_per_token(full, 8192, "palm") - F.model_flops_per_token(g, 8192, "palm") \
        == pytest.approx(3 * cut)
    assert F.model_flops_per_token(g, 8192, "6nd") == F.model_flops_per_token(full, 8192, "6nd")
    assert F.model_flops_per_token(g, 4096, "palm") == F.model_flops_per_token(full, 4096, "palm")


def test_a_mixed_model_has_one_attention_op_per_kind_and_their_flops_add_up():
    m = ModelSpec(layers=6, hidden=1024, heads=8, vocab=1000, seq_len=8192, ffn_hidden=4096,
                  sliding_window=1024, sliding_window_layers=4)
    kinds = O.attention_layer_kinds(m, 8192)
    assert kinds == [("attention", None, None, pytest.approx(1 / 3)),
                     ("attention_windowed", 1024, None, pytest.approx(2 / 3))]
    ops = [op for op in O.attention_ops(m, 2, 8192, 2, 1) if isinstance(op, O.Attention)]
    total = sum(float(op.flops) for op in ops)
    per_token = sum(F.attention_flops_per_token(m, 8192).values())
    assert total == pytest.approx(2 * 8192 * per_token / 2)
    # every layer windowed: one op; a window no shorter than the sequence: the global op alone
    every = m.model_copy(update={"sliding_window_layers": None})
    assert [k[0] for k in O.attention_layer_kinds(every, 8192)] == ["attention_windowed"]
    assert O.attention_layer_kinds(m, 1024) == [("attention", None, None, 1.0)]


def _mistral_like(seq: int, **parallelism) -> dict:
    # 30 layers, not Mistral 7B's 32: a bare shape that matches a catalog row takes the row's window
    model = {"layers": 30, "hidden": 4096, "ffn_hidden": 14336, "heads": 32, "kv_heads": 8, "vocab": 32000,
             "seq_len": seq, "activation": "swiglu"}
    plan = {"tp": 4, "pp": 1, "cp": 1, "ep": 1, "dp": 2, "vpp": 1, "micro_batch": 1, "recompute": "none",
            "zero": 1, "sequence_parallel": True, **parallelism}
    return {"model": model, "hardware": {"gpu": "h100-sxm", "count": 8}, "parallelism": plan,
            "training": {"global_batch": 16, "precision": "bf16"}}


def _step(spec: dict, window: int | None):
    if window is not None:
        spec = {**spec, "model": {**spec["model"], "sliding_window": window}}
    return estimate(load_spec(spec))


def test_a_window_shortens_the_step_by_the_attention_it_skips_on_kernels_that_skip_it():
    spec = _mistral_like(32768)
    full, windowed = _step(spec, None), _step(spec, 4096)
    assert windowed.step_time_s < 0.8 * full.step_time_s  # attention is most of a 32k layer's work
    assert windowed.model_flops_per_token < full.model_flops_per_token
    assert windowed.mfu < 0.7  # the conventions do not credit the keys beyond the window
    # a window as long as the sequence is no window
    assert _step(spec, 32768).step_time_s == pytest.approx(full.step_time_s)
    # FlashAttention-1's Triton port and the unfused core run the whole triangle / square
    for plan in ({"attention_kernel": "flash1"}, {"flash_attention": False, "recompute": "full"}):
        other = _mistral_like(32768, **plan)
        assert _step(other, 4096).step_time_s == pytest.approx(_step(other, None).step_time_s)


def test_window_fields_are_checked_with_one_line_errors():
    base = {"layers": 4, "hidden": 256, "heads": 4, "vocab": 100, "seq_len": 128, "ffn_hidden": 512}
    for extra, msg in (({"sliding_window_layers": 2}, "sliding_window_layers needs sliding_window"),
                       ({"sliding_window": 64, "sliding_window_layers": 5}, "sliding_window_layers 5 > layers 4"),
                       ({"sliding_window": 0}, "model.sliding_window: Input should be greater than or equal to 1")):
        with pytest.raises(SpecError, match=msg) as e:
            validate_model(ModelSpec, {**base, **extra}, "model")
        assert "\n" not in str(e.value)


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"model_type": "mistral", "sliding_window": 4096}, (4096, 8)),
    ({"model_type": "mistral", "sliding_window": None}, (None, 0)),
    ({"model_type": "mixtral", "sliding_window": None, "num_local_experts": 8, "num_experts_per_tok": 2}, (None, 0)),
    ({"model_type": "qwen2", "sliding_window": 32768, "use_sliding_window": False, "max_window_layers": 4}, (None, 0)),
    ({"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": True, "max_window_layers": 6}, (4096, 2)),
    ({"model_type": "gemma2", "sliding_window": 4096}, (4096, 4)),
    ({"model_type": "gemma2"}, (4096, 4)),
    ({"model_type": "qwen3", "sliding_window": 1024, "layer_types": ["sliding_attention", "full_attention"] * 4},
     (1024, 4)),
    ({"model_type": "llama", "sliding_window": 4096}, (None, 0)),
])
def test_the_importer_reads_a_window_as_transformers_applies_it(cfg, expected):
    base = {"hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 8, "num_hidden_layers": 8,
            "vocab_size": 1000, "intermediate_size": 1024, "max_position_embeddings": 8192}
    m = validate_model(ModelSpec, hf_config_to_fields({**base, **cfg}), "model")
    assert (m.sliding_window, m.windowed_layers) == expected


@pytest.mark.parametrize("value", [-1, "4", 2.5])
def test_a_max_window_layers_that_is_no_layer_count_is_named(value):
    cfg = {"model_type": "qwen2", "hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 8,
           "vocab_size": 1000, "intermediate_size": 1024, "sliding_window": 4096, "use_sliding_window": True,
           "max_window_layers": value}
    with pytest.raises(SpecError, match=r"max_window_layers = .*: allowed: a whole number >= 0") as e:
        hf_config_to_fields(cfg)
    assert "\n" not in str(e.value)
