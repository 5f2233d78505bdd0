"""Memory per GPU against Korthikanti et al. 2022 (eqs. 1-2, Table 2) and the ZeRO closed forms."""

from __future__ import annotations

import pytest

from colossim.specs import resolve_model
from colossim.specs.model import ModelSpec
from colossim.training.memory import (OPTIMIZER_BYTES, activation_bytes_per_layer, memory_per_gpu,
                                      params_per_gpu)

GPT = resolve_model("megatron-175b")  # dropout, MHA, 4h gelu MLP: Korthikanti's setting
S, H, A = 2048, 12288, 96


def per_layer(t, sp, rc):
    return float(activation_bytes_per_layer(GPT, S, 1, t, 1, sp, rc, "dense", flash_attention=False))


def test_korthikanti_eq1_no_parallelism():
    assert per_layer(1, False, "none") == S * H * (34 + 5 * A * S / H)


@pytest.mark.parametrize("t", [2, 8])
def test_korthikanti_table2(t):
    sbh = S * H
    assert per_layer(t, False, "none") == pytest.approx(sbh * (10 + 24 / t + 5 * A * S / (H * t)))  # TP
    assert per_layer(t, True, "none") == pytest.approx(sbh / t * (34 + 5 * A * S / H))             # TP + SP
    assert per_layer(t, False, "selective") == pytest.approx(sbh * (10 + 24 / t))                 # TP + selective
    assert per_layer(t, True, "selective") == pytest.approx(sbh * 34 / t)                         # TP + SP + selective
    assert per_layer(t, True, "full") == pytest.approx(2 * sbh / t)                               # full recompute


def test_flash_attention_drops_the_quadratic_term():
    flash = float(activation_bytes_per_layer(GPT, S, 1, 8, 1, True, "none", "dense", flash_attention=True))
    assert flash == pytest.approx(S * H * 34 / 8 + 4 * A * S / 8)  # + fp32 log-sum-exp per row


def test_gqa_swiglu_differ_from_gpt_as_expected():
    base = dict(layers=1, hidden=4096, heads=32, vocab=1000, seq_len=4096, ffn_hidden=16384)
    mha = ModelSpec(**base)
    gqa = ModelSpec(**base, kv_heads=8)
    sw = ModelSpec(**base, activation="swiglu")
    act = lambda m: float(activation_bytes_per_layer(m, 4096, 1, 1, 1, False, "none", "dense"))  # noqa: E731
    # K and V shrink from 32 to 8 heads: 2 bytes x (24 + 24) x 128 per token
    assert act(mha) - act(gqa) == pytest.approx(4096 * 2 * 48 * 128)
    # SwiGLU stores gate and up: one more f-wide tensor per token
    assert act(sw) - act(mha) == pytest.approx(4096 * 2 * 16384)


def test_model_state_is_16_bytes_per_param_and_zero_shards_it():
    m = resolve_model("llama3-8b")
    r0 = memory_per_gpu(m, dp=8, zero=0)
    n = float(params_per_gpu(m, 1, 1, 1)["total"])
    assert n == m.params_total
    assert float(r0.weights + r0.gradients + r0.optimizer) == 16 * n
    r1, r2, r3 = (memory_per_gpu(m, dp=8, zero=z) for z in (1, 2, 3))
    assert float(r1.optimizer) == OPTIMIZER_BYTES * n / 8 and float(r1.gradients) == 2 * n
    assert float(r2.gradients) == 2 * n / 8 and float(r2.weights) == 2 * n
    assert float(r3.weights) == 2 * n / 8
    # fp8: a cached fp8 copy of the layers' weights and its transpose (the embedding and head stay
    # bf16 only) ...
    vocab = float(m.params_embedding + m.params_output_head + m.params_final_norm)
    assert float(memory_per_gpu(m, dp=8, zero=1, precision="fp8").weights) == 2 * n + 2 * (n - vocab)
    # ... or, kept as fp8 parameters, no bf16 copy of them (the fp8 parameter and its transpose)
    assert float(memory_per_gpu(m, dp=8, zero=1, precision="fp8", fp8_params=True).weights) == (
        2 * vocab + 2 * (n - vocab))
    # ZeRO 0-2 hold the gradients in the reduction's buffer: Megatron's fp32 main_grad makes
    # 2 + 4 + 12 = 18 bytes per parameter, 6 + 12 / d with the distributed optimizer (Megatron-LM's
    # dist_optimizer.md table, bf16 parameters with fp32 gradients)
    f0, f1 = (memory_per_gpu(m, dp=8, zero=z, grad_buffer_bytes=4) for z in (0, 1))
    assert float(f0.weights + f0.gradients + f0.optimizer) == 18 * n
    assert float(f1.weights + f1.gradients + f1.optimizer) == (6 + 12 / 8) * n
    # ZeRO-3 shards bf16 gradients whatever the reduction's dtype (FSDP's fp32 shard is its master)
    assert float(memory_per_gpu(m, dp=8, zero=3, grad_buffer_bytes=4).gradients) == float(r3.gradients)


