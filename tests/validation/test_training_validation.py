"""The training engine against published measured runs (catalog/data/validation/training_runs.csv).

Citations are in each run's ``source``.  The issue's targets (median |error| <= 7 %, max <= 20 %,
mean signed within +-3 %) are not met yet: the strict xfail below turns red the day they are, so
the tolerance can be tightened.  The regression guards pin what the model achieves today.
"""

from __future__ import annotations

import pytest

from colossim.cli.validate import run_training_validation
from colossim.specs.model import resolve_model
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.validate import error_stats, validation_runs


@pytest.fixture(scope="module")
def results():
    res, stats = run_training_validation(show_progress=False)
    return {r.run.id: r for r in res}, stats


def test_megatron_selective_and_full_recompute_runs(results):
    # Korthikanti et al. 2022 Table 5 (A100, TP 8, sequence parallel + selective / full recompute)
    by_id, _ = results
    ids = ["KOR22-T5-01", "KOR22-T5-02", "KOR22-T5-03", "KOR22-T5-04", "KOR22-T5-FULL-01",
           "KOR22-T5-FULL-02", "KOR22-T5-FULL-03"]
    errs = [by_id[i].error for i in ids]
    assert all(e is not None and abs(e) <= 0.20 for e in errs), errs
    assert error_stats(errs).median_abs <= 0.12


def test_megatron_weak_scaling_small_models(results):
    # Narayanan et al. 2021 Table 1, 1.7B-7.5B on 32-128 A100 (no interleaving needed)
    by_id, _ = results
    for i in ("NAR21-T1-01", "NAR21-T1-02", "NAR21-T1-03"):
        assert abs(by_id[i].error) <= 0.12, (i, by_id[i].error)


def test_megatron_weak_scaling_error_does_not_drift_with_size(results):
    # Narayanan et al. 2021 Table 1: 1.7B on 32 GPUs to 1T on 3072, published 137-163 TFLOP/s.
    # A mechanism that is wrong with the model's width (small models' attention, large models'
    # GEMM clocks) shows as a trend along the table; the errors stay within 10 points of each
    # other (they spanned -8 % .. +17 % before batched GEMMs paid one launch per call and the
    # A100's GEMMs ran at sustained clocks).
    by_id, _ = results
    errs = [by_id[f"NAR21-T1-{i:02d}"].error for i in range(1, 11)]
    assert max(errs) - min(errs) <= 0.10, errs


