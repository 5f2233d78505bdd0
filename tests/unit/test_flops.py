"""FLOPs per token: closed forms and the published throughput-to-FLOPs conversions."""

from __future__ import annotations

import pytest

from colossim.specs import resolve_model
from colossim.training.flops import (forward_flops_per_token, hardware_flops_per_token,
                                     model_flops_per_token, narayanan_eq3_flops_per_token,
                                     recompute_flops_per_token)


def test_gpt3_forward_is_2n_plus_attention():
    m = resolve_model("gpt3-175b")
    l, h, s = 96, 12288, 2048
    fwd = sum(forward_flops_per_token(m, s, causal=False).values())
    # 2 x (matmul weights: 12 l h^2 + V h head) + attention 4 l h s (Kaplan et al. 2020 Table 1)
    assert fwd == 2 * (12 * l * h * h + 50257 * h) + 4 * l * h * s
    causal = sum(forward_flops_per_token(m, s, causal=True).values())
    assert fwd - causal == 2 * l * h * s  # causal halves the attention term


@pytest.mark.parametrize("mid", ["megatron-1.7b", "megatron-145.6b", "megatron-1t", "megatron-530b"])
def test_full_recompute_noncausal_is_narayanan_eq3(mid):
    m = resolve_model(mid)
    ours = hardware_flops_per_token(m, 2048, "full", causal=False)
    assert ours == pytest.approx(narayanan_eq3_flops_per_token(m.layers, m.hidden, 2048, m.vocab), rel=1e-12)


# Narayanan et al. 2021 (arXiv:2104.04473) Table 1: achieved teraFLOP/s per GPU, and the tokens/s
# per GPU derived from it with eq. 3 in shared/reference/validation/training-runs.csv (NAR21-T1-*).
NAR21_TABLE1 = [("megatron-1.7b", 137, 9287.93), ("megatron-18.4b", 135, 871.55),
                ("megatron-145.6b", 148, 123.78), ("megatron-529.6b", 163, 37.87),
                ("megatron-1t", 163, 19.96)]


@pytest.mark.parametrize("mid, tflops, tok_s", NAR21_TABLE1)
def test_narayanan_table1_conversion(mid, tflops, tok_s):
    m = resolve_model(mid)
    assert tok_s * hardware_flops_per_token(m, 2048, "full", causal=False) / 1e12 == pytest.approx(tflops, rel=2e-3)


def test_megatron_mfu_convention_drops_the_recompute_pass():
    m = resolve_model("megatron-175b")
    l, h, s, v = 96, 12288, 2048, 51200
    # Narayanan eq. 3 without recompute: 72 l h^2 (1 + s/(6h)) + 6 h V
    assert model_flops_per_token(m, s, "megatron") == pytest.approx(72 * l * h * h * (1 + s / (6 * h)) + 6 * h * v)
    assert hardware_flops_per_token(m, s, "full", causal=False) / model_flops_per_token(m, s) == pytest.approx(
        4 / 3, rel=0.01)


def test_selective_recompute_adds_one_attention_core_forward():
    # Selective recompute re-runs Q K^T, softmax and A V once in backward: 4 l h s per token (full
    # matrix).  Korthikanti et al. 2022 App. A's HFU uses 72 l h^2 (1 + s/(3h) + ...), i.e. 12 l h s
    # extra: three times ours (it counts the recomputed part as forward + backward); their Table 5
    # ratio HFU / MFU = 52.8 / 51.4 for 175B follows from that formula, not from executed FLOPs.
    m = resolve_model("megatron-175b")
    l, h, s = 96, 12288, 2048
    assert recompute_flops_per_token(m, s, "selective", causal=False) == 4 * l * h * s
    kor_ratio = (1 + s / (3 * h) + 51200 / (12 * h * l)) / (1 + s / (6 * h) + 51200 / (12 * h * l))
    assert kor_ratio == pytest.approx(52.8 / 51.4, rel=0.002)
    ours = hardware_flops_per_token(m, s, "selective", causal=False) / model_flops_per_token(m, s)
    assert ours - 1 == pytest.approx((kor_ratio - 1) / 3, rel=0.01)


@pytest.mark.parametrize("mid, tok_s, mfu", [("mpt-70b", 1007, 0.4125), ("mpt-7b", 9670, 0.422)])
def test_palm_convention_reproduces_llm_foundry_mfu(mid, tok_s, mfu):
    # llm-foundry benchmarking README (H100 80GB BF16, 512 GPUs): MFU with 6N + 12 L d s, 989 TF peak
    m = resolve_model(mid)
    assert tok_s * model_flops_per_token(m, 2048, "palm") / 989e12 == pytest.approx(mfu, rel=0.005)


def test_6nd_and_moe_active():
    m = resolve_model("deepseek-v3")
    assert model_flops_per_token(m, 4096, "6nd") == 6 * m.params_active
    fwd = forward_flops_per_token(m, 4096)
    assert fwd["expert_up"] == 58 * 8 * 2 * 2 * 7168 * 2048  # 58 MoE layers, top 8, gate + up
    assert fwd["shared_up"] == 58 * 1 * 2 * 2 * 7168 * 2048


def test_recompute_ordering():
    m = resolve_model("llama3-8b")
    none, sel, full = (recompute_flops_per_token(m, 8192, r) for r in ("none", "selective", "full"))
    assert none == 0 < sel < full
    assert hardware_flops_per_token(m, 8192, "full") == pytest.approx(
        4 * sum(forward_flops_per_token(m, 8192).values()) - forward_flops_per_token(m, 8192)["logits"])


def test_unknown_convention():
    with pytest.raises(ValueError, match="convention must be one of"):
        model_flops_per_token(resolve_model("llama3-8b"), 8192, "hfu")
