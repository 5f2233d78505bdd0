"""The training engine end to end: estimate, search and their invariants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from colossim.errors import SpecError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, make_context, search
from colossim.training.plans import PlanArrays
from colossim.training.step import evaluate_step

LLAMA8B = {
    "model": "llama3-8b",
    "hardware": {"gpu": "h100-sxm", "count": 64},
    "parallelism": {"tp": 2, "pp": 1, "cp": 1, "ep": 1, "dp": 32, "vpp": 1, "micro_batch": 1,
                    "recompute": "none", "zero": 1, "sequence_parallel": True},
    "training": {"global_batch": 256, "precision": "bf16", "tokens": 15e12},
}


def test_complete_plan_is_used_and_numbers_are_consistent():
    est = estimate(load_spec(LLAMA8B))
    p = est.parallelism
    assert (p["tp"], p["dp"], p["recompute"], p["zero"]) == (2, 32, "none", 1)
    seq = 8192
    assert est.tokens_per_s == pytest.approx(256 * seq / est.step_time_s)
    assert est.tokens_per_s_per_gpu == pytest.approx(est.tokens_per_s / 64)
    assert 0.2 < est.mfu < 0.8
    assert est.hfu == pytest.approx(est.mfu)  # no recompute: hardware FLOPs = model FLOPs
    assert est.fits and 0 < est.memory_gib_per_gpu < 80
    assert est.time_to_train_days == pytest.approx(15e12 / est.tokens_per_s / 86400)
    assert est.cost_usd > 0 and est.energy_mwh > 0
    assert sum(est.time_breakdown_s.values()) == pytest.approx(est.step_time_s)


@pytest.mark.parametrize("recompute", ["selective", "full"])
def test_the_time_breakdown_adds_up_to_the_step_recompute_apart(recompute):
    spec = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "pp": 2, "dp": 16, "recompute": recompute}}
    est = estimate(load_spec(spec))
    parts = est.time_breakdown_s
    assert list(parts)[:2] == ["compute", "recompute"] and parts["recompute"] > 0
    assert sum(parts.values()) == pytest.approx(est.step_time_s)
    # the same plan without recompute: the model's own forward and backward work is unchanged
    none = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "recompute": "none"}}))
    assert parts["compute"] == pytest.approx(none.time_breakdown_s["compute"])


def test_search_is_sorted_fits_and_counts():
    spec = load_spec({**LLAMA8B, "parallelism": {}})
    res = search(spec, top=5)
    times = [e.step_time_s for e in res.best]
    assert times == sorted(times)
    assert all(e.fits for e in res.best)
    assert res.configs_evaluated >= res.configs_fitting >= len(res.best) > 0
    # the searched optimum is at least as fast as the hand-written plan
    assert res.best[0].step_time_s <= estimate(load_spec(LLAMA8B)).step_time_s * (1 + 1e-9)


def _plans(**over) -> PlanArrays:
    base = dict(tp=8, pp=4, cp=1, ep=1, dp=2, vpp=1, micro_batch=1, recompute="none", zero=1,
                sequence_parallel=True, tp_overlap=False)
    return PlanArrays.from_dicts([{**base, **over}])


def test_faster_network_never_slows_a_step():
    spec = load_spec({"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 64},
                      "training": {"global_batch": 64}})
    ctx = make_context(spec)
    fast = dataclasses.replace(ctx, network=dataclasses.replace(
        ctx.network, scaleout_bytes_per_s_per_gpu=ctx.network.scaleout_bytes_per_s_per_gpu * 4))
    for plan in (_plans(), _plans(tp=4, dp=4), _plans(pp=1, dp=8, zero=3)):
        assert evaluate_step(fast, plan)["step_time_s"][0] <= evaluate_step(ctx, plan)["step_time_s"][0] + 1e-12


def test_no_pipeline_no_bubble_and_vectorised_equals_scalar():
    spec = load_spec({"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 64},
                      "training": {"global_batch": 64}})
    ctx = make_context(spec)
    one = evaluate_step(ctx, _plans(pp=1, dp=8))
    assert one["pipeline_bubble"][0] == 0 and one["pp_comm"][0] == 0
    both = evaluate_step(ctx, PlanArrays.from_dicts([
        {**_plans(pp=1, dp=8).plan_dict(0)}, {**_plans().plan_dict(0)}]))
    assert both["step_time_s"][0] == pytest.approx(one["step_time_s"][0])
    assert both["step_time_s"][1] == pytest.approx(evaluate_step(ctx, _plans())["step_time_s"][0])


def test_unfused_attention_is_slower():
    spec = load_spec({**LLAMA8B})
    fused = estimate(spec)
    unfused = estimate(load_spec({**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "flash_attention": False}}))
    assert unfused.step_time_s > fused.step_time_s


def test_bad_plans_name_every_factor():
    with pytest.raises(SpecError) as e:
        load_spec({**LLAMA8B, "parallelism": {"tp": 3}})
    assert "tp" in str(e.value)
    with pytest.raises(SpecError) as e:
        load_spec({**LLAMA8B, "parallelism": {"tp": 8, "pp": 2, "cp": 1, "dp": 2}})
    msg = str(e.value)
    assert "8" in msg and "64" in msg


def _fits(doc) -> bool:
    try:
        return estimate(load_spec(doc)).fits
    except SpecError:
        return False


def test_a_model_that_does_not_fit_is_advised_only_changes_that_make_it_fit():
    # Llama 3 405B on one node: only more GPUs help, and 128 is the fewest doubling that does
    doc = {"model": "llama3-405b", "hardware": {"gpu": "h100-sxm", "count": 8}, "training": {"global_batch": 8}}
    with pytest.raises(SpecError) as e:
        estimate(load_spec(doc))
    assert str(e.value).endswith("; it fits with hardware.count 128")
    assert _fits({**doc, "hardware": {"gpu": "h100-sxm", "count": 128}})
    assert not _fits({**doc, "hardware": {"gpu": "h100-sxm", "count": 64}})
    # a plan fixed to ZeRO 0 on 8-way TP: no count helps, sharding the model state does
    doc = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 64},
           "parallelism": {"recompute": "none", "micro_batch": 4, "zero": 0, "tp": 8, "pp": 1},
           "training": {"global_batch": 256}}
    with pytest.raises(SpecError) as e:
        estimate(load_spec(doc))
    assert str(e.value).endswith("; it fits with parallelism.zero 3")
    assert _fits({**doc, "parallelism": {**doc["parallelism"], "zero": 3}})
    for change in ({"recompute": "full"}, {"micro_batch": 1}):
        assert not _fits({**doc, "parallelism": {**doc["parallelism"], **change}})


def test_attention_scores_that_no_gpu_count_shards_are_advised_flash_attention_or_a_shorter_sequence():
    # Mixtral 8x22B at its 65,536 tokens on the A100's 2021 software: no flash attention and no
    # context parallelism, so a layer's s^2 scores outgrow 80 GB until 32x the GPUs leave each
    # pipeline so few micro-batches that few are in flight
    doc = {"model": "mixtral-8x22b", "hardware": {"gpu": "a100-80gb-sxm", "count": 1024},
           "training": {"global_batch": 1024}}
    with pytest.raises(SpecError) as e:
        estimate(load_spec(doc))
    assert str(e.value).endswith("; it fits with hardware.count 32,768, or parallelism.flash_attention true, or "
                                 "training.seq_len 32,768")
    assert _fits({**doc, "parallelism": {"flash_attention": True}})
    assert _fits({**doc, "training": {**doc["training"], "seq_len": 32_768}})
    assert not _fits({**doc, "hardware": {**doc["hardware"], "count": 16 * 1024}})


def test_model_that_cannot_fit_says_by_how_much():
    # the leanest plan as the tables write it, not as a dict of every field
    with pytest.raises(SpecError, match=r"does not fit: the leanest plan \(tp\d+ pp\d+ cp\d+ dp\d+ v\d+ mb1 full z\d\) "
                                        r"needs [\d.]+ GiB per GPU, the h100-sxm has 80.0 GiB"):
        estimate(load_spec({"model": "llama3-405b", "hardware": {"gpu": "h100-sxm", "count": 8},
                            "training": {"global_batch": 8}}))


def test_more_data_parallel_replicas_scale_throughput():
    small = estimate(load_spec({**LLAMA8B, "hardware": {"gpu": "h100-sxm", "count": 32},
                                "parallelism": {**LLAMA8B["parallelism"], "dp": 16}}))
    big = estimate(load_spec(LLAMA8B))
    assert big.tokens_per_s > 1.5 * small.tokens_per_s
    assert big.tokens_per_s_per_gpu <= small.tokens_per_s_per_gpu * (1 + 1e-9)


def test_plan_arrays_roundtrip():
    p = _plans(recompute="selective", zero=3)
    d = p.plan_dict(0)
    assert d["recompute"] == "selective" and d["zero"] == 3
    assert np.array_equal(PlanArrays.from_dicts([d]).tp, p.tp)


def test_zero3_collectives_per_layer_fsdp_vs_deepspeed():
    """PyTorch FSDP: one flat all-gather and one reduce-scatter per layer.  DeepSpeed ZeRO-3 (2021):
    one per parameter tensor, except that tensors under its persistence threshold (1e5 elements)
    stay gathered after their first use and are never fetched again; every tensor's gradient is
    still reduce-scattered on its own."""
    from colossim.specs.model import resolve_model
    from colossim.training.step import zero3_collectives_per_layer

    def zero3_fetches_per_layer(model, fsdp, tp=1):
        return zero3_collectives_per_layer(model, fsdp, tp)[0]

    def zero3_reductions_per_layer(model, fsdp, tp=1):
        return zero3_collectives_per_layer(model, fsdp, tp)[1]

    both = np.array([True, False])
    # GPT-3 175B: 2 LayerNorms (w, b), fused QKV + output projection, fc1 + fc2, all with biases;
    # every vector (12288 ... 49152 elements) is persistent: the 4 weight matrices are fetched
    gpt = resolve_model("gpt3-175b")
    assert list(zero3_fetches_per_layer(gpt, both)) == [1.0, 4.0]
    assert list(zero3_reductions_per_layer(gpt, both)) == [1.0, 12.0]
    # Llama 2 7B: 2 RMSNorm weights, QKV + output, gate, up, down; no biases
    llama = resolve_model("llama2-7b")
    assert list(zero3_fetches_per_layer(llama, both)) == [1.0, 5.0]
    assert list(zero3_reductions_per_layer(llama, both)) == [1.0, 7.0]
    # a 102400-wide fc1 bias reaches the threshold on one GPU, not when split over tp = 2
    wide = resolve_model({"layers": 2, "hidden": 25600, "ffn_hidden": 102400, "heads": 160, "kv_heads": 160,
                          "vocab": 51200, "seq_len": 2048, "activation": "gelu", "bias": True,
                          "norm": "layernorm"})
    assert list(zero3_fetches_per_layer(wide, np.array([False, False]), np.array([1, 2]))) == [5.0, 4.0]


def test_deepspeed_list_collectives_copy_once_per_rank():
    # PyTorch's NCCL group of 2021 copied each of the group's slices around a list collective
    from colossim.training.step import list_collective_copy_seconds

    ctx = make_context(load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 64},
                                  "training": {"global_batch": 64}}))
    launch = ctx.profile.gemm_params(ctx.precision).launch_seconds
    assert 1e-6 < launch < 1e-4
    t = list_collective_copy_seconds(ctx, np.array([64, 1536]), np.array([100, 100]))
    assert t == pytest.approx([100 * 64 * launch, 100 * 1536 * launch])


def test_deepspeed_list_collectives_move_their_bytes_through_memory():
    # the zero-fill and list copies around DeepSpeed's gathers / reduce-scatters are memory-bound
    # passes: 1 TB more takes 1 TB over the chip's achievable HBM bandwidth, on top of the launches
    from colossim.cost.compute import memory_bound_seconds
    from colossim.training.step import (DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE,
                                        DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE,
                                        list_collective_copy_seconds)

    ctx = make_context(load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 64},
                                  "training": {"global_batch": 64}}))
    group, calls = np.array([64.0]), np.array([100.0])
    extra = list_collective_copy_seconds(ctx, group, calls, 1e12) - list_collective_copy_seconds(ctx, group, calls)
    hbm_bytes_per_s = ctx.system.accelerator.hbm_bytes_per_s
    assert extra == pytest.approx(memory_bound_seconds(1e12, ctx.system.accelerator, ctx.profile))
    assert 1e12 / hbm_bytes_per_s < extra[0] < 1.5e12 / hbm_bytes_per_s  # at most a third under the datasheet
    # a gather: zero-fill (write) + copy out of the flat buffer (read + write); a reduce-scatter:
    # in-place divide (read + write) + copy into the flat buffer (read + write)
    assert (DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE, DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE) == (3.0, 4.0)


def test_deepspeed_zero3_step_pays_for_its_list_copies_fsdp_does_not(monkeypatch):
    import colossim.training.step as S

    spec = {"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 768},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 768, "micro_batch": 2, "recompute": "full",
                            "zero": 3, "sequence_parallel": False},
            "training": {"global_batch": 1536}}
    fsdp = {**spec, "parallelism": {**spec["parallelism"], "fsdp": True}}
    with_bytes, fsdp_with = (estimate(load_spec(s)).time_breakdown_s["dp_comm"] for s in (spec, fsdp))
    monkeypatch.setattr(S, "DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE", 0.0)
    monkeypatch.setattr(S, "DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE", 0.0)
    without, fsdp_without = (estimate(load_spec(s)).time_breakdown_s["dp_comm"] for s in (spec, fsdp))
    # 3.5e11 weight bytes, gathered 2 2/3 times (x 3) and reduced once (x 4) in the one
    # micro-batch: 4.2e12 bytes through ~1.6 TB/s of HBM, a couple of seconds
    assert 1.0 < with_bytes - without < 4.0
    assert fsdp_with == pytest.approx(fsdp_without)


def test_waiting_for_zero3_gathers_adds_them_to_the_step():
    spec = {"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 768},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 768, "micro_batch": 2, "recompute": "full",
                            "zero": 3, "sequence_parallel": False, "overlap_param_gather": True},
            "training": {"global_batch": 1536}}
    hidden = estimate(load_spec(spec))
    waited = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "overlap_param_gather": False}}))
    assert waited.time_breakdown_s["dp_comm"] > hidden.time_breakdown_s["dp_comm"]
    assert waited.step_time_s > hidden.step_time_s
    assert waited.time_breakdown_s["compute"] == pytest.approx(hidden.time_breakdown_s["compute"])


def test_deepspeed_zero3_is_slower_than_fsdp_at_scale_and_holds_less_gathered():
    spec = {"model": {"layers": 96, "hidden": 12288, "ffn_hidden": 49152, "heads": 96, "kv_heads": 96,
                      "vocab": 51200, "seq_len": 2048, "activation": "gelu"},
            "hardware": {"gpu": "a100-80gb-sxm", "count": 1536},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 1536, "micro_batch": 1, "recompute": "full",
                            "zero": 3, "sequence_parallel": False, "flash_attention": False},
            "training": {"global_batch": 1536}}
    fsdp = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "fsdp": True}}))
    ds = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "fsdp": False}}))
    # the A100's stack of its day (Megatron-DeepSpeed, 2020-22) is the DeepSpeed flavour
    assert estimate(load_spec(spec)).step_time_s == pytest.approx(ds.step_time_s)
    assert ds.time_breakdown_s["dp_comm"] > 2 * fsdp.time_breakdown_s["dp_comm"]
    assert ds.step_time_s > fsdp.step_time_s
    assert ds.memory_breakdown_gib["buffers"] < fsdp.memory_breakdown_gib["buffers"]
    assert ds.parallelism["fsdp"] is False and fsdp.parallelism["fsdp"] is True


@pytest.mark.parametrize("hidden, again_calls, again_bytes", [(4096, 0.0, 0.0), (12288, 0.75, 2 / 3)])
def test_deepspeed_full_recompute_fetches_again_what_it_released(hidden, again_calls, again_bytes):
    """Waited-on gathers (no overlap).  Without recompute a DeepSpeed ZeRO-3 micro-batch gathers the
    weights twice (forward, backward).  Under full recompute the backward's recompute forward
    gathers them, and the backward proper fetches again only the weights DeepSpeed released: those
    with 2 x the later weights' elements at or above its reuse distance, 1e9.  A 4096-wide GPT layer
    keeps all four weight matrices: no extra traffic.  A 12288-wide one (GPT-3 175B) keeps fc2
    only: 3 of its 4 weight gathers, 2/3 of its bytes (QKV 3h^2 + output h^2 + fc1 4h^2 of 12h^2),
    each with its per-rank copies.  FSDP reuses its pre-backward gather: no difference."""
    from colossim.cost import comm
    from colossim.cost.compute import memory_bound_seconds
    from colossim.training.step import (DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE, PARAM_GATHER_BYTES,
                                        deepspeed_backward_refetch)

    base = {"model": {"layers": 4, "hidden": hidden, "ffn_hidden": 4 * hidden, "heads": 32, "kv_heads": 32,
                      "vocab": 51200, "seq_len": 2048, "activation": "gelu", "bias": True,
                      "norm": "layernorm"},
            "hardware": {"gpu": "a100-80gb-sxm", "count": 256},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 256, "micro_batch": 1, "zero": 3,
                            "sequence_parallel": False, "overlap_param_gather": False,
                            "overlap_grad_reduce": False},
            "training": {"global_batch": 512}}

    def dp_comm(recompute: str, fsdp: bool) -> float:
        spec = load_spec({**base, "parallelism": {**base["parallelism"], "recompute": recompute, "fsdp": fsdp}})
        return estimate(spec).time_breakdown_s["dp_comm"], spec

    ds_full, spec = dp_comm("full", False)
    ds_none, _ = dp_comm("none", False)
    calls, share = deepspeed_backward_refetch(spec.model, 1)
    assert (float(calls), float(share)) == pytest.approx((again_calls, again_bytes))
    ctx = make_context(spec)
    fetches = 4 * 4 + 1  # the 4 weight matrices per layer (the vectors persist) + the embedding
    weight_bytes = spec.model.params_total * PARAM_GATHER_BYTES
    extra = 0.0
    if again_calls:
        n = fetches * again_calls
        extra = n * (float(comm.all_gather_seconds(weight_bytes * again_bytes / n, 256, ctx.network, ctx.profile))
                     + 256 * ctx.profile.gemm_params(ctx.precision).launch_seconds)
        # and the zero-fill and copy-out of what is gathered again
        extra += float(memory_bound_seconds(weight_bytes * again_bytes * DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE,
                                            ctx.system.accelerator, ctx.profile))
    micro_batches = 512 / 256
    assert ds_full - ds_none == pytest.approx(micro_batches * extra, rel=1e-5, abs=1e-9)
    assert dp_comm("full", True)[0] == pytest.approx(dp_comm("none", True)[0])


def test_dp_buckets_follow_megatron_core_sizes():
    # Megatron-Core: bucket = max(40M, 1M x dp) parameters with overlap; one bucket without
    from colossim.training.step import dp_buckets

    n, edge = dp_buckets(np.array([2e9, 2e9, 1e7]), np.array([8, 288, 8]), overlap=True)
    assert list(n) == [50, 7, 1]
    assert edge == pytest.approx([0.02, 0.144, 1.0])
    n, edge = dp_buckets(np.array([2e9]), np.array([288]), overlap=False)
    assert (n[0], edge[0]) == (1, 1)


def test_gradient_reduction_without_overlap_is_exposed():
    # Megatron-LM before Megatron-Core reduced gradients after the backward (Korthikanti et al.
    # 2022 sec. 6.3): the same plan is slower, by at least the overlapped run's DP time.
    spec = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "zero": 0}}
    on = estimate(load_spec(spec))
    off = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "overlap_grad_reduce": False}}))
    assert off.time_breakdown_s["dp_comm"] > on.time_breakdown_s["dp_comm"] > 0
    assert off.step_time_s > on.step_time_s
    assert off.time_breakdown_s["compute"] == pytest.approx(on.time_breakdown_s["compute"])


def test_blocking_p2p_slows_an_interleaved_pipeline():
    spec = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "pp": 4, "dp": 8, "vpp": 2}}
    on = estimate(load_spec(spec))
    off = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "overlap_p2p_comm": False}}))
    assert off.time_breakdown_s["pp_comm"] > 4 * on.time_breakdown_s["pp_comm"] > 0


def test_whole_pipeline_gradients_cost_half_the_transfers_a_whole_message():
    """DeepSpeed v0.3-v0.5.3 split the activations it sent between stages over the TP group but sent
    the gradients whole: half the transfers in line (the gradient ones) then move tp times the bytes
    and skip the all-gather; with sequence parallelism both are already shards and nothing moves."""
    from colossim.cost import comm as C
    from colossim.training.pipeline import p2p_exposed_transfers

    base = {"model": "mt-nlg-530b", "hardware": {"gpu": "a100-80gb-sxm", "count": 2240},
            "parallelism": {"tp": 8, "pp": 35, "dp": 8, "vpp": 1, "micro_batch": 1, "recompute": "full",
                            "zero": 1, "sequence_parallel": False, "pipeline_schedule": "deepspeed"},
            "training": {"global_batch": 1920}}

    def run(**flags):
        spec = load_spec({**base, "parallelism": {**base["parallelism"], **flags}})
        return make_context(spec), estimate(spec)

    # MT-NLG's catalog row names its stack, megatron-deepspeed-2021, which sends them whole
    ctx, whole = run()
    _, split = run(pipeline_grad_scatter_gather=True)
    assert whole.software == "megatron-deepspeed-2021"
    assert whole.step_time_s == pytest.approx(run(pipeline_grad_scatter_gather=False)[1].step_time_s)
    full = 2048 * 20480 * 2  # one micro-batch's [s, b, h] fp16 gradient
    t_act = (C.send_recv_seconds(full / 8, ctx.network, ctx.profile, crosses_scaleout=True)
             + C.all_gather_seconds(full, 8, ctx.network, ctx.profile, stride=1))
    t_grad = C.send_recv_seconds(full, ctx.network, ctx.profile, crosses_scaleout=True)
    n = p2p_exposed_transfers(35, 1, 240, True, "deepspeed")
    assert t_grad > 2 * t_act
    assert split.time_breakdown_s["pp_comm"] == pytest.approx(n * t_act)
    assert whole.time_breakdown_s["pp_comm"] == pytest.approx(n / 2 * (t_act + t_grad))
    assert whole.step_time_s - split.step_time_s == pytest.approx(n / 2 * (t_grad - t_act))
    _, sp_split = run(sequence_parallel=True, pipeline_grad_scatter_gather=True)
    _, sp_whole = run(sequence_parallel=True, pipeline_grad_scatter_gather=False)
    assert sp_whole.step_time_s == pytest.approx(sp_split.step_time_s)


def test_search_recomputes_the_fewest_layers_that_fit():
    """GPT-3 175B in bf16, tp4 pp8 dp16 with 4-sequence micro-batches: without recompute it does not fit
    an 80 GB H100; the search recomputes the fewest layers per stage that make it fit."""
    from colossim.training.estimate import _memory, fewest_recompute_layers

    fixed = {"tp": 4, "pp": 8, "dp": 16, "vpp": 6, "micro_batch": 4, "zero": 1, "sequence_parallel": True}

    def spec_with(**plan):
        return load_spec({"model": "gpt3-175b", "hardware": {"gpu": "h100-sxm", "count": 512},
                          "parallelism": {**fixed, **plan},
                          "training": {"global_batch": 2048, "precision": "bf16"}})

    spec = spec_with()
    est = estimate(spec)
    p = est.parallelism
    k = p["recompute_num_layers"]
    assert p["recompute"] == "full" and 1 <= k < 12 and est.fits
    ctx = make_context(spec)
    cap = spec.hardware.hbm_bytes
    fewer = {**p, "recompute_num_layers": k - 1 if k > 1 else None, "recompute": "full" if k > 1 else "none"}
    assert float(_memory(ctx, PlanArrays.from_dicts([fewer])).total[0]) > cap
    open_plan = PlanArrays.from_dicts([{**p, "recompute_num_layers": None}])
    assert int(fewest_recompute_layers(ctx, open_plan, cap).recompute_layers[0]) == k
    # cheaper than recomputing every layer, by the recomputed share
    every = estimate(spec_with(recompute="full"))
    assert est.step_time_s < every.step_time_s
    assert est.time_breakdown_s["recompute"] == pytest.approx(every.time_breakdown_s["recompute"] * k / 12)
    assert est.hfu < every.hfu


def test_recompute_num_layers_needs_full_recompute():
    with pytest.raises(SpecError, match="recompute_num_layers"):
        load_spec({**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "recompute_num_layers": 2}})


def test_tp_overlap_hides_most_but_not_all_tp_communication():
    """Userbuffers-style overlap with an SM margin: the first of tp chunks of every collective
    stays exposed, and the reduce-scatter's SMs slow its GEMM; Transformer Engine's default (no
    margin) exposes the SM-driven collectives and hides only the copy-engine all-gathers; without
    sequence parallelism nothing is overlapped."""
    from colossim.cost import comm as C

    base = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 64},
            "parallelism": {"tp": 8, "pp": 1, "cp": 1, "dp": 8, "micro_batch": 1, "recompute": "full",
                            "zero": 3, "sequence_parallel": True},
            "training": {"global_batch": 64}}
    off = estimate(load_spec(base))
    on = estimate(load_spec({**base, "parallelism": {**base["parallelism"], "tp_overlap": True,
                                                     "tp_overlap_sm_margin": True}}))
    default = estimate(load_spec({**base, "parallelism": {**base["parallelism"], "tp_overlap": True}}))
    assert 0 < on.time_breakdown_s["tp_comm"] < default.time_breakdown_s["tp_comm"] < off.time_breakdown_s["tp_comm"]
    # floor: per layer and pass, (all-gather + reduce-scatter) x 2 pairs / tp exposed
    spec = load_spec(base)
    ctx = make_context(spec)
    msg = 8192 * spec.model.hidden * 2
    first = 2 * (C.all_gather_seconds(msg, 8, ctx.network, ctx.profile)
                 + C.reduce_scatter_seconds(msg, 8, ctx.network, ctx.profile)) / 8
    per_layer_passes = 3 * spec.model.layers  # forward, backward, recompute (8 micro-batches below)
    assert on.time_breakdown_s["tp_comm"] >= 8 * per_layer_passes * float(first) * 0.999
    no_sp = {**base, "parallelism": {**base["parallelism"], "sequence_parallel": False}}
    assert estimate(load_spec({**no_sp, "parallelism": {**no_sp["parallelism"], "tp_overlap": True}})
                    ).time_breakdown_s["tp_comm"] == pytest.approx(estimate(load_spec(no_sp)).time_breakdown_s["tp_comm"])


def test_tp_overlap_without_sm_margin_exposes_the_sm_driven_collectives():
    """Transformer Engine's default userbuffers configuration leaves the GEMMs every SM: the
    forward's two pipelined reduce-scatters and the backward's four bulk collectives wait for the
    GEMM and are exposed whole; the copy-engine ring exchanges (two all-gathers each pass) hide
    as they do with the margin.  With the margin each SM-driven collective hides under its GEMM,
    which it slows by USERBUFFERS_RS_SMS / SMs while it runs."""
    from colossim.training import ops as O
    from colossim.training import step as S

    spec = load_spec({**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "tp": 8, "dp": 8}})
    ctx = make_context(spec)
    margin = dataclasses.replace(ctx, tp_overlap_sm_margin=True)
    ops = O.layer_ops(spec.model, 1, 8192, np.array([8.0]), np.array([1.0]), np.array([1.0]),
                      np.array([True]))
    tp, ag, rs = np.array([8.0]), np.array([3e-4]), np.array([2e-4])

    def exposed(c, backward):
        return float(np.ravel(S.tp_overlap_exposed_seconds(c, ops, tp, ag, rs, backward=backward))[0])

    ring = exposed(dataclasses.replace(ctx, tp_overlap_sm_margin=False), False) - 2 * float(rs[0])
    # forward: two ring-exchange all-gathers (each at least its first chunk) + two whole reduce-scatters
    assert ring >= 2 * float(ag[0]) / 8 * 0.999
    assert ring < 2 * float(ag[0])  # the GEMMs are far longer than the gathers: mostly hidden
    # backward: ring exchanges before the row-parallel data gradients + two bulk gathers and two
    # bulk reduce-scatters whole
    row = sum(float(np.ravel(S._ring_exchange_exposed(ag, S._named_gemm_seconds(ctx, ops, names), tp))[0])
              for kind, names in S.TP_OVERLAP_PAIRS if kind == "reduce_scatter")
    assert exposed(ctx, True) == pytest.approx(row + 2 * float(ag[0] + rs[0]))
    for backward in (False, True):
        assert exposed(margin, backward) < exposed(ctx, backward)
        assert exposed(margin, backward) >= ring * 0.999


def test_tp_overlap_chunks_cost_gemm_efficiency():
    """The overlapped GEMMs run in chunks (tp ring-exchange steps, USERBUFFERS_PIPELINE_SPLITS
    pipelined ones): the forward pays the four chunked GEMMs, the backward only the two
    ring-exchange data gradients, and each equals s chunk GEMMs minus the whole one."""
    from colossim.cost import compute as K
    from colossim.training import ops as O
    from colossim.training import step as S

    spec = load_spec({**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "tp": 8, "dp": 8}})
    ctx = make_context(spec)
    chip, prof = ctx.system.accelerator, ctx.profile
    ops = O.layer_ops(spec.model, 1, 8192, np.array([8.0]), np.array([1.0]), np.array([1.0]),
                      np.array([True]))
    gemms = {op.name: op for op in ops if isinstance(op, O.Gemm)}

    def lost(op, s, dgrad=False):
        n, k = (op.k, op.n) if dgrad else (op.n, op.k)
        whole = K.gemm_seconds(op.m, n, k, "bf16", chip, prof)
        return float(np.ravel(s * K.gemm_seconds(np.asarray(op.m) / s, n, k, "bf16", chip, prof) - whole)[0])

    fwd = float(S.tp_overlap_chunk_seconds(ctx, ops, np.array([8.0]), backward=False)[0])
    bwd = float(S.tp_overlap_chunk_seconds(ctx, ops, np.array([8.0]), backward=True)[0])
    splits = S.USERBUFFERS_PIPELINE_SPLITS
    assert fwd == pytest.approx(lost(gemms["qkv"], 8) + lost(gemms["mlp_up"], 8)
                                + lost(gemms["out_proj"], splits) + lost(gemms["mlp_down"], splits))
    assert bwd == pytest.approx(lost(gemms["out_proj"], 8, True) + lost(gemms["mlp_down"], 8, True))
    assert fwd > 0 and bwd > 0
    # 1/tp of 8192 tokens is a smaller GEMM: more chunks lose more
    assert float(S.tp_overlap_chunk_seconds(ctx, ops, np.array([2.0]), backward=True)[0]) < bwd
    assert float(S.tp_overlap_chunk_seconds(ctx, ops, np.array([1.0]), backward=False)[0]) == 0.0


@pytest.mark.parametrize("zero", [0, 1, 3])
def test_hidden_dp_traffic_slows_compute_by_the_sms_nccl_holds(monkeypatch, zero):
    from colossim.training import step as S
    doc = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "zero": zero, "tp": 1, "dp": 64,
                                      "sequence_parallel": False}}
    spec = load_spec(doc)

    def dp_comm(channels):
        monkeypatch.setattr(S, "NCCL_OVERLAP_CHANNELS", channels)
        return estimate(spec).time_breakdown_s["dp_comm"]

    sms = make_context(spec).profile.gemm_params("bf16").sm_count
    bare, whole, default = dp_comm(0), dp_comm(sms), dp_comm(16)
    assert whole > bare  # some traffic hides under compute
    assert default - bare == pytest.approx((whole - bare) * 16 / sms)  # linear in the SMs held
    # overlapping never costs more than waiting for the traffic
    waited = estimate(load_spec({**doc, "parallelism": {**doc["parallelism"], "overlap_grad_reduce": False,
                                                         "overlap_param_gather": False}}))
    assert estimate(spec).step_time_s < waited.step_time_s


@pytest.mark.parametrize("model", ["deepseek-v2", "deepseek-v3", "mixtral-8x7b", "grok-1", "gpt-moe-1.8t"])
def test_moe_and_mla_catalog_models_estimate_with_context_parallel_in_the_search(model):
    # The ring-attention message of an MLA model carries its per-head K (nope + rope) and V
    # widths; it once read head_dim, which MLA models do not have, and every DeepSeek search failed.
    spec = load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": 1024},
                      "parallelism": {"cp": 2}, "training": {}})
    est = estimate(spec)
    assert est.parallelism["cp"] == 2 and est.fits
    assert 0.05 < est.mfu < 0.8
    assert est.time_breakdown_s["cp_comm"] >= 0.0


# --- pipeline schedules -----------------------------------------------------------------------

def _scheduled(schedule: str, **plan) -> dict:
    return {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 256},
            "parallelism": {"tp": 8, "pp": 8, "cp": 1, "dp": 4, "vpp": 1, "micro_batch": 1,
                            "recompute": "full", "zero": 1, "pipeline_schedule": schedule, **plan},
            "training": {"global_batch": 256, "precision": "bf16"}}


def test_dualpipe_and_zero_bubble_shrink_the_bubble_and_dualpipe_holds_two_stages():
    one, zb, dual = (estimate(load_spec(_scheduled(s))) for s in ("1f1b", "zb1p", "dualpipe"))
    b = {s: e.time_breakdown_s["pipeline_bubble"] for s, e in (("1f1b", one), ("zb1p", zb), ("dualpipe", dual))}
    assert b["dualpipe"] < b["zb1p"] < b["1f1b"]
    assert one.time_breakdown_s["compute"] == pytest.approx(dual.time_breakdown_s["compute"])
    mb1, mb2 = one.memory_breakdown_gib, dual.memory_breakdown_gib
    for part in ("weights", "gradients", "optimizer"):
        assert mb2[part] == pytest.approx(2 * mb1[part])
    assert zb.memory_breakdown_gib == pytest.approx(mb1)
    assert dual.parallelism["pp"] == 8 and dual.software == one.software


def test_the_search_tries_every_interleaving_depth_megatron_accepts():
    """92 layers on 4 stages interleave only 23 deep (one layer per chunk): a depth no fixed list
    of round numbers holds, but a valid plan the search must see."""
    from colossim.training.search import enumerate_plans, vpp_candidates
    model = {"layers": 92, "hidden": 4096, "ffn_hidden": 16384, "heads": 32, "kv_heads": 32,
             "vocab": 50304, "seq_len": 2048, "activation": "gelu"}
    spec = load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": 32},
                      "parallelism": {"tp": 8, "pp": 4, "dp": 1, "micro_batch": 1},
                      "training": {"global_batch": 16}})
    ctx = make_context(spec)
    plans = enumerate_plans(spec.model, spec.hardware, spec.parallelism, ctx.global_batch, ctx.seq_len)
    assert sorted(set(plans.vpp.tolist())) == [1, 23]
    assert vpp_candidates(92, [1, 2, 4]) == [1, 2, 4, 23, 46, 92]
    assert all(23 % v == 0 for v in plans.vpp)


def test_a_zero_stage_that_shards_nothing_is_searched_once():
    """Where every weight has one copy (dp x cp = 1, the experts not replicated over tp) ZeRO 1-3
    shard nothing and price as zero 0: the search lists that plan once, not four times."""
    from colossim.training.search import enumerate_plans

    def plans_of(model, **plan):
        spec = load_spec({"model": model, "hardware": {"gpu": "h100-sxm", "count": 8},
                          "parallelism": plan, "training": {"global_batch": 16, "seq_len": 4096}})
        ctx = make_context(spec)
        return enumerate_plans(spec.model, spec.hardware, spec.parallelism, ctx.global_batch, ctx.seq_len)

    plans = plans_of("llama3-8b")
    alone = plans.dp * plans.cp == 1
    assert alone.any() and (~alone).any()
    assert set(plans.zero[alone].tolist()) == {0}
    assert set(plans.zero[~alone].tolist()) == {0, 1, 2, 3}
    # folded experts (etp 1 under tp 8, ep 1) are replicated over the 8 tp ranks: ZeRO shards them
    folded = plans_of("mixtral-8x7b", tp=8, pp=1, moe_parallel_folding=True)
    copies = (folded.dp * folded.cp == 1) & (folded.tp > folded.etp * folded.ep)
    assert copies.any() and set(folded.zero[copies].tolist()) >= {0, 1}
    # a zero the spec fixes is kept
    assert set(plans_of("llama3-8b", tp=8, zero=1).zero.tolist()) == {1}


def test_a_dualpipe_search_keeps_to_even_pp_no_interleaving_and_enough_micro_batches():
    spec = load_spec({"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 256},
                      "parallelism": {"pipeline_schedule": "dualpipe"},
                      "training": {"global_batch": 256}})
    ctx = make_context(spec)
    from colossim.training.search import enumerate_plans
    plans = enumerate_plans(spec.model, spec.hardware, spec.parallelism, ctx.global_batch, ctx.seq_len)
    n_micro = 256 / (plans.dp * plans.micro_batch)
    piped = plans.pp > 1
    assert piped.any()
    assert (plans.vpp == 1).all()
    assert (plans.pp[piped] % 2 == 0).all() and (n_micro[piped] >= 2 * plans.pp[piped]).all()


@pytest.mark.parametrize("plan,field", [({"vpp": 2}, "parallelism.vpp"),
                                        ({"pp": 5, "dp": 4, "tp": 8, "count": 160}, "parallelism.pp"),
                                        ({"micro_batch": 16}, "parallelism.pipeline_schedule")])
def test_bad_dualpipe_plans_name_the_field(plan, field):
    spec = _scheduled("dualpipe", **{k: v for k, v in plan.items() if k != "count"})
    if "count" in plan:
        spec["hardware"] = {**spec["hardware"], "count": plan["count"]}
    with pytest.raises(SpecError) as e:
        load_spec(spec)
    assert e.value.field == field
    assert "dualpipe" in str(e.value)


def _op_seconds(ops, precision):
    from colossim.training.step import ops_seconds

    spec = load_spec({**LLAMA8B, "training": {**LLAMA8B["training"], "precision": precision}})
    return ops_seconds(ops, make_context(spec)), make_context(spec)


def test_fp8_gemms_pay_their_casts_and_the_head_stays_bf16():
    from colossim.cost import compute as K
    from colossim.training import ops as O

    m, n, k = 8192, 4096, 4096
    (t8, ctx), (t16, _) = _op_seconds([O.Gemm("out_proj", m, n, k)], "fp8"), _op_seconds(
        [O.Gemm("out_proj", m, n, k)], "bf16")
    chip, prof = ctx.system.accelerator, ctx.profile
    gemm = lambda a, b, c, p: float(K.gemm_seconds(a, b, c, p, chip, prof))  # noqa: E731
    cast = lambda e, b: e * b / (chip.hbm_bytes_per_s * prof.memory_efficiency)  # noqa: E731
    # unfused: the input (m x k) cast with its transpose in forward, the output gradient (m x n)
    # in backward, 4 bytes per element each
    assert float(t8["fwd"]) == pytest.approx(gemm(m, n, k, "fp8") + cast(m * k, 4.0))
    assert float(t8["bwd"]) == pytest.approx(gemm(m, k, n, "fp8") + gemm(k, n, m, "fp8") + cast(m * n, 4.0))
    assert float(t16["fwd"]) == pytest.approx(gemm(m, n, k, "bf16"))
    # a norm-fed GEMM (LayerNormLinear) pays only the transposed copy: one byte per element
    (tq, _) = _op_seconds([O.Gemm("qkv", m, n, k)], "fp8")
    assert float(tq["fwd"]) == pytest.approx(gemm(m, n, k, "fp8") + cast(m * k, 1.0))
    # the output head runs in bf16 even in an fp8 run, with no casts
    (tl, _) = _op_seconds([O.Gemm("logits", m, n, k)], "fp8")
    assert float(tl["fwd"]) == pytest.approx(gemm(m, n, k, "bf16"))


def test_fp8_weights_are_cast_once_per_step():
    run = {**LLAMA8B, "training": {**LLAMA8B["training"], "precision": "fp8"}}
    one = estimate(load_spec(run))
    more = estimate(load_spec({**run, "training": {**run["training"], "global_batch": 512}}))
    # twice the micro-batches: twice the per-micro-batch work, the weight casts once
    assert more.step_time_s < 2.0 * one.step_time_s


def test_multi_token_prediction_module_runs_on_the_last_stage():
    dsv3 = {"model": "deepseek-v3", "hardware": {"gpu": "h800-sxm", "count": 2048},
            "parallelism": {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "dp": 128, "zero": 1, "micro_batch": 1,
                            "recompute": "full"},
            "training": {"global_batch": 15360, "precision": "fp8"}}
    with_mtp = estimate(load_spec(dsv3))
    without = estimate(load_spec({**dsv3, "model": {"name": "deepseek-v3", "mtp_modules": 0}}))
    assert load_spec(dsv3).model.mtp_modules == 1
    assert with_mtp.step_time_s > without.step_time_s
    # the same model FLOPs per token: the module is work the main model's count leaves out
    assert with_mtp.model_flops_per_token == without.model_flops_per_token


def _layer_ms(spec_dict: dict, plan: dict) -> tuple[float, float, dict]:
    """Forward and backward (compute + exposed TP) of one dense layer, in ms, and the raw terms."""
    from colossim.training.step import _layer_seconds

    spec = load_spec(spec_dict)
    ctx = make_context(spec)
    layer = _layer_seconds(ctx, PlanArrays.from_dicts([plan]), "dense")
    fwd = float(layer["compute_fwd"][0] + layer["tp_fwd"][0]) * 1e3
    bwd = float(layer["compute_bwd"][0] + layer["tp_bwd"][0]) * 1e3
    return fwd, bwd, layer


# Korthikanti et al. 2022 (arXiv:2205.05198) section 6: the 22B GPT (48 layers, hidden 6144, 64
# heads, sequence 2048) on 8 A100 80GB at tp 8, micro-batch 4.
KOR22_22B = {"model": "megatron-22b", "hardware": {"gpu": "a100-80gb-sxm", "count": 8},
             "parallelism": {"tp": 8, "pp": 1, "cp": 1, "dp": 1, "vpp": 1, "micro_batch": 4, "zero": 0},
             "training": {"global_batch": 4, "software": "megatron-lm-2022"}}
KOR22_22B_PLAN = {"tp": 8, "pp": 1, "cp": 1, "ep": 1, "dp": 1, "vpp": 1, "micro_batch": 4, "zero": 0,
                  "tp_overlap": False}


@pytest.mark.parametrize("recompute, sp, fwd_ms, bwd_ms", [
    # Korthikanti et al. 2022 Table 4: one 22B layer, forward / backward milliseconds
    ("none", False, 7.7, 11.9), ("none", True, 7.2, 11.8), ("full", False, 7.7, 19.5),
    ("selective", False, 7.7, 13.2), ("selective", True, 7.2, 13.1)])
def test_megatron_2022_layer_times_match_korthikanti_table_4(recompute, sp, fwd_ms, bwd_ms):
    spec = {**KOR22_22B, "parallelism": {**KOR22_22B["parallelism"], "recompute": recompute,
                                         "sequence_parallel": sp}}
    fwd, bwd, _ = _layer_ms(spec, {**KOR22_22B_PLAN, "recompute": recompute, "sequence_parallel": sp})
    assert fwd == pytest.approx(fwd_ms, rel=0.05)
    assert bwd == pytest.approx(bwd_ms, rel=0.05)
    assert fwd + bwd == pytest.approx(fwd_ms + bwd_ms, rel=0.03)


@pytest.mark.parametrize("sp", [False, True])
def test_async_tp_backward_hides_the_input_gradient_collective_under_the_weight_gradient(sp):
    """Without the async backward every TP collective of the backward waits, as in the forward
    (two per layer); with it, the column-parallel linears' all-reduce (reduce-scatter with sequence
    parallelism) hides under their weight-gradient GEMMs, whose SMs it shares, and with sequence
    parallelism the input's all-gather for the weight gradient is paid instead."""
    from colossim.cost import comm as C
    from colossim.cost import compute as K
    from colossim.training.step import comm_sm_share

    plan = {**KOR22_22B_PLAN, "recompute": "none", "sequence_parallel": sp}
    base = {**KOR22_22B, "parallelism": {**KOR22_22B["parallelism"], "recompute": "none", "sequence_parallel": sp}}
    off = {**base, "parallelism": {**base["parallelism"], "tp_async_backward": False}}
    _, bwd_on, on = _layer_ms(base, plan)
    _, bwd_off, blocked = _layer_ms(off, plan)
    assert float(blocked["tp_bwd"][0]) == pytest.approx(float(blocked["tp_fwd"][0]))
    spec = load_spec(base)
    ctx = make_context(spec)
    msg = 4 * 2048 * spec.model.hidden * 2
    ar, ag, rs = (float(f(msg, 8, ctx.network, ctx.profile)) for f in
                  (C.all_reduce_seconds, C.all_gather_seconds, C.reduce_scatter_seconds))
    # the weight gradients of QKV (6144 x 3 x 6144 / 8) and MLP-up (6144 x 24576 / 8): X^T . dY
    tokens = 4 * 2048
    wgrad = [float(K.gemm_seconds(spec.model.hidden, n, tokens, "bf16", spec.hardware.accelerator, ctx.profile))
             for n in (3 * spec.model.hidden / 8, spec.model.ffn_hidden / 8)]
    after = rs if sp else ar
    expected = sum((2 * ag if sp else 0.0) + max(after - w, 0.0) + min(after, w) * comm_sm_share(ctx)
                   for w in wgrad)
    assert float(on["tp_bwd"][0]) == pytest.approx(expected, rel=1e-9)
    if not sp:  # one all-reduce per linear hides; with sequence parallelism the re-gather is paid
        assert bwd_on < bwd_off - 1.5 * ar * 1e3


