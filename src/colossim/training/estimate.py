"""The training engine's front door: estimate one plan, or search the plans a spec leaves open.

``estimate(spec)`` returns a frozen :class:`TrainingEstimate` (the JSON fields of
``colossim train estimate``); ``search(spec, top)`` returns the best ones, best first.  Both are the
same vectorised code: a complete plan is a search space of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from colossim import units
from colossim.cost import comm as C
from colossim.cost.ownership import usd_per_gpu_hour
from colossim.cost.power import profile_for_chip
from colossim.errors import SpecError
from colossim.specs.software import plan_needs, plan_needs_text, software_stacks
from colossim.specs.training import MfuConvention, TrainingWorkload
from colossim.training import flops as F
from colossim.training import lora as L
from colossim.training import memory as M  # noqa: E402
from colossim.training.evidence import validation_evidence
from colossim.training.labels import plan_label
from colossim.training.pipeline import layers_on_slowest_stage, layout_reaches_even_pace, schedule_rule
from colossim.training.plans import RECOMPUTE_CODES, RECOMPUTE_NAMES, PlanArrays
from colossim.training.search import ZERO_STAGES, enumerate_plans, nearest_plan_batches, nearest_plan_counts
from colossim.training.step import (FP8_PARAM_GATHER_BYTES, GRAD_REDUCE_BYTES, PARAM_GATHER_BYTES, StepContext,
                                    evaluate_step)

#: The model-FLOPs conventions ``mfu_by_convention`` reports: the spec's choices.
MFU_CONVENTIONS = tuple(c.value for c in MfuConvention)
#: The convention ``mfu`` reports unless ``training.mfu_convention`` names another: the spec's default.
DEFAULT_MFU_CONVENTION = TrainingWorkload.model_fields["mfu_convention"].default.value

#: The parts of ``time_breakdown_s``, which add up to the step: ``compute`` is the model's forward
#: and backward work, ``recompute`` the forward work activation recomputation repeats (the step
#: model counts it inside its compute; the breakdown shows it apart), the ``*_comm`` parts what each
#: dimension's communication leaves exposed.
TIME_KEYS = ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm",
             "pipeline_bubble", "optimizer_step", "host_overhead")
MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "buffers")

#: What an estimate of a LoRA fine-tuning says about its evidence.
LORA_CAVEAT = ("LoRA: no published LoRA run is in the validation; its frozen weights, adapters and their "
               "collectives are priced op by op")
QLORA_CAVEAT = ("QLoRA: each NF4 dequantization is priced as a memory-bound pass at the chip's measured "
                "bandwidth efficiency; no dequantization kernel was measured")
HYBRID_CAVEAT = ("Hybrid model: no published hybrid run is in the validation; the recurrent mixers' chunked "
                 "scans (Mamba-2's SSD, the gated delta rule) are priced as batched GEMMs by shape and their "
                 "state traffic by bytes; no such kernel was measured")


@dataclass(frozen=True)
class TrainingEstimate:
    """One plan's prediction.  Seconds, tokens, FLOPs and GiB as named."""

    step_time_s: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    model_flops_per_token: float
    mfu: float
    mfu_convention: str
    mfu_by_convention: dict[str, float]
    hfu: float
    tflops_per_gpu: float
    memory_gib_per_gpu: float
    memory_breakdown_gib: dict[str, float]
    fits: bool
    time_breakdown_s: dict[str, float]
    parallelism: dict
    gpus: int
    chip: str
    precision: str
    software: str
    global_batch: int
    """Sequences per optimizer step (the spec's, or :func:`colossim.specs.training.default_global_batch`)."""
    seq_len: int
    global_batch_tokens: int
    time_to_train_days: float | None = None
    gpu_hours: float | None = None
    energy_mwh: float | None = None
    cost_usd: float | None = None
    time_to_train_days_with_failures: float | None = None
    ettr: float | None = None
    assumptions: dict = field(default_factory=dict)
    validation_evidence: dict = field(default_factory=dict)
    """The published runs like this one the engine has been checked on, its error on them and
    where this estimate reaches past them (:func:`colossim.training.evidence.validation_evidence`)."""


