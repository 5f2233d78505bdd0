"""ZeRO / FSDP sharded over part of the data-parallel ranks (``parallelism.shard_group``: PyTorch
HSDP, DeepSpeed MiCS / ZeRO++ hpZ): the closed forms of its memory, the collectives it moves onto
the node, and the errors of a shard group that cannot be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs import resolve_model
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, search
from colossim.training.memory import GRAD_BYTES, OPTIMIZER_BYTES, WEIGHT_BYTES, memory_per_gpu, params_per_gpu

GPT13 = resolve_model("gpt3-13b")


def _spec(shard_group=None, system="p4d.24xlarge", count=512, **par):
    plan = {"tp": 1, "pp": 1, "zero": 3, "micro_batch": 2, **par}
    if shard_group is not None:
        plan["shard_group"] = shard_group
    return load_spec({"model": "gpt3-13b", "hardware": {"system": system, "count": count},
                      "parallelism": plan, "training": {"global_batch": 1024}})


@settings(max_examples=30, deadline=None)
@given(dp_exp=st.integers(1, 10), shard_exp=st.integers(0, 10), zero=st.sampled_from([1, 2, 3]))
def test_model_state_is_sharded_over_the_shard_group_only(dp_exp, shard_exp, zero):
    dp, shard = 2**dp_exp, 2 ** min(shard_exp, dp_exp)
    m = memory_per_gpu(GPT13, dp=dp, zero=zero, shard=shard)
    n = params_per_gpu(GPT13, 1, 1, 1, 1)["dense"]
    assert float(m.optimizer) == pytest.approx(OPTIMIZER_BYTES * n / shard)
    assert float(m.gradients) == pytest.approx(GRAD_BYTES * n / (shard if zero >= 2 else 1))
    assert float(m.weights) == pytest.approx(WEIGHT_BYTES * n / (shard if zero >= 3 else 1))
    # a shard over the whole group is plain ZeRO
    assert float(memory_per_gpu(GPT13, dp=dp, zero=zero, shard=dp).total) == pytest.approx(
        float(memory_per_gpu(GPT13, dp=dp, zero=zero).total))


def test_a_shard_group_of_the_whole_group_changes_nothing():
    whole, given_all = estimate(_spec()), estimate(_spec(shard_group=512))
    assert given_all.step_time_s == pytest.approx(whole.step_time_s)
    assert given_all.memory_gib_per_gpu == pytest.approx(whole.memory_gib_per_gpu)
    assert given_all.parallelism["shard_group"] is None  # reported as the whole group


def test_a_node_sized_shard_keeps_the_gathers_on_nvlink():
    # GPT-3 13B, ZeRO-3 on 512 A100 40GB of p4d (50 Gb/s of NIC per GPU): sharding within each
    # 8-GPU node trades 512 / 8 = 64x the model state for gathers over NVLink and one all-reduce
    # of an eighth of the gradients across the 64 nodes
    full, node = estimate(_spec()), estimate(_spec(shard_group=8))
    assert node.parallelism["shard_group"] == 8
    assert node.time_breakdown_s["dp_comm"] < full.time_breakdown_s["dp_comm"] / 2
    assert node.step_time_s < full.step_time_s / 2
    state = ("weights", "gradients", "optimizer")
    assert sum(node.memory_breakdown_gib[k] for k in state) == pytest.approx(
        64 * sum(full.memory_breakdown_gib[k] for k in state), rel=1e-6)


def test_the_shard_copies_all_reduce_is_priced():
    # ZeRO-3 sharded per node: its gathers and reduce-scatters stay on the node's NVLink, the same
    # on a DGX and a p4d; the 64 copies of each shard then all-reduce it over the NICs, which the
    # p4d has a quarter of
    spec = {"model": "gpt3-6.7b", "parallelism": {"tp": 1, "pp": 1, "zero": 3, "micro_batch": 2, "shard_group": 8},
            "training": {"global_batch": 1024}}
    dp = {s: estimate(load_spec({**spec, "hardware": {"system": s, "count": 512}})).time_breakdown_s["dp_comm"]
          for s in ("hgx-a100-40gb", "p4d.24xlarge")}
    assert dp["p4d.24xlarge"] > 1.5 * dp["hgx-a100-40gb"] > 0


def test_search_keeps_to_the_shard_group():
    spec = load_spec({"model": "llama3-8b", "hardware": {"system": "p5.48xlarge", "count": 256},
                      "parallelism": {"shard_group": 16}, "training": {"global_batch": 512}})
    best = search(spec, top=20).best
    assert best
    for e in best:
        p = e.parallelism
        assert p["zero"] >= 1 and (p["dp"] * p["cp"]) % 16 == 0
        assert p["shard_group"] in (16, None)  # None: dp x cp is 16 itself


@pytest.mark.parametrize("plan, words", [
    ({"tp": 1, "pp": 1, "dp": 512, "zero": 3, "shard_group": 3},
     "parallelism.shard_group = 3 does not divide dp*cp = 512*1 = 512: allowed shard_group: 1, 2, 4"),
    ({"zero": 0, "shard_group": 8}, "shard_group 8 needs zero 1, 2 or 3"),
    ({"shard_group": 3}, "shard_group 3): tp must divide heads"),
    ({"shard_group": 3}, "; shard_group 3 must divide dp x cp, and goes with zero 1-3"),
])
def test_a_shard_group_that_cannot_be_is_refused_by_name(plan, words):
    with pytest.raises(SpecError) as e:
        estimate(load_spec({"model": "gpt3-13b", "hardware": {"system": "p4d.24xlarge", "count": 512},
                            "parallelism": plan, "training": {"global_batch": 1024}}))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_shard_too_small_to_fit_names_the_whole_group_as_the_way_out():
    with pytest.raises(SpecError) as e:
        estimate(load_spec({"model": "gpt3-175b", "hardware": {"system": "p4d.24xlarge", "count": 512},
                            "parallelism": {"tp": 1, "pp": 1, "zero": 3, "shard_group": 8},
                            "training": {"global_batch": 1024}}))
    assert "z3/8" in str(e.value) and "parallelism.shard_group left out" in str(e.value)


def test_the_estimate_says_no_validation_run_sharded_that_way():
    caveats = estimate(_spec(shard_group=8)).validation_evidence["caveats"]
    assert any("groups of 8 of the 512 data x context ranks" in c for c in caveats)
    assert not any("shard_group" in c for c in estimate(_spec()).validation_evidence["caveats"])