PIPELINED_FSDP = {
    "model": {"name": "llama3.1-405b", "seq_len": 8192},
    "hardware": {"gpu": "h100-sxm", "count": 512},
    "parallelism": {"tp": 8, "pp": 8, "cp": 1, "dp": 8, "vpp": 1, "micro_batch": 1, "recompute": "full",
                    "zero": 3},
    "training": {"global_batch": 256, "precision": "bf16"},
}


def test_fixed_fsdp_with_pipelining_is_priced_as_pytorch_pipelining_runs_it():
    """torchtitan's 3-D plans (FSDP x TP x PP, 126 layers on 8 uneven stages): the spec fixing zero 3
    and pp 8 is estimated, not refused, on PyTorch's own stack (the H100 default's zero3_stack), and
    costs what ZeRO-1 costs on that stack (weights gathered once per step, gradients
    reduce-scattered once, only the optimizer state sharded)."""
    z3 = estimate(load_spec(PIPELINED_FSDP))
    z1 = estimate(load_spec({**PIPELINED_FSDP, "parallelism": {**PIPELINED_FSDP["parallelism"], "zero": 1},
                             "training": {**PIPELINED_FSDP["training"], "software": "torchtitan-2024"}}))
    assert z3.software == z1.software == "torchtitan-2024"
    assert z3.parallelism["zero"] == 3 and z3.parallelism["pp"] == 8
    assert z3.step_time_s == pytest.approx(z1.step_time_s)
    assert z3.memory_gib_per_gpu == pytest.approx(z1.memory_gib_per_gpu)
    # without pipelining ZeRO-3 keeps its per-layer gathers: it costs more than ZeRO-1 there
    flat = {**PIPELINED_FSDP, "model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
            "parallelism": {"tp": 1, "pp": 1, "dp": 64, "micro_batch": 1, "recompute": "full", "zero": 3}}
    flat1 = {**flat, "parallelism": {**flat["parallelism"], "zero": 1}}
    assert estimate(load_spec(flat)).memory_gib_per_gpu < estimate(load_spec(flat1)).memory_gib_per_gpu


