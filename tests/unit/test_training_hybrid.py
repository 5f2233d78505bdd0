"""Hybrid Mamba-Transformer models (Nemotron-H): a model.hybrid_pattern of Mamba-2 (M), attention
(*) and MLP (-) layers, priced layer by layer (colossim.training.ops.mamba_ops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.inference import memory as SM
from colossim.inference.estimate import estimate as serve_estimate
from colossim.inference.estimate import replica_context, replica_memory
from colossim.inference.serving_sim import run_simulation, state_blocks
from colossim.inference.step import tabulate
from colossim.specs.hf_import import load_hf_config
from colossim.specs.model import ModelSpec, resolve_model
from colossim.specs.serving import load_serving_spec
from colossim.specs.training import load_spec, mixer_split_ok
from colossim.training import flops as F
from colossim.training import memory as M
from colossim.training import ops as O
from colossim.training.estimate import estimate, search

from tests.unit.test_specs_hf import HF

#: A transformer block written as a hybrid's two layers: attention (*) then MLP (-).
BLOCK = dict(hidden=2048, ffn_hidden=8192, heads=16, kv_heads=4, vocab=32000, seq_len=4096, activation="relu2",
             position="none")


def _spec(model, count=8, plan=None, **training):
    return load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": count},
                      "parallelism": plan or {}, "training": {"global_batch": 64, **training}})


def test_nemotron_h_8b_parameters_in_closed_form():
    """Megatron-Core's MambaMixer shapes (h 4096; d_inner 128 heads x 64 = 8192; 8 groups of a 128
    state; 4 taps), attention with 8 KV heads of 128, a 21,504-wide squared-ReLU MLP, untied
    131,072-token vocabulary: 8,100,852,736, the '8B' of its name."""
    m = resolve_model("nemotron-h-8b")
    h, d, gn, heads = 4096, 8192, 8 * 128, 128
    mamba = h * (2 * d + 2 * gn + heads) + (d + 2 * gn) * (4 + 1) + 3 * heads + d + d * h + h
    attention = h * 4096 + 2 * h * 1024 + 4096 * h + h
    mlp = 2 * h * 21504 + h
    total = 24 * mamba + 4 * attention + 24 * mlp + 2 * 131072 * h + h
    assert (m.mamba_layers, m.attention_layers, m.mlp_layers) == (24, 4, 24)
    assert m.params_total == total == 8_100_852_736


def test_the_hugging_face_config_imports_to_the_catalog_row():
    m = load_hf_config(HF / "nemotron-h-8b.json")
    assert m.hybrid_pattern == resolve_model("nemotron-h-8b").hybrid_pattern
    assert m.params_total == resolve_model("nemotron-h-8b").params_total
    # the repo id names the catalog row
    assert resolve_model("nvidia/Nemotron-H-8B-Base-8K").name == "nemotron-h-8b"


def test_layers_block_type_reads_as_the_pattern_and_an_moe_layer_needs_the_experts(tmp_path):
    import json
    cfg = json.loads((HF / "nemotron-h-8b.json").read_text())
    del cfg["hybrid_override_pattern"]
    cfg["layers_block_type"] = ["mamba" if c == "M" else "attention" if c == "*" else "mlp"
                                for c in resolve_model("nemotron-h-8b").hybrid_pattern]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_hf_config(tmp_path / "config.json").params_total == 8_100_852_736
    cfg["layers_block_type"][1] = "moe"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="moe_intermediate_size") as err:
        load_hf_config(tmp_path / "config.json")
    assert "\n" not in str(err.value)
    cfg.update(n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=1024,
               moe_shared_expert_intermediate_size=1500)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="moe_shared_expert_intermediate_size") as err:
        load_hf_config(tmp_path / "config.json")
    cfg["moe_shared_expert_intermediate_size"] = 2048
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    m = load_hf_config(tmp_path / "config.json")
    assert m.hybrid_pattern[1] == "E" and (m.experts, m.top_k, m.shared_experts, m.moe_layers) == (8, 2, 2, 1)


def test_nemotron_3_nano_parameters_and_its_hugging_face_config():
    """Megatron-Bridge's Nemotron3NanoProvider: 23 Mamba-2 (64 heads of 64, state 128), 6 attention
    (32 heads, 2 KV heads of 128) and 23 MoE layers (128 experts of 1,856, top 6, a 3,712-wide
    shared expert = two of the routed width), h 2,688, 131,072-token untied vocabulary: 31.58B in
    all and 3.58B active, NVIDIA's 31.6B and 3.6B with embeddings."""
    m = resolve_model("nemotron-3-nano-30b-a3b")
    h, d, gn, heads = 2688, 4096, 8 * 128, 64
    mamba = h * (2 * d + 2 * gn + heads) + (d + 2 * gn) * 5 + 3 * heads + d + d * h + h
    attention = h * 4096 + 2 * h * 256 + 4096 * h + h
    expert = 2 * h * 1856
    moe = h * 128 + (128 + 2) * expert + h
    total = 23 * mamba + 6 * attention + 23 * moe + 2 * 131072 * h + h
    assert m.params_total == total == 31_577_937_344
    assert m.params_active == total - 23 * (128 - 6) * expert
    f = load_hf_config(HF / "nemotron-3-nano-30b-a3b.json")
    assert (f.params_total, f.params_active) == (m.params_total, m.params_active)
    assert resolve_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16").name == "nemotron-3-nano-30b-a3b"


