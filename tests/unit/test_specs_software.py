"""The software stack: which runtime a spec's plan is priced with (specs/software.py)."""

from __future__ import annotations

import pytest

from colossim.catalog import load_catalog
from colossim.errors import SpecError, UnknownNameError
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.specs.plan import ParallelPlan
from colossim.specs.software import STACK_FLAGS, default_stack, plan_needs, resolve_stack, software_stacks
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate

# Narayanan et al. 2021 Table 1, first row: 1.7B GPT on 32 A100, as the team's reference set writes it
NAR21_T1_01 = {"model": {"layers": 24, "hidden": 2304, "ffn_hidden": 9216, "heads": 24, "kv_heads": 24,
                         "vocab": 51200, "seq_len": 2048, "activation": "gelu"},
               "hardware": {"gpu": "a100-80gb-sxm", "count": 32},
               "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 32, "recompute": "full", "zero": 0,
                               "sequence_parallel": False},
               "training": {"global_batch": 512}}
NAR21_T1_01_TOKENS_PER_S_PER_GPU = 9287.9  # 137 TFLOP/s per GPU (Table 1) over the paper's eq. 3 FLOPs per token


def test_every_stack_has_a_source_and_sets_every_flag():
    for s in software_stacks().values():
        assert s.source.strip()
        assert all(getattr(s, f) is not None for f in STACK_FLAGS)


@pytest.mark.parametrize("chip, stack", [("v100-sxm", "megatron-lm-2021"), ("a100-80gb-sxm", "megatron-lm-2021"),
                                         ("h100-sxm", "megatron-core-2024"), ("b200", "megatron-core-2024")])
def test_a_chip_defaults_to_the_stack_of_its_launch_years(chip, stack):
    assert default_stack(load_catalog().accelerator(chip).release_year).id == stack
    spec = load_spec({**NAR21_T1_01, "hardware": {"gpu": chip, "count": 32}})
    assert spec.training.software == stack
    assert spec.parallelism.flash_attention is software_stacks()[stack].flash_attention


def test_a_flag_written_in_the_spec_wins_over_the_stack():
    spec = load_spec({**NAR21_T1_01, "parallelism": {**NAR21_T1_01["parallelism"], "flash_attention": True}})
    assert spec.training.software == "megatron-lm-2021"
    assert spec.parallelism.flash_attention is True
    assert spec.parallelism.overlap_grad_reduce is False


def test_naming_the_stack_overrides_the_chip_default_and_todays_software_is_faster():
    old = estimate(load_spec(NAR21_T1_01))
    new = estimate(load_spec({**NAR21_T1_01, "training": {**NAR21_T1_01["training"],
                                                          "software": "megatron-core-2024"}}))
    assert (old.software, new.software) == ("megatron-lm-2021", "megatron-core-2024")
    assert new.tokens_per_s_per_gpu > 1.2 * old.tokens_per_s_per_gpu


def test_the_2021_runtime_reproduces_the_published_2021_run():
    est = estimate(load_spec(NAR21_T1_01))
    assert est.tokens_per_s_per_gpu == pytest.approx(NAR21_T1_01_TOKENS_PER_S_PER_GPU, rel=0.15)


# Korthikanti et al. 2022 Table 5, 22B on 8 A100: sequence parallelism + selective recompute, as the
# team's reference set writes it (no software named)
KOR22_22B = {"model": {"layers": 48, "hidden": 6144, "ffn_hidden": 24576, "heads": 64, "kv_heads": 64,
                       "vocab": 51200, "seq_len": 2048, "activation": "gelu"},
             "hardware": {"gpu": "a100-80gb-sxm", "count": 8},
             "parallelism": {"tp": 8, "pp": 1, "cp": 1, "dp": 1, "micro_batch": 4, "recompute": "selective",
                             "zero": 0, "sequence_parallel": True},
             "training": {"global_batch": 4}}