@dataclass(frozen=True)
class PlanSpace:
    """Every plan a search priced, as parallel arrays (one element per plan): what a chart of the
    search shows.  A search prices only the plans that fit memory (and, for a complete plan that
    does not fit, that one plan)."""

    plans: PlanArrays
    step_time_s: np.ndarray
    tokens_per_s_per_gpu: np.ndarray
    memory_gib_per_gpu: np.ndarray

    def __len__(self) -> int:
        return len(self.step_time_s)


@dataclass(frozen=True)
class SearchResult:
    best: list[TrainingEstimate]
    configs_evaluated: int
    configs_fitting: int
    configs_per_s: float
    seconds: float
    space: PlanSpace | None = None


def make_context(spec, profile=None) -> StepContext:
    """Step context of a spec: the default calibration profile of its chip unless one is given."""
    chip = spec.hardware.accelerator
    prof = profile if profile is not None else profile_for_chip(chip)
    net = C.network_of_hardware(spec.hardware)
    return StepContext(model=spec.model, system=spec.hardware, global_batch=spec.training.global_batch,
                       seq_len=spec.seq_len, precision=spec.training.precision.value, profile=prof,
                       network=net, flash_attention=spec.parallelism.flash_attention,
                       attention_kernel=spec.parallelism.attention_kernel or "flash2",
                       cross_entropy_fusion=bool(spec.parallelism.cross_entropy_fusion),
                       elementwise_fusion=spec.parallelism.elementwise_fusion is not False,
                       overlap_grad_reduce=spec.parallelism.overlap_grad_reduce,
                       overlap_param_gather=spec.parallelism.overlap_param_gather,
                       overlap_p2p_comm=spec.parallelism.overlap_p2p_comm,
                       pipeline_grad_scatter_gather=spec.parallelism.pipeline_grad_scatter_gather is not False,
                       tp_async_backward=spec.parallelism.tp_async_backward,
                       tp_overlap_sm_margin=spec.parallelism.tp_overlap_sm_margin,
                       gradient_accumulation_fusion=spec.parallelism.gradient_accumulation_fusion is not False,
                       moe_dispatch=spec.parallelism.moe_dispatch,
                       moe_fp8_dispatch=spec.parallelism.moe_fp8_dispatch,
                       moe_grouped_gemm=spec.parallelism.moe_grouped_gemm is True,
                       ep_comm_overlap=spec.parallelism.ep_comm_overlap,
                       pipeline_schedule=spec.parallelism.pipeline_schedule or "1f1b",
                       balance_stages=bool(spec.parallelism.uneven_stages and spec.parallelism.balance_stages),
                       host_seconds_per_step=_host_seconds(spec.training),
                       dp_grad_bytes=GRAD_REDUCE_BYTES[spec.parallelism.grad_reduce_dtype or "fp32"],
                       param_gather_bytes=(FP8_PARAM_GATHER_BYTES if spec.parallelism.fp8_param_gather
                                           and spec.training.precision.value == "fp8" else PARAM_GATHER_BYTES),
                       moe_load_imbalance=spec.training.moe_load_imbalance,
                       lora=spec.training.lora, document_tokens=spec.training.document_tokens,
                       selective_recompute=spec.parallelism.selective_recompute or "attention")


def _host_seconds(workload) -> float:
    """The spec's own host time per step when it gives one, else its software stack's (0 without
    one)."""
    if workload.host_seconds_per_step is not None:
        return workload.host_seconds_per_step
    stack = software_stacks().get(workload.software) if workload.software else None
    return stack.host_seconds_per_step if stack else 0.0


