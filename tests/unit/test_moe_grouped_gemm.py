"""Grouped expert GEMMs (``parallelism.moe_grouped_gemm``, from the software stack): a layer's local
routed experts run as one grouped kernel each way, one launch with the members' tiles sharing the
waves, instead of one GEMM per expert."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.catalog import load_catalog
from colossim.cost import compute as K
from colossim.cost.power import profile_for_chip
from colossim.specs.software import software_stacks
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate

H100 = load_catalog().accelerators["h100-sxm"]
PROFILE = profile_for_chip(H100)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 8192), n=st.sampled_from([256, 512, 768, 1536, 4096]),
       k=st.sampled_from([1024, 2048, 4096, 7168]), count=st.integers(1, 256))
def test_one_grouped_kernel_is_never_slower_than_its_members_alone(m, n, k, count):
    alone = K.gemm_seconds(m, n, k, "bf16", H100, PROFILE, count=count)
    grouped = K.batched_gemm_seconds(m, n, k, count, "bf16", H100, PROFILE)
    assert grouped <= alone * (1 + 1e-12)
    if count == 1:
        assert grouped == pytest.approx(alone, rel=1e-12)


def test_the_stacks_that_group_their_experts():
    grouped = {s.id for s in software_stacks().values() if s.moe_grouped_gemm}
    assert grouped == {"megatron-core-2024", "nemo-2024", "hai-llm-v3", "torchtitan-2024"}


def _step(model, grouped, ep):
    return estimate(load_spec({
        "model": model, "hardware": {"gpu": "h100-sxm", "count": 64},
        "parallelism": {"tp": 1, "pp": 1, "cp": 1, "ep": ep, "micro_batch": 1, "recompute": "full", "zero": 1,
                        "moe_grouped_gemm": grouped},
        "training": {"global_batch": 512, "seq_len": 4096}}))


def test_fine_grained_experts_gain_and_one_expert_a_gpu_does_not():
    """Qwen3-30B-A3B at ep 8 holds 16 experts of 768 a GPU, each with a few thousand rows: one
    kernel for them is faster; Mixtral 8x7B at ep 8 holds one expert a GPU: nothing to group."""
    qwen = [_step("qwen3-30b-a3b", g, 8) for g in (False, True)]
    assert qwen[1].step_time_s < qwen[0].step_time_s
    assert qwen[1].time_breakdown_s["ep_comm"] == pytest.approx(qwen[0].time_breakdown_s["ep_comm"], rel=1e-9)
    assert qwen[1].model_flops_per_token == qwen[0].model_flops_per_token
    mixtral = [_step("mixtral-8x7b", g, 8).step_time_s for g in (False, True)]
    assert mixtral[1] == pytest.approx(mixtral[0], rel=1e-12)