def test_experts_shard_over_ep_and_expert_data_parallel():
    m = resolve_model("mixtral-8x7b")
    p1, p8 = params_per_gpu(m, 1, 1, 1), params_per_gpu(m, 1, 1, 8)
    assert float(p1["expert"]) == m.params_expert_total == 8 * float(p8["expert"])
    # zero 1 over dp*cp = 8: dense optimizer state / 8, expert state / (8 / ep) = / 1 with ep = 8
    r = memory_per_gpu(m, ep=8, dp=8, zero=1)
    assert float(r.optimizer) == pytest.approx(12 * (float(p8["dense"]) / 8 + float(p8["expert"])))


def test_1f1b_first_stage_holds_pp_micro_batches():
    m = resolve_model("megatron-175b")
    kw = dict(tp=8, dp=1, recompute="selective", sequence_parallel=True, seq_len=2048, global_batch=64)
    one = float(activation_bytes_per_layer(m, 2048, 1, 8, 1, True, "selective", "dense"))
    r = memory_per_gpu(m, pp=8, **kw)
    # first stage: 12 layers x 8 micro-batches = all 96 layers of one micro-batch (Korthikanti sec 4.2.3)
    assert float(r.activations) == pytest.approx(96 * one)
    ri = memory_per_gpu(m, pp=8, vpp=3, **kw)
    assert float(ri.activations) == pytest.approx(96 * one * (1 + 7 / 24))


def test_fp8_keeps_gemm_inputs_in_one_byte():
    """Transformer Engine saves the fp8 cast of each GEMM input: QKV input, MLP input, attention
    output (h each) and the MLP activation output (4h) drop from 2 to 1 byte: 7 s b h / t less."""
    bf16 = float(activation_bytes_per_layer(GPT, S, 1, 8, 1, True, "none", "dense", True, "bf16"))
    fp8 = float(activation_bytes_per_layer(GPT, S, 1, 8, 1, True, "none", "dense", True, "fp8"))
    assert bf16 - fp8 == pytest.approx(7 * S * H / 8)


def test_block_recompute_is_linear_in_the_recomputed_layers():
    kw = dict(tp=8, pp=8, dp=4, micro_batch=1, recompute="full", zero=1, sequence_parallel=True,
              global_batch=256)
    per_stage = 12  # 96 layers / 8 stages
    m = [float(memory_per_gpu(GPT, recompute_layers=k, **kw).total) for k in range(1, per_stage + 1)]
    steps = [b - a for a, b in zip(m, m[1:])]
    assert all(s < 0 for s in steps) and max(steps) == pytest.approx(min(steps))
    assert m[-1] == pytest.approx(float(memory_per_gpu(GPT, recompute_layers=0, **kw).total))  # 0 = all
    none = float(memory_per_gpu(GPT, **{**kw, "recompute": "none"}).total)
    assert m[0] < none