def _memory(ctx: StepContext, plans: PlanArrays):
    """Memory breakdown (bytes per GPU, arrays) of every plan."""
    return M.memory_per_gpu(
        ctx.model, tp=plans.tp, pp=plans.pp, cp=plans.cp, ep=plans.ep, dp=plans.dp, vpp=plans.vpp,
        micro_batch=plans.micro_batch, recompute=plans.recompute, zero=plans.priced_zero,
        sequence_parallel=plans.sequence_parallel, precision=ctx.precision,
        global_batch=ctx.global_batch, seq_len=ctx.seq_len, flash_attention=ctx.flash_attention,
        cross_entropy_fusion=ctx.cross_entropy_fusion, fsdp=plans.fsdp, recompute_layers=plans.recompute_layers,
        schedule=ctx.pipeline_schedule, etp=plans.etp, selective_recompute=ctx.selective_recompute,
        moe_load_imbalance=ctx.moe_load_imbalance, shard=plans.shard, lora=ctx.lora,
        grad_buffer_bytes=ctx.dp_grad_bytes, fp8_params=ctx.fp8_params)


def _time_breakdown(t: dict[str, np.ndarray], i: int) -> dict[str, float]:
    """Plan ``i``'s step in the parts of :data:`TIME_KEYS` (recompute taken out of compute)."""
    parts = {k: float(t[k][i]) for k in TIME_KEYS}
    parts["compute"] -= parts["recompute"]
    return parts


def fewest_recompute_layers(ctx: StepContext, plans: PlanArrays, capacity_bytes: float) -> PlanArrays:
    """Full-recompute plans (of a spec that leaves recompute open) get the fewest layers per stage
    that bring them under ``capacity_bytes`` (memory is linear in that count above one layer);
    those that fit only with every layer recomputed keep 0 (all).  A plan that fits without
    recompute is also a candidate, so the search still finds it."""
    full = (plans.recompute == RECOMPUTE_CODES["full"]) & (plans.recompute_layers == 0)
    if not full.any():
        return plans
    stage = layers_on_slowest_stage(ctx.model.layers, plans.pp)
    m_all = np.asarray(_memory(ctx, plans).total)
    m_one = np.asarray(_memory(ctx, plans.with_recompute_layers(np.where(full, 1, plans.recompute_layers))).total)
    # M(k) = M(1) + (k - 1) / (L - 1) (M(L) - M(1)); fewest k with M(k) <= capacity
    saving = np.maximum(m_one - m_all, 1e-9)
    k = 1.0 + np.ceil(np.maximum(m_one - capacity_bytes, 0.0) / saving * np.maximum(stage - 1.0, 0.0))
    k = np.where(full & (m_all <= capacity_bytes) & (k < stage), k, 0)
    return plans.with_recompute_layers(np.where(full, k, plans.recompute_layers))


