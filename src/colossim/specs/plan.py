"""The parallel plan: how a training job is laid out on the GPUs.  Every field is optional; a
``None`` field is searched by :mod:`colossim.training.search`.

Degrees follow Megatron-LM: ``tp`` tensor, ``pp`` pipeline, ``cp`` context (sequence split for
attention), ``dp`` data parallel, ``ep`` expert parallel (carved out of ``dp * cp``, as Megatron-Core
does), ``vpp`` virtual pipeline chunks per stage (interleaved 1F1B), ``micro_batch`` sequences per
micro-batch.  ``zero``: 0 none, 1 optimizer states sharded (= Megatron's distributed optimizer),
2 + gradients, 3 + weights (= FSDP FULL_SHARD).

The runtime flags (``flash_attention``, the ``overlap_*`` ones, the MoE dispatch and overlap, the
pipeline schedule: ``colossim.specs.software.STACK_FLAGS``) left out of a spec are filled by
:func:`colossim.specs.software.apply_stack` from the job's software stack when the spec is loaded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from colossim.specs._validation import SpecChoice, SpecInt


class Recompute(SpecChoice):
    """Activation recomputation (Korthikanti et al. 2022): ``selective`` recomputes the attention
    core (QK^T, softmax, AV) in backward; ``full`` keeps only each layer's input and recomputes the
    whole layer forward."""

    none = "none"
    selective = "selective"
    full = "full"


#: MoE dispatch methods (see ParallelPlan.moe_dispatch).
MoeDispatch = Literal["alltoall", "dedup"]
#: What the expert-parallel all-to-all overlaps with (see ParallelPlan.ep_comm_overlap).
EpCommOverlap = Literal["none", "shared_experts", "micro_batch"]
#: Generations of fused attention kernel (see colossim.cost.compute.ATTENTION_KERNEL_RELATIVE_THROUGHPUT).
AttentionKernel = Literal["flash2", "flash1", "flash3"]
#: Pipeline schedules (see ParallelPlan.pipeline_schedule and colossim.training.pipeline).
PipelineSchedule = Literal["1f1b", "zb1p", "dualpipe", "deepspeed"]
#: What selective recomputation re-runs (see ParallelPlan.selective_recompute).
SelectiveRecompute = Literal["attention", "ops"]
#: The dtype of the data-parallel gradient reduction (see ParallelPlan.grad_reduce_dtype).
GradReduceDtype = Literal["fp32", "bf16"]

PLAN_DEGREES = ("tp", "pp", "cp", "ep", "dp", "vpp", "micro_batch")


class ParallelPlan(BaseModel):
    """A (possibly partial) parallel plan.  ``fsdp: true`` is an alias for ``zero: 3`` (PyTorch FSDP:
    parameters gathered per layer); ``zero: 3`` with ``fsdp: false`` means DeepSpeed ZeRO-3
    (gathered tensor by tensor, see :func:`colossim.training.step.deepspeed_layer_tensors`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    tp: SpecInt | None = Field(None, ge=1, description="tensor-parallel degree")
    pp: SpecInt | None = Field(None, ge=1, description="pipeline stages")
    cp: SpecInt | None = Field(None, ge=1, description="context-parallel degree")
    ep: SpecInt | None = Field(None, ge=1, description="expert-parallel degree")
    etp: SpecInt | None = Field(
        None, ge=1, validation_alias=AliasChoices("etp", "expert_tensor_parallel"),
        description="expert tensor-parallel degree: the routed experts' weights split over etp GPUs "
        "(Megatron-Core --expert-tensor-parallel-size). Omitted: tp (Megatron's default), and 1 is "
        "also searched under a stack with moe_parallel_folding. etp < tp folds the expert grid "
        "etp x ep x expert-dp over the tp x cp x dp GPUs of a stage, so ep may exceed dp x cp "
        "(MoE parallel folding, Liu et al. 2025, arXiv:2504.14960)")
    dp: SpecInt | None = Field(None, ge=1, description="data-parallel degree")
    vpp: SpecInt | None = Field(None, ge=1, description="virtual stages (model chunks) per pipeline stage")
    micro_batch: SpecInt | None = Field(None, ge=1, description="sequences per micro-batch")
    recompute: Recompute | None = None
    recompute_num_layers: SpecInt | None = Field(
        None, ge=1, description="with recompute full: the layers of each pipeline stage recomputed (the rest "
        "keep their activations), as Megatron-LM's --recompute-method block --recompute-num-layers "
        "(counted per stage here, per model chunk there). Omitted: every layer when recompute is given "
        "as full; when recompute is searched, the fewest layers that make the plan fit")
    zero: SpecInt | None = Field(None, ge=0, le=3, validation_alias=AliasChoices("zero", "zero_stage"),
                             description="ZeRO stage 0-3 (3 = FSDP)")
    sequence_parallel: bool | None = Field(None, description="Megatron sequence parallelism with TP")
    tp_overlap: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] tensor-parallel communication "
            "split into chunks that overlap the GEMMs they feed (Transformer Engine userbuffers, "
            "Megatron-Core --tp-comm-overlap, 2023; needs sequence parallelism). false: every TP "
            "collective between GEMMs is waited for"))
    tp_overlap_sm_margin: bool = Field(
        False,
        description=(
            "with tp_overlap: the GEMMs leave the SMs of the communication kernels free (Transformer "
            "Engine userbuffers' set_sm_margin, as NVIDIA's tuned NeMo configurations set it for the "
            "pipelined reduce-scatter), so the reduce-scatters and the backward's bulk collectives "
            "hide under their GEMMs. false, Transformer Engine's default configuration (Megatron-LM "
            "--tp-comm-overlap without --tp-comm-overlap-cfg): those collectives wait for SMs the GEMM "
            "holds and are exposed; the copy-engine all-gathers hide either way"))
    flash_attention: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] fused (flash) attention; false "
            "prices the attention core as batched GEMMs plus a memory-bound softmax/dropout over the "
            "s x s scores, as Megatron-LM ran before FlashAttention (2022)"))
    attention_kernel: AttentionKernel | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the fused attention kernel's "
            "generation: 'flash2' (FlashAttention-2 and later kernels, the ones the calibration "
            "profiles are fitted to), 'flash1' (flash-attn 1.x and its Triton port, about half "
            "as fast: Dao 2023) or 'flash3' (FlashAttention-3, Hopper GPUs only: the in-step "
            "FlashAttention-3 row over the FlashAttention-2 model)"))
    cross_entropy_fusion: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the loss as one fused kernel "
            "each way on the bf16 logits (flash-attn's CrossEntropyLoss, Megatron-Core "
            "--cross-entropy-loss-fusion, NeMo 2.x); false: Megatron's vocab-parallel cross entropy "
            "on an fp32 copy of the logits, one kernel per line (see "
            "colossim.training.ops.CROSS_ENTROPY_BYTES_PER_LOGIT)"))
    elementwise_fusion: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] each norm, the rotary "
            "embedding and the gated activation run as one kernel each way (Apex / Transformer Engine "
            "/ Megatron fusions, or one PyTorch op such as F.layer_norm); false: PyTorch eager "
            "as Hugging Face transformers' modeling code writes them (RMSNorm in fp32 over six "
            "kernels, rotate_half, act(gate) * up), kernel by kernel (see "
            "colossim.training.ops.EAGER_BYTES_PER_ELEMENT)"))
    overlap_grad_reduce: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the data-parallel gradient "
            "reduction (and the distributed optimizer's parameter all-gather) overlaps with the "
            "backward / forward pass, bucket by bucket (Megatron-Core --overlap-grad-reduce / "
            "--overlap-param-gather, 2023; PyTorch DDP/FSDP; DeepSpeed ZeRO overlap_comm; NeMo "
            "distributed Adam). false: reduced after the backward of the last micro-batch, fully "
            "exposed, as Megatron-LM did before Megatron-Core (Narayanan et al. 2021, Korthikanti et "
            "al. 2022) and DeepSpeed's pipeline engine"))
    overlap_param_gather: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] parameter all-gathers overlap "
            "with compute: the distributed optimizer's gather of updated weights with the next "
            "forward (Megatron-Core --overlap-param-gather), ZeRO-3/FSDP's per-layer gathers with the"
            " previous layer (prefetch). false: each gather is waited for, as DeepSpeed ZeRO-3 of "
            "2021 did at scale (Narayanan et al. 2021 Table 2: step time = compute + communication)"))
    overlap_p2p_comm: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] interleaved pipeline: the "
            "steady-state send/recv overlaps with the next chunk's compute (Megatron-Core "
            "--overlap-p2p-communication, 2023). false: every chunk boundary blocks (Megatron-LM "
            "2021-2022 batched isend/irecv + wait)"))
    pipeline_grad_scatter_gather: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] without sequence "
            "parallelism, the gradient a pipeline stage sends back is split over its TP group and "
            "all-gathered after the receive, as the activation is (Megatron-LM's "
            "scatter/gather, Narayanan et al. 2021 sec. 4.1; DeepSpeed's pipeline engine from v0.5.4, "
            "October 2021). false: every TP rank sends the whole gradient over its own link, as "
            "DeepSpeed v0.3.x-v0.5.3 did (runtime/pipe/engine.py: is_pipe_partitioned for the "
            "activations, is_grad_partitioned = False; stack megatron-deepspeed-2021, MT-NLG's)"))
    tp_async_backward: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] in the backward pass each "
            "column-parallel linear launches its input-gradient TP collective (the all-reduce, or with "
            "sequence parallelism the reduce-scatter) asynchronously and computes its weight gradient "
            "meanwhile (Megatron-LM --async-tensor-model-parallel-allreduce, 2022; Megatron-Core and "
            "Transformer Engine linears). false: every backward TP collective is waited for, as in "
            "Megatron-LM of 2021 and Megatron-DeepSpeed"))
    gradient_accumulation_fusion: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] each weight-gradient GEMM adds "
            "its result into the fp32 gradient buffer itself (Megatron --gradient-accumulation-fusion, "
            "Transformer Engine fuse_wgrad_accumulation). false: the GEMM writes a bf16/fp16 gradient "
            "and a hook adds it into the fp32 buffer, a memory-bound pass over every local gradient in "
            "each micro-batch's backward (Megatron-LM of 2021, DeepSpeed's BF16 optimizer, PyTorch's "
            "own accumulation)"))
    grad_reduce_dtype: GradReduceDtype | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the dtype of the gradients the "
            "data-parallel ranks reduce: 'fp32', four bytes each (Megatron-LM forces it under bf16, "
            "--accumulate-allreduce-grads-in-fp32; torchtitan's mixed_precision_reduce float32), or "
            "'bf16', two (NeMo's performance recipes: grad_reduce_in_fp32 False; see "
            "colossim.training.step.GRAD_REDUCE_BYTES)"))
    fp8_param_gather: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] under fp8 the weights are kept "
            "as fp8 tensors, so the distributed optimizer (ZeRO 1-2) all-gathers the updated weights at "
            "one byte each instead of two (Megatron-Core --fp8-param-gather; NeMo's bf16_with_fp8_mixed "
            "recipe: fp8_params, later fp8_param_gather). ZeRO-3 gathers stay bf16: NeMo turns it off "
            "under FSDP. No effect under bf16"))
    moe_dispatch: MoeDispatch | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] MoE token dispatch: 'alltoall' "
            "sends every (token, expert) copy (Megatron-Core's alltoall dispatcher, NCCL); 'dedup' sends "
            "a token once per destination GPU inside its scale-up domain and once per destination domain "
            "over the scale-out fabric, forwarded over NVLink there (DeepSeek's HAI-LLM, DeepEP)"))
    moe_fp8_dispatch: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] with precision fp8, tokens are "
            "dispatched to the experts in FP8 with 1x128 scales; the combine stays bf16 (DeepSeek-V3)"))
    moe_grouped_gemm: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] a layer's local routed experts run as "
            "one grouped GEMM each way: one launch, their tiles sharing the waves (Megatron-Core "
            "--moe-grouped-gemm, torch._grouped_mm, DeepGEMM); false: one GEMM per local expert"))
    ep_comm_overlap: EpCommOverlap | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the expert-parallel all-to-all "
            "overlaps with: 'none'; 'shared_experts' (the shared experts' GEMMs, DeepSeek-V2, "
            "Megatron-Core --moe-shared-expert-overlap); 'micro_batch' (another micro-batch's forward and "
            "backward, DeepSeek-V3's DualPipe; a pass with no partner micro-batch, as one micro-batch per "
            "step has none, exposes its all-to-all)"))
    pipeline_schedule: PipelineSchedule | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] '1f1b' (PipeDream-Flush; "
            "interleaved when vpp > 1, Megatron-LM); 'zb1p' (zero-bubble ZB-H1: the weight-gradient "
            "GEMMs fill the drain, Qi et al. 2023; DeepSeek-V2's HAI-LLM); 'dualpipe' (DeepSeek-V3: "
            "micro-batches fed from both ends, each GPU holding two stages; needs an even pp, vpp 1 "
            "and at least 2 pp micro-batches); 'deepspeed' (DeepSpeed's pipeline engine, "
            "Megatron-DeepSpeed / MT-NLG / BLOOM: 1F1B with every send and receive blocking on its "
            "own, four in line per micro-batch; vpp 1)"))
    selective_recompute: SelectiveRecompute | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] what recompute: selective "
            "re-runs: 'attention' (the attention core, Korthikanti et al. 2022, Megatron-LM / "
            "Megatron-Core); 'ops' (torchtitan's per-op policy: every matmul output but every second "
            "one, and the attention output, are kept; the other matmuls and every memory-bound op run "
            "again; see colossim.training.ops.op_sac_recompute_ops)"))
    balance_stages: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] with uneven stages allowed, the "
            "last pipeline stage may hold fewer layers to make room for the output head (Megatron-Core "
            "--decoder-last-pipeline-num-layers; Llama 3 405B). false: the layers are split by count "
            "alone, the head on top of the last stage's share (Megatron-LM 2021, DeepSpeed's pipeline)"))
    moe_parallel_folding: bool | None = Field(
        None,
        description=(
            "[omitted: the software stack's value, training.software] the search may give the experts "
            "their own tensor-parallel degree (etp 1 under a larger tp: Megatron-Core 0.10+, "
            "parallel_state.initialize_model_parallel's expert rank generator); false: etp = tp"))
    uneven_stages: bool = Field(True, validation_alias=AliasChoices("uneven_stages", "allow_uneven"),
                                description="allow pp not dividing layers (the slowest stage sets the pace; Megatron-Core and Llama 3 405B run uneven stages); false requires pp to divide layers")
    fsdp: bool | None = Field(None, description="true: zero 3 the PyTorch-FSDP way; false with zero 3: DeepSpeed")
    shard_group: SpecInt | None = Field(
        None, ge=1, validation_alias=AliasChoices("shard_group", "hsdp_shard_size", "zero_shard_group"),
        description=(
            "ranks one ZeRO / FSDP shard spans (zero 1-3), consecutive in the data x context ranks; "
            "the dp x cp / shard_group copies of each shard all-reduce its gradients once per step. "
            "PyTorch FSDP HYBRID_SHARD / HSDP, DeepSpeed MiCS and ZeRO++ hpZ, Megatron-Core's "
            "--num-distributed-optimizer-instances. Omitted: the whole dp x cp group (not searched)"))
    tp_fills_server: bool = Field(
        False,
        description=(
            "with tp left open, the search keeps to Narayanan et al. 2021's rule for choosing it (sec. "
            "3.3, Takeaway #1: tensor parallelism up to the GPUs of a server, then pipeline "
            "parallelism across servers): a plan with pp > 1 takes the largest tp that fits a server "
            "(the GPUs of a node as the system gives them, within the scale-up domain: 8 on a DGX, "
            "the rack on an NVL72); pp 1 plans are searched as usual. "
            "false: every tp is searched, the fastest wins. Ignored when tp is given"))
    tp_beyond_domain: bool = Field(
        False, validation_alias=AliasChoices("tp_beyond_domain", "allow_tp_beyond_domain"),
        description=(
            "let the search try tp larger than the scale-up domain (its collectives then cross the "
            "scale-out network, as in Narayanan et al. 2021 Figs. 13 and 15, tp 16 and 32 on 8-GPU "
            "DGX A100 nodes); false: the search keeps tp within the domain. A tp the spec fixes is "
            "priced as given either way"))

    @model_validator(mode="before")
    @classmethod
    def _fsdp_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("fsdp") is True and data.get("zero") is None:
            data = {**data, "zero": 3}
        return data

    @model_validator(mode="after")
    def _fsdp_consistent(self) -> ParallelPlan:
        if self.fsdp is True and self.zero not in (None, 3):
            raise ValueError(f"fsdp: true means zero 3, but zero is {self.zero}")
        return self

    @model_validator(mode="after")
    def _shard_group_needs_zero(self) -> ParallelPlan:
        if self.shard_group is not None and self.zero == 0:
            raise ValueError(f"shard_group {self.shard_group} needs zero 1, 2 or 3 (it is the group a "
                             "ZeRO stage shards over), but zero is 0")
        return self

    @model_validator(mode="after")
    def _recompute_layers_need_full(self) -> ParallelPlan:
        if self.recompute_num_layers is not None and self.recompute not in (None, Recompute.full):
            raise ValueError(f"recompute_num_layers needs recompute: full, but recompute is "
                             f"{self.recompute.value}")
        return self

    @property
    def is_complete(self) -> bool:
        """True when nothing is left to search (``sequence_parallel`` means nothing at tp 1, ``vpp``
        nothing at pp 1)."""
        return not self.missing

    @property
    def missing(self) -> list[str]:
        """Fields still to be searched."""
        return [f for f in (*PLAN_DEGREES, "recompute", "zero", "sequence_parallel")
                if getattr(self, f) is None and not (f == "sequence_parallel" and self.tp == 1)
                and not (f == "vpp" and self.pp == 1)]


__all__ = ["PLAN_DEGREES", "AttentionKernel", "EpCommOverlap", "MoeDispatch", "ParallelPlan", "Recompute"]