@pytest.mark.parametrize("fsdp", [True, False])
def test_zero3_buffers_hold_the_gathered_weights_and_one_unsharded_gradient(fsdp):
    """Beyond ZeRO-2, ZeRO-3 keeps gathered weights and the gradient waiting for its reduce-scatter:
    one layer's under FSDP (its FlatParameter), the largest weight's under DeepSpeed (GPT: an MLP
    matrix, 4 h^2)."""
    from colossim.training.memory import (DEEPSPEED_GATHERED_LAYER_FRACTION, DEEPSPEED_REDUCE_BUCKET_ELEMENTS,
                                          FSDP_GATHERED_LAYERS, GRAD_BYTES, WEIGHT_BYTES,
                                          ZERO3_UNSHARDED_GRADIENT_UNITS)
    kw = dict(tp=2, dp=64, micro_batch=1, recompute="full", fsdp=fsdp)
    z1, z2, z3 = (float(memory_per_gpu(GPT, zero=z, **kw).buffers) for z in (1, 2, 3))
    layer = GPT.params_per_layer_dense / 2
    held, grad = ((FSDP_GATHERED_LAYERS, layer) if fsdp
                  else (DEEPSPEED_GATHERED_LAYER_FRACTION, 4 * H * H / 2))
    # ZeRO-2 writes whole gradients before reducing them too: FSDP's unit (a layer), DeepSpeed's
    # reduce bucket (5e8 elements, less than the 87.5B parameters a rank of GPT-3 at tp 2 holds)
    bucket = layer if fsdp else DEEPSPEED_REDUCE_BUCKET_ELEMENTS
    assert z2 - z1 == pytest.approx(GRAD_BYTES * bucket)
    assert z3 - z1 == pytest.approx(held * WEIGHT_BYTES * layer + ZERO3_UNSHARDED_GRADIENT_UNITS * GRAD_BYTES * grad)


def test_530b_under_deepspeed_zero3_fits_on_640_gpus_not_560():
    """Narayanan et al. 2021, Table 2's starred row: GPT 530B under ZeRO-3 (DeepSpeed, no model
    parallelism, micro-batch 4, full recompute) did not fit on 560 A100-80GB, so it ran on 640."""
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    def fits(gpus: int) -> bool:
        spec = {"model": {"layers": 105, "hidden": 20480, "ffn_hidden": 81920, "heads": 128, "kv_heads": 128,
                          "vocab": 51200, "seq_len": 2048, "activation": "gelu"},
                "hardware": {"gpu": "a100-80gb-sxm", "count": gpus},
                "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": gpus, "micro_batch": 4, "recompute": "full",
                                "zero": 3, "sequence_parallel": False},
                "training": {"global_batch": 4 * gpus}}
        return estimate(load_spec(spec)).fits

    assert fits(640) and not fits(560)


def test_the_last_interleaved_stage_holds_its_warm_up_chunks_beside_the_logits():
    """Megatron's interleaved warm-up runs (v - 1) p chunk-forwards on the last rank before its
    first backward: ((v - 1) p + 1) / v micro-batches of its stage, under the logits; with a
    large vocabulary and few layers a stage that is the peak (Llama 3.2 1B, pp 4, v 4: 3.25)."""
    from colossim.training.pipeline import micro_batches_in_flight_last

    assert float(micro_batches_in_flight_last(4, 4, 32)) == 3.25
    assert float(micro_batches_in_flight_last(4, 1, 32)) == 1.0
    assert float(micro_batches_in_flight_last(4, 4, 2)) == 2.0  # capped by the micro-batches
    m = resolve_model("llama3.2-1b")
    kw = dict(tp=1, pp=4, dp=2, micro_batch=1, recompute="none", zero=1, seq_len=8192)
    one = float(memory_per_gpu(m, vpp=1, global_batch=2, **kw).activations)  # one micro-batch: stage + logits
    four = float(memory_per_gpu(m, vpp=1, global_batch=64, **kw).activations)  # 4 stages on the first
    stage = four / 4
    logits = one - stage
    assert logits > stage  # 128,256 logits a position against 4 layers' activations
    interleaved = float(memory_per_gpu(m, vpp=4, global_batch=64, **kw).activations)
    assert interleaved == pytest.approx(max(4.75 * stage, 3.25 * stage + logits))
    assert interleaved == pytest.approx(3.25 * stage + logits)  # the last stage is the peak