def _results(spec, ctx: StepContext, plans: PlanArrays, t: dict, mem, idx: np.ndarray,
             custom_profile: bool = False) -> list[TrainingEstimate]:
    chip = spec.hardware.accelerator
    n = spec.hardware.count
    tokens_per_step = ctx.global_batch * ctx.seq_len
    peak = chip.peak_flops_per_s(ctx.precision) or chip.peak_flops_per_s("bf16")
    span = ctx.attention_span  # attention keys per query run over the document, packed or not
    conv = {c: F.model_flops_per_token(ctx.model, span, c, lora=ctx.lora) for c in MFU_CONVENTIONS}
    reported = spec.training.mfu_convention.value
    hbm = spec.hardware.hbm_bytes
    usd_h, cost_assumptions = usd_per_gpu_hour(spec.hardware)
    hw_flops_no_recompute = F.hardware_flops_per_token(ctx.model, span, "none", lora=ctx.lora)
    full_share = plans.recompute_fraction(layers_on_slowest_stage(ctx.model.layers, plans.pp))
    evidence = validation_evidence(chip.id, spec.training.software, n, ctx.precision, ctx.model.is_moe,
                                   custom_profile=custom_profile, batch_tokens=tokens_per_step)
    base_assumptions = {"moe_load_imbalance": ctx.moe_load_imbalance} if ctx.model.is_moe else {}
    if ctx.document_tokens is not None:
        base_assumptions["document_tokens"] = span
    if ctx.model.is_hybrid:
        evidence = {**evidence, "caveats": [*evidence["caveats"], HYBRID_CAVEAT]}
        base_assumptions["hybrid_layers"] = dict(ctx.model.layer_kinds)
    if ctx.lora is not None:
        extra = [LORA_CAVEAT, QLORA_CAVEAT] if ctx.lora.quantized else [LORA_CAVEAT]
        evidence = {**evidence, "caveats": [*evidence["caveats"], *extra]}
        base_assumptions.update(lora_rank=ctx.lora.rank, lora_targets=list(ctx.lora.targets),
                                lora_base_precision=ctx.lora.base,
                                trainable_params=L.adapter_params(ctx.model, ctx.lora))
    stack = software_stacks()[spec.training.software]
    needs = plan_needs(spec.parallelism, stack)
    what_if = plan_needs_text(spec.parallelism, stack, needs) if needs else None
    chip_notes = []
    if ctx.precision == "bf16" and chip.dense_tflops_bf16 is None:
        chip_notes.append(f"{chip.id} has no bf16 tensor cores: bf16 is priced at its 16-bit (fp16) rate, as "
                          "a run in fp16 with loss scaling would go")
    if spec.training.tokens and not cost_assumptions["chip_price_usd"]:
        chip_notes.append(f"cost_usd counts energy only: the catalog has no price for {chip.id}")
    if chip_notes:
        evidence = {**evidence, "caveats": [*evidence["caveats"], *chip_notes]}
    out = []
    for i in idx:
        plan = plans.plan_dict(int(i))
        step = float(t["step_time_s"][i])
        tps = tokens_per_step / step
        per_gpu = tps / n
        rc = RECOMPUTE_NAMES[int(plans.recompute[i])]
        # HFU: the reported MFU convention plus the FLOPs recomputation adds (same attention
        # counting, so HFU >= MFU and equal without recompute).
        recompute_ratio = F.hardware_flops_per_token(
            ctx.model, span, rc, selective_recompute=ctx.selective_recompute,
            lora=ctx.lora) / hw_flops_no_recompute
        # block recompute: only the recomputed share of the layers adds FLOPs
        frac = float(full_share[i]) if rc == "full" else 1.0
        recompute_ratio = 1.0 + frac * (recompute_ratio - 1.0)
        hw_flops = conv[reported] * recompute_ratio
        mfu = {c: conv[c] * per_gpu / peak for c in MFU_CONVENTIONS}
        mem_b = {k: float(getattr(mem, k)[i]) for k in MEMORY_KEYS}
        total = float(mem.total[i])
        est = dict(
            step_time_s=step, tokens_per_s=tps, tokens_per_s_per_gpu=per_gpu,
            model_flops_per_token=conv[reported], mfu=mfu[reported], mfu_convention=reported,
            mfu_by_convention=mfu, hfu=hw_flops * per_gpu / peak,
            tflops_per_gpu=conv[reported] * per_gpu / units.TERA,
            memory_gib_per_gpu=units.bytes_to_gib(total),
            memory_breakdown_gib={k: units.bytes_to_gib(v) for k, v in mem_b.items()},
            fits=bool(total <= hbm), time_breakdown_s=_time_breakdown(t, int(i)),
            parallelism={**plan, "pipeline_schedule": ctx.pipeline_schedule,
                         "pipeline_grad_scatter_gather": ctx.pipeline_grad_scatter_gather,
                         # what the memory's gradients and fp8 weights rest on
                         "grad_reduce_dtype": spec.parallelism.grad_reduce_dtype or "fp32",
                         "fp8_param_gather": ctx.fp8_params},
            gpus=n, chip=chip.id, precision=ctx.precision,
            software=spec.training.software, global_batch=int(ctx.global_batch), seq_len=int(ctx.seq_len),
            global_batch_tokens=int(tokens_per_step),
            # the routing balance an MoE estimate rests on (the spec's, default perfect balance),
            # and a LoRA's adapters
            assumptions=dict(base_assumptions),
            validation_evidence=_plan_evidence(evidence, plan, spec.hardware.scaleup_domain_size,
                                               spec.hardware.count, what_if,
                                               _layout_note(spec.model.layers, plan["pp"], stack)),
        )
        if spec.training.tokens:
            seconds = spec.training.tokens / tps
            gpu_hours = seconds * n / units.SECONDS_PER_HOUR
            est.update(time_to_train_days=seconds / units.SECONDS_PER_DAY, gpu_hours=gpu_hours,
                       energy_mwh=gpu_hours * cost_assumptions["watts_per_gpu_all_in"] / units.MEGA,
                       cost_usd=gpu_hours * usd_h, assumptions={**est["assumptions"], **cost_assumptions})
        out.append(TrainingEstimate(**est))
    return out