def test_qwen3_next_parameters_in_closed_form_and_its_hugging_face_config():
    """transformers' Qwen3-Next (the 80B-A3B configuration): 36 Gated DeltaNet mixers (16 key heads,
    32 value heads of 128; q, k, v, z, beta and decay projected; 4 taps on q, k and v; dt bias and
    decay per value head; a 128-wide gated norm), 12 gated attention layers (16 heads of 256, q twice
    as wide for the gate, 2 KV heads, a q and a k norm one head wide), and 48 MoE layers (512
    experts of 512, top 10, one shared): 79.67B, Qwen's '80B'."""
    m = resolve_model("qwen3-next-80b-a3b")
    h, kd, vd = 2048, 16 * 128, 32 * 128
    gdn = h * (2 * kd + 2 * vd + 2 * 32) + (2 * kd + vd) * 4 + 2 * 32 + 128 + vd * h + h
    attention = h * 4096 * 2 + 2 * h * 512 + 4096 * h + 2 * 256 + h
    moe = h * 512 + (512 + 1) * 3 * h * 512 + h
    total = 36 * gdn + 12 * attention + 48 * moe + 2 * 151936 * h + h
    assert m.params_total == total == 79_674_292_992
    assert (m.gdn_layers, m.attention_layers, m.moe_layers, m.layers) == (36, 12, 48, 96)
    f = load_hf_config(HF / "qwen3-next-80b-a3b.json")
    assert (f.hybrid_pattern, f.params_total, f.params_active) == (m.hybrid_pattern, m.params_total, m.params_active)
    assert resolve_model("Qwen/Qwen3-Next-80B-A3B-Instruct").name == "qwen3-next-80b-a3b"


def test_gated_deltanet_layers_run_no_context_parallelism_and_keep_a_state_in_serving():
    with pytest.raises(SpecError) as err:
        _spec("qwen3-next-80b-a3b", count=64, plan={"cp": 2})
    assert err.value.field == "parallelism.cp" and "Gated DeltaNet" in str(err.value)
    gdn = {**BLOCK, "layers": 4, "hybrid_pattern": "G-*-", "gdn_key_heads": 4, "gdn_value_heads": 8,
           "gdn_key_head_dim": 64, "gdn_value_head_dim": 64}
    with pytest.raises(SpecError, match="gdn_key_heads = 4: allowed tp: 1, 2, 4") as err:
        _spec(gdn, count=8, plan={"tp": 8})
    assert err.value.field == "parallelism.tp"
    m = resolve_model("qwen3-next-80b-a3b")
    one = 32 * 128 * 128 * 4 + 3 * (2 * 2048 + 4096) * 2
    assert SM.recurrent_state_bytes_per_sequence(m) == 36 * one
    assert SM.kv_bytes_per_token(m, "bf16") == 12 * 2 * 2 * 256 * 2
    e = serve_estimate(_serving("qwen3-next-80b-a3b", count=4, input_tokens=8192, output_tokens=1024, weights="fp8"))
    assert e.assumptions["recurrent_state_gib_per_gpu"] > 0 and e.fits