KOR22_22B_TOKENS_PER_S_PER_GPU = 928  # Table 5's 22B step, through its App. A FLOPs (validation row KOR22-T5-01)


def test_a_plan_using_what_the_default_lacked_runs_the_release_that_added_it():
    bare = load_spec(KOR22_22B)
    assert bare.training.software == "megatron-lm-2022"
    named = load_spec({**KOR22_22B, "training": {"global_batch": 4, "software": "megatron-lm-2022"}})
    assert estimate(bare).tokens_per_s_per_gpu == pytest.approx(estimate(named).tokens_per_s_per_gpu, rel=1e-12)
    assert estimate(bare).tokens_per_s_per_gpu == pytest.approx(KOR22_22B_TOKENS_PER_S_PER_GPU, rel=0.05)
    # the feature alone decides: each of the two is enough, neither keeps the chip's default
    one = {**KOR22_22B["parallelism"], "recompute": "full"}
    assert load_spec({**KOR22_22B, "parallelism": one}).training.software == "megatron-lm-2022"
    neither = {**one, "sequence_parallel": False}
    assert load_spec({**KOR22_22B, "parallelism": neither}).training.software == "megatron-lm-2021"
    # a stack the spec names is kept even where it lacks what the plan asks for
    old = load_spec({**KOR22_22B, "training": {"global_batch": 4, "software": "megatron-lm-2021"}})
    assert old.training.software == "megatron-lm-2021"


def test_every_successor_is_a_stack_of_the_catalog_and_no_line_loops():
    stacks = software_stacks()
    for s in stacks.values():
        seen = {s.id}
        while s.successor:
            assert s.successor in stacks and s.successor not in seen
            s = stacks[s.successor]
            seen.add(s.id)


@settings(max_examples=200, deadline=None)
@given(year=st.sampled_from([2017, 2020, 2022, 2024]), sp=st.sampled_from([None, True, False]),
       recompute=st.sampled_from([None, "none", "selective", "full"]), block=st.sampled_from([None, 2]))
def test_the_resolved_stack_is_the_default_or_the_first_successor_that_has_what_the_plan_asks(
        year, sp, recompute, block):
    if block is not None and recompute not in (None, "full"):
        recompute = "full"
    plan = ParallelPlan(sequence_parallel=sp, recompute=recompute, recompute_num_layers=block)
    default = default_stack(year)
    got = resolve_stack(None, year, None, plan)
    line = [default]
    while line[-1].successor:
        line.append(software_stacks()[line[-1].successor])
    if plan_needs(plan, default) is None:
        assert got == default
    else:
        admitting = [s for s in line if plan_needs(plan, s) is None]
        assert got == (admitting[0] if admitting else default)
    # a named stack is never replaced; the model's own only where the plan asks what it lacks
    assert resolve_stack("megatron-lm-2021", year, None, plan).id == "megatron-lm-2021"
    own = software_stacks()["pytorch-fsdp-2023"]
    assert resolve_stack(None, year, own.id, plan) == (own if plan_needs(plan, own) is None else got)


def test_an_unknown_stack_names_the_field_and_the_allowed_ones():
    with pytest.raises(UnknownNameError) as e:
        load_spec({**NAR21_T1_01, "training": {"global_batch": 512, "software": "tensorflow-1.15"}})
    msg = str(e.value)
    assert "training.software" in msg and "megatron-lm-2021" in msg and "megatron-core-2024" in msg
    assert "\n" not in msg