def _layout_note(layers: int, pp: int, stack) -> str | None:
    """The caveat of a pipeline the stack cannot split at the pace the estimate prices,
    ceil(layers / pp) a stage (:func:`layout_reaches_even_pace`): 80 layers on 31 stages under
    Megatron-Core's equal middle stages hold 11 on an end stage, not 3; None where it can."""
    if bool(layout_reaches_even_pace(layers, pp, stack.pipeline_layout)):
        return None
    return (f"pp {pp}: {stack.id} cannot split {layers} layers over {pp} stages with at most "
            f"{-(-layers // pp)} on each (pipeline_layout {stack.pipeline_layout}); priced at that pace, "
            "so the step is optimistic")


def _plan_evidence(evidence: dict, plan: dict, domain: int, gpus: int, *notes: str | None) -> dict:
    """The spec's validation evidence, with ``notes`` (the caveats the caller found, None where it
    found none: a plan that asks its named software for something it did not have,
    :func:`plan_needs_text`; a pipeline the software cannot split at the priced pace,
    :func:`_layout_note`), a caveat for a plan whose tp spans or straddles the ``domain``-GPU
    scale-up domains of ``gpus`` (no published run in the validation puts TP traffic on the
    scale-out network) and one for a ZeRO shard over part of the data-parallel ranks (none
    shards that way)."""
    caveats, tp = [n for n in notes if n], plan["tp"]
    if tp > domain:
        caveats.append(f"tp {tp} spans {-(-tp // domain)} scale-up domains of {domain} GPUs: its collectives "
                       "cross the scale-out network, which none of the validation's runs does")
    elif bool(C.straddles_domains(tp, domain, gpus)):
        caveats.append(f"tp {tp} does not divide the {domain}-GPU scale-up domain: some of its groups straddle "
                       "two domains and their collectives cross the scale-out network, which none of the "
                       "validation's runs does")
    if plan.get("shard_group"):
        caveats.append(f"ZeRO shards over groups of {plan['shard_group']} of the {plan['dp'] * plan['cp']} "
                       "data x context ranks (shard_group), which none of the validation's runs does")
    return {**evidence, "caveats": [*evidence["caveats"], *caveats]} if caveats else evidence


#: Plan fields that set the shape of the search space (named in the error when nothing is left).
PLAN_SHAPE_FIELDS = ("tp", "pp", "cp", "ep", "etp", "dp", "vpp", "micro_batch", "zero", "shard_group")


def stack_space(spec) -> dict:
    """What the spec's software stack lets a left-open plan field take, as
    :func:`colossim.training.search.enumerate_plans`'s keyword arguments: its recompute modes, its
    ZeRO stages (where a written zero 3 would run other software, its plans are that software's:
    search()), those it pairs with a pipeline, and how it splits the layers."""
    stack = software_stacks()[spec.training.software]
    zero_stages = tuple(z for z in ZERO_STAGES if z in stack.zero_choices
                        and (z < 3 or spec.zero3_alternative is None))
    return dict(recompute_modes=stack.recompute_choices, zero_stages=zero_stages,
                pipelined_zero_stages=(0, 1) if stack.zero1_under_pipeline else (0,),
                pipeline_layout=stack.pipeline_layout)


def plan_space(spec, profile=None) -> tuple[StepContext, PlanArrays]:
    """A spec's step context and every valid plan it leaves open under its software stack
    (:func:`stack_space`), before any memory pruning."""
    ctx = make_context(spec, profile)
    return ctx, enumerate_plans(spec.model, spec.hardware, spec.parallelism, ctx.global_batch,
                                ctx.seq_len, **stack_space(spec))


