"""MoE token dispatch: copies per fabric, group-limited routing, FP8 dispatch and all-to-all overlap
(training/step.py moe_dispatch_copies, moe_all_to_all_seconds, ep_exposed_seconds)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.model import resolve_model
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.step import FP8_DISPATCH_BYTES, expected_distinct, moe_dispatch_copies

DSV3 = resolve_model("deepseek-v3")  # 256 experts, top-8, 8 groups, 4 per token

# DeepSeek-V3 technical report (arXiv:2412.19437): 2,048 H800; 16-way pipeline (DualPipe), 64-way
# expert parallelism over 8 nodes, ZeRO-1 data parallelism, no TP; 4K sequences, batch 15,360; FP8.
# Table 1: 2,664K H800 GPU hours of pre-training for 14.8T tokens = 1,543 tokens/s per GPU.
DSV3_RUN = {"model": "deepseek-v3", "hardware": {"gpu": "h800-sxm", "count": 2048},
            "parallelism": {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "dp": 128, "zero": 1, "micro_batch": 1},
            "training": {"global_batch": 15360, "precision": "fp8"}}
DSV3_TOKENS_PER_S_PER_GPU = 14.8e12 / (2.664e6 * 3600)


def test_expected_distinct_closed_forms():
    assert float(expected_distinct(1, 7)) == pytest.approx(1.0)      # one draw, one bin
    assert float(expected_distinct(5, 1)) == pytest.approx(1.0)      # one bin
    assert float(expected_distinct(2, 2)) == pytest.approx(1.5)      # 2 (1 - 1/4)
    assert float(expected_distinct(8, 4)) == pytest.approx(4 * (1 - 0.75 ** 8))


def test_alltoall_sends_every_copy_and_dedup_one_per_node():
    # EP64 over 8 nodes of 8: NCCL's all-to-all sends 8 copies, 7/8 of them off the node
    nv, ib = moe_dispatch_copies(DSV3, 64, 8, dedup=False)
    assert (float(nv), float(ib)) == pytest.approx((8 * 7 / 64, 8 * 56 / 64))
    # node-limited routing (4 of 8 nodes) + dedup: at most 4 nodes, 7/8 of them remote
    _, ib = moe_dispatch_copies(DSV3, 64, 8, dedup=True)
    assert float(ib) == pytest.approx(4 * (1 - 0.75 ** 8) * 7 / 8)
    # without the group limit the same token reaches more nodes
    free = DSV3.model_copy(update={"routing_groups": 0, "routing_groups_per_token": 0})
    assert float(moe_dispatch_copies(free, 64, 8, dedup=True)[1]) > float(ib)


@given(n_pow=st.integers(0, 8), d_pow=st.integers(0, 6), m=st.integers(1, 8))
def test_dedup_never_sends_more_over_the_scale_out_fabric(n_pow, d_pow, m):
    n, d = 2 ** n_pow, 2 ** min(d_pow, n_pow)
    model = DSV3.model_copy(update={"routing_groups_per_token": m})
    nv0, ib0 = moe_dispatch_copies(model, n, d, dedup=False)
    nv1, ib1 = moe_dispatch_copies(model, n, d, dedup=True)
    assert 0.0 <= float(ib1) <= float(ib0) + 1e-12
    assert 0.0 <= float(nv1) <= model.top_k
    if n == d:
        assert float(ib0) == float(ib1) == 0.0  # one domain: nothing leaves it
    if m < 8:  # a tighter group limit never reaches more nodes
        looser = DSV3.model_copy(update={"routing_groups_per_token": m + 1})
        assert float(ib1) <= float(moe_dispatch_copies(looser, n, d, dedup=True)[1]) + 1e-12


def test_routing_groups_must_divide_the_experts():
    with pytest.raises(SpecError, match="routing_groups 7 must divide experts 256"):
        load_spec({**DSV3_RUN, "model": {"name": "deepseek-v3", "routing_groups": 7}})
    with pytest.raises(SpecError, match="routing_groups_per_token 9"):
        load_spec({**DSV3_RUN, "model": {"name": "deepseek-v3", "routing_groups_per_token": 9}})


def test_deepseek_models_default_to_their_own_framework_and_a_named_stack_wins():
    assert load_spec(DSV3_RUN).training.software == "hai-llm-v3"
    named = load_spec({**DSV3_RUN, "training": {**DSV3_RUN["training"], "software": "megatron-core-2024"}})
    assert named.training.software == "megatron-core-2024"
    assert named.parallelism.moe_dispatch == "alltoall"
    assert load_spec({**DSV3_RUN, "model": "mixtral-8x7b", "parallelism": {"ep": 8}}).training.software \
        == "megatron-core-2024"


def _ep(**plan):
    plan = {**DSV3_RUN["parallelism"], "recompute": "full", **plan}  # the same plan every time
    return estimate(load_spec({**DSV3_RUN, "parallelism": plan}))


def test_each_dispatch_mechanism_cuts_the_exposed_all_to_all():
    base = _ep(moe_dispatch="alltoall", moe_fp8_dispatch=False, ep_comm_overlap="none")
    dedup = _ep(moe_dispatch="dedup", moe_fp8_dispatch=False, ep_comm_overlap="none")
    fp8 = _ep(moe_dispatch="dedup", moe_fp8_dispatch=True, ep_comm_overlap="none")
    hidden = _ep(moe_dispatch="dedup", moe_fp8_dispatch=True, ep_comm_overlap="micro_batch")
    ep = [e.time_breakdown_s["ep_comm"] for e in (base, dedup, fp8, hidden)]
    assert ep[0] > ep[1] > ep[2] > ep[3] >= 0.0
    # FP8 halves the dispatch's bytes (1 + scales instead of 2), not the bf16 combine's
    assert 0.5 * ep[1] < ep[2] < 0.9 * ep[1]
    assert FP8_DISPATCH_BYTES == pytest.approx(1.03125)
    # overlap is not free: the hidden all-to-all holds SMs, so compute grows
    assert hidden.time_breakdown_s["compute"] > fp8.time_breakdown_s["compute"]
    assert hidden.step_time_s < fp8.step_time_s


def test_deepseek_v3_on_its_published_plan():
    est = estimate(load_spec(DSV3_RUN))
    assert est.fits
    assert est.tokens_per_s_per_gpu == pytest.approx(DSV3_TOKENS_PER_S_PER_GPU, rel=0.15)
    # with Megatron-Core 2024's dispatcher (every copy, bf16, nothing hidden) it would be far slower
    mcore = estimate(load_spec({**DSV3_RUN, "training": {**DSV3_RUN["training"], "software": "megatron-core-2024"}}))
    assert mcore.tokens_per_s_per_gpu < 0.6 * est.tokens_per_s_per_gpu


def test_a_dualpipe_pair_takes_the_longer_of_its_compute_and_its_all_to_all():
    import dataclasses

    import numpy as np

    from colossim.training.estimate import make_context
    from colossim.training.step import comm_sm_share, ep_exposed_seconds

    ctx = dataclasses.replace(make_context(load_spec(DSV3_RUN)), ep_comm_overlap="micro_batch")
    cf, cb = np.array([1.0, 1.0]), np.array([2.0, 2.0])
    a2a_f, a2a_b = np.array([1.0, 2.5]), np.array([1.0, 2.5])  # 2 s (hidden) and 5 s of all-to-all
    fwd, bwd, slow = ep_exposed_seconds(ctx, [], a2a_f, a2a_b, cf, cb)
    assert list(fwd + bwd) == pytest.approx([0.0, 2.0])  # a pair of 3 s of compute: max(3, 5) - 3
    # what is exposed goes to each pass as its compute does, so that a faster pass never makes the
    # other one longer when both get faster together
    assert fwd[1] / bwd[1] == pytest.approx(cf[1] / cb[1])
    assert list(slow) == pytest.approx([2.0 * comm_sm_share(ctx), 3.0 * comm_sm_share(ctx)])


def test_passes_without_a_partner_micro_batch_expose_their_all_to_all():
    import dataclasses

    import numpy as np

    from colossim.training.estimate import make_context
    from colossim.training.plans import PlanArrays
    from colossim.training.step import ep_exposed_seconds, unpaired_pass_share

    ctx = dataclasses.replace(make_context(load_spec(DSV3_RUN)), ep_comm_overlap="micro_batch")
    cf, cb, a2a = np.array([1.0]), np.array([2.0]), np.array([1.0])  # the pair hides its 2 s under 3 s
    for u, exposed in ((0.0, 0.0), (0.25, 0.5), (1.0, 2.0)):
        fwd, bwd, _ = ep_exposed_seconds(ctx, [], a2a, a2a, cf, cb, unpaired=u)
        assert float(fwd[0] + bwd[0]) == pytest.approx(exposed)

    def share(schedule, pp, dp, micro_batch=1):
        plans = PlanArrays.from_dicts([{"tp": 1, "pp": pp, "cp": 1, "ep": 8, "dp": dp, "vpp": 1,
                                        "micro_batch": micro_batch, "recompute": "full", "zero": 1,
                                        "sequence_parallel": False, "tp_overlap": False}])
        return float(unpaired_pass_share(dataclasses.replace(ctx, pipeline_schedule=schedule, global_batch=64),
                                         plans)[0])

    assert share("dualpipe", 1, 64) == 1.0          # one micro-batch: nothing to pair with
    assert share("dualpipe", 1, 16) == 0.25         # 4: the first forward and the last backward
    assert share("1f1b", 4, 2) == pytest.approx(4 / 32)  # 1F1B's first stage: pp of its 32 each way
    assert share("dualpipe", 4, 2) == 0.0           # DualPipe's fill and drain are its bubble's


def test_deepseek_v3_with_one_sequence_per_gpu_cannot_hide_its_all_to_all():
    # 1,024 sequences on 1,024 H100: no pipeline DualPipe accepts (2 pp micro-batches), so every
    # plan runs one micro-batch per rank, and its dispatch and combine wait in full.  At pp 1 only
    # gradient sharding fits 80 GB, which HAI-LLM (ZeRO-1) lacked: zero 2 on its stack, a what-if
    doc = {"model": "deepseek-v3", "hardware": {"gpu": "h100-sxm", "count": 1024}, "parallelism": {"zero": 2},
           "training": {"global_batch": 1024, "software": "hai-llm-v3"}}
    est = estimate(load_spec(doc))
    assert est.parallelism["pp"] == 1 and est.parallelism["pipeline_schedule"] == "dualpipe"
    assert any("parallelism.zero 2" in c for c in est.validation_evidence["caveats"])
    none = estimate(load_spec({**doc, "parallelism": {"ep_comm_overlap": "none", **{
        k: est.parallelism[k] for k in ("tp", "pp", "ep", "dp", "micro_batch", "recompute", "recompute_num_layers",
                                     "zero")}}}))
    assert est.time_breakdown_s["ep_comm"] == pytest.approx(none.time_breakdown_s["ep_comm"], rel=1e-9)
    assert est.time_breakdown_s["ep_comm"] > 0.2 * est.step_time_s