def test_regression_guard_overall(results):
    # Reached (issue 3, session 9: each row's model named from the catalog, so the Megatron GPT
    # rows carry their biases, LayerNorms and dropout and the MPT rows their ALiBi; the optimizer
    # step's gradient-norm and zeroing passes): 69 rows, median 7.7 %, max 41.0 %, mean signed
    # +6.8 %; A100 median 7.5 %, mean +8.8 %; H100 median 11.3 %, max 41.0 %, mean +4.3 %.  (Session 8: 9.2 %, 39.0 %, +7.4 %; session 7: 10.3 %,
    # 68.0 %, +9.7 %; session 5: 12.0 %, 72.4 %, +11.8 %; session 3: 15.2 %, 238 %, +25.7 %.)
    # Session 11: MosaicML's MPT rows run their own stack (Composer FSDP with flash attention) on
    # A100s too, not the A100's 2021 default; the three A100 rows move from -6..-14 % to +12..+19 %,
    # the same optimism as their H100 rows: median 8.1 %, max 41.0 %, mean +7.9 %; A100 median
    # 7.6 %, mean +10.4 %.  Session 13 (FP8 casts and a bf16 head, the last pipeline stage
    # balanced against the head, DeepSeek-V3's MTP module): median 8.1 %, max 41.0 %, mean +7.5 %;
    # H100 median 10.2 %, mean +3.3 %.  Session 14: the eleven Megatron-Core rows run with the
    # TP communication overlap their source names (--tp-comm-overlap), and the overlapped GEMMs
    # pay for running in chunks: median 8.1 %, max 41.0 %, mean +8.8 %; H100 median 11.3 %, mean
    # +6.5 % -- the H100 optimism the missing overlap had hidden (docs/validation-history.md).  Session 15:
    # DeepSpeed ZeRO-3 as its 2021 code ran (persistent small tensors, per-tensor reduce-scatters,
    # reuse distance, per-rank copies of the list collectives): median 7.6 %, max 41.0 %, mean
    # +7.9 %; A100 median 7.5 %, mean +9.0 %.  Session 27: Megatron-LM 2021's unfused gradient
    # accumulation (a 10 B pass per weight per micro-batch): median 5.3 %, max 29.9 %, mean +4.8 %;
    # A100 median 2.6 %, mean +5.3 %; Narayanan's PTD-P rows from +5..+8 % to -2..+1 %.
    # Session 29: the H100's bf16 GEMMs at the clock a lent H100 held at 700 W (669.4 TFLOPS at
    # 8192^3, fraction 0.866 -> 0.815), its fp8 GEMMs at Azure's held 16384^3 (0.923): median
    # 4.6 %, max 29.0 %, mean +4.1 %; H100 median 6.6 %, max 24.4 %, mean +2.7 % (fp8 rows -6.2 %
    # -> -0.0 %, bf16 rows +3.9 %).
    # Session 30: the Megatron-Core and Composer loops pay the measured Megatron-LM host time per
    # step (0.047 s; both sync host and device every step): median 4.6 %, max 28.9 %, mean
    # +3.0 %; trust A mean +2.0 %; H100 median 6.0 %, max 26.6 %, mean +0.2 %.
    # Session 31: DeepSpeed ZeRO-3's list collectives move their bytes through HBM (zero-fill and
    # copy-out per gathered byte, divide and copy-in per reduced byte): median 4.4 %, max 28.2 %,
    # mean +2.6 %; trust A median 4.2 %, max 26.6 %, mean +1.5 %; the 530B ZeRO-3 rows +24/+18/+14 %.
    # Session 33: ring reduce-scatters / all-gathers at NCCL's per-step latency, every interleaving
    # depth searched, TE's default TP overlap exposing its SM-driven collectives: median 3.6 %, max
    # 28.2 %, mean +3.4 % (the pessimistic Megatron-Core rows no longer offset the optimistic MPT /
    # ZeRO-3 / MT-NLG rows); trust A median 3.3 %, max 24.1 %, mean +2.2 %; H100 median 4.0 %,
    # max 21.1 %, mean +2.0 %; Megatron-Core's eleven rows -16.4 ... +4.0 %.
    # Session 34: HBM capacity read as the GiB it is (JEDEC; 80 GB = 80 GiB, not 74.5), MT-NLG with
    # Megatron-DeepSpeed's default dropout and its recompute: median 3.9 %, max 26.1 %, mean +3.5 %;
    # trust A median 3.5 %, max 24.1 %, mean +2.4 %; H100 median 4.9 %, max 19.7 % (Nemotron-4 340B
    # -21.1 -> -14.6 % with 2 recomputed layers per stage instead of 6), mean +2.6 %.
    # Session 36: MT-NLG and BLOOM run DeepSpeed's pipeline schedule (four blocking transfers per
    # micro-batch): max 24.1 % (the ZeRO-3 530B row), mean +3.2 %; MT-NLG +18.4 / +19.4 / +23.9 %.
    # Session 39: ring attention as Transformer Engine runs it under context parallelism (one
    # kernel per chunk of keys, the steps' outputs and gradients merged through memory): median
    # 4.0 %, max 24.1 %, mean +3.02 -> +2.93 %, inside the issue's +-3 %; NeMo's Llama 3 8B
    # +10.3 -> +6.0 %, Llama 3 70B -2.5 -> -4.5 %.
    # Session 40: Composer's FSDP (the MPT rows' stack) priced with its gathers and reduce-scatters
    # in line with the compute, as its defaults (no forward prefetch, BACKWARD_POST) and the nine
    # rows' steps have it: median 2.8 %, max 24.1 %, mean +1.4 %; trust A median 2.4 %, mean
    # +0.4 %; H100 median 3.6 %, max 16.4 %, mean -1.4 %; the MPT rows +5.9 ... +19.7 % ->
    # -12.1 ... +3.6 % (mean +10.4 -> -1.7 %).
    # Session 43: MT-NLG's 2021 DeepSpeed pipeline sends its gradients whole: mean +1.2 %, MT-NLG
    # +14.0 / +15.0 / +19.4 %; only the ZeRO-3 530B row at 640 GPUs (+24.1 %) is above 20 %.
    # Guards = reached + a small margin, except the mean, held to the issue's target.
    by_id, stats = results
    assert stats["all"].n == 69  # every published row is predicted (OPT and the 530B ZeRO-3 included)
    assert stats["all"].median_abs <= 0.031
    assert stats["all"].max_abs <= 0.25
    assert sorted(k for k, r in by_id.items() if abs(r.error) > 0.20) == ["NAR21-T2-Z3-04"]
    assert abs(stats["all"].mean_signed) <= 0.03  # the issue's target
    assert stats["trust A"].median_abs <= 0.027
    assert stats["trust A"].mean_signed <= 0.012
    assert stats["trust A"].max_abs <= 0.25
    mcore = [e.error for k, e in by_id.items() if k.startswith("MCORE24")]
    assert len(mcore) == 11 and max(abs(e) for e in mcore) <= 0.18, mcore
    assert stats["A100"].median_abs <= 0.02
    assert stats["A100"].mean_signed <= 0.045
    ptd = [by_id[f"NAR21-T2-PTD-0{i}"].error for i in range(1, 7)]
    assert all(abs(e) <= 0.04 for e in ptd), ptd
    assert stats["H100"].median_abs <= 0.04
    assert stats["H100"].max_abs <= 0.18  # inside the issue's target on the H100 rows
    assert abs(stats["H100"].mean_signed) <= 0.024
    mpt = [e.error for k, e in by_id.items() if k.startswith("MPT-")]
    assert len(mpt) == 9 and max(abs(e) for e in mpt) <= 0.13, mpt
    assert abs(sum(mpt) / len(mpt)) <= 0.03, mpt  # Composer's FSDP no longer optimistic as a stack