#: How far the does-not-fit advice looks for GPUs: counts doubled up to this multiple of the spec's.
#: Because: the fewest GPUs that hold the model is worth saying even when it is a different
#: cluster (DeepSeek-V3 from one 8-GPU node: 256), and ten doublings cost ten enumerations
#: and memory passes, well under a second for the catalog's models.
FIT_ADVICE_GPU_FACTOR = 1024
#: How far it looks for shorter sequences: halved down to the spec's over this.  Because: a
#: sequence a sixteenth as long is a different run; shorter ones would only be named to say
#: that the activations are not what overflows.
FIT_ADVICE_SEQ_FACTOR = 16


def _with_recompute_layers(spec, ctx: StepContext, plans: PlanArrays, stack) -> PlanArrays:
    """``plans`` as the search prices them: under a stack with Megatron's block method and a spec
    that leaves recompute open, full-recompute plans with their fewest recomputed layers
    (:func:`fewest_recompute_layers`)."""
    if (stack.recompute_block and spec.parallelism.recompute is None
            and spec.parallelism.recompute_num_layers is None):
        return fewest_recompute_layers(ctx, plans, spec.hardware.hbm_bytes)
    return plans


def _leanest_bytes(spec) -> float | None:
    """The least memory per GPU (bytes) of any plan ``spec`` leaves open, as the search prices it;
    None when no plan is valid."""
    ctx, plans = plan_space(spec)
    if len(plans) == 0:
        return None
    plans = _with_recompute_layers(spec, ctx, plans, software_stacks()[spec.training.software])
    return float(np.min(_memory(ctx, plans).total))


def _fit_remedies(spec, lean: dict) -> str:
    """What would make a spec whose leanest plan ``lean`` does not fit memory fit, each change
    checked by pricing the changed spec's leanest plan: the fewest GPUs (doublings of the count,
    up to :data:`FIT_ADVICE_GPU_FACTOR` times it); full recompute, ZeRO-3, a micro-batch of 1 and
    flash attention where the leanest plan has something else; shards over the whole data-parallel
    group where the spec sets a smaller ``shard_group``; the longest sequence (halvings,
    down to 1 / :data:`FIT_ADVICE_SEQ_FACTOR`).  Only the changes that fit are named, as field and value; when
    none does, the message says how far it looked."""
    hbm = spec.hardware.hbm_bytes

    def fits(changed) -> bool:
        need = _leanest_bytes(changed)
        return need is not None and need <= hbm

    def plan_with(**update):
        return replace(spec, parallelism=spec.parallelism.model_copy(update=update))

    n = spec.hardware.count
    more = next((n << k for k in range(1, int(np.log2(FIT_ADVICE_GPU_FACTOR)) + 1)
                 if fits(replace(spec, hardware=replace(spec.hardware, count=n << k)))), None)
    found = [f"hardware.count {more:,}"] if more else []
    tried = [f"{FIT_ADVICE_GPU_FACTOR:,}x the GPUs (hardware.count {n * FIT_ADVICE_GPU_FACTOR:,})"]
    changes = {"recompute": ("full", "full recompute"), "zero": (3, "ZeRO-3"),
               "micro_batch": (1, "a micro-batch of 1"), "flash_attention": (True, "flash attention")}
    lean_now = {**lean, "flash_attention": spec.parallelism.flash_attention}
    for name, (value, words) in changes.items():
        if lean_now.get(name) in (value, None):
            continue
        tried.append(words)
        if fits(plan_with(**{name: value})):
            found.append(f"parallelism.{name} {str(value).lower()}")
    if spec.parallelism.shard_group is not None:
        tried.append("shards over the whole dp x cp group")
        if fits(plan_with(shard_group=None)):
            found.append("parallelism.shard_group left out (shards over the whole dp x cp group)")
    seq = spec.seq_len
    shorter = next((seq >> k for k in range(1, int(np.log2(FIT_ADVICE_SEQ_FACTOR)) + 1) if seq >> k >= 1 and fits(
        replace(spec, model=spec.model.model_copy(update={"seq_len": seq >> k})))), None)
    if shorter:
        found.append(f"training.seq_len {shorter:,}")
    if not found:
        tried.append(f"1/{FIT_ADVICE_SEQ_FACTOR} of the sequence (training.seq_len "
                     f"{max(seq // FIT_ADVICE_SEQ_FACTOR, 1):,})")
        return "; nothing tried fits: up to " + ", ".join(tried[:-1]) + " or " + tried[-1]
    return "; it fits with " + ", or ".join(found)