def test_search_pairs_zero_2_3_with_pipelining_only_when_the_spec_fixes_both():
    open_zero = {**PIPELINED_FSDP, "parallelism": {"tp": 8, "pp": 8, "dp": 8, "micro_batch": 1}}
    assert {e.parallelism["zero"] for e in search(load_spec(open_zero), top=50).best} <= {0, 1}
    open_pp = {**PIPELINED_FSDP, "model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
               "parallelism": {"tp": 1, "zero": 3}}
    assert {e.parallelism["pp"] for e in search(load_spec(open_pp), top=50).best} == {1}


def test_fp16_adds_only_the_loss_scale_unscale_pass():
    """fp16 runs at the bf16 tensor-core rate with the same memory; dynamic loss scaling reads and
    writes every owned fp32 gradient once more before Adam (8 B per parameter)."""
    from colossim.cost.compute import LOSS_SCALE_UNSCALE_BYTES_PER_PARAM, memory_bound_seconds

    fp16 = {**LLAMA8B, "training": {**LLAMA8B["training"], "precision": "fp16"}}
    spec16, spec = load_spec(fp16), load_spec(LLAMA8B)
    a, b = estimate(spec16), estimate(spec)
    assert a.memory_gib_per_gpu == pytest.approx(b.memory_gib_per_gpu)
    assert a.mfu_by_convention["6nd"] < b.mfu_by_convention["6nd"]
    from colossim.training.step import local_params

    ctx = make_context(spec)
    plans = PlanArrays.from_dicts([b.parallelism])
    owned = float(local_params(ctx, plans)["total"][0]) / 32  # the distributed optimizer: dp 32 shards
    extra = float(memory_bound_seconds(owned * LOSS_SCALE_UNSCALE_BYTES_PER_PARAM,
                                       ctx.system.accelerator, ctx.profile))
    assert a.time_breakdown_s["optimizer_step"] - b.time_breakdown_s["optimizer_step"] == pytest.approx(
        extra, rel=0.05)
    assert a.step_time_s - b.step_time_s == pytest.approx(extra, rel=0.05)