def test_rows_name_the_catalog_model_they_ran():
    # A row whose model the catalog describes names it, so the architecture the shape leaves out
    # (norm, positions, biases, dropout) is the run's, not the defaults of a bare shape.
    named = [r for r in validation_runs() if r.model_base]
    assert len(named) >= 58
    for r in named:
        m = resolve_model(r.spec["model"])
        assert m.name == r.model_base, (r.id, m.name, r.model_base)
    megatron = [r for r in named if r.id.startswith(("NAR21-", "KOR22-"))]
    assert len(megatron) == 31
    assert all(resolve_model(r.spec["model"]).dropout for r in megatron)


def test_rows_whose_source_overlaps_tp_communication_run_with_it():
    # The Megatron-Core rows' source ran with --tp-comm-overlap; the shared schema has no column
    # for it, so the row's spec sets tp_overlap (and nothing else does).
    import json

    rows = validation_runs()
    documented = {r.id for r in rows if "--tp-comm-overlap" in (r.notes or "")}
    assert len(documented) == 11
    overlapped = {r.id for r in rows if json.loads(r.spec_json)["parallelism"].get("tp_overlap")}
    assert overlapped == documented


def test_unoverlapped_gradient_all_reduce_costs_time(results):
    # Korthikanti et al. 2022 sec. 6.3: the 530B model at DP 8 (2,240 A100) took 39.15 s per
    # iteration against 37.83 s at DP 1 (280 GPUs, same per-replica batch): the gradient
    # all-reduce is not overlapped with the backward, as the A100's default software stack
    # (megatron-lm-2021) prices it.
    by_id, _ = results
    dp8 = by_id["KOR22-DP8-530B"].predicted_tokens_per_s_per_gpu
    dp1 = by_id["KOR22-T5-03"].predicted_tokens_per_s_per_gpu
    assert 0.95 < dp8 / dp1 < 1.0
    assert abs(by_id["KOR22-DP8-530B"].error) <= 0.12


def test_nemotron_throughput_falls_with_data_parallel_size(results):
    # Nemotron-4 15B Table 2: 0.57 -> 0.58 -> 0.64 s per iteration as DP grows 96 -> 192 -> 288 at
    # a fixed per-replica batch.  Megatron-Core's gradient buckets grow with DP (max(40M, 1M x dp)
    # parameters) and the last one's reduce-scatter (the first one's gather) is never hidden.
    by_id, _ = results
    ids = ("NEMOTRON4-15B-T2-1", "NEMOTRON4-15B-T2-2", "NEMOTRON4-15B-T2-3")
    tps = [by_id[i].predicted_tokens_per_s_per_gpu for i in ids]
    assert tps[0] > tps[1] > tps[2]
    assert all(abs(by_id[i].error) <= 0.25 for i in ids)