def _shard_rule(shard_group: int | None) -> str:
    """The no-plan error's clause for a fixed ``shard_group``; empty when the spec sets none."""
    return ("" if shard_group is None else
            f"; shard_group {shard_group} must divide dp x cp, and goes with zero 1-3")


def _layout_rule(stack) -> str:
    """The no-plan error's clause for how the stack splits layers over stages (``pipeline_layout``)."""
    return {"any": "",
            "even": f" or under {stack.id}, whose pipeline_layout is even",
            "first_last": f"; under {stack.id}, whose pipeline_layout is first_last, equal middle stages "
                          "with at most ceil(layers / pp) layers on any"}[stack.pipeline_layout]


def _schedule_rule(schedule: str) -> str:
    """The no-plan error's clause for a pipeline schedule that rules plans out
    (:func:`colossim.training.pipeline.schedule_rule`); empty for 1F1B, which allows all."""
    rule = schedule_rule(schedule)
    return f"; pipeline_schedule {schedule} needs {rule}" if rule else ""


def _nearest_hint(spec, ctx: StepContext, stack) -> str:
    """The no-plan error's closing advice: the nearest GPU counts and global batches that admit a
    plan (:func:`colossim.training.search.nearest_plan_counts` / ``nearest_plan_batches``), and
    the plain 1F1B schedule where the plan's own (the stack's DualPipe, say) is what rules every
    plan out."""
    args = (spec.model, spec.hardware, spec.parallelism, ctx.global_batch, ctx.seq_len)
    space = stack_space(spec)
    found = {"hardware.count": nearest_plan_counts(*args, **space),
             "training.global_batch": nearest_plan_batches(*args, **space)}
    parts = [f"{name} {' or '.join(f'{m:,}' for m in near if m is not None)}"
             for name, near in found.items() if any(m is not None for m in near)]
    if ctx.pipeline_schedule != "1f1b":
        plain = spec.parallelism.model_copy(update={"pipeline_schedule": "1f1b"})
        if len(enumerate_plans(spec.model, spec.hardware, plain, ctx.global_batch, ctx.seq_len, **space)):
            parts.append("parallelism.pipeline_schedule 1f1b")
    return f"; nearest that admit a plan: {', or '.join(parts)}" if parts else ""


def search(spec, top: int = 10, profile=None, include_unfit: bool = False) -> SearchResult:
    """Every valid plan the spec allows, priced at once; the ``top`` fastest that fit, best first.
    Where a written ``zero: 3`` would run other software (``spec.zero3_alternative``), the ZeRO-3
    plans are priced on that software and the others on the spec's own, and the two ranked
    together, each estimate naming its ``software``: a plan the search recommends, written down,
    is priced the same.  When neither side has a plan, the spec's own side's error is raised, or
    where neither fits memory the ZeRO-3 side's (its leanest plan is the leaner)."""
    alternative = spec.zero3_alternative
    if alternative is None:
        return _search_one(spec, top, profile, include_unfit)
    t0 = time.perf_counter()
    found, errors = [], []
    for side in (spec, alternative):
        try:
            found.append(_search_one(side, top, profile, include_unfit))
        except SpecError as e:
            errors.append(e)
    if not found:
        # neither fits: the ZeRO-3 side's leanest plan is the leaner one to name
        own, other = errors
        raise other if own.field == other.field == "hardware.count" else own
    dt = time.perf_counter() - t0
    best = sorted((e for r in found for e in r.best), key=lambda e: e.step_time_s)[:top]
    evaluated = sum(r.configs_evaluated for r in found)
    spaces = [r.space for r in found if r.space is not None]
    space = PlanSpace(PlanArrays.concatenate([sp.plans for sp in spaces]),
                      *(np.concatenate([getattr(sp, k) for sp in spaces])
                        for k in ("step_time_s", "tokens_per_s_per_gpu", "memory_gib_per_gpu")))
    return SearchResult(best, evaluated, sum(r.configs_fitting for r in found),
                        evaluated / dt if dt > 0 else float("inf"), dt, space)


