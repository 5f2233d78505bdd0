"""The software stack a training job runs on, and what it changes in the cost model.

A published step time measures a chip *and* the software of its day: Megatron-LM of 2021 computed
attention as batched GEMMs over the s x s scores, reduced gradients after the last backward pass
and waited at every pipeline boundary; Megatron-Core of 2024 runs fused (flash) attention and
overlaps each of those with compute.  The same plan on the same A100s differs by 30-75 % between
the two (Narayanan et al. 2021 Table 1, 1.7B: 77 % faster with today's software).

``training.software`` names a stack from ``catalog/data/software_stacks.csv``; its flags fill the
plan's :data:`STACK_FLAGS` (flash attention, the ``overlap_*`` flags, the MoE dispatch and overlap,
the pipeline schedule, the ZeRO-3 flavour ``fsdp``) where the spec leaves them out (a flag written in the spec always wins); a
stack may also fix ``sequence_parallel``, narrow the recompute modes and ZeRO stages the search
tries, rule out partial (block) full recompute, tensor, pipeline or context parallelism, and say
how it splits layers over pipeline stages (``pipeline_layout``), for software that did not have
them.
Without ``training.software`` the chip's launch decides (:func:`default_stack`): the stack with the
latest ``default_for_chips_released_from`` year not after the chip's release year.  That is a
modelling assumption, stated here: a spec that names an A100 and nothing about its software is
taken to describe the software its published runs used; to plan an A100 cluster with today's
software, write ``training.software: megatron-core-2024``.  A plan that asks for something that
stack did not have (sequence parallelism, selective or block recompute) ran a later release: the
stack's ``successor`` in its line, the first that has it (:func:`plan_needs`); Korthikanti et
al. 2022's runs on A100s thus price as Megatron-LM 3.0, the release that introduced them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from colossim.catalog.loader import data_path, load_models
from colossim.errors import UnknownNameError
from colossim.specs.plan import (AttentionKernel, EpCommOverlap, GradReduceDtype, MoeDispatch, ParallelPlan,
                                 PipelineSchedule, Recompute, SelectiveRecompute)

#: The plan fields a stack decides when the spec leaves them out.
STACK_FLAGS = ("flash_attention", "attention_kernel", "cross_entropy_fusion", "elementwise_fusion",
               "overlap_grad_reduce", "overlap_param_gather", "overlap_p2p_comm", "tp_async_backward", "tp_overlap",
               "gradient_accumulation_fusion", "grad_reduce_dtype", "fp8_param_gather",
               "moe_dispatch", "moe_fp8_dispatch", "moe_grouped_gemm", "ep_comm_overlap", "pipeline_schedule", "fsdp",
               "balance_stages", "moe_parallel_folding", "selective_recompute",
               "pipeline_grad_scatter_gather")


class SoftwareStack(BaseModel):
    """One row of ``software_stacks.csv``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    flash_attention: bool
    attention_kernel: AttentionKernel = Field(description="generation of the fused attention kernel "
                                              "(flash2, flash1 or flash3; see ParallelPlan.attention_kernel)")
    cross_entropy_fusion: bool = Field(description="the loss runs as one fused kernel each way (see "
                                       "ParallelPlan.cross_entropy_fusion)")
    elementwise_fusion: bool = Field(description="norms, rotary embedding and gated activation as one "
                                     "kernel each way; false: PyTorch eager, kernel by kernel (see "
                                     "ParallelPlan.elementwise_fusion)")
    overlap_grad_reduce: bool
    overlap_param_gather: bool
    overlap_p2p_comm: bool
    tp_async_backward: bool = Field(description="the backward's input-gradient TP collective of each "
                                    "column-parallel linear overlaps its weight-gradient GEMM (see "
                                    "colossim.training.step.tp_backward_exposed_seconds)")
    tp_overlap: bool = Field(description="TP communication overlapped with the GEMMs it feeds (Transformer "
                             "Engine userbuffers, see colossim.training.step.tp_overlap_exposed_seconds)")
    gradient_accumulation_fusion: bool = Field(description="the weight-gradient GEMMs accumulate into the "
                                               "fp32 gradient buffer themselves; false: a separate "
                                               "memory-bound pass per micro-batch (see "
                                               "ParallelPlan.gradient_accumulation_fusion)")
    grad_reduce_dtype: GradReduceDtype = Field("fp32", description="the dtype of the data-parallel "
                                                "gradient reduction, fp32 or bf16 (see "
                                                "ParallelPlan.grad_reduce_dtype)")
    fp8_param_gather: bool = Field(False, description="fp8 runs keep fp8 weights and all-gather them at "
                                   "one byte each under the distributed optimizer (see "
                                   "ParallelPlan.fp8_param_gather)")
    run_sources: str | None = Field(None, description="';'-separated phrases: a published run whose "
                                    "source names one of them ran this stack (NeMo's performance "
                                    "tables); the validation reads a run that names no stack this way "
                                    "(colossim.training.validate.with_run_software)")
    fsdp: bool = Field(description="what ZeRO stage 3 is under this stack: true, PyTorch FSDP / FairScale "
                       "(one flat parameter gathered per layer); false, DeepSpeed ZeRO-3 of 2020-2022 "
                       "(one gather per weight tensor, the small ones persistent, weights fetched again "
                       "for the recompute forward; see colossim.training.step.deepspeed_layer_tensors)")
    sequence_parallel: bool | None = Field(None, description="the value a plan that leaves sequence "
                                           "parallelism open gets; blank: searched")
    recompute_modes: str = Field(description="';'-separated recompute modes the search may pick")
    zero_stages: str = Field(description="';'-separated ZeRO stages the stack runs (0 plain data "
                             "parallelism, 1 sharded optimizer state, 2 and gradients, 3 and weights): the "
                             "stages a search may pick; a spec fixing another asks for software the stack "
                             "lacked (see plan_needs)")
    zero1_under_pipeline: bool = Field(True, description="the search may pair ZeRO-1 (a sharded optimizer) "
                                       "with pipeline parallelism; false: the stack's sharded stages came "
                                       "from software without its pipeline schedule (Megatron-LM 2.x had "
                                       "no distributed optimizer; Megatron-DeepSpeed's ZeRO ran without it). "
                                       "A plan that fixes both is priced as written")
    recompute_block: bool = Field(description="full recompute may cover only some of a stage's layers "
                                  "(Megatron's block method, recompute_num_layers): the search then "
                                  "recomputes the fewest layers that fit; false: every layer")
    moe_dispatch: MoeDispatch = Field(description="how MoE tokens reach their experts' GPUs: 'alltoall' "
                                      "sends every (token, expert) copy; 'dedup' sends a token once per "
                                      "destination GPU in its domain and once per destination domain over "
                                      "the scale-out fabric (see colossim.training.step.moe_dispatch_copies)")
    moe_fp8_dispatch: bool = Field(description="fp8 training dispatches tokens in FP8 (combine in bf16)")
    moe_grouped_gemm: bool = Field(description="a layer's local routed experts run as one grouped GEMM each way "
                                   "(see ParallelPlan.moe_grouped_gemm); false: one GEMM per expert")
    ep_comm_overlap: EpCommOverlap = Field(description="what the expert all-to-all hides under: 'none', "
                                           "'shared_experts' (the shared experts' compute), 'micro_batch' "
                                           "(another micro-batch's forward/backward, DualPipe)")
    pipeline_schedule: PipelineSchedule = Field(description="the pipeline schedule: '1f1b' (interleaved "
                                                "with vpp > 1), 'zb1p' (zero-bubble ZB-H1), 'dualpipe' or "
                                                "'deepspeed' (DeepSpeed's pipeline engine; see "
                                                "colossim.training.pipeline)")
    pipeline_grad_scatter_gather: bool = Field(True, description="the gradient sent back across a pipeline "
                                               "boundary is split over the TP group like the activation; "
                                               "false: sent whole (DeepSpeed v0.3-v0.5.3; see "
                                               "ParallelPlan.pipeline_grad_scatter_gather)")
    balance_stages: bool = Field(description="the last pipeline stage may give layers up to the others "
                                 "to make room for the output head (see ParallelPlan.balance_stages)")
    selective_recompute: SelectiveRecompute = Field("attention", description="what recompute: selective "
                                                    "re-runs: the attention core, or torchtitan's per-op "
                                                    "policy (see ParallelPlan.selective_recompute)")
    moe_parallel_folding: bool = Field(False, description="the experts may take their own tensor-"
                                       "parallel degree (see ParallelPlan.moe_parallel_folding)")
    tensor_parallel: bool = Field(True, description="the stack splits layers over tensor-parallel GPUs; "
                                  "false: it has no tensor parallelism (DeepSeek's HAI-LLM), so a plan "
                                  "that leaves tp open gets tp 1 and one that sets tp > 1 ran other "
                                  "software (see plan_needs)")
    pipeline_parallel: bool = Field(True, description="the stack splits the layers over pipeline stages; "
                                    "false: data parallelism (and tensor parallelism where it has it) only "
                                    "(llm-foundry, metaseq's FSDP, Hugging Face's model code), so a plan "
                                    "that leaves pp open gets pp 1 and one that sets pp > 1 ran other "
                                    "software (see plan_needs)")
    pipeline_layout: Literal["any", "first_last", "even"] = Field(
        "any", description="how the stack may split the layers over pipeline stages: 'any' split, "
        "'first_last' (only the first and last stages may differ from the equal middle ones: "
        "Megatron-Core's --decoder-first/last-pipeline-num-layers) or 'even' (pp divides the "
        "layers); the search tries only the pp whose slowest stage holds ceil(layers / pp) "
        "(colossim.training.pipeline.layout_reaches_even_pace)")
    context_parallel: bool = Field(True, description="the stack splits a sequence over context-parallel "
                                   "GPUs (ring attention); false: it has no context parallelism (Megatron-LM "
                                   "before Megatron-Core 0.5, DeepSpeed of 2021-2022, metaseq, Composer, "
                                   "HAI-LLM), so a plan that leaves cp open gets cp 1 and one that sets "
                                   "cp > 1 ran other software (see plan_needs)")
    tp_fills_server: bool = Field(False, description="the stack's published runs chose tp by Narayanan et "
                                  "al. 2021's rule (sec. 3.3, Takeaway #1: tensor parallelism up to the GPUs "
                                  "of a server, then pipeline parallelism across servers); the validation "
                                  "reads a run of this stack that does not state its tp this way "
                                  "(ParallelPlan.tp_fills_server, colossim.training.validate."
                                  "with_tp_convention). The search itself keeps trying every tp")
    host_seconds_per_step: float = Field(0.0, ge=0, description="time each optimizer step spends that "
                                         "no kernel model prices and a faster chip does not shorten "
                                         "(Python, framework hooks and bookkeeping, host syncs), added "
                                         "to the step; 0 where no measurement separates it")
    default_for_chips_released_from: int | None = Field(
        None, ge=0, description="chips released in this year or later default to this stack (until a later "
        "stack's year); blank: never a chip's default (a model's catalog row may name it)")
    zero3_stack: str | None = Field(None, description="the stack a spec that fixes zero: 3 (fsdp not false) "
                                    "and names no stack ran, when this stack is only the chip's default "
                                    "(an id of this catalog); blank: this stack's own ZeRO-3")
    successor: str | None = Field(None, description="the stack that followed this one in the same code "
                                  "line (an id of this catalog); a plan asking for something this stack "
                                  "lacks moves to it when the stack was only the chip's default")
    source: str
    notes: str | None = None

    @field_validator("recompute_modes")
    @classmethod
    def _known_modes(cls, v: str) -> str:
        modes = [m.strip() for m in v.split(";") if m.strip()]
        bad = [m for m in modes if m not in {r.value for r in Recompute}]
        if not modes or bad:
            raise ValueError(f"recompute modes must be among {', '.join(r.value for r in Recompute)}; got {v!r}")
        return ";".join(modes)

    @field_validator("zero_stages")
    @classmethod
    def _known_stages(cls, v: str) -> str:
        stages = [z.strip() for z in v.split(";") if z.strip()]
        if not stages or any(z not in {"0", "1", "2", "3"} for z in stages):
            raise ValueError(f"ZeRO stages must be among 0, 1, 2, 3; got {v!r}")
        return ";".join(stages)

    @property
    def zero_choices(self) -> tuple[int, ...]:
        """The ZeRO stages a search may pick under this stack."""
        return tuple(int(z) for z in self.zero_stages.split(";"))

    @property
    def run_source_phrases(self) -> tuple[str, ...]:
        """The phrases of ``run_sources``, lower-case."""
        return tuple(p.strip().lower() for p in (self.run_sources or "").split(";") if p.strip())

    @property
    def recompute_choices(self) -> tuple[str, ...]:
        """The recompute modes a search may pick under this stack."""
        return tuple(self.recompute_modes.split(";"))