def test_block_recompute_is_searched_only_where_the_stack_has_it():
    # MT-NLG 530B on 280 A100 (tp8 pp35, three layers per stage) fits with one layer of each stage
    # recomputed; Megatron-LM 2.x could only recompute all of them (--checkpoint-activations).
    spec = {"model": {"layers": 105, "hidden": 20480, "ffn_hidden": 81920, "heads": 128, "kv_heads": 128,
                      "vocab": 51200, "seq_len": 2048, "activation": "gelu"},
            "hardware": {"gpu": "a100-80gb-sxm", "count": 280},
            "parallelism": {"tp": 8, "pp": 35, "dp": 1, "micro_batch": 1, "vpp": 1, "zero": 0},
            "training": {"global_batch": 280}}
    old = estimate(load_spec(spec))
    new = estimate(load_spec({**spec, "training": {**spec["training"], "software": "megatron-core-2024"}}))
    assert old.parallelism["recompute"] == "full" and old.parallelism["recompute_num_layers"] is None
    assert not software_stacks()["megatron-lm-2021"].recompute_block
    assert software_stacks()["megatron-core-2024"].recompute_block
    assert new.parallelism["recompute"] != "full" or new.parallelism["recompute_num_layers"] is not None


def _zero3(gpu: str, model) -> dict:
    return {"model": model, "hardware": {"gpu": gpu, "count": 64},
            "parallelism": {"tp": 1, "pp": 1, "dp": 64, "zero": 3}, "training": {"global_batch": 256}}


def test_zero3_flavour_is_the_stacks():
    # the stack of the chip's day decides what "zero: 3" is: DeepSpeed ZeRO-3 on 2020-22 software
    # (A100), PyTorch FSDP on Megatron-Core / NeMo 2024 (H100); a named stack or the spec's fsdp wins
    shape = {"layers": 24, "hidden": 2048, "heads": 16, "vocab": 32000, "seq_len": 2048}
    assert estimate(load_spec(_zero3("a100-80gb-sxm", shape))).parallelism["fsdp"] is False
    assert estimate(load_spec(_zero3("h100-sxm", shape))).parallelism["fsdp"] is True
    named = _zero3("a100-80gb-sxm", shape)
    named["training"]["software"] = "pytorch-fsdp-2023"
    assert estimate(load_spec(named)).parallelism["fsdp"] is True
    given = _zero3("a100-80gb-sxm", shape)
    given["parallelism"]["fsdp"] = True
    assert estimate(load_spec(given)).parallelism["fsdp"] is True
    assert {s.id: s.fsdp for s in software_stacks().values()}["megatron-lm-2021"] is False


def test_models_trained_on_fsdp_name_their_stack():
    # MosaicML's MPT ran Composer FSDP with flash attention on A100s too: the catalog model's stack,
    # not the A100's 2021 default (unfused attention, DeepSpeed ZeRO-3)
    est = estimate(load_spec(_zero3("a100-80gb-sxm", "mpt-7b")))
    assert est.software == "pytorch-fsdp-2023"
    assert est.parallelism["fsdp"] is True and est.parallelism["recompute"] in ("none", "full")
    assert estimate(load_spec({"model": "opt-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 992},
                               "parallelism": {"zero": 3}, "training": {}})).software == "metaseq-2022"


def _mpt70b_on(count: int, software: str) -> dict:
    # MosaicML's benchmark plan: 8 sequences per GPU, one micro-batch per step, full recompute
    return {"model": "mpt-70b", "hardware": {"gpu": "h100-sxm", "count": count},
            "parallelism": {"tp": 1, "pp": 1, "dp": count, "micro_batch": 8, "recompute": "full",
                            "zero": 3, "fsdp": True},
            "training": {"global_batch": 8 * count, "software": software}}