def test_an_moe_hybrid_pays_its_all_to_all_and_searches_its_experts():
    plan = {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "recompute": "none"}
    one = estimate(_spec("nemotron-3-nano-30b-a3b", count=64, plan={**plan, "ep": 1, "zero": 3}, global_batch=256))
    eight = estimate(_spec("nemotron-3-nano-30b-a3b", count=64, plan={**plan, "ep": 8, "zero": 1}, global_batch=256))
    assert one.time_breakdown_s["ep_comm"] == 0 < eight.time_breakdown_s["ep_comm"]
    assert eight.model_flops_per_token == one.model_flops_per_token
    best = search(_spec("nemotron-3-nano-30b-a3b", count=64, global_batch=3072), top=5).best
    assert all(128 % r.parallelism["ep"] == 0 for r in best) and best[0].fits


@settings(max_examples=40, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), cp=st.sampled_from([1, 2, 4]), mb=st.integers(1, 4),
       kind=st.sampled_from(O.HYBRID_KINDS))
def test_ops_sum_to_the_layer_flops_per_token(tp, cp, mb, kind):
    """Every FLOP of a hybrid layer's op list, GEMMs and the SSD's batched products alike, is in
    layer_flops_per_token, split over tp x cp (while tp x cp leaves each GPU whole groups)."""
    m = resolve_model({"experts": "nemotron-3-nano-30b-a3b", "gdn": "qwen3-next-80b-a3b"}.get(kind, "nemotron-h-8b"))
    if kind == "mamba" and m.mamba_groups % (tp * cp):
        return
    ops = O.layer_ops(m, mb, m.seq_len, tp, cp, 1, True, kind)
    per_token = sum(F.layer_flops_per_token(m, m.seq_len, kind).values())
    assert float(O.gemm_and_attention_flops(ops)) == pytest.approx(per_token * mb * m.seq_len / (tp * cp), rel=1e-12)


def test_the_scan_counts_both_state_products_where_nemos_formula_counts_one():
    """NeMo's Nemotron-H MFU formula counts 2 d N of the scan per token; the engine counts the chunk
    states and the inter-chunk product (2 d N each), C B^T and the intra-chunk product."""
    m = resolve_model("nemotron-h-8b")
    f = F.mamba_flops_per_token(m, causal=False)
    d, n, q, g = 8192, 128, 128, 8
    assert f["ssd_chunk_state"] + f["ssd_state_scan"] == 2 * (2 * d * n)
    assert f["ssd_chunk_cb"] + f["ssd_chunk_scan"] == 2 * g * q * n + 2 * d * q
    assert f["in_proj"] + f["mamba_out_proj"] == 2 * 4096 * (2 * d + 2 * g * n + 128) + 2 * d * 4096


@settings(max_examples=25, deadline=None)
@given(tp=st.sampled_from([1, 2, 4]), cp=st.sampled_from([1, 2]), precision=st.sampled_from(["bf16", "fp8"]),
       recompute=st.sampled_from(["none", "selective", "full"]), mb=st.integers(1, 2))
def test_attention_and_mlp_layers_in_pairs_are_the_transformer(tp, cp, precision, recompute, mb):
    """A transformer block is an attention layer and an MLP layer, each with its norm and residual:
    the hybrid '*-' x L prices exactly like the L-block transformer (one stage).  Under full
    recompute the hybrid checkpoints each of its layers, so it keeps two inputs a block, not one."""
    plan = {"tp": tp, "pp": 1, "cp": cp, "micro_batch": mb, "recompute": recompute, "zero": 1}
    a = estimate(_spec({**BLOCK, "layers": 8}, plan=plan, precision=precision))
    b = estimate(_spec({**BLOCK, "layers": 16, "hybrid_pattern": "*-" * 8}, plan=plan, precision=precision))
    assert b.step_time_s == pytest.approx(a.step_time_s, rel=1e-12)
    if recompute == "full":
        assert b.memory_breakdown_gib["activations"] > a.memory_breakdown_gib["activations"]
    else:
        assert b.memory_gib_per_gpu == pytest.approx(a.memory_gib_per_gpu, rel=1e-12)
    assert b.model_flops_per_token == a.model_flops_per_token
    assert b.mfu_by_convention == pytest.approx(a.mfu_by_convention, rel=1e-12)