def test_deepspeed_zero3_throughput_falls_with_scale_at_fixed_batch(results):
    # Narayanan et al. 2021 Table 2: DeepSpeed ZeRO-3, GPT-3 175B, global batch 1536: per-GPU
    # throughput falls as GPUs double (per-tensor gathers, each with its ring latency and one
    # host-side copy per rank, waited for; the recompute forward gathers again and the backward
    # fetches what DeepSpeed released; the zero-fill and list copies through HBM).  The 175B rows
    # are within 20 %; the 530B rows are still optimistic (+14 ... +24 %, see the README's validation section).
    by_id, _ = results
    tps = [by_id[i].predicted_tokens_per_s_per_gpu for i in ("NAR21-T2-Z3-02", "NAR21-T2-Z3-03")]
    assert tps[1] < 0.8 * tps[0]
    assert all(abs(by_id[f"NAR21-T2-Z3-0{i}"].error) <= 0.20 for i in (1, 2, 3))
    assert all(0.0 < by_id[f"NAR21-T2-Z3-0{i}"].error <= 0.25 for i in (4, 5, 6))


def _flag_and_its_effect(r, flag: str, written: str, other: str, why: str) -> float:
    """Assert that row ``r``'s spec writes ``parallelism.flag = written`` with ``why`` in its notes,
    and return how much faster the row predicts with ``other`` instead."""
    assert r.run.spec["parallelism"][flag] == written, r.run.id
    assert why in r.run.notes, r.run.id
    swapped = {**r.run.spec, "parallelism": {**r.run.spec["parallelism"], flag: other}}
    return estimate(load_spec(swapped)).tokens_per_s_per_gpu / r.predicted_tokens_per_s_per_gpu - 1


def test_mlperf_v30_runs_use_the_attention_kernel_of_their_day(results):
    # MLPerf Training v3.0 (NGC 23.04 container, results June 2023) predates FlashAttention-2
    # (17 July 2023): the rows say flash1, and with FlashAttention-2 each would read 4-6 points
    # faster (+14.7 / +10.4 / +3.1 % at 768 / 1,536 / 3,584 GPUs before, +9.4 / +5.6 / -0.7 % now).
    by_id, _ = results
    ids = ("MLPERF30-GPT3-768", "MLPERF30-GPT3-1536", "MLPERF30-GPT3-3584")
    for rid in ids:
        r = by_id[rid]
        faster = _flag_and_its_effect(r, "attention_kernel", "flash1", "flash2", "FlashAttention-2")
        assert 0.03 < faster < 0.08, (rid, faster)
        assert abs(r.error) <= 0.12, (rid, r.error)


def test_deepspeed_pipeline_runs_use_its_schedule(results):
    # MT-NLG and BLOOM pipelined with DeepSpeed's PipelineEngine: the rows say so, and its four
    # blocking transfers per micro-batch (Megatron-LM's two) cost each 2-3 points (MT-NLG 2,240 /
    # 2,800 / 3,360 GPUs +20.7 / +21.5 / +26.1 % with Megatron's pairing, +18.4 / +19.4 / +23.9 %
    # with DeepSpeed's schedule, +14.0 / +15.0 / +19.4 % with its 2021 whole gradients too;
    # BLOOM +2.1 -> -0.7 %).
    by_id, _ = results
    ids = ("MTNLG530B-2240", "MTNLG530B-2800", "MTNLG530B-3360", "BLOOM176B-PROD")
    for rid in ids:
        faster = _flag_and_its_effect(by_id[rid], "pipeline_schedule", "deepspeed", "1f1b", "TrainSchedule")
        assert 0.01 < faster < 0.04, (rid, faster)