def test_composer_fsdp_prices_its_gathers_and_reduce_scatters_in_line_with_the_compute():
    """Composer (2023) leaves FSDP's forward prefetch off and its backward prefetch at
    BACKWARD_POST, and the MPT rows' steps are compute plus the FSDP traffic: the stack overlaps
    neither.  The same plan on Megatron-Core's FSDP hides all but the edges and the SMs' share."""
    composer = software_stacks()["pytorch-fsdp-2023"]
    assert not composer.overlap_param_gather and not composer.overlap_grad_reduce
    assert "BACKWARD_POST" in composer.source and "set_fsdp_default" in composer.source
    est = {n: estimate(load_spec(_mpt70b_on(n, "pytorch-fsdp-2023"))) for n in (128, 512)}
    hidden = estimate(load_spec(_mpt70b_on(512, "megatron-core-2024")))
    tb, th = est[512].time_breakdown_s, hidden.time_breakdown_s
    # three passes over 65 B bf16 weights (two gathers, one reduce-scatter) at a few hundred GB/s:
    # about a second, in line; hidden, only the edges and the SMs' share of it are left
    assert 0.5 < tb["dp_comm"] < 4.0
    assert th["dp_comm"] < 0.3 * tb["dp_comm"]
    # in line, the step is the compute plus that traffic, which grows with the ring
    assert est[512].time_breakdown_s["dp_comm"] > est[128].time_breakdown_s["dp_comm"]
    assert est[512].step_time_s - est[128].step_time_s == pytest.approx(
        est[512].time_breakdown_s["dp_comm"] - est[128].time_breakdown_s["dp_comm"], rel=0.05)


def test_llm_foundry_2023_runs_flash_attention_1_at_half_the_flash_attention_2_rate():
    """llm-foundry 0.2-0.4 pinned flash-attn 1.x (and defaulted MPT to its Triton port): the
    attention core costs twice FlashAttention-2's time (Dao 2023: "around 2x speedup"); the
    rest of the layer is unchanged."""
    from colossim.cost.compute import attention_seconds
    from colossim.cost.efficiency import default_profile

    chip, prof = load_catalog().accelerator("h100-sxm"), default_profile("h100-sxm")
    args = (4, 32, 2048, 2048, 128, 128, True, "bf16", chip, prof)
    for backward in (False, True):
        assert float(attention_seconds(*args, backward=backward, kernel="flash1")) == pytest.approx(
            2.0 * float(attention_seconds(*args, backward=backward)))
    assert software_stacks()["pytorch-fsdp-2023"].attention_kernel == "flash1"
    assert {s.attention_kernel for k, s in software_stacks().items() if k != "pytorch-fsdp-2023"} == {"flash2"}
    mpt = _zero3("h100-sxm", "mpt-7b")
    slow = estimate(load_spec(mpt))
    fast = estimate(load_spec({**mpt, "parallelism": {**mpt["parallelism"], "attention_kernel": "flash2"}}))
    assert 1.0 < slow.step_time_s / fast.step_time_s < 1.3
    with pytest.raises(SpecError, match="attention_kernel"):
        load_spec({**mpt, "parallelism": {**mpt["parallelism"], "attention_kernel": "flash9"}})


def test_the_loss_moves_the_bytes_of_its_kernels_fused_or_not():
    """Megatron's cross entropy on logits.float() moves 38 B per logit forward and 14 backward (one
    kernel per line, fp32 after the cast); flash-attn's fused kernel, llm-foundry's default, 4 and
    4 on the bf16 logits.  The head's memory-bound time and its memory follow; only MosaicML's
    stack fuses it."""
    from colossim.cost.compute import memory_bound_seconds
    from colossim.cost.efficiency import default_profile
    from colossim.training import memory as M
    from colossim.training.ops import logits_ops

    model = load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
                       "parallelism": {}, "training": {}}).model
    mb, tp = 2, 4
    logits = mb * model.seq_len * model.vocab / tp
    for fused, (fwd, bwd) in ((False, (38, 14)), (True, (4, 4))):
        ce = logits_ops(model, mb, model.seq_len, tp, 1, True, cross_entropy_fusion=fused)[-1]
        assert ce.name == "cross_entropy"
        assert float(ce.bytes) == pytest.approx(fwd * logits)
        assert float(ce.backward_bytes) == pytest.approx(bwd * logits)
    assert {k for k, s in software_stacks().items() if s.cross_entropy_fusion} == {"pytorch-fsdp-2023"}

    spec = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
            "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "recompute": "full", "zero": 1},
            "training": {"global_batch": 64}}
    unfused = estimate(load_spec(spec))
    fused = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "cross_entropy_fusion": True}}))
    assert unfused.software == fused.software == "megatron-core-2024"
    # one step = 8 micro-batches per GPU, each saving (38 + 14 - 4 - 4) B per logit of HBM traffic
    chip = load_catalog().accelerator("h100-sxm")
    saved = 8 * float(memory_bound_seconds(44 * model.seq_len * model.vocab, chip, default_profile("h100-sxm")))
    assert unfused.step_time_s - fused.step_time_s == pytest.approx(saved, rel=0.02)
    kept = {f: M.memory_per_gpu(model, micro_batch=1, cross_entropy_fusion=f).activations for f in (False, True)}
    assert float(kept[False] - kept[True]) == pytest.approx((6 - 4) * model.seq_len * model.vocab)