@pytest.mark.parametrize("zero, shard", [(0, 1), (1, 1), (2, 8)])
def test_unfused_gradient_accumulation_costs_one_memory_pass_per_micro_batch(zero, shard):
    """Without gradient_accumulation_fusion each micro-batch's backward ends with a pass of 10 B per
    gradient element the rank keeps (main_grad.add_(grad): read bf16, read and write fp32): all local
    weights under ZeRO 0-1, the 1/dp shard under ZeRO-2.  With pp = 1 there is no bubble, and the
    2021 stack reduces gradients after the backward, so the step grows by exactly that pass."""
    from colossim.cost import compute as K
    from colossim.training.step import GRAD_ACCUMULATION_BYTES

    base = {"model": "gpt3-1.3b", "hardware": {"gpu": "a100-80gb-sxm", "count": 8},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 8, "vpp": 1, "micro_batch": 4,
                            "recompute": "full", "zero": zero},
            "training": {"global_batch": 128, "precision": "bf16", "software": "megatron-lm-2021"}}
    fused = {**base, "parallelism": {**base["parallelism"], "gradient_accumulation_fusion": True}}
    spec = load_spec(base)
    assert spec.parallelism.gradient_accumulation_fusion is False  # the 2021 stack's value
    n_micro = 128 // (8 * 4)
    m = spec.model
    local = m.params_total  # tp 1, pp 1: every weight
    expected = n_micro * K.memory_bound_seconds(GRAD_ACCUMULATION_BYTES * local / shard,
                                                spec.hardware.accelerator, make_context(spec).profile)
    slow, fast = estimate(spec), estimate(load_spec(fused))
    assert slow.step_time_s - fast.step_time_s == pytest.approx(float(expected), rel=1e-6)
    assert slow.time_breakdown_s["compute"] - fast.time_breakdown_s["compute"] == pytest.approx(
        float(expected), rel=1e-6)