@lru_cache(maxsize=1)
def software_stacks() -> dict[str, SoftwareStack]:
    """The catalog's stacks by id, oldest default first."""
    rows = load_models(data_path("software_stacks.csv"), SoftwareStack)
    return {s.id: s for s in sorted(rows, key=lambda s: (s.default_for_chips_released_from is None,
                                                          s.default_for_chips_released_from or 0))}


def default_stack(release_year: int) -> SoftwareStack:
    """The stack a chip released in ``release_year`` defaults to: the latest whose
    ``default_for_chips_released_from`` is not after it (the oldest stack for older chips)."""
    stacks = [s for s in software_stacks().values() if s.default_for_chips_released_from is not None]
    chosen = stacks[0]
    for s in stacks:
        if s.default_for_chips_released_from <= release_year:
            chosen = s
    return chosen


def plan_needs(plan: ParallelPlan, stack: SoftwareStack) -> str | None:
    """The first plan field the spec sets to something ``stack`` did not have, or None: tp > 1
    where the stack has no tensor parallelism, pp > 1 where it has no pipeline parallelism, cp > 1
    where it has no context parallelism, vpp > 1
    (interleaving) where the stack's pipeline schedule is not 1F1B and the spec names no schedule,
    sequence parallelism where the stack fixes it off, a recompute mode outside its
    ``recompute_modes``, ``recompute_num_layers`` (the block method) where it has no
    ``recompute_block``, a ZeRO stage outside its ``zero_stages``.  Fields the spec leaves open
    never count: the search keeps to the stack."""
    if plan.tp is not None and plan.tp > 1 and not stack.tensor_parallel:
        return "tp"
    if plan.pp is not None and plan.pp > 1 and not stack.pipeline_parallel:
        return "pp"
    if plan.cp is not None and plan.cp > 1 and not stack.context_parallel:
        return "cp"
    if (plan.vpp is not None and plan.vpp > 1 and plan.pipeline_schedule is None
            and stack.pipeline_schedule != "1f1b"):
        return "vpp"
    if plan.sequence_parallel is True and stack.sequence_parallel is False:
        return "sequence_parallel"
    if plan.recompute is not None and plan.recompute.value not in stack.recompute_choices:
        return "recompute"
    if plan.recompute_num_layers is not None and not stack.recompute_block:
        return "recompute_num_layers"
    if plan.zero is not None and plan.zero not in stack.zero_choices:
        return "zero"
    return None