def test_eager_elementwise_ops_move_the_bytes_of_their_kernel_chains():
    """Hugging Face's modeling code runs RMSNorm as six PyTorch kernels in fp32 (36 B per element
    forward, 92 backward), RoPE through rotate_half (20, 30) and SwiGLU as act(gate) * up (10, 18);
    a fused kernel moves 4, 4 and 6 forward and twice that backward.  A LayerNorm, a plain GELU and
    ALiBi positions are one kernel (or none) either way, so an MPT-style block does not change."""
    from colossim.cost.compute import memory_bound_seconds
    from colossim.cost.efficiency import default_profile
    from colossim.training.ops import EAGER_BYTES_PER_ELEMENT, MemoryBound, layer_ops

    model = load_spec({"model": {"name": "llama3-8b", "seq_len": 2048}, "hardware": {"gpu": "h100-sxm", "count": 8},
                       "parallelism": {}, "training": {}}).model
    mb, s, tp = 2, model.seq_len, 1
    tokens = mb * s
    elements = {"norms": 2 * tokens * model.hidden,
                "rope": tokens * (model.heads + model.kv_heads) * model.head_dim,
                "activation": tokens * model.ffn_hidden}
    kind = {"norms": "rmsnorm", "rope": "rope", "activation": "gated"}

    def mem(fusion):
        return {op.name: op for op in layer_ops(model, mb, s, tp, 1, 1, False, elementwise_fusion=fusion)
                if isinstance(op, MemoryBound)}

    fused, eager = mem(True), mem(False)
    assert EAGER_BYTES_PER_ELEMENT == {"rmsnorm": (36, 92), "rope": (20, 30), "gated": (10, 18)}
    for name, n in elements.items():
        fwd, bwd = EAGER_BYTES_PER_ELEMENT[kind[name]]
        assert float(eager[name].bytes) == pytest.approx(fwd * n)
        assert float(eager[name].backward_bytes) == pytest.approx(bwd * n)
        assert fused[name].backward_bytes is None  # twice the forward, BACKWARD_MEMORY_FACTOR
    assert float(fused["norms"].bytes) == pytest.approx(4 * elements["norms"])
    assert float(fused["rope"].bytes) == pytest.approx(4 * elements["rope"])
    assert float(fused["activation"].bytes) == pytest.approx(6 * elements["activation"])
    assert float(eager["residual_adds"].bytes) == float(fused["residual_adds"].bytes)

    # the step pays the difference, per layer and micro-batch, and nothing else changes
    spec = {"model": {"name": "llama3-8b", "seq_len": 2048}, "hardware": {"gpu": "h100-sxm", "count": 8},
            "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": mb, "recompute": "none", "zero": 2},
            "training": {"global_batch": 8 * mb}}
    one = lambda f: estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "elementwise_fusion": f}}))
    a, b = one(True), one(False)
    extra_bytes = sum((sum(EAGER_BYTES_PER_ELEMENT[kind[k]]) - 3 * {"norms": 4, "rope": 4, "activation": 6}[k])
                      * n for k, n in elements.items()) * model.layers
    extra_bytes += (sum(EAGER_BYTES_PER_ELEMENT["rmsnorm"]) - 12) * tokens * model.hidden  # final norm
    chip = load_catalog().accelerator("h100-sxm")
    extra = float(memory_bound_seconds(extra_bytes, chip, default_profile("h100-sxm")))
    assert b.step_time_s - a.step_time_s == pytest.approx(extra, rel=0.05)

    mpt = {"model": "mpt-7b", "hardware": {"gpu": "h100-sxm", "count": 8},
           "parallelism": {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 2, "recompute": "none", "zero": 3},
           "training": {"global_batch": 16, "software": "pytorch-fsdp-2023"}}
    same = [estimate(load_spec({**mpt, "parallelism": {**mpt["parallelism"], "elementwise_fusion": f}}))
            for f in (True, False)]
    assert same[0].step_time_s == same[1].step_time_s