def test_fp8_runs_gather_their_sequence_parallel_activations_in_fp8(monkeypatch):
    # Transformer Engine casts what a sequence-parallel all-gather moves to e4m3 (1 byte) in an
    # FP8 run; the reduce-scatters stay bf16, and a bf16 run gathers 2 bytes
    import colossim.training.step as step

    def tp_seconds(precision: str) -> float:
        spec = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "tp": 8, "dp": 8, "tp_overlap": False},
                "training": {**LLAMA8B["training"], "precision": precision}}
        est = estimate(load_spec(spec))
        return est.time_breakdown_s["tp_comm"]

    fp8, bf16 = tp_seconds("fp8"), tp_seconds("bf16")
    monkeypatch.setattr(step, "sp_gather_bytes", lambda ctx: step.ACTIVATION_BYTES)
    fp8_as_bf16, bf16_again = tp_seconds("fp8"), tp_seconds("bf16")
    assert bf16_again == pytest.approx(bf16)
    assert 0 < fp8 < fp8_as_bf16
    # about a quarter less: the gather half of each gather + reduce-scatter pair at half the bytes
    assert 0.55 < fp8 / fp8_as_bf16 < 0.9


def test_ring_attention_merges_its_steps_through_memory_and_only_under_context_parallelism():
    # Transformer Engine's ring attention (AttnFuncWithCPAndKVP2P): forward zero-fills the output
    # (2 B) and merges each of the cp steps' outputs into it (6 B per element each), and copies
    # K and V into the send buffer (4 B); backward copies the first step's dQ and dK/dV (4 B),
    # adds the other cp - 1 (6 B each), and copies K and V once more (4 B)
    from colossim.training import ops as O
    from colossim.specs.model import resolve_model

    model = resolve_model("llama3-8b")  # 32 query heads, 8 K/V heads, 128 wide
    tokens, heads, kv_heads, d = 4096.0, 32.0, 8.0, 128
    fwd, bwd = O.ring_attention_merge_bytes(model, tokens, 1, np.array([1.0, 2.0, 4.0]))
    out = q = tokens * heads * d
    kv = tokens * kv_heads * 2 * d
    assert fwd[0] == bwd[0] == 0.0
    for i, cp in ((1, 2), (2, 4)):
        assert fwd[i] == pytest.approx(out * (2 + 6 * cp) + kv * 4)
        assert bwd[i] == pytest.approx(q * (4 + 6 * (cp - 1)) + kv * (8 + 6 * (cp - 1)))

    names = {cp: [op.name for op in O.layer_ops(model, 1, 8192, 1, cp, 1, False)] for cp in (1, 2)}
    assert "ring_attention_merge" not in names[1] and "ring_attention_merge" in names[2]
    # the FLOPs do not change: the merge is memory-bound, the attention's keys are all counted
    att = {cp: next(op for op in O.layer_ops(model, 1, 8192, 1, cp, 1, False) if isinstance(op, O.Attention))
           for cp in (1, 2)}
    assert float(att[2].flops) == pytest.approx(float(att[1].flops) / 2)
    assert att[2].kv_chunks == 2 and att[1].kv_chunks == 1