def test_a_mamba_layer_keeps_its_projection_output_and_the_scans_output():
    """mamba_ssm's combined kernel saves the input projection's output whole and the ungated scan
    output; the norm saves its input; the output projection its input (bf16, one GPU): per token
    h (2 + 2) + 2 (2 d + 2 G N + H) + (4 + 2) d bytes."""
    m = resolve_model("nemotron-h-8b")
    got = M.activation_bytes_per_layer(m, m.seq_len, 1, 1, 1, False, "none", "mamba")
    assert float(got) / m.seq_len == 4096 * 4 + 2 * 18560 + 6 * 8192


def test_full_recompute_keeps_each_hybrid_layers_input_only():
    m = resolve_model("nemotron-3-nano-30b-a3b")
    assert {k for k, _ in m.layer_kinds} | {"mlp", "gdn"} == set(O.HYBRID_KINDS)
    for kind in ("mamba", "attention", "experts"):
        got = M.activation_bytes_per_layer(m, m.seq_len, 2, 4, 1, True, "full", kind)
        assert float(got) == 2 * 2 * m.seq_len * m.hidden / 4


@settings(max_examples=20, deadline=None)
@given(state=st.sampled_from([16, 64, 128, 256]), extra=st.sampled_from([32, 64, 128]))
def test_a_bigger_state_never_trains_faster(state, extra):
    model = {**BLOCK, "layers": 8, "hybrid_pattern": "M-M*M-M-"}
    plan = {"tp": 2, "pp": 1, "cp": 1, "micro_batch": 1, "recompute": "none", "zero": 1}
    small = estimate(_spec({**model, "mamba_state_dim": state}, plan=plan))
    big = estimate(_spec({**model, "mamba_state_dim": state + extra}, plan=plan))
    assert big.step_time_s >= small.step_time_s


def test_context_parallel_mamba_layers_pay_their_all_to_alls():
    plan = {"tp": 1, "pp": 1, "micro_batch": 1, "recompute": "none", "zero": 1}
    model = {**BLOCK, "layers": 8, "hybrid_pattern": "MMMMMMMM"}
    one = estimate(_spec(model, plan={**plan, "cp": 1}))
    two = estimate(_spec(model, plan={**plan, "cp": 2}))
    assert one.time_breakdown_s["cp_comm"] == 0 < two.time_breakdown_s["cp_comm"]


def test_the_search_keeps_to_splits_megatron_core_can_run():
    spec = load_spec({"model": "nemotron-h-56b", "hardware": {"gpu": "h100-sxm", "count": 1024},
                      "training": {"global_batch": 768, "precision": "fp8"}})
    result = search(spec, top=20)
    assert result.best
    for r in result.best:
        p = r.parallelism
        assert bool(mixer_split_ok(spec.model, p["tp"], p["cp"]))
        assert 8 % p["tp"] == 0 and 64 % p["tp"] == 0
    best = result.best[0]
    assert best.fits and 0.2 < best.mfu < 0.7


@pytest.mark.parametrize("split, field", [({"tp": 16}, "parallelism.tp"), ({"tp": 2, "cp": 3}, "parallelism.cp")])
def test_a_split_megatron_core_refuses_is_one_line_naming_its_field(split, field):
    model = {**BLOCK, "layers": 4, "heads": 48, "kv_heads": 8, "hidden": 6144, "hybrid_pattern": "M*M-"}
    with pytest.raises(SpecError) as err:
        _spec(model, count=48, plan=split)
    assert err.value.field == field and "\n" not in str(err.value)


@pytest.mark.parametrize("change, words", [
    ({"hybrid_pattern": "M*X-"}, "allowed characters: M .*E \\(MoE\\)"),
    ({"hybrid_pattern": "G*M-"}, "need gdn_key_heads"),
    ({"hybrid_pattern": "G*M-", "gdn_key_heads": 3, "gdn_value_heads": 4, "gdn_key_head_dim": 64,
      "gdn_value_head_dim": 64}, "must divide gdn_value_heads"),
    ({"hybrid_pattern": "M*-"}, "must agree"),
    ({"experts": 8, "top_k": 2, "moe_ffn_hidden": 1024}, "experts live in its MoE layers"),
    ({"hybrid_pattern": "M*ME"}, "no experts"),
    ({"dropout": True}, "cannot have dropout"),
    ({"mamba_heads": 60}, "mamba_groups"),
])
def test_a_bad_hybrid_model_is_refused_by_name(change, words):
    with pytest.raises(SpecError, match=words) as err:
        _spec({**BLOCK, "layers": 4, "hybrid_pattern": "M*M-", **change})
    assert "\n" not in str(err.value)