def test_mtnlg_sends_its_pipeline_gradients_whole(results):
    # DeepSpeed v0.3.14-v0.5.3 (2021) split the activations between stages over the TP group but
    # sent the gradients whole (runtime/pipe/engine.py is_grad_partitioned = False): the rows say
    # so, each would read 3-5 points faster with split gradients, and all three are within the
    # issue's 20 % with them whole (+14.0 / +15.0 / +19.4 %; +18.4 / +19.4 / +23.9 % split).
    by_id, _ = results
    for rid in ("MTNLG530B-2240", "MTNLG530B-2800", "MTNLG530B-3360"):
        faster = _flag_and_its_effect(by_id[rid], "pipeline_grad_scatter_gather", False, True,
                                      "is_grad_partitioned = False")
        assert 0.03 < faster < 0.05, (rid, faster)
        assert 0.0 < by_id[rid].error <= 0.20, (rid, by_id[rid].error)
    assert "pipeline_grad_scatter_gather" not in by_id["BLOOM176B-PROD"].run.spec["parallelism"]


def test_moe_pretraining_run(results):
    # DeepSeek-V3 (added by colossim, trust B): 2,664K H800 GPU hours for 14.8T tokens = 1,543
    # tokens/s/GPU.  Priced with Megatron-Core 2024's dispatcher (every copy, bf16, nothing
    # hidden) it came out at 629 (-59 %); node-limited routing with one copy per node, FP8
    # dispatch and DualPipe's overlap of the all-to-all bring it to -9 %, and DualPipe's own
    # bubble (a third of 1F1B's, with two stages per GPU) to -3 %; FP8 casts, the bf16 output
    # head, the multi-token-prediction module and a last stage balanced against them to +3 %.
    by_id, stats = results
    assert abs(by_id["DSV3-PRETRAIN-2048"].error) <= 0.07
    assert stats["MoE"].n == 1


@pytest.mark.xfail(strict=True, reason="issue 3 targets not met yet: see README validation table")
def test_issue_targets_on_trusted_rows(results):
    by_id, _ = results
    trusted = [r.error for r in by_id.values() if r.run.trust == "A" and r.error is not None]
    assert error_stats(trusted).meets_targets


def test_nemo_plans_that_need_memory_recompute_only_some_layers(results):
    # NeMo 24.07 GPT-3 175B at 512 H100 (mb 2) and Nemotron-4 340B at 128: recomputing every
    # layer (the old cliff) cost 26-29 %; the search recomputes the fewest layers that fit (none
    # for GPT-3 at mb 2, 6 of Nemotron's 12 per stage), at least a tenth faster than every layer.
    # Nemotron reads -20 % (-22 % since FP8 runs pay their casts, session 13; -20 % with fp8 GEMMs
    # at their own held clock, session 29): NeMo overlaps TP
    # communication with the GEMMs and the row does not say so, so the engine exposes it all.
    by_id, _ = results
    for rid in ("NEMO2407-GPT3-175B-512", "NEMO2407-NEMOTRON-340B-128"):
        r = by_id[rid]
        assert abs(r.error) <= 0.25, (rid, r.error)
        spec = {**r.run.spec, "parallelism": {**r.run.spec["parallelism"], "recompute": "full",
                                              "recompute_num_layers": 12}}
        every_layer = estimate(load_spec(spec)).tokens_per_s_per_gpu
        assert r.predicted_tokens_per_s_per_gpu >= 1.1 * every_layer, rid


def test_extra_steps_are_apart_and_converted_from_the_catalog_architecture():
    # Published steps outside the reference set (training_steps_extra.csv) never enter the target
    # statistics, and their tokens/s/GPU follow from the whole-step TFLOPS under the stated
    # convention: 6N + 6*L*h*s FLOPs per token (causal attention counted once, halved).
    from colossim.training.validate import extra_runs

    extra = extra_runs()
    assert extra and not {r.id for r in extra} & {r.id for r in validation_runs()}
    for r in extra:
        m = resolve_model(r.spec["model"])
        assert m.name == r.model_base
        flops_per_token = 6 * m.params_total + 6 * m.layers * m.hidden * m.seq_len
        tokens = r.measured_value * 1e12 / flops_per_token
        assert r.measured_metric == "tflops_per_gpu"
        assert tokens == pytest.approx(r.tokens_per_s_per_gpu_measured, rel=1e-4), r.id
    res, _ = run_training_validation(show_progress=False, extra=True)
    assert all(x.error is not None for x in res)
    # Llama 3 405B at 8,192 and 16,384 H100 (Meta's Table 4), runs the engine was never fitted to:
    # -3.4 % and -2.3 % when added (session 12); +0.3 % and +1.5 % once the last stage gives a
    # layer up to the head, as Meta's did (session 13)
    llama = [x for x in res if x.run.id.startswith("LLAMA3-405B")]
    assert len(llama) == 2 and all(abs(x.error) <= 0.06 for x in llama)