def _search_one(spec, top: int, profile, include_unfit: bool) -> SearchResult:
    """:func:`search` over the plans of the spec's own software."""
    t0 = time.perf_counter()
    ctx, plans = plan_space(spec, profile)
    stack = software_stacks()[spec.training.software]
    if len(plans) == 0:
        given = {k: v for k, v in spec.parallelism.model_dump().items()
                 if k in PLAN_SHAPE_FIELDS and v is not None}
        fixed = ", ".join(f"{k} {v}" for k, v in given.items()) or "none"
        raise SpecError(
            f"no valid parallel plan for GPUs {spec.hardware.count}, global_batch {ctx.global_batch}, "
            f"layers {spec.model.layers}, heads {spec.model.heads} (fixed: {fixed}): tp must divide heads "
            f"(within the {spec.hardware.scaleup_domain_size}-GPU scale-up domain, and dividing it, unless tp "
            "is fixed or parallelism.tp_beyond_domain is true), pp must fit the layers "
            f"(divide them when uneven_stages is false{_layout_rule(stack)}), "
            "tp x pp x cp x dp must equal the GPU count, "
            "dp x micro_batch must divide global_batch, ep must divide the experts and dp x cp (tp x cp "
            "x dp / etp with an etp below tp), vpp > 1 needs the layers of a stage a multiple of vpp and "
            "the micro-batches a multiple of pp, and zero 2-3 goes with pp > 1 only when the spec fixes "
            f"both{_shard_rule(spec.parallelism.shard_group)}{_schedule_rule(ctx.pipeline_schedule)}"
            f"{_nearest_hint(spec, ctx, stack)}",
            field="parallelism", value=given)
    plans = _with_recompute_layers(spec, ctx, plans, stack)
    mem = _memory(ctx, plans)
    fit = np.asarray(mem.total) <= spec.hardware.hbm_bytes
    cand = np.nonzero(fit | include_unfit)[0]
    if cand.size == 0:
        best = int(np.argmin(mem.total))
        need = units.bytes_to_gib(float(mem.total[best]))
        have = units.bytes_to_gib(spec.hardware.hbm_bytes)
        lean = plans.plan_dict(best)
        raise SpecError(
            f"model does not fit: the leanest plan ({plan_label(lean)}) needs {need:.1f} GiB per GPU, "
            f"the {spec.hardware.accelerator.id} has {have:.1f} GiB{_fit_remedies(spec, lean)}",
            field="hardware.count")
    sub = plans.take(cand)
    t = evaluate_step(ctx, sub)
    order = np.argsort(t["step_time_s"], kind="stable")[:top]
    sub_mem = type(mem)(**{k: np.asarray(getattr(mem, k))[cand] for k in (*MEMORY_KEYS, "total")})
    best = _results(spec, ctx, sub, t, sub_mem, order, custom_profile=profile is not None)
    step = np.asarray(t["step_time_s"], dtype=float)
    space = PlanSpace(sub, step, ctx.global_batch * ctx.seq_len / step / spec.hardware.count,
                      np.asarray(sub_mem.total, dtype=float) / units.GIB)
    dt = time.perf_counter() - t0
    return SearchResult(best, len(plans), int(cand.size), len(plans) / dt if dt > 0 else float("inf"), dt,
                        space)


def estimate(spec, profile=None) -> TrainingEstimate:
    """The prediction for the spec's plan; fields it omits are searched (the best plan is used).
    A complete plan (``ep`` may be omitted for a dense model) that does not fit memory is still
    estimated, with ``fits`` false."""
    missing = set(spec.parallelism.missing) - (set() if spec.model.is_moe else {"ep"})
    return search(spec, top=1, profile=profile, include_unfit=not missing).best[0]