def test_lora_of_a_hybrid_and_simulating_a_model_that_never_attends_are_refused_in_one_line():
    with pytest.raises(SpecError) as err:
        _spec("nemotron-h-8b", lora_rank=16)
    assert err.value.field == "training.lora_rank" and "\n" not in str(err.value)
    mamba_only = {**BLOCK, "name": "mamba-only", "layers": 4, "hybrid_pattern": "M-M-", "max_seq_len": 8192}
    with pytest.raises(SpecError) as err:
        run_simulation(_serving(mamba_only), rate=1.0, requests=10)
    assert err.value.field == "model" and "\n" not in str(err.value)


def test_simulating_a_hybrid_holds_its_state_and_pays_it_per_sequence():
    """serve simulate reserves each sequence's recurrent state in KV-block units beside its cache
    and charges its read and write per sequence an iteration carries (two passes over the state at
    the chip's memory-bound bandwidth); a transformer has neither."""
    spec = _serving("nemotron-nano-9b-v2", input_tokens=8192, output_tokens=1024, weights="fp8")
    mem = replica_memory(spec, 1, 1)
    assert state_blocks(mem) == math.ceil(mem.state_per_sequence / (16 * mem.kv_per_token)) > 0
    ctx = replica_context(spec, {"tp": 1, "pp": 1, "ep": 1, "replicas": 1}, None)
    hbm = ctx.chip.hbm_bytes_per_s * ctx.profile.memory_efficiency
    per_seq = tabulate(ctx, 64).per_sequence_seconds
    assert per_seq == pytest.approx(2 * mem.state_per_sequence / hbm, rel=1e-6)
    out = run_simulation(spec, rate=0.0, requests=40)
    assert 0 < out["output_tokens_per_s_per_gpu"] and out["result"]["completed"] == 40
    qwen = _serving("qwen3-8b", input_tokens=8192, output_tokens=1024, weights="fp8")
    assert state_blocks(replica_memory(qwen, 1, 1)) == 0
    assert tabulate(replica_context(qwen, {"tp": 1, "pp": 1, "ep": 1, "replicas": 1}, None), 64) \
        .per_sequence_seconds == 0


def _serving(model, count=1, **serving):
    return load_serving_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": count},
                              "serving": {"input_tokens": 2048, "output_tokens": 256, **serving}})


def test_a_sequences_mamba_state_in_closed_form():
    """Per Mamba-2 layer and sequence: the fp32 SSM state (128 heads x 64 x 128) and the
    convolution's last 3 inputs of x, B and C (10,240 channels, bf16); 24 layers; split over tp."""
    m = resolve_model("nemotron-h-8b")
    one = 128 * 64 * 128 * 4 + 3 * (8192 + 2 * 8 * 128) * 2
    assert SM.recurrent_state_bytes_per_sequence(m) == 24 * one == 102_137_856
    assert SM.recurrent_state_bytes_per_sequence(m, tp=2) == 12 * one
    # the KV cache lives in the 4 attention layers only
    assert SM.kv_bytes_per_token(m, "bf16") == 4 * 2 * 8 * 128 * 2
    mem = SM.serving_memory(m, 80 * 2**30, weights="bf16", kv_format="bf16", tp=1, pp=1, max_num_tokens=8192,
                            max_batch=256, kv_cache_fraction=0.9)
    assert mem.kv_bytes_per_sequence(1000) == 1000 * 4 * 4096 + 24 * one


def test_a_16_bit_mamba_state_halves_the_ssm_state_and_admits_more_sequences():
    m = resolve_model("nemotron-h-8b")
    conv = 24 * 3 * (8192 + 2 * 8 * 128) * 2
    wide, narrow = (SM.recurrent_state_bytes_per_sequence(m, state_bytes=b) for b in (4.0, 2.0))
    assert wide - conv == 2 * (narrow - conv)
    fp32, bf16 = (serve_estimate(_serving("nemotron-h-8b", input_tokens=1024, output_tokens=256, recurrent_state=f))
                  for f in ("fp32", "bf16"))
    assert bf16.max_batch > fp32.max_batch and bf16.tokens_per_s_per_gpu > fp32.tokens_per_s_per_gpu
    assert fp32.assumptions["recurrent_state"] == "fp32"
    with pytest.raises(SpecError) as err:
        _serving("nemotron-h-8b", recurrent_state="fp8")
    assert "serving.recurrent_state" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("tp, weights", [(1, "bf16"), (2, "fp8"), (4, "bf16")])