def test_regression_guard_as_published():
    # The team's specs exactly as written (no catalog names, no dated flags): what a run nobody
    # annotated looks like to the engine.  Session 10: 67 of 68 predicted, median 10.6 %, max 209 %,
    # mean +16.8 % (DeepSpeed ZeRO-3 priced as FSDP).  Session 11, ZeRO-3 the way the chip's stack
    # did it and every unnamed shape completed from its catalog model: median 10.2 %, max 58.4 %
    # (OPT-175B, FSDP, written as a bare GPT-3 shape, so priced as 2021 DeepSpeed), mean +8.3 %.
    # Session 12, each row's own model name settling what its shape leaves open (OPT-175B is
    # metaseq's FSDP run, not GPT-3; NeMo's Llama 2 70B row, which gives no layers, is Llama 2
    # 70B): 68 of 68, median 9.5 %, max 41.0 % (MPT-7B on H100), mean +8.8 %.  Session 13 (FP8
    # casts, balanced last stage): median 9.1 %, mean +8.3 %.  Session 15 (DeepSpeed ZeRO-3 as its
    # 2021 code ran): median 9.0 %, mean +7.3 %.  Session 27 (unfused gradient accumulation on the
    # 2021 stack): median 7.5 %, max 29.9 %, mean +3.3 %.  Session 29 (the H100's held GEMM
    # clocks, bf16 and fp8): median 6.8 %, max 29.0 %, mean +2.5 %.  Session 31 (DeepSpeed's list
    # copies through HBM): median 7.1 %, max 28.2 %, mean +1.1 %.  Session 33 (NCCL's ring step
    # latency, every interleaving depth, TE's default TP overlap): median 5.7 %, max 28.2 %, mean
    # +3.0 %.  Session 34 (HBM in GiB; MT-NLG's dropout, which keeps its unrecomputed plan from
    # fitting): median 5.7 %, max 26.1 %, mean +3.0 %.  Session 37 (a plan asking for what the
    # chip's default stack lacked runs the release that added it: Korthikanti's sequence-parallel,
    # selective-recompute rows on Megatron-LM 3.0, as annotated): median 4.8 %, max 26.1 %, mean
    # +3.6 %; the mean rises because those five rows (-9 ... +0 %) no longer offset optimistic ones.
    # Session 40 (Composer's FSDP traffic in line with its compute): median 4.0 %, max 26.1 %, mean
    # +1.7 %.  Session 43 (MT-NLG's and BLOOM's catalog rows name their Megatron-DeepSpeed stacks:
    # DeepSpeed's pipeline schedule, MT-NLG's 2021 gradients sent whole): median 4.0 %, max 24.1 %,
    # mean +1.4 %; MT-NLG +20.7 / +21.5 / +26.1 -> +14.0 / +15.0 / +19.4 %, BLOOM +6.2 -> +5.3 %.
    res, stats = run_training_validation(show_progress=False, as_published=True)
    assert [r.run.id for r in res if r.error is None] == []
    assert stats["all"].n == 68
    by_id = {r.run.id: r for r in res}
    assert by_id["OPT175B-PROD"].plan["fsdp"] and abs(by_id["OPT175B-PROD"].error) < 0.10
    kor = [r for r in res if r.run.id.startswith("KOR22-T5-0") or r.run.id == "KOR22-DP8-530B"]
    assert len(kor) == 5 and all(abs(r.error) <= 0.04 for r in kor)
    assert stats["all"].median_abs <= 0.042
    assert stats["all"].max_abs <= 0.25
    assert all(r.plan["pipeline_schedule"] == "deepspeed" for k, r in by_id.items()
               if k.startswith(("MTNLG530B", "BLOOM176B")))
    assert stats["all"].mean_signed <= 0.02


