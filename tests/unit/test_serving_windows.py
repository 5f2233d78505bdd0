"""Local attention (sliding windows, Llama 4's chunks) in serving and training: the KV cache such
layers keep, the keys their decode reads, the pairs their prefill runs, in the steady-state
estimate and in the request simulator, and the chunked layers' attention in a training step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.inference import memory as M
from colossim.inference.estimate import budget_batch, estimate, replica_memory
from colossim.inference.serving_sim import run_simulation, window_fields
from colossim.inference.simulate import SchedulerConfig
from colossim.inference.step import (causal_pairs, chunked_pairs, iteration_seconds, make_context,
                                     mean_decode_context, tabulate)
from colossim.specs.model import ModelSpec, resolve_model
from colossim.training import flops as F
from colossim.training import ops as O
from colossim.specs.serving import load_serving_spec
from colossim.specs.system import resolve_hardware


def spec(model="gpt-oss-120b", count=1, plan=None, **serving):
    s = {"weights": "fp4", "activations": "fp8", "input_tokens": 30000, "output_tokens": 2000, **serving}
    return load_serving_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": count},
                              "parallelism": plan or {}, "serving": s})


def ctx_for(model, tp=1, count=1):
    return make_context(resolve_model(model), resolve_hardware({"gpu": "h100-sxm", "count": count}),
                        weights="fp8", activations="fp8", kv_cache="fp8", tp=tp, pp=1, ep=1,
                        attention_seq_hint=4096)


# --- closed forms -----------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400), st.integers(1, 300))
def test_windowed_pairs_are_the_sum_of_min_position_window(chunk, prefix, window):
    brute = sum(min(q, window) for q in range(prefix + 1, prefix + chunk + 1))
    assert float(causal_pairs(chunk, prefix, window)) == pytest.approx(brute, abs=1e-9)
    # a window no shorter than the context changes nothing
    assert float(causal_pairs(chunk, prefix, prefix + chunk + 1)) == pytest.approx(
        float(causal_pairs(chunk, prefix)), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 12000))
def test_mean_decode_context_is_the_mean_of_min_context_window(I, O, window):
    c = I + (np.arange(200_000) + 0.5) / 200_000 * O      # contexts spread evenly over I ... I + O
    assert mean_decode_context(I, O, window) == pytest.approx(float(np.minimum(c, window).mean()), rel=1e-6)
    assert mean_decode_context(I, O) == I + O / 2


def test_gpt_oss_keeps_the_window_in_half_its_layers():
    m = resolve_model("gpt-oss-120b")           # 36 layers, 18 with a 128-token window
    mem = M.serving_memory(m, 80e9, weights="fp4", kv_format="fp8", tp=1, pp=1, max_num_tokens=8192,
                           max_batch=256, kv_cache_fraction=0.9)
    per = M.kv_bytes_per_token(m, "fp8")
    assert per == 2 * 8 * 64 * 36                # 8 KV heads of 64, fp8
    assert mem.kv_bytes_per_sequence(32000) == pytest.approx(per * (0.5 * 32000 + 0.5 * 128))
    assert mem.kv_bytes_per_sequence(100) == pytest.approx(per * 100)   # inside the window: all of it
    full = M.serving_memory(m, 80e9, weights="fp4", kv_format="fp8", tp=1, pp=1, max_num_tokens=8192,
                            max_batch=256, kv_cache_fraction=0.9, windowed_kv_cache=False)
    assert full.kv_bytes_per_sequence(32000) == pytest.approx(per * 32000)
    assert mem.max_sequences(32000) == int(mem.kv_budget // (per * (16000 + 64)))
    assert full.max_sequences(32000) == int(full.kv_budget // (per * 32000))


def test_a_model_without_windows_keeps_every_token():
    m = resolve_model("llama3.1-8b")
    mem = M.serving_memory(m, 80e9, weights="fp8", kv_format="fp8", tp=1, pp=1, max_num_tokens=8192,
                           max_batch=256, kv_cache_fraction=0.9)
    assert mem.kv_local_span is None
    assert mem.kv_bytes_per_sequence(50_000) == M.kv_bytes_per_token(m, "fp8") * 50_000


# --- iteration time -------------------------------------------------------------------------
def test_windowed_layers_read_the_window_not_the_context():
    c = ctx_for("mistral-7b")                    # every layer: a 4,096-token window
    kv = np.array([1e4, 1e5, 1e6])
    t = iteration_seconds(c, 8.0, kv, 0.0, 8.0, decode_kv_local=8 * 4096.0)["total"]
    assert np.allclose(t, t[0])                  # the global reads' count does not matter
    longer = iteration_seconds(c, 8.0, kv, 0.0, 8.0, decode_kv_local=8 * 8192.0)["total"]
    assert np.all(longer > t)
    # a model without windows ignores the windowed counts
    d = ctx_for("llama3.1-8b")
    a = iteration_seconds(d, 8.0, 1e5, 1e6, 8.0)["total"]
    b = iteration_seconds(d, 8.0, 1e5, 1e6, 8.0, decode_kv_local=0.0, prefill_pairs_local=0.0)["total"]
    assert float(a) == float(b)


def test_half_windowed_layers_cost_half_the_attention():
    c = ctx_for("gpt-oss-120b")
    base = float(iteration_seconds(c, 1.0, 0.0, 0.0, 1.0)["total"])
    both = float(iteration_seconds(c, 1.0, 1e6, 0.0, 1.0)["total"]) - base
    glob = float(iteration_seconds(c, 1.0, 1e6, 0.0, 1.0, decode_kv_local=0.0)["total"]) - base
    assert glob == pytest.approx(both / 2, rel=1e-9)   # 18 of 36 layers windowed


def test_tabulated_cost_keeps_the_windowed_terms():
    c = ctx_for("gpt-oss-120b")
    tab = tabulate(c, 512)
    direct = float(iteration_seconds(c, 100.0, 5e5, 2e6, 100.0, decode_kv_local=1.2e4,
                                     prefill_pairs_local=3e4)["total"])
    assert tab.iteration_seconds(100, 5e5, 2e6, 1.2e4, 3e4) == pytest.approx(direct, rel=0.02)
    assert tab.per_kv_local_token_s == pytest.approx(tab.per_kv_token_s, rel=1e-9)   # half and half
    assert tabulate(ctx_for("llama3.1-8b"), 64).per_kv_local_token_s == 0.0


# --- the estimate and the simulator ---------------------------------------------------------
def test_the_windowed_cache_holds_twice_the_sequences_at_long_context():
    win, full = estimate(spec()), estimate(spec(windowed_kv_cache=False))
    ratio = 32000 / (16000 + 64)
    assert win.max_batch == pytest.approx(full.max_batch * ratio, abs=ratio + 1)
    assert win.tokens_per_s_per_gpu > 1.5 * full.tokens_per_s_per_gpu
    assert win.kv_cache_gib_per_gpu == pytest.approx(
        M.gib(replica_memory(spec(), 1, 1).kv_bytes_per_sequence(32000) * win.batch))


def test_a_window_longer_than_every_context_changes_nothing():
    s = spec(model="gemma2-9b", count=8, weights="fp8", input_tokens=2000, output_tokens=1000)
    unwindowed = load_serving_spec({"model": {"name": "gemma2-9b", "sliding_window": None,
                                              "sliding_window_layers": None},
                                    "hardware": {"gpu": "h100-sxm", "count": 8},
                                    "serving": {"weights": "fp8", "input_tokens": 2000, "output_tokens": 1000}})
    a, b = estimate(s), estimate(unwindowed)
    assert (a.tokens_per_s_per_gpu, a.ttft_s, a.max_batch) == (b.tokens_per_s_per_gpu, b.ttft_s, b.max_batch)


def test_the_batch_grid_reaches_the_token_budget():
    s = spec(model="mistral-7b", count=8, plan={"tp": 8}, weights="fp8", input_tokens=20000,
             output_tokens=1000)
    cap = budget_batch(s, 1)
    assert cap == 8192 / 21
    assert estimate(s).batch == math.floor(cap)


def test_window_fields_of_the_scheduler():
    assert window_fields(resolve_model("gpt-oss-120b"), True) == {
        "attention_window": 128, "kv_layers": 2, "kv_windowed_layers": 1}
    assert window_fields(resolve_model("mistral-7b"), True) == {
        "attention_window": 4096, "kv_layers": 1, "kv_windowed_layers": 1}
    assert window_fields(resolve_model("mistral-7b"), False) == {"attention_window": 4096}
    assert window_fields(resolve_model("llama3.1-8b"), True) == {}


def test_the_simulator_runs_more_sequences_in_a_windowed_cache():
    win = run_simulation(spec(), rate=0, requests=200)
    full = run_simulation(spec(windowed_kv_cache=False), rate=0, requests=200)
    assert win["kv_capacity_tokens"] == full["kv_capacity_tokens"]
    assert win["result"]["mean_batch"] > 1.7 * full["result"]["mean_batch"]
    assert win["output_tokens_per_s_per_gpu"] > full["output_tokens_per_s_per_gpu"]


@pytest.mark.parametrize("kw, field", [
    ({"kv_windowed_layers": 1}, "kv_windowed_layers"),                       # no window given
    ({"attention_window": 64, "kv_windowed_layers": 2}, "kv_windowed_layers"),   # more than kv_layers
    ({"attention_window": 0}, "attention_window"),
])
def test_scheduler_window_fields_are_checked(kw, field):
    with pytest.raises(SpecError) as e:
        SchedulerConfig(kv_capacity_tokens=1024, max_batch=8, max_num_tokens=256, **kw)
    assert e.value.field == field


def test_a_bad_windowed_kv_cache_names_the_field():
    with pytest.raises(SpecError, match="windowed_kv_cache"):
        spec(windowed_kv_cache="sometimes")


# --- chunked attention (Llama 4) ------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400), st.integers(1, 300))
def test_chunked_pairs_are_the_sum_of_positions_within_the_chunk(chunk, prefix, size):
    brute = sum((q - 1) % size + 1 for q in range(prefix + 1, prefix + chunk + 1))
    assert float(chunked_pairs(chunk, prefix, size)) == pytest.approx(brute, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 12000))
def test_mean_chunked_context_is_the_sawtooth_mean(I, O, size):
    c = I + (np.arange(200_000) + 0.5) / 200_000 * O
    expected = float(np.mod(c, size).mean()) if size < I + O else I + O / 2
    assert mean_decode_context(I, O, attention_chunk=size) == pytest.approx(expected, rel=1e-3, abs=1e-3)


def test_llama4_keeps_a_chunk_in_three_layers_of_four():
    m = resolve_model("llama4-maverick")
    assert m.local_attention == ("chunk", 8192, 36)
    mem = M.serving_memory(m, 141e9, weights="fp8", kv_format="fp8", tp=8, pp=1, max_num_tokens=8192,
                           max_batch=256, kv_cache_fraction=0.9)
    per = M.kv_bytes_per_token(m, "fp8", tp=8)
    assert mem.kv_bytes_per_sequence(100_000) == pytest.approx(per * (0.25 * 100_000 + 0.75 * 8192))
    s = load_serving_spec({"model": "llama4-maverick", "hardware": {"gpu": "h200-sxm", "count": 8},
                           "parallelism": {"tp": 8}, "serving": {"weights": "fp8", "input_tokens": 120_000,
                                                                  "output_tokens": 2000}})
    full = load_serving_spec({**{"model": "llama4-maverick", "hardware": {"gpu": "h200-sxm", "count": 8},
                                 "parallelism": {"tp": 8}},
                              "serving": {"weights": "fp8", "input_tokens": 120_000, "output_tokens": 2000,
                                          "windowed_kv_cache": False}})
    assert estimate(s).max_batch > 2.5 * estimate(full).max_batch


def test_chunked_layers_train_as_causal_attention_within_each_chunk():
    m = resolve_model("llama4-scout")
    # at the 8,192-token pre-training length a chunk is the whole sequence: one global kind
    assert O.attention_layer_kinds(m, 8192) == [("attention", None, None, 1.0)]
    kinds = O.attention_layer_kinds(m, 32768)
    assert kinds == [("attention", None, None, 0.25), ("attention_chunked", None, 8192, 0.75)]
    assert F.attention_keys_per_query(m, 32768) == pytest.approx(0.25 * 16384 + 0.75 * 4096)
    assert F.attention_keys_per_query(m, 32768, causal=False) == pytest.approx(0.25 * 32768 + 0.75 * 8192)
    ops = [op for op in O.attention_ops(m, 2, 32768, 1, 1) if isinstance(op, O.Attention)]
    per_token = sum(F.attention_flops_per_token(m, 32768).values())
    assert sum(float(op.flops) for op in ops) == pytest.approx(2 * 32768 * per_token)
    chunked = next(op for op in ops if op.name == "attention_chunked")
    assert (float(chunked.batch), chunked.seq_kv) == (2 * 4.0, 8192)


@pytest.mark.parametrize("fields, message", [
    ({"attention_chunk_layers": 3}, "attention_chunk_layers needs attention_chunk"),
    ({"attention_chunk": 64, "attention_chunk_layers": 9}, "attention_chunk_layers 9 > layers 4"),
    ({"attention_chunk": 64, "sliding_window": 32}, "not both"),
])
def test_chunk_fields_are_checked(fields, message):
    base = {"layers": 4, "hidden": 256, "heads": 4, "vocab": 1000, "seq_len": 1024, "ffn_hidden": 1024}
    with pytest.raises(ValueError, match=message):
        ModelSpec(**base, **fields)