def test_pytorch_native_model_code_is_the_only_eager_stack_and_costs_the_8b_step_about_a_tenth():
    """Stas Bekman's Llama-3.1-8B step on 8 H200 (461 TFLOPS per GPU, Hugging Face model code) is
    priced on its own stack; the eager chains cost it 8-15 % of the step over fused kernels.  The
    other eager stack is torchtitan's (uncompiled by default)."""
    eager = {k for k, s in software_stacks().items() if not s.elementwise_fusion}
    assert eager == {"hf-transformers-2024", "torchtitan-2024"}
    spec = {"model": {"name": "llama3.1-8b", "seq_len": 8192}, "hardware": {"gpu": "h200-sxm", "count": 8},
            "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 8, "micro_batch": 1, "zero": 2},
            "training": {"global_batch": 8, "precision": "bf16", "software": "hf-transformers-2024"}}
    hf = estimate(load_spec(spec))
    fused = estimate(load_spec({**spec, "parallelism": {**spec["parallelism"], "elementwise_fusion": True}}))
    assert hf.software == "hf-transformers-2024"
    assert 1.08 < hf.step_time_s / fused.step_time_s < 1.15


def test_hf_stack_host_time_is_the_part_of_the_step_no_chip_speeds_up():
    """Stas Bekman's Llama-3.1-8B step (DeepSpeed ZeRO-2, 8 GPUs, seq 8k) on H200 and on B200: the
    measured step minus the engine's priced seconds (kernels, communication, optimizer) is nearly the
    same on both chips though B200 computes about twice as fast (0.136 and 0.154 s: B200 borrows the
    H100's held-clock GEMM fraction, its own is not measured), and the stack's host time is its mean."""
    import json

    from colossim.training.estimate import make_context
    from colossim.training.validate import extra_runs

    runs = {r.id: r for r in extra_runs()}
    gaps = []
    for rid in ("STAS25-H200-LLAMA31-8B-8K", "STAS25-B200-LLAMA31-8B-8K"):
        run = runs[rid]
        spec = load_spec(json.loads(run.spec_json))
        host = make_context(spec).host_seconds_per_step
        tokens_per_gpu = spec.training.global_batch * spec.seq_len / spec.hardware.count
        measured = tokens_per_gpu / run.tokens_per_s_per_gpu_measured
        est = estimate(spec)
        assert est.time_breakdown_s["host_overhead"] == host
        gaps.append(measured - (est.step_time_s - host))
    assert abs(gaps[0] - gaps[1]) < 0.02
    assert software_stacks()["hf-transformers-2024"].host_seconds_per_step == pytest.approx(
        sum(gaps) / 2, abs=0.01)
    timed = {"hf-transformers-2024", "megatron-lm-2021", "megatron-lm-2022", "megatron-core-2024", "nemo-2024",
             "pytorch-fsdp-2023", "megatron-deepspeed-2021", "megatron-deepspeed-2022"}
    assert all(s.host_seconds_per_step == 0 for k, s in software_stacks().items() if k not in timed)