@pytest.mark.parametrize("convention", ["megatron", "palm", "6nd"])
def test_the_spec_selects_the_convention_mfu_reports(convention):
    """``training.mfu_convention`` picks what mfu, model_flops_per_token, tflops_per_gpu and hfu
    count; the step and mfu_by_convention do not move."""
    from colossim.specs.model import resolve_model
    from colossim.training.estimate import DEFAULT_MFU_CONVENTION
    from colossim.training.flops import model_flops_per_token

    full = {**LLAMA8B, "parallelism": {**LLAMA8B["parallelism"], "recompute": "full"}}
    base = estimate(load_spec(full))
    assert base.mfu_convention == DEFAULT_MFU_CONVENTION == load_spec(full).training.mfu_convention.value
    e = estimate(load_spec({**full, "training": {**full["training"], "mfu_convention": convention}}))
    assert e.step_time_s == base.step_time_s and e.mfu_by_convention == base.mfu_by_convention
    assert (e.mfu_convention, e.mfu) == (convention, e.mfu_by_convention[convention])
    m = resolve_model(LLAMA8B["model"])
    assert e.model_flops_per_token == model_flops_per_token(m, m.seq_len, convention)
    assert e.tflops_per_gpu * 1e12 == pytest.approx(e.model_flops_per_token * e.tokens_per_s_per_gpu)
    # HFU adds the recomputed FLOPs to the same count: its ratio to MFU does not depend on the count
    assert e.hfu / e.mfu == pytest.approx(base.hfu / base.mfu) and e.hfu > 1.2 * e.mfu