def plan_needs_text(plan: ParallelPlan, stack: SoftwareStack, field: str) -> str:
    """The caveat of an estimate whose plan asks ``stack`` for ``field`` (:func:`plan_needs`), as a
    plan may when its spec names the stack: the field, its value, what the stack had, and the
    stacks that have what it asks.  The plan is priced as written, a what-if that a search under
    the stack never tries."""
    lacks = {"tp": "no tensor parallelism", "pp": "no pipeline parallelism", "cp": "no context parallelism",
             "vpp": f"the {stack.pipeline_schedule} pipeline schedule, which does not interleave",
             "sequence_parallel": "no sequence parallelism",
             "recompute": f"recompute {', '.join(stack.recompute_choices)}",
             "recompute_num_layers": "no block recompute (recompute_num_layers)",
             "zero": f"ZeRO stages {', '.join(map(str, stack.zero_choices))}"}[field]
    value = getattr(plan, field)
    value = getattr(value, "value", value)
    others = [s.id for s in software_stacks().values() if plan_needs(plan, s) is None]
    return (f"parallelism.{field} {value}: training.software {stack.id} has {lacks}, so this plan is a "
            f"what-if its search does not try (priced as written; {' / '.join(others) or 'no stack'} "
            "of the catalog had it)")


def resolve_stack(name: str | None, release_year: int, model_software: str | None = None,
                  plan: ParallelPlan | None = None) -> SoftwareStack:
    """The named stack; when ``name`` is None, the stack the model's catalog row names
    (``model_software``: the framework of its developers' published runs) unless ``plan`` asks for
    something that stack lacks (:func:`plan_needs`: DeepSeek-V3 written with tp 2 ran Megatron-Core,
    not HAI-LLM), else the chip's default, its ``zero3_stack`` when ``plan`` fixes ZeRO stage 2 or 3
    the FSDP way and the default lacks that stage, or, when ``plan`` asks for something the default
    lacks, the first of its successors that has it (the default again if none has).
    An unknown name raises :class:`UnknownNameError` naming ``training.software`` and the stacks."""
    if name is None and model_software is not None:
        own = software_stacks().get(model_software.strip().lower())
        if own is None or plan is None or plan_needs(plan, own) is None:
            name = model_software
    if name is None:
        stack = later = default_stack(release_year)
        if (plan is not None and plan.zero in (2, 3) and plan.zero not in stack.zero_choices
                and plan.fsdp is not False and stack.zero3_stack):
            return software_stacks()[stack.zero3_stack]
        while plan is not None and plan_needs(plan, later):
            if not later.successor:
                return stack
            later = software_stacks()[later.successor]
        return later
    stacks = software_stacks()
    key = name.strip().lower()
    if key not in stacks:
        raise UnknownNameError("training.software", name, stacks)
    return stacks[key]


def apply_stack(plan: ParallelPlan, stack: SoftwareStack) -> ParallelPlan:
    """``plan`` with every stack flag it leaves out (None) taken from ``stack``, and
    ``sequence_parallel`` too where the stack fixes it, ``tp`` 1 where the stack has no tensor
    parallelism, ``pp`` 1 where it has no pipeline parallelism and ``cp`` 1 where it has no
    context parallelism."""
    fill = {f: getattr(stack, f) for f in STACK_FLAGS if getattr(plan, f) is None}
    if plan.sequence_parallel is None and stack.sequence_parallel is not None:
        fill["sequence_parallel"] = stack.sequence_parallel
    if plan.tp is None and not stack.tensor_parallel:
        fill["tp"] = 1
    if plan.cp is None and not stack.context_parallel:
        fill["cp"] = 1
    if plan.pp is None and not stack.pipeline_parallel:
        fill["pp"] = 1
    return plan.model_copy(update=fill) if fill else plan


__all__ = ["STACK_FLAGS", "SoftwareStack", "apply_stack", "default_stack", "plan_needs", "plan_needs_text",
           "resolve_stack",
           "software_stacks"]