def test_loops_that_sync_every_step_take_the_measured_megatron_host_time():
    """Megatron-Core's optimizer step (get_grad_norm_fp32's .item()) and Composer's loop (the loss's
    .cpu().item()) synchronise host and device every step, like the 2022 Megatron-LM loop whose
    host time Korthikanti et al.'s tables measure: they take that figure, and a spec's own
    ``training.host_seconds_per_step`` replaces it in the step."""
    stacks = software_stacks()
    measured = stacks["megatron-lm-2022"].host_seconds_per_step
    assert measured > 0
    for k in ("megatron-core-2024", "nemo-2024", "pytorch-fsdp-2023"):  # NeMo runs Megatron-Core's step
        assert stacks[k].host_seconds_per_step == measured
    # Megatron-DeepSpeed's loop is Megatron-LM 2.x's (its 2021 figure is the 2022 one), and
    # DeepSpeed's PipelineEngine.train_batch builds the step's loss on the host from device tensors
    for k in ("megatron-lm-2021", "megatron-deepspeed-2021", "megatron-deepspeed-2022"):
        assert stacks[k].host_seconds_per_step == measured
    spec = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
            "parallelism": {"tp": 2, "pp": 1, "dp": 4, "micro_batch": 1, "recompute": "full", "zero": 1},
            "training": {"global_batch": 64}}
    base = estimate(load_spec(spec))
    assert base.software == "megatron-core-2024"
    assert base.time_breakdown_s["host_overhead"] == pytest.approx(measured)
    own = estimate(load_spec({**spec, "training": {"global_batch": 64, "host_seconds_per_step": 0.2}}))
    assert own.time_breakdown_s["host_overhead"] == pytest.approx(0.2)
    assert own.step_time_s == pytest.approx(base.step_time_s - measured + 0.2)


#: Korthikanti et al. 2022 Table 4: one 22B layer's forward and backward milliseconds on 8 A100
#: (tp 8), with selective recompute and sequence parallelism, and with full recompute.
KOR22_TABLE4_LAYER_MS = {"KOR22-T5-01": (7.2, 13.1), "KOR22-T5-FULL-01": (7.7, 19.5)}


def test_megatron_host_time_is_the_step_outside_korthikantis_layers():
    """The 22B run's whole step (Table 5) less its 48 layers at the Table 4 times leaves what runs
    outside the layers; less the engine's priced part of that (logits, loss, optimizer), the rest
    is the 2022 stack's host time per step, the same within 16 ms for both recompute modes."""
    import json

    import numpy as np

    from colossim.training import step as S
    from colossim.training.estimate import make_context
    from colossim.training.plans import PlanArrays
    from colossim.training.validate import validation_runs

    runs = {r.id: r for r in validation_runs()}
    gaps = []
    for rid, (fwd_ms, bwd_ms) in KOR22_TABLE4_LAYER_MS.items():
        run = runs[rid]
        spec = load_spec(json.loads(run.spec_json))
        est, ctx = estimate(spec), make_context(spec)
        layer = S._layer_seconds(ctx, PlanArrays.from_dicts([est.parallelism]), "dense")
        layer_s = sum(float(np.ravel(layer[k])[0]) for k in ("compute_fwd", "tp_fwd", "compute_bwd", "tp_bwd"))
        priced_outside = est.step_time_s - ctx.host_seconds_per_step - spec.model.layers * layer_s
        measured = est.step_time_s * est.tokens_per_s_per_gpu / run.tokens_per_s_per_gpu_measured
        gaps.append(measured - spec.model.layers * (fwd_ms + bwd_ms) / 1e3 - priced_outside)
    assert abs(gaps[0] - gaps[1]) < 0.016
    host = software_stacks()["megatron-lm-2022"].host_seconds_per_step
    assert host == pytest.approx(sum(gaps) / 2, abs=0.002)
    assert software_stacks()["megatron-lm-2021"].host_seconds_per_step == host
