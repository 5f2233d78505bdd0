"""The step's accounting: ZeRO-2's gradient reduction per micro-batch, and the time breakdown's
parts adding up to the step on the slowest stage (uneven stages, multi-token prediction)."""

from __future__ import annotations

import pytest

from colossim.specs.training import load_spec
from colossim.training.estimate import estimate


def _spec(model: str, count: int, plan: dict, training: dict, gpu: str = "h100-sxm"):
    return load_spec({"model": model, "hardware": {"gpu": gpu, "count": count}, "parallelism": plan,
                      "training": training})


@pytest.mark.parametrize("model, gpu, software, tp", [
    ("mpt-7b", "h100-sxm", "pytorch-fsdp-2023", 1),
    ("gpt3-13b", "a100-80gb-sxm", "megatron-lm-2021", 2),
])
def test_zero_2_gets_no_faster_per_gpu_as_data_parallel_gpus_are_added(model, gpu, software, tp):
    # ZeRO-2 keeps only its shard of the gradients, so every micro-batch's are reduce-scattered:
    # adding replicas at a fixed global batch cannot make each GPU faster (it used to, +8 % on MPT-7B
    # at dp 8, by accumulating a 1/dp shard while reducing once a step)
    rates = [estimate(_spec(model, tp * dp, {"tp": tp, "pp": 1, "cp": 1, "dp": dp, "micro_batch": 1,
                                             "recompute": "full", "zero": 2},
                            {"global_batch": 256, "software": software}, gpu)).tokens_per_s_per_gpu
             for dp in (1, 2, 4, 8)]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(rates, rates[1:])), rates


def test_zero_2_and_zero_1_reduce_alike_with_one_micro_batch_and_apart_with_more():
    def dp_comm(zero: int, batch: int) -> float:
        return estimate(_spec("mpt-7b", 8, {"tp": 1, "pp": 1, "cp": 1, "dp": 8, "micro_batch": 1,
                                            "recompute": "full", "zero": zero},
                              {"global_batch": batch, "software": "pytorch-fsdp-2023"})).time_breakdown_s["dp_comm"]
    assert dp_comm(2, 8) == pytest.approx(dp_comm(1, 8), rel=1e-9)
    # eight micro-batches: ZeRO-2 reduces eight times, ZeRO-1 once
    assert dp_comm(2, 64) > 4 * dp_comm(1, 64)


@pytest.mark.parametrize("model, count, plan, training", [
    # uneven stages: the last stage gives layers up to the others to hold the head
    ("llama3-8b", 24, {"tp": 8, "pp": 3, "cp": 1, "dp": 1, "vpp": 1, "micro_batch": 1, "recompute": "none",
                       "zero": 1, "sequence_parallel": True}, {"global_batch": 12, "software": "megatron-core-2024"}),
    # DeepSeek-V3's multi-token-prediction block on the last stage, with its TP and EP traffic
    ("deepseek-v3", 128, {"tp": 8, "pp": 1, "cp": 1, "dp": 16, "ep": 16, "micro_batch": 1, "recompute": "full",
                          "zero": 3, "sequence_parallel": True},
     {"global_batch": 256, "software": "megatron-core-2024"}),
])
def test_the_breakdown_adds_up_to_the_step(model, count, plan, training):
    est = estimate(_spec(model, count, plan, training))
    parts = est.time_breakdown_s
    assert sum(parts.values()) == pytest.approx(est.step_time_s, rel=1e-9)
    assert min(parts.values()) >= 0


def test_selective_recompute_without_flash_attention_holds_one_layers_scores_while_it_recomputes_them():
    # the recomputed s x s softmax of the layer in its backward is live again, as a fully recomputed
    # layer's activations are: at 32,768 tokens it was 16 GiB left out, and selective read below full
    def activations(recompute: str, flash: bool) -> float:
        plan = {"tp": 8, "pp": 16, "cp": 1, "dp": 1, "vpp": 1, "micro_batch": 1, "recompute": recompute,
                "zero": 1, "sequence_parallel": True, "flash_attention": flash}
        return estimate(_spec("llama3-70b", 128, plan, {"global_batch": 16, "seq_len": 32768,
                                                         "software": "megatron-lm-2022"})).memory_breakdown_gib[
            "activations"]
    heads, seq, tp = 64, 32768, 8
    softmax_gib = 2 * heads * seq**2 / tp / 2**30  # one layer's bf16 probabilities, Korthikanti's 2as^2b
    # (less the little flash attention keeps of its own: its per-row softmax statistics)
    assert activations("selective", False) - activations("selective", True) >= 0.9 * softmax_gib
    assert activations("none", False) > activations("selective", False)