# --- runs from a file in the team's reference format (colossim validate training --runs FILE) ---

TEAM_COLUMNS = ("id", "source", "table_or_figure", "model_name", "gpu_type", "num_gpus", "measured_metric",
                "measured_value", "notes", "tokens_per_s_per_gpu_measured", "conversion", "spec_json")


def _team_file(path, runs, **override) -> None:
    """``runs`` written the way the team's reference file writes them: the bare spec in
    ``spec_json``, the trust level only in the notes, no ``trust`` column."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[c for c in TEAM_COLUMNS if c not in override.get("drop", ())])
        w.writeheader()
        for r in runs:
            row = {"id": r.id, "source": r.source, "table_or_figure": r.table_or_figure or "",
                   "model_name": r.model_name, "gpu_type": r.gpu_type, "num_gpus": r.num_gpus,
                   "measured_metric": r.measured_metric, "measured_value": r.measured_value,
                   "notes": f"trust={r.trust}; as in the reference file",
                   "tokens_per_s_per_gpu_measured": r.tokens_per_s_per_gpu_measured,
                   "conversion": r.conversion or "", "spec_json": r.spec_json_as_published}
            row.update(override.get("row", {}))
            w.writerow({k: v for k, v in row.items() if k in w.fieldnames})


def test_a_file_of_runs_in_the_reference_format_is_validated_as_written(tmp_path):
    from colossim.training.validate import load_runs

    # a NeMo row whose bare spec gives no layers (its label names the model), a Korthikanti row, an MPT row
    ids = ("NEMO2407-LLAMA2-70B-64", "KOR22-T5-02", "MPT-7B-H100-512")
    ours = {r.id: r for r in validation_runs()}
    path = tmp_path / "runs.csv"
    _team_file(path, [ours[i] for i in ids])
    loaded = load_runs(path)
    assert [r.id for r in loaded] == list(ids)
    assert [r.trust for r in loaded] == [ours[i].trust for i in ids]  # read from the notes
    from_file, stats = run_training_validation(show_progress=False, runs_file=path)
    as_published, _ = run_training_validation(show_progress=False, as_published=True)
    same = {r.run.id: r.error for r in as_published}
    assert [r.error for r in from_file] == pytest.approx([same[i] for i in ids], rel=1e-12)
    assert stats["all"].n == 3 and "dense" in stats


def test_a_reference_row_s_moe_columns_complete_a_spec_that_leaves_them_out(tmp_path):
    import csv
    import json

    from colossim.training.validate import load_runs, with_run_columns

    # Mixtral 8x7B's shape under a label no catalog model has: only the row's columns say MoE
    dense = {"model": {"layers": 32, "hidden": 4096, "ffn_hidden": 14336, "heads": 32, "kv_heads": 8,
                       "vocab": 32000, "seq_len": 4096, "activation": "swiglu"},
             "hardware": {"gpu": "h100-sxm", "count": 64},
             "parallelism": {"tp": 1, "pp": 4, "dp": 16, "vpp": 8, "micro_batch": 1},
             "training": {"global_batch": 256}}
    columns = {"moe_experts": "8", "moe_topk": "2", "ep": "8"}
    path = tmp_path / "moe.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[*TEAM_COLUMNS, *columns])
        w.writeheader()
        w.writerow({"id": "MOE-1", "source": "synthetic", "model_name": "an 8-expert model", "gpu_type": "H100",
                    "num_gpus": 64, "measured_metric": "tokens", "measured_value": 1,
                    "tokens_per_s_per_gpu_measured": 6000, "spec_json": json.dumps(dense), **columns})
    (run,) = load_runs(path)
    assert run.spec["model"]["experts"] == 8 and run.spec["model"]["top_k"] == 2
    assert run.spec["parallelism"]["ep"] == 8 and run.is_moe
    (result,) = run_training_validation(show_progress=False, runs_file=path)[0]
    assert result.failure is None and result.plan["ep"] == 8
    moe = resolve_model(run.spec["model"])
    assert moe.params_active == resolve_model("mixtral-8x7b").params_active
    # what the spec gives wins; blank, non-integer columns and catalog names are left alone
    assert with_run_columns({**dense, "parallelism": {"ep": 4}}, columns)["parallelism"]["ep"] == 4
    assert with_run_columns(dense, {"moe_experts": "", "moe_topk": "two", "ep": "1.5"}) == dense
    named = {**dense, "model": "llama3-8b"}
    assert with_run_columns(named, {"moe_experts": "8"}) == named


def test_cli_validate_runs_file_json_and_bad_files(cli, tmp_path):
    import json

    ours = {r.id: r for r in validation_runs()}
    good = tmp_path / "good.csv"
    _team_file(good, [ours["KOR22-T5-01"]])
    code, out, err = cli("validate", "training", "--runs", str(good), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [r["id"] for r in doc["runs"]] == ["KOR22-T5-01"] and doc["stats"]["all"]["n"] == 1
    assert abs(doc["runs"][0]["error"]) < 0.05 and "extra_runs" not in doc

    def refused(path, *words):
        code, out, err = cli("validate", "training", "--runs", str(path))
        msg = (out + err).strip()
        assert code == 2 and len(msg.splitlines()) == 1 and "Traceback" not in msg, msg
        assert all(w in msg for w in words), msg

    # as a spreadsheet saves it: a byte-order mark and CRLF line ends
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + good.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    code, out, err = cli("validate", "training", "--runs", str(excel), "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["runs"]] == ["KOR22-T5-01"]

    refused(tmp_path / "absent.csv", "absent.csv", "file not found")
    no_spec = tmp_path / "no_spec.csv"
    _team_file(no_spec, [ours["KOR22-T5-01"]], drop=("spec_json",))
    refused(no_spec, "no_spec.csv", "spec_json", "missing")
    bad_json = tmp_path / "bad_json.csv"
    _team_file(bad_json, [ours["KOR22-T5-01"]], row={"spec_json": "{model: 1"})
    refused(bad_json, "bad_json.csv:2", "spec_json", "not JSON")
    bad_number = tmp_path / "bad_number.csv"
    _team_file(bad_number, [ours["KOR22-T5-01"]], row={"num_gpus": "eight"})
    refused(bad_number, "bad_number.csv:2", "num_gpus")
    twice = tmp_path / "twice.csv"
    _team_file(twice, [ours["KOR22-T5-01"], ours["KOR22-T5-01"]])
    refused(twice, "twice.csv:3", "duplicate")


def test_a_rows_part_description_sets_the_capacity_and_power_its_spec_leaves_out():
    from colossim.training.validate import with_part_label, with_run_labels

    spec = {"model": "llama3.1-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
            "parallelism": {"zero": 3, "micro_batch": 1}, "training": {"global_batch": 8}}
    capped = with_part_label(spec, "H100 (96GB HBM2e, 500W)")
    assert capped["hardware"] == {"gpu": "h100-sxm", "count": 8, "hbm_gib": 96.0, "tdp_w": 500.0}
    # the capped part is slower, by the clock its power allows (colossim.cost.power)
    assert (estimate(load_spec(capped)).tokens_per_s_per_gpu
            < 0.9 * estimate(load_spec(spec)).tokens_per_s_per_gpu)
    # the catalog's own figures, a conflict, a link rate or a figure the spec gives: unchanged
    for part in ("H100-SXM5-80GB", "A100-SXM (80GB per one quote; 40GB per another)",
                 "H100 with 8x400Gb/s NICs", "H100 (80GB; SXM/DGX not stated)"):
        assert with_part_label(spec, part) is spec
    given = {**spec, "hardware": {**spec["hardware"], "tdp_w": 700}}
    assert with_part_label(given, "H100 (500W)") is given
    assert with_run_labels(spec, "Llama 3.1 8B", None) is spec


def test_cli_validate_writes_a_chart_of_the_runs(cli, tmp_path):
    ours = {r.id: r for r in validation_runs()}
    runs = tmp_path / "runs.csv"
    _team_file(runs, [ours["KOR22-T5-01"], ours["NAR21-T1-03"]])
    page = tmp_path / "validation.html"
    code, out, err = cli("validate", "training", "--runs", str(runs), "--html", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "KOR22-T5-01" in html and "NAR21-T1-03" in html and "+-20% (max target)" in html
    assert "median |err|" in html  # the figures are in the title