def test_attention_and_mlp_layers_in_pairs_serve_as_the_transformer(tp, weights):
    plan = {"tp": tp, "pp": 1}
    a = serve_estimate(load_serving_spec({"model": {**BLOCK, "layers": 8}, "parallelism": plan,
                                          "hardware": {"gpu": "h100-sxm", "count": tp},
                                          "serving": {"input_tokens": 2048, "output_tokens": 256,
                                                      "weights": weights}}))
    b = serve_estimate(load_serving_spec({"model": {**BLOCK, "layers": 16, "hybrid_pattern": "*-" * 8},
                                          "parallelism": plan, "hardware": {"gpu": "h100-sxm", "count": tp},
                                          "serving": {"input_tokens": 2048, "output_tokens": 256,
                                                      "weights": weights}}))
    assert (b.batch, b.max_batch) == (a.batch, a.max_batch)
    assert b.tpot_s == pytest.approx(a.tpot_s, rel=1e-12) and b.ttft_s == pytest.approx(a.ttft_s, rel=1e-12)


def test_long_contexts_favour_the_hybrid():
    """Nemotron Nano 9B v2 against Qwen3-8B, 8,192 prompt and 16,384 output tokens on one H100 at
    fp8: its cache grows with 4 attention layers of 56, and its Mamba state is fixed, so it holds
    several times the sequences and serves more tokens per GPU; at a short context the edge shrinks."""
    long_ = {"input_tokens": 8192, "output_tokens": 16384, "weights": "fp8"}
    short = {"input_tokens": 512, "output_tokens": 256, "weights": "fp8"}
    ratio = {}
    for name, w in (("long", long_), ("short", short)):
        h = serve_estimate(load_serving_spec({"model": "nemotron-nano-9b-v2", "serving": w,
                                              "hardware": {"gpu": "h100-sxm", "count": 1}}))
        q = serve_estimate(load_serving_spec({"model": "qwen3-8b", "serving": w,
                                              "hardware": {"gpu": "h100-sxm", "count": 1}}))
        ratio[name] = h.tokens_per_s_per_gpu / q.tokens_per_s_per_gpu
        if name == "long":
            assert h.max_batch > 3 * q.max_batch
    assert ratio["long"] > 2.0 and ratio["short"] < ratio["long"]


def test_a_hybrid_estimate_says_what_it_rests_on():
    e = estimate(_spec("nemotron-h-8b", plan={"tp": 1, "pp": 1, "cp": 1, "zero": 1, "micro_batch": 1}))
    assert e.assumptions["hybrid_layers"] == {"mamba": 24, "attention": 4, "mlp": 24}
    assert any("Mamba" in c for c in e.validation_evidence["caveats"])
    # the PaLM convention's attention term counts the layers that attend
    m = resolve_model("nemotron-h-8b")
    palm = F.model_flops_per_token(m, m.seq_len, "palm")
    n = m.params_active - m.params_embedding
    assert palm == pytest.approx(6 * n + 12 * 4 * 32 * 128 * m.seq_len)


def test_a_transformer_has_no_hybrid_kinds():
    m = ModelSpec(layers=4, hidden=256, heads=4, vocab=100, seq_len=64, ffn_hidden=1024)
    assert m.layer_kinds == (("dense", 4),) and not m.is_hybrid and m.attention_layers == 4
    assert np.all(mixer_split_ok(m, np.array([3, 5]), 7))


def test_a_transformer_shape_never_becomes_a_hybrid_by_shape():
    """Nemotron-H 8B's widths without its pattern are a transformer of that shape; with the
    pattern, the catalog row (its name and counts)."""
    shape = {"layers": 52, "hidden": 4096, "heads": 32, "kv_heads": 8, "ffn_hidden": 21504, "vocab": 131072,
             "seq_len": 8192}
    plain = resolve_model(shape)
    assert not plain.is_hybrid and plain.name == "custom"
    hybrid = resolve_model({**shape, "hybrid_pattern": resolve_model("nemotron-h-8b").hybrid_pattern})
    assert hybrid.name == "nemotron-h-8b (by shape)" and hybrid.params_total == 8_100_852_736
