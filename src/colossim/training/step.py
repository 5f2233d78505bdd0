"""Step time of one training iteration, priced op by op through the shared cost model.

For every plan (vectorised: one array element per plan) the model:

1. lists the per-GPU ops of one transformer layer for one micro-batch (``training.ops``: GEMMs with
   their shapes, flash attention, memory-bound ops) and prices them with ``cost.compute``
   (shape-dependent GEMM efficiency, attention efficiency, achievable HBM bandwidth);
2. prices the backward pass op by op (each GEMM X.W of shape (m, n, k) costs a data-gradient GEMM
   (m, k, n) and a weight-gradient GEMM (k, n, m); flash-attention backward; memory-bound ops
   twice) and recomputation (selective: attention core again; full: the whole layer forward);
3. adds the exposed communication of each parallel dimension, priced by ``cost.comm`` on the
   system's hierarchical network: TP all-gather / reduce-scatter (sequence parallel) or all-reduce,
   CP ring exchange of K/V overlapped with attention, EP all-to-all dispatch + combine, PP
   send/recv, DP gradient reduce-scatter / all-reduce and parameter all-gather (overlapped with the
   backward / forward of one micro-batch when the plan's ``overlap_grad_reduce``, fully exposed
   otherwise), ZeRO-3/FSDP per-micro-batch
   parameter gathers overlapped layer by layer;
4. runs the (interleaved) 1F1B pipeline schedule (``training.pipeline``) at the pace of the slowest
   stage, then the optimizer step (memory-bound, on the local shard).

No global efficiency factor: every second comes from an op's FLOPs or bytes over a calibrated rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colossim.cost import comm as C
from colossim.cost import compute as K
from colossim.cost.comm import ArrayLike
from colossim.specs.model import MOE_KINDS
from colossim.specs.plan import EpCommOverlap, MoeDispatch, PipelineSchedule
from colossim.training import lora as L
from colossim.training import ops as O
from colossim.training.pipeline import (
    SPLIT_BACKWARD_SCHEDULES,
    layers_on_last_stage,
    layers_on_slowest_stage,
    p2p_exposed_transfers,
    pipeline_step_seconds,
    stage_copies,
)
from colossim.training.plans import RECOMPUTE_CODES, PlanArrays

#: Bytes per activation element exchanged by TP/CP/EP/PP collectives (bf16; FP8 training keeps
#: activations and their communication in bf16 in Transformer Engine's default recipe).
ACTIVATION_BYTES = 2

#: Bytes per gradient element in the data-parallel reduction by the plan's ``grad_reduce_dtype``.
#: Source: Megatron-LM reduces gradients in fp32 under bf16 (``--accumulate-allreduce-grads-in-fp32``,
#: forced by megatron/training/arguments.py; DeepSpeed's BF16 optimizer likewise keeps fp32
#: gradient accumulation); NeMo's performance recipes reduce them in bf16
#: (``grad_reduce_in_fp32 = False``, software stack ``nemo-2024``).
GRAD_REDUCE_BYTES = {"fp32": 4, "bf16": 2}

#: Bytes per gradient element when nothing names the dtype: fp32, Megatron-LM's default.
DP_GRAD_BYTES = GRAD_REDUCE_BYTES["fp32"]

#: Bytes per parameter all-gathered by the distributed optimizer / ZeRO-3 (bf16 weights).
PARAM_GATHER_BYTES = 2

#: Bytes per parameter the distributed optimizer all-gathers when fp8 training keeps fp8 weights
#: (the plan's ``fp8_param_gather``).  Because: one byte per fp8 element.
FP8_PARAM_GATHER_BYTES = 1

#: Fused attention kernels that skip the tiles outside a sliding window: FlashAttention-2 from
#: v2.3.0 (``window_size``, "local attention", flash-attn's changelog) and FlashAttention-3
#: (Shah et al. 2024; flash-attn's hopper/ interface takes the same ``window_size``).  The Triton
#: port of FlashAttention-1 ('flash1') has no window: it runs the whole causal triangle.
WINDOWED_ATTENTION_KERNELS = ("flash2", "flash3")

#: Bytes moved per attention-score element by the unfused attention core (no FlashAttention),
#: forward.  Because: Megatron-LM's fused scale-mask-softmax reads the bf16 scores and writes bf16
#: probabilities (4 B), dropout reads them and writes the output plus a 1-byte mask (5 B).
UNFUSED_SCORE_BYTES_FWD = 9
#: ... and backward: dropout and softmax gradients read the mask, probabilities and incoming
#: gradient and write the outgoing one (2 + 1 + 2 + 2 B per pass, two passes).
UNFUSED_SCORE_BYTES_BWD = 14

#: Bytes per gradient element of the unfused gradient accumulation (``gradient_accumulation_fusion``
#: false): the hook reads the bf16/fp16 gradient the weight-gradient GEMM wrote (2 B) and reads and
#: writes the fp32 gradient buffer (4 + 4 B).  Source: ``param.main_grad.add_(param.grad.data)``,
#: the hook of megatron-core 0.8.0 distributed_data_parallel.py and of NeMo 1.6.2
#: optimizer_with_master_params.py (one mixed-dtype kernel, no temporary).  DeepSpeed's BF16
#: optimizer casts first (``add_(lp.grad.to(fp32))``, 18 B); the hook's 10 B is used for every stack.
GRAD_ACCUMULATION_BYTES = 10

#: Backward of a memory-bound op reads the saved input and the incoming gradient and writes the
#: outgoing gradient: about twice the forward's bytes.
BACKWARD_MEMORY_FACTOR = 2.0


@dataclass(frozen=True)
class StepContext:
    """Everything about a step that is not the plan: model, system, workload, calibration."""

    model: object  # specs.model.ModelSpec
    system: object  # specs.system.SystemSpec
    global_batch: int
    seq_len: int
    precision: str
    profile: object  # cost.efficiency.CalibrationProfile
    network: object  # cost.comm network
    flash_attention: bool = True
    attention_kernel: str = "flash2"
    """Generation of the fused attention kernel (the plan's ``attention_kernel``)."""
    cross_entropy_fusion: bool = False
    """The loss as one fused kernel each way (the plan's ``cross_entropy_fusion``)."""
    elementwise_fusion: bool = True
    """Norms, rotary embedding and gated activation as one kernel each way (the plan's
    ``elementwise_fusion``); false: PyTorch eager chains of kernels."""
    overlap_grad_reduce: bool = True
    """DP gradient reduction / parameter gather overlapped with the last backward / first forward
    (the plan's ``overlap_grad_reduce``); false: after the backward, fully exposed."""
    overlap_param_gather: bool = True
    """Parameter all-gathers (distributed optimizer, ZeRO-3 prefetch) overlapped with the forward /
    backward (the plan's ``overlap_param_gather``); false: each gather waits in line."""
    overlap_p2p_comm: bool = True
    """Interleaved pipeline send/recv overlapped with compute (the plan's ``overlap_p2p_comm``)."""
    pipeline_grad_scatter_gather: bool = True
    """Pipeline gradients split over the TP group like the activations (the plan's
    ``pipeline_grad_scatter_gather``); false: each TP rank sends the whole gradient."""
    tp_async_backward: bool = True
    """The backward's input-gradient TP collectives overlap the weight-gradient GEMMs (the plan's
    ``tp_async_backward``; :func:`tp_backward_exposed_seconds`)."""
    tp_overlap_sm_margin: bool = False
    """With TP overlap, the GEMMs leave the communication kernels' SMs free (the plan's
    ``tp_overlap_sm_margin``; :func:`tp_overlap_exposed_seconds`)."""
    gradient_accumulation_fusion: bool = True
    """The weight-gradient GEMMs accumulate into the fp32 gradient buffer themselves (the plan's
    ``gradient_accumulation_fusion``); false: :func:`grad_accumulation_seconds` per micro-batch."""
    moe_dispatch: MoeDispatch = "alltoall"
    """MoE token dispatch (the plan's ``moe_dispatch``)."""
    moe_fp8_dispatch: bool = False
    """Tokens dispatched in FP8 when the precision is fp8 (the plan's ``moe_fp8_dispatch``)."""
    moe_grouped_gemm: bool = False
    """A layer's local routed experts run as one grouped GEMM each way (the plan's
    ``moe_grouped_gemm``); false: one GEMM per expert (:func:`ops_seconds`)."""
    ep_comm_overlap: EpCommOverlap = "none"
    """What the expert all-to-all hides under (the plan's ``ep_comm_overlap``)."""
    pipeline_schedule: PipelineSchedule = "1f1b"
    """The pipeline schedule (the plan's ``pipeline_schedule``)."""
    balance_stages: bool = True
    """The last pipeline stage may hold fewer layers to make room for the logits (the plan's
    ``balance_stages`` with ``uneven_stages``); false: it holds L / p layers."""
    host_seconds_per_step: float = 0.0
    """Host-side time per step the software stack adds (its ``host_seconds_per_step``)."""
    dp_grad_bytes: float = DP_GRAD_BYTES
    """Bytes per gradient element in the data-parallel reduction (:data:`GRAD_REDUCE_BYTES` of the
    plan's ``grad_reduce_dtype``)."""
    param_gather_bytes: float = PARAM_GATHER_BYTES
    """Bytes per parameter the distributed optimizer (ZeRO 1-2) all-gathers after the step:
    :data:`FP8_PARAM_GATHER_BYTES` under fp8 with the plan's ``fp8_param_gather``.  ZeRO-3's
    gathers stay at :data:`PARAM_GATHER_BYTES`."""
    moe_load_imbalance: float = 1.0
    """The busiest expert-parallel rank's routed tokens over the mean (the spec's
    ``training.moe_load_imbalance``; :func:`expert_rank_load`)."""
    lora: L.Lora | None = None
    """LoRA fine-tuning (the spec's ``training.lora_rank``): base weights frozen, adapters trained
    (:mod:`colossim.training.lora`); None: every weight trained."""
    document_tokens: int | None = None
    """Packed documents of this many tokens, each attending within itself (the spec's
    ``training.document_tokens``, :func:`colossim.training.ops.attention_span`); None: one
    document per sequence.  Only a fused (flash) attention skips the other documents' keys."""
    selective_recompute: str = "attention"
    """What ``recompute: selective`` re-runs (the plan's ``selective_recompute``): 'attention', the
    attention core; 'ops', torchtitan's per-op policy (:func:`colossim.training.ops.op_sac_recompute_ops`)."""

    @property
    def attention_span(self) -> int:
        """Tokens one attention call spans (:func:`colossim.training.ops.attention_span`): what the
        attention FLOPs per token count keys over."""
        return O.attention_span(self.seq_len, self.document_tokens)

    @property
    def fp8_params(self) -> bool:
        """Whether the weights are kept as fp8 parameters (fp8 with the plan's ``fp8_param_gather``):
        gathered at :data:`FP8_PARAM_GATHER_BYTES`, and held so in memory."""
        return self.param_gather_bytes == FP8_PARAM_GATHER_BYTES


#: Training precisions whose GEMMs run in fp8, which Transformer Engine casts to: each GEMM input
#: and output gradient is cast with its transpose
#: (:func:`colossim.cost.compute.fp8_cast_transpose_seconds`), each weight once per step.
FP8_GEMM_PRECISIONS = ("fp8",)
#: GEMMs that stay bf16 in an FP8 run.  Because: Transformer Engine's fp8 autocast covers the
#: transformer layers' TE linear modules; Megatron-Core's output layer (a plain
#: ColumnParallelLinear) and the MoE router (a torch linear, fp32 in DeepSeek-V3) run in bf16.
BF16_GEMMS_UNDER_FP8 = ("logits", "router")
#: GEMMs whose input an fp8-aware producer writes in fp8 itself: Transformer Engine's LayerNorm
#: (LayerNormLinear / LayerNormMLP) and activation (fused GELU/SwiGLU + cast) kernels.  Only
#: the transposed copy for the weight gradient is extra: read fp8 + write fp8^T (2 B) less the byte
#: the producer saves by writing fp8 instead of bf16 = FP8_FUSED_CAST_BYTES per element.
FP8_FUSED_INPUT_GEMMS = ("qkv", "q_proj", "q_down", "kv_down", "in_proj", "mlp_up", "shared_up",
                         "mlp_down", "shared_down", "expert_down")
#: GEMMs whose output gradient comes from the activation's backward, which Transformer Engine
#: fuses with the cast and transpose (``cast_transpose_dbias_dgelu`` and kin).
FP8_FUSED_GRAD_GEMMS = ("mlp_up", "shared_up", "expert_up")
#: Extra bytes per element of a fused cast (see FP8_FUSED_INPUT_GEMMS).
FP8_FUSED_CAST_BYTES = 1.0


#: Bytes per element of a sequence-parallel TP all-gather in an FP8 run: Transformer Engine casts
#: what it gathers to e4m3 first.  Source: Transformer Engine 1.9 (PyPI transformer_engine_cu12
#: 1.9.0) transformer_engine/pytorch/module/layernorm_linear.py: the forward writes the norm's
#: output as fp8 (``ln_out_dtype = torch.uint8 if (fp8 and not return_layernorm_output)``) and then
#: ``gather_along_first_dim(ln_out, tp_group)``; the backward gathers that saved fp8 copy again for
#: the weight gradient; module/base.py ``grad_output_preprocess`` casts a row-parallel layer's
#: output gradient to fp8 before its gather ("FP8 case with gather: unfused bgrad, cast, transpose
#: for efficient gather").  The reduce-scatters of GEMM outputs and input gradients stay bf16, and
#: so do the gathers outside TE's modules (the output layer's, the MoE token gathers).
FP8_SP_GATHER_BYTES = 1


def sp_gather_bytes(ctx: StepContext) -> float:
    """Bytes per element of a layer's sequence-parallel all-gathers: :data:`FP8_SP_GATHER_BYTES`
    in an FP8 run (Transformer Engine gathers the fp8 copy), else :data:`ACTIVATION_BYTES`."""
    return FP8_SP_GATHER_BYTES if ctx.precision in FP8_GEMM_PRECISIONS else ACTIVATION_BYTES


def _fp8_cast_seconds(n_elements, fused: bool, ctx: StepContext) -> np.ndarray:
    """Seconds to bring ``n_elements`` of a GEMM operand to fp8 with its transpose: a fused
    producer's extra byte per element, or a cast-transpose kernel of its own."""
    chip = ctx.system.accelerator
    if fused:
        return K.memory_bound_seconds(n_elements * FP8_FUSED_CAST_BYTES, chip, ctx.profile)
    return K.fp8_cast_transpose_seconds(n_elements, chip, ctx.profile)


def _gemm_precision(name: str, ctx: StepContext) -> str:
    """The precision GEMM ``name`` runs at: the training precision, except the GEMMs that stay bf16
    in an FP8 run (:data:`BF16_GEMMS_UNDER_FP8`, and a LoRA's adapters: :mod:`colossim.training.lora`)."""
    if ctx.precision in FP8_GEMM_PRECISIONS and (name in BF16_GEMMS_UNDER_FP8 or L.is_adapter_name(name)):
        return "bf16"
    return ctx.precision


def plan_layer_ops(ctx: StepContext, plans: PlanArrays, kind: str) -> list:
    """The ops of one layer of ``kind`` ('dense' or 'moe') under ``plans``, forward, per GPU and
    micro-batch (:func:`colossim.training.ops.layer_ops` with the plans' degrees)."""
    return O.layer_ops(ctx.model, plans.micro_batch, ctx.seq_len, plans.tp, plans.cp, plans.ep,
                       plans.sequence_parallel, layer_kind=kind, elementwise_fusion=ctx.elementwise_fusion,
                       etp=plans.etp, document_tokens=ctx.document_tokens if ctx.flash_attention else None)


def op_kind_seconds(ops, ctx: StepContext) -> dict[str, np.ndarray]:
    """Forward + backward seconds of ``ops`` (per GPU, one micro-batch) by kind: ``gemm`` (the
    GEMMs with their FP8 casts), ``attention`` (the attention core, fused or not) and ``memory``
    (the memory-bound kernels)."""
    kinds = {"gemm": [o for o in ops if isinstance(o, O.Gemm)],
             "attention": [o for o in ops if isinstance(o, O.Attention)],
             "memory": [o for o in ops if not isinstance(o, (O.Gemm, O.Attention))]}
    out = {}
    for name, group in kinds.items():
        t = ops_seconds(group, ctx)
        out[name] = np.asarray(t["fwd"] + t["bwd"], dtype=float)
    return out


def ops_seconds(ops, ctx: StepContext) -> dict[str, np.ndarray]:
    """Forward and backward seconds of a list of ops (per GPU, one micro-batch), the attention
    core's forward, and ``wgrad``: the weight-gradient GEMMs, part of the backward."""
    chip = ctx.system.accelerator
    fwd = bwd = attn_fwd = wgrad = 0.0
    for op in ops:
        if isinstance(op, O.Gemm):
            p = _gemm_precision(op.name, ctx)
            low = p in FP8_GEMM_PRECISIONS
            grouped = ctx.moe_grouped_gemm and op.name in O.GROUPED_EXPERT_GEMMS

            def gemm(m, n, k, p=p, op=op, grouped=grouped, kc=True):
                """``op.count`` GEMMs of one shape: each its own kernel, or one grouped kernel (one
                launch, the members' tiles sharing the waves: ``batched_gemm_seconds``); ``kc``:
                K is contiguous (not in a weight gradient, whose K is the tokens)."""
                if grouped:
                    return K.batched_gemm_seconds(m, n, k, op.count, p, chip, ctx.profile, k_contiguous=kc)
                return K.gemm_seconds(m, n, k, p, chip, ctx.profile, count=op.count, k_contiguous=kc)
            f = gemm(op.m, op.n, op.k)
            w = 0.0 if op.frozen else gemm(op.k, op.n, op.m, kc=False)
            b = gemm(op.m, op.k, op.n) + w
            if low:  # the input (m x k) cast in forward, the output gradient (m x n) in backward
                rows = np.asarray(op.m, dtype=float) * np.asarray(op.count, dtype=float)
                f = f + _fp8_cast_seconds(rows * op.k, op.name in FP8_FUSED_INPUT_GEMMS, ctx)
                b = b + _fp8_cast_seconds(rows * op.n, op.name in FP8_FUSED_GRAD_GEMMS, ctx)
            fwd, bwd, wgrad = fwd + f, bwd + b, wgrad + w
        elif isinstance(op, O.Attention) and ctx.flash_attention:
            args = (op.batch, op.heads, op.seq_q, op.seq_kv, op.head_dim, op.head_dim_v, op.causal)
            window = op.window if ctx.attention_kernel in WINDOWED_ATTENTION_KERNELS else None
            f, b = (op.share * K.attention_seconds(*args, "bf16", chip, ctx.profile, backward=backward,
                                                   kernel=ctx.attention_kernel, kv_chunks=op.kv_chunks,
                                                   window=window)
                    for backward in (False, True))
            fwd, bwd, attn_fwd = fwd + f, bwd + b, attn_fwd + f
        elif isinstance(op, O.Attention):
            # Unfused: Q.K^T and P.V as batched GEMMs over the full s x s matrix (the causal
            # mask, and a sliding window's, does not skip work), plus memory-bound softmax/dropout
            # over every score.
            nb = np.asarray(op.batch, dtype=float) * np.asarray(op.heads, dtype=float) * op.share
            qk = K.batched_gemm_seconds(op.seq_q, op.seq_kv, op.head_dim, nb, "bf16", chip, ctx.profile)
            pv = K.batched_gemm_seconds(op.seq_q, op.head_dim_v, op.seq_kv, nb, "bf16", chip, ctx.profile)
            scores = nb * np.asarray(op.seq_q, dtype=float) * np.asarray(op.seq_kv, dtype=float)
            f = qk + pv + K.memory_bound_seconds(scores * UNFUSED_SCORE_BYTES_FWD, chip, ctx.profile)
            b = 2.0 * (qk + pv) + K.memory_bound_seconds(scores * UNFUSED_SCORE_BYTES_BWD, chip, ctx.profile)
            fwd, bwd, attn_fwd = fwd + f, bwd + b, attn_fwd + f
        elif isinstance(op, O.BatchedMatmul):
            # one batched kernel forward; backward, the gradients of both operands: (m x n) . (n x k)
            # and (k x m) . (m x n), each a batched kernel of the same count
            f = K.batched_gemm_seconds(op.m, op.n, op.k, op.count, "bf16", chip, ctx.profile)
            b = (K.batched_gemm_seconds(op.m, op.k, op.n, op.count, "bf16", chip, ctx.profile)
                 + K.batched_gemm_seconds(op.k, op.n, op.m, op.count, "bf16", chip, ctx.profile))
            fwd, bwd = fwd + f, bwd + b
        elif isinstance(op, O.MemoryBound):
            t = K.memory_bound_seconds(op.bytes, chip, ctx.profile)
            tb = (BACKWARD_MEMORY_FACTOR * t if op.backward_bytes is None
                  else K.memory_bound_seconds(op.backward_bytes, chip, ctx.profile))
            fwd, bwd = fwd + t, bwd + tb
    return {"fwd": np.asarray(fwd, dtype=float), "bwd": np.asarray(bwd, dtype=float),
            "attn_fwd": np.asarray(attn_fwd, dtype=float), "wgrad": np.asarray(wgrad, dtype=float)}


#: SMs a userbuffers communication kernel of TP overlap drives its collective with: the pipelined
#: reduce-scatter after the output projection / MLP-down GEMMs and the backward's bulk all-gather
#: and reduce-scatter.  Source: Transformer Engine 1.9 (PyPI transformer_engine_cu12 1.9.0)
#: transformer_engine/pytorch/module/base.py ``initialize_ub``, ``get_default_config``:
#: ``"num_sm": 1 if method == "ring_exchange" else 16``, ``"set_sm_margin": False``; the
#: ring-exchange all-gathers move their chunks with the copy engines (``"use_ce": True``).
USERBUFFERS_RS_SMS = 16

#: Chunks the pipelined ("pipeline" method) reduce-scatter overlap splits its GEMM into along the
#: tokens.  Source: Transformer Engine userbuffers, ``num_splits`` 4 for ``proj_fprop`` and
#: ``fc2_fprop`` in its default configuration and in NeMo's per-model ``ub_cfg`` files.  The
#: ring-exchange all-gathers split theirs into tp chunks (one per rank's shard of the tokens).
USERBUFFERS_PIPELINE_SPLITS = 4

#: GEMM pairs of TP communication overlap, per layer and pass: (collective, GEMM it hides under).
#: Forward: the sequence-parallel all-gather before the QKV / MLP-up GEMM runs as tp ring steps
#: each hidden under a 1/tp chunk of that GEMM, and the reduce-scatter after the output /
#: MLP-down GEMM is pipelined with it (Megatron-Core --tp-comm-overlap, Transformer Engine
#: userbuffers; Wang et al. 2022, "Overlap communication with dependent computation", ASPLOS'23).
#: Backward mirrors it: the data-gradient GEMMs have the same shapes and the roles swap.
TP_OVERLAP_PAIRS = (("all_gather", ("qkv", "q_proj", "q_down", "kv_down", "in_proj")),
                    ("reduce_scatter", ("out_proj", "mamba_out_proj", "gdn_out_proj")),
                    ("all_gather", ("mlp_up", "router", "shared_up")),
                    ("reduce_scatter", ("mlp_down", "shared_down")))


def _named_gemm_seconds(ctx: StepContext, ops, names, wgrad: bool = False) -> np.ndarray:
    """Summed seconds of the GEMMs among ``ops`` whose name is in ``names`` (a TP collective's
    partners in TP_OVERLAP_PAIRS): their forward (m x k . k x n), or with ``wgrad`` their weight
    gradient (k x m . m x n), which a frozen weight does not have."""
    chip, prof = ctx.system.accelerator, ctx.profile
    out = np.asarray(0.0)
    for op in ops:
        if isinstance(op, O.Gemm) and op.name in names and not (wgrad and op.frozen):
            m, n, k = (op.k, op.n, op.m) if wgrad else (op.m, op.n, op.k)
            out = out + K.gemm_seconds(m, n, k, _gemm_precision(op.name, ctx), chip, prof, count=op.count,
                                       k_contiguous=not wgrad)
    return out


def tp_overlap_chunk_seconds(ctx: StepContext, ops, tp: np.ndarray, backward: bool) -> np.ndarray:
    """Time the overlapped GEMMs of one layer lose by running in chunks (one pass).

    Forward: the all-gather side (QKV, MLP-up) runs as tp ring-exchange steps, each a GEMM on
    1/tp of the tokens; the reduce-scatter side (output projection, MLP-down) is pipelined in
    ``USERBUFFERS_PIPELINE_SPLITS`` chunks.  Backward: the data-gradient GEMMs of the output
    projection and MLP-down need the all-gathered output gradient, so they run as tp ring-exchange
    chunks; those of QKV and MLP-up overlap in bulk with whole GEMMs (Transformer Engine
    userbuffers methods ``ring_exchange`` / ``pipeline`` / ``bulk``).  A chunk of m / s rows is a
    smaller, less efficient GEMM (compute.gemm_efficiency): s chunks cost more than the whole."""
    chip, prof = ctx.system.accelerator, ctx.profile
    n = np.maximum(np.asarray(tp, dtype=float), 1.0)
    out = np.zeros_like(n)
    for kind, names in TP_OVERLAP_PAIRS:
        if backward and kind == "all_gather":
            continue  # bulk overlap: whole GEMMs
        splits = n if (backward or kind == "all_gather") else np.minimum(USERBUFFERS_PIPELINE_SPLITS, n)
        for op in ops:
            if not (isinstance(op, O.Gemm) and op.name in names):
                continue
            # the data gradient of (m x k) @ (k x n) is (m x n) @ (n x k)
            gn, gk = (op.k, op.n) if backward else (op.n, op.k)
            p = _gemm_precision(op.name, ctx)
            whole = K.gemm_seconds(op.m, gn, gk, p, chip, prof, count=op.count)
            chunk = K.gemm_seconds(np.asarray(op.m, dtype=float) / splits, gn, gk, p, chip, prof,
                                   count=op.count)
            out = out + np.maximum(splits * chunk - whole, 0.0)
    return out


def _ring_exchange_exposed(c: np.ndarray, g: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Exposed part of a collective of ``c`` seconds split into ``n`` ring steps pipelined with
    ``n`` chunks of a GEMM of ``g`` seconds: the first chunk (c / n), and what the rest leaves
    beyond the GEMM."""
    return c / n + np.maximum(c * (n - 1.0) / n - g, 0.0)


def tp_overlap_exposed_seconds(ctx: StepContext, ops, tp: np.ndarray, all_gather: np.ndarray,
                               reduce_scatter: np.ndarray, backward: bool = False) -> np.ndarray:
    """Exposed TP communication of one layer and one pass with TP overlap (sequence parallel,
    Transformer Engine userbuffers as Megatron-Core's --tp-comm-overlap sets it up).

    Forward: each all-gather before the QKV / MLP-up GEMM is a ring exchange, chunk by chunk
    with the copy engines under chunks of that GEMM (:func:`_ring_exchange_exposed`); each
    reduce-scatter after the output projection / MLP-down GEMM is pipelined with it by a kernel
    on ``USERBUFFERS_RS_SMS`` SMs.  Backward: the output gradient's all-gathers before the output
    projection's and MLP-down's data-gradient GEMMs are ring exchanges again; the column-parallel
    linears (QKV, MLP-up) run their input all-gather in bulk beside the data-gradient GEMM and
    the reduce-scatter of their input gradient in bulk beside the weight-gradient GEMM, each a
    kernel on ``USERBUFFERS_RS_SMS`` SMs: four collectives driven by SMs in that pass.

    A collective driven by SMs runs beside a GEMM only when the GEMM leaves it SMs
    (``ctx.tp_overlap_sm_margin``, userbuffers' ``set_sm_margin``): Transformer Engine then tells
    cuBLAS to use the SMs less those (``_math_sms = multiProcessorCount - num_comm_sm``, passed as
    the GEMM's ``math_sm_count``: "Number of GPU SMs to use"), the collective hides under the GEMM
    as far as it lasts and slows it by that share of the SMs while it runs.  Without the margin
    (Transformer Engine's default configuration, which Megatron-LM uses unless given
    --tp-comm-overlap-cfg) the GEMM is set up for every SM, so the communication kernel gets SMs
    only before or after it: exposed in full.  NVIDIA's tuned configurations set the margin on
    every pipelined reduce-scatter (NeMo 2.0.0
    nemo/collections/llm/recipes/tp_overlap_configs/userbuffers.py: ``set_sm_margin=True`` for
    ``proj_fprop`` / ``fc2_fprop`` in all eight H100 configurations).  The chunked GEMMs' lost
    efficiency is per pass (:func:`tp_overlap_chunk_seconds`; the caller adds it).
    ``all_gather`` / ``reduce_scatter``: the seconds of one such TP collective of the layer."""
    n = np.maximum(np.asarray(tp, dtype=float), 1.0)
    share = USERBUFFERS_RS_SMS / ctx.profile.gemm_params(ctx.precision).sm_count
    margin = ctx.tp_overlap_sm_margin

    def sm_driven(c, g):
        """A collective on SMs beside a GEMM of g seconds: hidden with a margin, else exposed."""
        if not margin:
            return c
        return np.maximum(c - g, 0.0) + np.minimum(c, g) * share

    out = np.asarray(0.0)
    for kind, names in TP_OVERLAP_PAIRS:
        g = _named_gemm_seconds(ctx, ops, names)
        if not np.any(g):
            continue
        if kind == "all_gather":
            # column-parallel side: forward ring exchange; backward bulk gather + bulk scatter
            if backward:
                wgrad = _named_gemm_seconds(ctx, ops, names, wgrad=True)
                out = out + sm_driven(all_gather, g) + sm_driven(reduce_scatter, wgrad)
            else:
                out = out + _ring_exchange_exposed(all_gather, g, n)
        elif backward:
            # row-parallel side: the output gradient's ring exchange before its data gradient
            out = out + _ring_exchange_exposed(all_gather, g, n)
        elif margin:
            # the pipelined reduce-scatter: chunked with the GEMM, its first chunk exposed, the
            # rest slowing the GEMM by the SMs it holds
            out = (out + _ring_exchange_exposed(reduce_scatter, g, n)
                   + np.minimum(reduce_scatter * (n - 1.0) / n, g) * share)
        else:
            out = out + reduce_scatter  # no margin: it waits for the GEMM's SMs
    return np.asarray(out, dtype=float)


#: Bytes per element of an FP8 dispatch: one e4m3 byte plus one fp32 scale per 128 elements.
#: Source: DeepSeek-V3 technical report (arXiv:2412.19437) sec. 3.3, 1x128 tile-wise activation
#: scales, the dispatch quantised to FP8, the combine kept in BF16.
FP8_DISPATCH_BYTES = 1.0 + 4.0 / 128.0


def expected_distinct(draws: ArrayLike, bins: ArrayLike) -> np.ndarray:
    """Expected number of distinct bins hit by ``draws`` independent uniform draws over ``bins``
    bins: bins (1 - (1 - 1/bins)^draws)."""
    b = np.maximum(np.asarray(bins, dtype=float), 1.0)
    return b * (1.0 - (1.0 - 1.0 / b) ** np.asarray(draws, dtype=float))


def moe_dispatch_copies(model, group_size: ArrayLike, members_per_domain: ArrayLike,
                        dedup: bool) -> tuple[np.ndarray, np.ndarray]:
    """(copies over the scale-up fabric, copies over the scale-out fabric) one token sends when it
    is dispatched to its ``top_k`` experts on an expert-parallel group of n ranks, d per domain.

    Experts sit on the ranks in order, so routing group g (of ``routing_groups``) lives on n / G
    consecutive ranks (or G / n groups share a rank); a token restricted to M groups
    (``routing_groups_per_token``) reaches min(n, M max(n / G, 1)) ranks and as many domains,
    likewise counted.  Its top_k copies land uniformly on what it reaches (balanced routing).

    - ``alltoall`` (every copy sent, Megatron-Core's dispatcher): (d - 1) / n of the k copies stay
      in the domain, (n - d) / n leave it; the group limit changes nothing.
    - ``dedup`` (DeepSeek-V2/V3, DeepEP): one copy per distinct remote domain over the NICs, then
      one per distinct remote rank over NVLink (:func:`expected_distinct`; by symmetry a share 1/n
      of the distinct ranks, 1/D of the domains, is the sender's own)."""
    n = np.maximum(np.asarray(group_size, dtype=float), 1.0)
    d = np.minimum(np.maximum(np.asarray(members_per_domain, dtype=float), 1.0), n)
    domains = np.ceil(n / d)
    k = float(model.top_k)
    if not dedup:
        return k * (d - 1.0) / n, k * (n - d) / n
    if model.routing_limited:
        g, m = float(model.routing_groups), float(model.routing_groups_per_token)
        ranks = np.minimum(n, m * np.maximum(n / g, 1.0))
        reach_domains = np.minimum(domains, m * np.maximum(domains / g, 1.0))
    else:
        ranks, reach_domains = n, domains
    remote_domains = expected_distinct(k, reach_domains) * (1.0 - 1.0 / domains)
    remote_ranks = expected_distinct(k, ranks) * (1.0 - 1.0 / n)
    return remote_ranks, remote_domains


def expert_rank_load(ctx: StepContext, plans: PlanArrays) -> np.ndarray:
    """Routed tokens of the busiest expert-parallel rank over the mean, per plan: the spec's
    ``moe_load_imbalance`` on ep > 1 plans, else 1 (:func:`colossim.training.ops.busiest_rank_load`).

    Each MoE layer's dispatch and combine are barriers over the EP group, so every rank waits for
    the busiest: its expert GEMMs and routed activations
    (:func:`colossim.training.ops.busiest_expert_rank_ops`), the tokens it receives and sends back
    (:func:`moe_all_to_all_seconds`) and its expert-TP collectives (:func:`moe_tp_exposed_seconds`)
    scale with its load; the model FLOPs (MFU) do not.  Balanced routing (1, the default) is what
    NVIDIA's MoE benchmark recipes force; dropless training with an auxiliary balancing loss runs
    above it; a capacity factor with padded expert buffers (GShard, Lepikhin et al. 2020 sec. 2.2;
    Switch Transformer, Fedus et al. 2021 sec. 2.2) runs every rank at that factor."""
    return O.busiest_rank_load(plans.ep, ctx.moe_load_imbalance)


def moe_tp_exposed_seconds(ctx: StepContext, plans: PlanArrays, msg: ArrayLike,
                           dense_exposed: np.ndarray) -> np.ndarray:
    """Exposed TP seconds of one MoE layer's pass, given ``dense_exposed``, what the layer's two TP
    collective pairs would expose in a dense layer of ``msg`` bytes each (its tokens x hidden).

    The attention keeps its pair: half of ``dense_exposed``.  The experts have their own, over the
    expert tensor-parallel group (etp ranks, stride 1): Megatron-Core's MoEAlltoAllTokenDispatcher
    all-gathers the tokens each rank received from the all-to-all over the expert-tp group and
    reduce-scatters the expert output back (megatron-core 0.12.0 transformer/moe/token_dispatcher.py),
    so the message is the routed rows, msg x top_k x etp / tp with sequence parallelism (msg x top_k
    without: each rank routes all its tokens and all-reduces the partial outputs), times the busiest
    rank's load (:func:`expert_rank_load`).  It is waited
    for: Transformer Engine's userbuffer overlap covers its linear layers, not the grouped expert
    GEMMs.  No pair at etp 1 (MoE parallel folding): the tokens stay on their sequence shard.
    Shared experts are a tp-split MLP with a pair of their own, as a dense MLP's (megatron-core
    0.12.0 transformer/moe/shared_experts.py gathers their input and reduce-scatters their output)."""
    net, prof = ctx.network, ctx.profile
    tp, etp, sp = plans.tp, plans.etp, plans.sequence_parallel
    routed = (np.asarray(msg, dtype=float) * ctx.model.top_k * np.where(sp, etp / tp, 1.0)
              * expert_rank_load(ctx, plans))
    one = np.where(sp, C.all_gather_seconds(routed, etp, net, prof, stride=1)
                   + C.reduce_scatter_seconds(routed, etp, net, prof, stride=1),
                   C.all_reduce_seconds(routed, etp, net, prof, stride=1))
    dense_pairs = 2.0 if ctx.model.shared_experts else 1.0  # attention (+ shared experts)
    return 0.5 * dense_pairs * dense_exposed + np.where(etp > 1, one, 0.0)


def moe_all_to_all_seconds(ctx: StepContext, plans: PlanArrays, tokens: ArrayLike) -> np.ndarray:
    """Seconds of one MoE layer's dispatch + combine (forward) for ``tokens`` tokens per GPU.

    The dispatch moves each token in FP8 when the plan dispatches in FP8 and trains in fp8
    (:data:`FP8_DISPATCH_BYTES`), the combine in bf16; the copies per fabric come from
    :func:`moe_dispatch_copies`.  The busiest rank receives, and sends back, its load's share
    (:func:`expert_rank_load`) of the copies, and the exchange waits for it."""
    m, net, prof = ctx.model, ctx.network, ctx.profile
    # EP groups sit within dp x cp at stride tp x cp; folded, within the expert grid at stride etp
    stride = np.where(plans.folded, plans.etp, plans.tp * plans.cp)
    n, d, _ = C.domain_layout(plans.ep, stride, net)
    c_in, c_out = moe_dispatch_copies(m, n, d, ctx.moe_dispatch == "dedup")
    fp8 = ctx.moe_fp8_dispatch and ctx.precision == "fp8"
    kernel = "deepep" if ctx.moe_dispatch == "dedup" else "nccl"
    total = 0.0
    load = expert_rank_load(ctx, plans)
    for nbytes in ((FP8_DISPATCH_BYTES if fp8 else ACTIVATION_BYTES), ACTIVATION_BYTES):
        per_copy = np.asarray(tokens, dtype=float) * m.hidden * nbytes * load
        total = total + C.all_to_all_split_seconds(per_copy * c_in, per_copy * c_out,
                                                   per_copy * m.top_k, plans.ep, net, prof, stride=stride,
                                                   kernel=kernel)
    return np.asarray(total, dtype=float)


def micro_batches(ctx: StepContext, plans: PlanArrays) -> np.ndarray:
    """Micro-batches each pipeline runs per step: the global batch over dp x micro_batch."""
    return ctx.global_batch / (plans.dp * plans.micro_batch)


def unpaired_pass_share(ctx: StepContext, plans: PlanArrays) -> np.ndarray:
    """The share of a stage's forward (and of its backward) passes that run with no other
    micro-batch's pass beside them, so no all-to-all of theirs can hide under ``ep_comm_overlap:
    micro_batch``.  A stage pairs micro-batch i + w's forward with micro-batch i's backward; the
    first stage's w = pp forwards before its first backward can start, and its last pp backwards,
    have no partner: pp of its m passes each way (without pipelining, the step's first forward and
    last backward; one micro-batch, none paired).  DualPipe with pp > 1 is the exception: its
    warm-up and drain are in the bubble of DeepSeek-V3's Table 2, (pp/2 - 1)(F&B + B - 3W), priced
    by :func:`colossim.training.pipeline.pipeline_step_seconds`, and every pass it leaves is
    paired."""
    dualpipe = (ctx.pipeline_schedule == "dualpipe") & (plans.pp > 1)
    return np.where(dualpipe, 0.0, np.minimum(plans.pp / micro_batches(ctx, plans), 1.0))


def ep_exposed_seconds(ctx: StepContext, ops, a2a_fwd: np.ndarray, a2a_bwd: np.ndarray,
                       compute_fwd: np.ndarray, compute_bwd: np.ndarray, unpaired: ArrayLike = 0.0):
    """(exposed forward, exposed backward, compute slowdown) seconds of a MoE layer's all-to-all.

    ``ep_comm_overlap``: 'none' -- all exposed; 'shared_experts' -- each pass's all-to-all hides
    under that pass's shared-expert GEMMs (DeepSeek-V2 sec. 3.4; the backward's without their
    weight gradients under a schedule that defers those, :data:`SPLIT_BACKWARD_SCHEDULES`);
    'micro_batch' -- DualPipe pairs one micro-batch's forward with another's backward, so the
    pair's all-to-all hides under the pair's compute (DeepSeek-V3 sec. 3.2.1) and what it exposes
    is charged to each pass in proportion to its compute; the ``unpaired`` share of the passes
    (:func:`unpaired_pass_share`) exposes its all-to-all whole.  What hides still holds SMs
    (:func:`comm_sm_share`), charged to compute."""
    mode = ctx.ep_comm_overlap
    if mode == "none":
        return a2a_fwd, a2a_bwd, 0.0
    if mode == "shared_experts":
        shared = ops_seconds([op for op in ops if op.name.startswith("shared_")], ctx)
        # a schedule that defers the weight gradients leaves the backward pass only the shared
        # experts' input-gradient GEMMs to hide under
        split = ctx.pipeline_schedule in SPLIT_BACKWARD_SCHEDULES
        fwd = np.maximum(a2a_fwd - shared["fwd"], 0.0)
        bwd = np.maximum(a2a_bwd - (shared["bwd"] - shared["wgrad"] if split else shared["bwd"]), 0.0)
    else:
        # the pair takes max(compute, all-to-all); what the all-to-all adds is shared between the
        # passes as their compute is, so neither pass gets longer when the compute gets faster
        compute = compute_fwd + compute_bwd
        exposed = np.maximum(a2a_fwd + a2a_bwd - compute, 0.0)
        share = exposed / np.maximum(compute, 1e-30)
        u = np.asarray(unpaired, dtype=float)
        fwd = (1.0 - u) * compute_fwd * share + u * a2a_fwd
        bwd = (1.0 - u) * compute_bwd * share + u * a2a_bwd
    hidden = (a2a_fwd + a2a_bwd) - (fwd + bwd)
    return fwd, bwd, hidden * comm_sm_share(ctx)


def tp_backward_exposed_seconds(ctx: StepContext, ops, sp: np.ndarray, all_reduce: np.ndarray,
                                all_gather: np.ndarray, reduce_scatter: np.ndarray) -> np.ndarray:
    """Exposed TP communication of one layer's backward when each column-parallel linear (QKV,
    MLP-up) launches its input-gradient collective asynchronously and computes its weight gradient
    meanwhile (``tp_async_backward``), plus the slowdown the hidden part inflicts on that GEMM
    (:func:`comm_sm_share`).  Per column-parallel linear:

    - without sequence parallelism its input gradient is all-reduced under the weight-gradient
      GEMM; the row-parallel linear's backward needs no collective (its forward all-reduce is the
      identity backward), so max(all-reduce - wgrad, 0) is exposed;
    - with sequence parallelism the backward moves three collectives: the all-gather of the output
      gradient before the row-parallel linear, the all-gather of the sharded input again for the
      weight gradient, and the reduce-scatter of the input gradient under the weight-gradient GEMM.
      The code launches the input all-gather before the data-gradient GEMM too, but it is charged
      as exposed: Korthikanti et al. 2022 Table 4 measures the 22B layer's backward at 11.8 ms with
      sequence parallelism against 11.9 ms without, no faster although its norms and dropouts run
      on 1/t of the tokens.

    Source: Megatron-Core 0.1.0 (PyPI, May 2023) megatron/core/tensor_parallel/layers.py
    ``LinearWithGradAccumulationAndAsyncCommunication.backward`` (Korthikanti et al.'s code:
    ``async_grad_allreduce`` / ``_reduce_scatter_base(..., async_op=True)`` before the wgrad GEMM);
    Transformer Engine's linears overlap the same way.  ``all_reduce`` / ``all_gather`` /
    ``reduce_scatter``: the seconds of one such TP collective of the layer.  A schedule that runs
    the weight gradients apart from the input-gradient pass (:data:`SPLIT_BACKWARD_SCHEDULES`) leaves
    that pass no weight-gradient GEMM to hide the collective under: it is exposed."""
    exposed = hidden = np.asarray(0.0)
    split = ctx.pipeline_schedule in SPLIT_BACKWARD_SCHEDULES
    for kind, names in TP_OVERLAP_PAIRS:
        if kind != "all_gather":
            continue  # the column-parallel side
        if not any(isinstance(op, O.Gemm) and op.name in names for op in ops):
            continue
        # a frozen weight (LoRA) has no weight-gradient GEMM to hide the collective under
        wgrad = _named_gemm_seconds(ctx, ops, names, wgrad=True)
        window = 0.0 * wgrad if split else wgrad
        after = np.where(sp, reduce_scatter, all_reduce)
        exposed = exposed + np.where(sp, 2.0 * all_gather, 0.0) + np.maximum(after - window, 0.0)
        hidden = hidden + np.minimum(after, window)
    return exposed + hidden * comm_sm_share(ctx)


def grad_accumulation_seconds(ctx: StepContext, plans: PlanArrays, n_params: ArrayLike) -> np.ndarray:
    """Seconds per micro-batch of the unfused gradient accumulation over ``n_params`` local weights
    (0 with ``gradient_accumulation_fusion``): a memory-bound pass of GRAD_ACCUMULATION_BYTES per
    gradient element the rank keeps, all of them under ZeRO 0-1 (the distributed optimizer too:
    its buffer is whole until the reduce-scatter after the backward), the 1/(dp x cp) shard
    under ZeRO 2-3, whose gradients are reduce-scattered before they are accumulated."""
    if ctx.gradient_accumulation_fusion:
        return np.zeros(len(plans.tp))
    kept = np.asarray(n_params, dtype=float) / np.where(plans.priced_zero >= 2, plans.shard, 1)
    return K.memory_bound_seconds(GRAD_ACCUMULATION_BYTES * kept, ctx.system.accelerator, ctx.profile)


def layer_local_params_split(model, plans: PlanArrays, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(dense, routed-expert) weights of one layer of ``kind`` on one GPU: the dense ones (a MoE
    layer's attention, router and shared experts included) over tp, the routed experts over
    etp x ep (expert tensor parallelism, tp unless the plan folds the experts)."""
    tp = np.asarray(plans.tp, dtype=float)
    routed = float(model.routed_params_per_layer(kind))
    dense = (model.params_per_layer(kind) - routed) / tp
    if not routed:
        return dense, np.zeros_like(tp)
    return dense, routed / np.asarray(plans.etp * plans.ep, dtype=float)


def layer_local_params(model, plans: PlanArrays, kind: str) -> np.ndarray:
    """Weights of one layer of ``kind`` on one GPU (:func:`layer_local_params_split`, summed)."""
    return sum(layer_local_params_split(model, plans, kind))


def _layer_seconds(ctx: StepContext, plans: PlanArrays, kind: str) -> dict[str, np.ndarray]:
    """Per-GPU seconds of one layer of ``kind`` for one micro-batch: compute and exposed comm."""
    m, net, prof = ctx.model, ctx.network, ctx.profile
    tp, cp, ep = plans.tp, plans.cp, plans.ep
    sp = plans.sequence_parallel
    ops = plan_layer_ops(ctx, plans, kind)
    moe = kind in MOE_KINDS
    if moe and ctx.moe_load_imbalance != 1.0:
        ops = O.busiest_expert_rank_ops(ops, m, expert_rank_load(ctx, plans))
    if ctx.lora is not None:
        ops = L.with_adapters(ops, m, kind, ctx.lora, plans.sequence_parallel)
    t = ops_seconds(ops, ctx)
    rc = plans.recompute
    # full: the forward of the recomputed share of the stage's layers (all, or Megatron's block
    # method's recompute_layers); selective: the attention core
    full_share = plans.recompute_fraction(layers_on_slowest_stage(m.layers, plans.pp))
    selective = rc == RECOMPUTE_CODES["selective"]
    per_op = ctx.selective_recompute == "ops"
    again = (ops_seconds(O.op_sac_recompute_ops(ops, m), ctx)["fwd"] if per_op and selective.any()
             else t["attn_fwd"])
    recompute = np.where(rc == RECOMPUTE_CODES["full"], full_share * t["fwd"],
                         np.where(selective, again, 0.0))

    # --- tensor parallel: 2 collectives per layer forward (after attention and after the MLP),
    # 2 in backward (Korthikanti et al. 2022 section 4.2.2).  With sequence parallelism each
    # all-reduce becomes an all-gather + a reduce-scatter of the same tensor.
    tokens = plans.micro_batch * ctx.seq_len / cp
    msg = tokens * m.hidden * ACTIVATION_BYTES
    ar = C.all_reduce_seconds(msg, tp, net, prof, stride=1)
    ag = C.all_gather_seconds(msg * sp_gather_bytes(ctx) / ACTIVATION_BYTES, tp, net, prof, stride=1)
    rs = C.reduce_scatter_seconds(msg, tp, net, prof, stride=1)
    tp_one = np.where(sp, ag + rs, ar)
    # a transformer block has two column-/row-parallel pairs (attention, MLP), a hybrid's layer one
    pairs = 1.0 if kind in O.HYBRID_KINDS else 2.0
    tp_fwd = np.where(tp > 1, pairs * tp_one, 0.0)
    use = plans.tp_overlap & sp & (tp > 1)
    tp_exposed_fwd = tp_exposed_bwd = tp_fwd
    if use.any():
        tp_exposed_fwd, tp_exposed_bwd = (
            np.where(use, tp_overlap_exposed_seconds(ctx, ops, tp, ag, rs, backward=b)
                     + tp_overlap_chunk_seconds(ctx, ops, tp, backward=b), tp_fwd)
            for b in (False, True))
    asynchronous = ~use & (tp > 1)
    if ctx.tp_async_backward and asynchronous.any():
        tp_exposed_bwd = np.where(asynchronous, tp_backward_exposed_seconds(ctx, ops, sp, ar, ag, rs),
                                  tp_exposed_bwd)
    if moe:
        tp_exposed_fwd, tp_exposed_bwd = (moe_tp_exposed_seconds(ctx, plans, msg, x)
                                          for x in (tp_exposed_fwd, tp_exposed_bwd))
    if ctx.lora is not None:  # the adapters' own collectives, none overlapped
        lora_fwd, lora_bwd = L.adapter_tp_seconds(ops, ctx.lora, m, kind, sp, net, prof, ACTIVATION_BYTES)
        tp_exposed_fwd, tp_exposed_bwd = tp_exposed_fwd + lora_fwd, tp_exposed_bwd + lora_bwd
    tp_recompute = full_share * tp_exposed_fwd
    if per_op:
        # the per-op policy saves reduce-scatter outputs but not all-gathers or all-reduces: the
        # recomputed matmuls' inputs are gathered again (sequence parallel) or the row-parallel
        # output projection's all-reduce runs again (without it), once per block half
        tp_recompute = np.where(selective & (tp > 1), 2.0 * np.where(sp, ag, ar), tp_recompute)

    # --- context parallel: ring attention passes K and V around the cp ranks (cp - 1 steps),
    # overlapped with the attention of the previous chunk (Liu et al. 2023, Ring Attention;
    # Megatron-Core CP).  Backward passes K, V and their gradients: twice the bytes.
    # K and V per head (MLA: the up-projected keys with their rope part, and the values)
    kv_msg = O.ring_kv_elements(m, tokens, tp) * ACTIVATION_BYTES
    cp_step = C.send_recv_seconds(kv_msg, net, prof, crosses_scaleout=tp * cp > net.scaleup_domain_size)
    attends = kind in ("dense", "moe", "attention")
    cp_fwd = np.where((cp > 1) & attends, np.maximum((cp - 1) * cp_step - t["attn_fwd"], 0.0), 0.0)
    cp_bwd = np.where((cp > 1) & attends, np.maximum(2.0 * (cp - 1) * cp_step - 2.0 * t["attn_fwd"], 0.0), 0.0)
    if kind == "mamba":
        # a Mamba-2 mixer's two all-to-alls each way (sequence- to head-parallel and back), not
        # overlapped: the convolution and the scan wait for them
        a2a = C.all_to_all_seconds(O.mamba_all_to_all_bytes(m, plans.micro_batch, ctx.seq_len, tp, cp), cp,
                                   net, prof, stride=tp)
        cp_fwd = cp_bwd = np.where(cp > 1, a2a, 0.0)

    # --- expert parallel: dispatch + combine all-to-all per MoE layer forward, again in backward
    # (the backward sends the gradients the same two ways, in the same precisions).
    ep_fwd = ep_bwd = np.zeros_like(tp_fwd)
    if moe:
        a2a = np.where(ep > 1, moe_all_to_all_seconds(ctx, plans, tokens / np.where(sp, tp, 1)), 0.0)
        # full recompute re-runs the layer's forward, its dispatch and combine included
        a2a_bwd = a2a * (1.0 + full_share)
        ep_fwd, ep_bwd, ep_slowdown = ep_exposed_seconds(ctx, ops, a2a, a2a_bwd, t["fwd"],
                                                         t["bwd"] + recompute,
                                                         unpaired_pass_share(ctx, plans))
    else:
        ep_slowdown = 0.0

    # the unfused gradient accumulation follows the weight gradients of each micro-batch
    trained = (sum(L.adapter_params_local(ops)) if ctx.lora is not None
               else layer_local_params(m, plans, kind))
    accumulate = grad_accumulation_seconds(ctx, plans, trained)
    return {
        "compute_fwd": t["fwd"], "compute_bwd": t["bwd"] + recompute + ep_slowdown + accumulate,
        "compute_wgrad": t["wgrad"] + accumulate, "recompute": recompute,
        "tp_fwd": tp_exposed_fwd, "tp_bwd": tp_exposed_bwd + tp_recompute,
        "cp_fwd": cp_fwd, "cp_bwd": cp_bwd, "ep_fwd": ep_fwd, "ep_bwd": ep_bwd,
    }


def head_local_params(model, plans: PlanArrays) -> np.ndarray:
    """Vocabulary weights on one GPU of the last stage: the output head (the embedding copy when
    tied), over tp; at pp = 1 the input embedding as well."""
    head = float(model.params_output_head or model.vocab * model.hidden)
    return np.where(plans.pp == 1, float(model.params_embedding + model.params_output_head), head) / plans.tp


def local_params(ctx: StepContext, plans: PlanArrays) -> dict[str, np.ndarray]:
    """Parameters held by one GPU of the slowest (last) pipeline stage, before ZeRO sharding.

    Dense weights split over tp; routed-expert weights over etp x ep (expert tensor parallelism,
    tp unless the plan folds the experts); the embedding or the output head (vocab x hidden / tp) sits on
    the first / last stage (both on the only stage when pp = 1).  DualPipe: two stages per GPU
    (:func:`colossim.training.pipeline.stage_copies`).

    ``trained_dense`` / ``trained_expert`` / ``trained``: the weights among them that are trained,
    whose gradients are reduced and whose optimizer state is stepped: all of them, or under a
    LoRA the adapters alone (:func:`colossim.training.lora.adapter_params_local`).
    ``stored_dense`` / ``stored_expert``: the bytes the (base) weights are stored in, what ZeRO-3
    gathers: bf16, or under QLoRA the layers' linear weights in NF4."""
    m = ctx.model
    per_kind = [(n, layer_local_params_split(m, plans, k)) for k, n in m.layer_kinds]
    stage_share = layers_on_slowest_stage(m.layers, plans.pp) / m.layers
    copies = stage_copies(plans.pp, ctx.pipeline_schedule)
    dense_local = copies * (sum(n * d for n, (d, _) in per_kind) * stage_share + head_local_params(m, plans))
    expert_local = copies * sum(n * e for n, (_, e) in per_kind) * stage_share
    out = {"dense": dense_local, "expert": expert_local, "total": dense_local + expert_local}
    stored = {"stored_dense": PARAM_GATHER_BYTES * dense_local,
              "stored_expert": PARAM_GATHER_BYTES * expert_local}
    if ctx.lora is None:
        return {**out, **stored, "trained_dense": dense_local, "trained_expert": expert_local,
                "trained": out["total"]}
    kinds = [(k, n * stage_share) for k, n in m.layer_kinds]
    adapters = L.adapter_params_per_gpu(m, ctx.lora, kinds, plans.tp, plans.ep, plans.etp)
    trained_dense, trained_expert = (copies * adapters[k] + 0.0 * dense_local for k in ("dense", "expert"))
    nf4 = L.quantized_params_per_gpu(m, ctx.lora, kinds, plans.tp, plans.ep, plans.etp)
    saved = PARAM_GATHER_BYTES - L.NF4_BYTES_PER_WEIGHT
    stored = {f"stored_{k}": stored[f"stored_{k}"] - saved * copies * nf4[k] for k in ("dense", "expert")}
    return {**out, **stored, "trained_dense": trained_dense, "trained_expert": trained_expert,
            "trained": trained_dense + trained_expert}


#: Gradient buckets of the overlapped DP reduction: max(DDP_BUCKET_MIN_PARAMS,
#: DDP_BUCKET_PARAMS_PER_RANK x DP ranks) parameters each.  Source: Megatron-Core
#: distributed_data_parallel.py (``bucket_size = max(40000000, 1000000 * dp_size)`` when
#: ``overlap_grad_reduce``; one bucket otherwise): buckets grow with DP so that each collective
#: stays bandwidth-bound at thousands of ranks.
DDP_BUCKET_MIN_PARAMS = 40e6
DDP_BUCKET_PARAMS_PER_RANK = 1e6


def dp_buckets(local_params: np.ndarray, dp_group: np.ndarray, overlap: bool) -> tuple[np.ndarray, np.ndarray]:
    """(number of gradient buckets, share of the local parameters in one bucket).

    With overlap each bucket's reduce-scatter starts when its gradients are ready, so the last
    one (the first layers and the embedding, reached last by the backward) starts after the
    backward ends and its collective is exposed whatever the window; likewise the first bucket's
    parameter all-gather before the forward.  Without overlap: one bucket, reduced after the
    backward."""
    p = np.maximum(np.asarray(local_params, dtype=float), 1.0)
    if not overlap:
        return np.ones_like(p), np.ones_like(p)
    bucket = np.maximum(DDP_BUCKET_MIN_PARAMS, DDP_BUCKET_PARAMS_PER_RANK * np.asarray(dp_group, dtype=float))
    return np.ceil(p / bucket), np.minimum(bucket / p, 1.0)


#: DeepSpeed ZeRO-3 keeps a parameter tensor with fewer elements than this gathered after its first
#: use: it is never released, so never fetched again (it is still reduce-scattered).  Source:
#: DeepSpeed v0.3.14 deepspeed/runtime/zero/constants.py
#: ``ZERO_OPTIMIZATION_PARAM_PERSISTENCE_THRESHOLD_DEFAULT = 100000``; stage3.py
#: ``persistent_parameters`` marks them ``ds_persist``, ``release_sub_module`` skips them.
DEEPSPEED_PERSISTENCE_THRESHOLD_ELEMENTS = 1e5


#: DeepSpeed ZeRO-3 keeps a gathered tensor instead of releasing it when the parameters the trace
#: runs before its next use hold fewer elements than this.  Source: DeepSpeed v0.3.14
#: deepspeed/runtime/zero/constants.py ``ZERO_OPTIMIZATION_MAX_REUSE_DISTANCE_DEFAULT = 1000000000``;
#: stage3.py ``_keep_for_later`` / ``_distance_in_numel``.
DEEPSPEED_MAX_REUSE_DISTANCE_ELEMENTS = 1e9


def deepspeed_layer_tensors(model, tp: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(tensors DeepSpeed ZeRO-3 all-gathers, parameter tensors in all) of one layer, per GPU.

    DeepSpeed's hooks fetch each submodule's parameters as the forward / backward reaches it and
    issue one collective per tensor (Rajbhandari et al. 2020, ZeRO, sec. 5; v0.3-0.5
    partition_parameters.py ``_all_gather`` / ``_reduce_scatter_gradients``): the weight matrices
    (:func:`deepspeed_layer_weights`) always; the bias and norm vectors only when they reach
    ``DEEPSPEED_PERSISTENCE_THRESHOLD_ELEMENTS`` (TP-local length).  Every tensor's gradient is
    reduce-scattered on its own."""
    tp = np.asarray(tp, dtype=float)
    h, m = float(model.hidden), model.activation.mlp_matrices
    weights = len(O.deepspeed_layer_weights(model, tp))
    vectors: list[np.ndarray | float] = [h] * (model.norms_per_layer * (2 if model.norm == "layernorm" else 1))
    if model.attention != "mla" and (model.bias or model.qkv_bias):
        vectors.append(float(model.heads + 2 * model.kv_heads) * model.head_dim / tp)
    if model.bias:
        vectors.append(h)  # output projection
        if model.ffn_hidden:
            vectors += [float(model.ffn_hidden) / tp] * (m - 1) + [h]
    big = sum(np.asarray(v, dtype=float) >= DEEPSPEED_PERSISTENCE_THRESHOLD_ELEMENTS for v in vectors)
    return weights + big + 0.0 * tp, weights + len(vectors) + 0.0 * tp


def deepspeed_backward_refetch(model, tp: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(share of the calls, share of the bytes) of a recomputed layer's weight gathers that its
    backward fetches again after the recompute forward.

    Under full recompute the backward first re-runs the layer's forward, then walks it in reverse:
    between a weight's recompute-forward use and its backward use run the later weights' forward
    and backward, 2 x the elements of the weights after it.  DeepSpeed keeps the weight gathered
    when that is under ``DEEPSPEED_MAX_REUSE_DISTANCE_ELEMENTS`` and fetches it again otherwise (the
    last weight always stays).  GPT-3 175B: QKV, output and fc1 are fetched again, fc2 stays (3 of
    4 calls, 2/3 of the bytes); a 4096-wide layer keeps all four."""
    w = O.deepspeed_layer_weights(model, tp)
    later = [2.0 * sum(w[i + 1:], np.zeros_like(w[0])) for i in range(len(w))]
    again = [np.asarray(d >= DEEPSPEED_MAX_REUSE_DISTANCE_ELEMENTS, dtype=float) for d in later]
    calls = sum(again) / len(w)
    return calls, sum(g * n for g, n in zip(again, w)) / sum(w)


def zero3_collectives_per_layer(model, fsdp: np.ndarray, tp: ArrayLike = 1) -> tuple[np.ndarray, np.ndarray]:
    """(parameter all-gathers per pass, gradient reduce-scatters per micro-batch) of one layer under
    ZeRO-3.

    PyTorch FSDP flattens each wrapped unit (a transformer block) into one FlatParameter: one
    all-gather and one reduce-scatter per layer (Zhao et al. 2023, "PyTorch FSDP", sec. 3.2).
    DeepSpeed ZeRO-3 of 2021 gathers tensor by tensor, the persistent ones aside, and reduces every
    tensor's gradient on its own (:func:`deepspeed_layer_tensors`).  Each collective pays its own
    ring latency, which at hundreds of ranks dominates (Narayanan et al. 2021 Table 2's collapse)."""
    fsdp = np.asarray(fsdp, dtype=bool)
    gathered, tensors = deepspeed_layer_tensors(model, tp)
    return np.where(fsdp, 1.0, gathered), np.where(fsdp, 1.0, tensors)


#: HBM bytes per gathered parameter byte that DeepSpeed ZeRO-3 of 2021 moves around the NCCL
#: all-gather itself: the gathered tensor is zero-filled first (one write), and PyTorch's NCCL group
#: gathers into its own flat buffer and copies it out to the caller's list of per-rank slices (one
#: read, one write).  Source: DeepSpeed v0.3.14 partition_parameters.py ``_allgather_param``
#: (``flat_tensor = torch.zeros(aligned_param_size, ...)``, ``partitions`` = narrow views of it);
#: PyTorch 1.8 ProcessGroupNCCL.cpp ``allgather`` (``flatten_for_scatter_gather`` then, per output
#: tensor, ``outputTensors[i][j].copy_(outputFlattened[i][j])``).
DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE = 3.0

#: HBM bytes per reduced gradient byte around DeepSpeed ZeRO-3's list reduce-scatter: the gradient
#: is first divided by the group size in place (one read, one write), then PyTorch 1.8's
#: ``reduce_scatter`` copies the caller's list of per-rank input slices into one flat buffer before
#: the NCCL call (one read, one write).  Source: DeepSpeed v0.3.14 stage3.py ``average_tensor``
#: (``tensor.div_(dist.get_world_size(...))`` before ``reduce_gradients_at_owner``, the
#: reduce-scatter path that ``contiguous_gradients`` selects); PyTorch 1.8 ProcessGroupNCCL.cpp
#: ``reduce_scatter`` (``flatten_for_scatter_gather(inputTensors, ...)``, then
#: ``inputFlattened[i][j].copy_(inputTensors[i][j])``).  The copy of small gradients into the
#: contiguous bucket is left out: which tensors it takes depends on ``reduce_bucket_size``.
DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE = 4.0


def list_collective_copy_seconds(ctx: StepContext, group: np.ndarray, calls: np.ndarray,
                                 hbm_bytes: ArrayLike = 0.0) -> np.ndarray:
    """Host-serialised copies of collectives called on Python lists of per-rank tensors.

    DeepSpeed ZeRO-3 of 2021 all-gathers into, and reduce-scatters from, a list of ``group``
    per-rank slices (v0.3.14 partition_parameters.py ``_allgather_param``: ``all_gather(partitions,
    ...)``; ``_reduce_scatter_gradient``: ``reduce_scatter(..., input_list)``).  PyTorch's NCCL
    process group of the time (before ``_all_gather_base`` / ``_reduce_scatter_base``, 1.10-1.11)
    copied each slice between the list and one flat buffer around the NCCL call: one copy kernel
    per rank per collective.  Each costs a kernel's fixed time, the profile's fitted per-kernel
    launch time (:func:`colossim.cost.compute.gemm_roofline`); together they also move
    ``hbm_bytes`` through memory (the copies and DeepSpeed's zero-fill,
    ``DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE`` / ``DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE``), a
    memory-bound pass at the chip's achievable bandwidth.  The fetch waits for them (DeepSpeed
    synchronises the device before and after every fetch), so they are exposed."""
    launch = ctx.profile.gemm_params(ctx.precision).launch_seconds
    moved = K.memory_bound_seconds(hbm_bytes, ctx.system.accelerator, ctx.profile)
    return np.asarray(calls, dtype=float) * np.asarray(group, dtype=float) * launch + moved


def zero3_recompute_regathers(plans: PlanArrays, model) -> np.ndarray:
    """Extra parameter all-gathers per micro-batch (in passes over the stage's weights) that full
    recompute costs DeepSpeed ZeRO-3: the backward re-runs each checkpointed layer's forward, whose
    pre-forward hook fetches the weights the first forward released, and the layer's backward hook
    fetches them once more (deepspeed/runtime/zero/parameter_offload.py: ``pre_sub_module_forward``
    / ``post_sub_module_forward`` release, ``pre_sub_module_backward`` fetch) what the reuse
    distance released (:func:`deepspeed_backward_refetch`), so a recomputed layer's weights cross
    the network up to three times per micro-batch instead of two.  PyTorch FSDP
    unshards the unit in its pre-backward hook, before the checkpointed forward runs again, and
    reuses that gather (Zhao et al. 2023, sec. 3.3): no extra gather (the caller applies this to
    DeepSpeed plans only).  Selective recompute redoes the attention core alone, which holds no
    weights: none either."""
    return plans.recompute_fraction(layers_on_slowest_stage(model.layers, plans.pp))


#: SMs an NCCL ring/tree collective occupies while it runs: one thread block per channel, each
#: resident on its own SM for the whole collective (NCCL's kernels are persistent).  Because:
#: NCCL's topology search on 8-GPU / 8-NIC HGX nodes settles on two channels per NIC for
#: inter-node rings (``NCCL_DEBUG=INFO`` "16 coll channels"); an assumption, not a measurement.
NCCL_OVERLAP_CHANNELS = 16


def comm_sm_share(ctx: StepContext) -> float:
    """Share of the chip's SMs an overlapped data-parallel collective takes from the compute it hides
    under: ``NCCL_OVERLAP_CHANNELS`` / SMs.  Overlap is not free: the hidden seconds slow the
    compute by this share (the GEMMs run on the remaining SMs)."""
    return min(NCCL_OVERLAP_CHANNELS / ctx.profile.gemm_params(ctx.precision).sm_count, 1.0)


def _dp_seconds(ctx: StepContext, plans: PlanArrays, params: dict[str, np.ndarray],
                t_fwd_mb: np.ndarray, t_bwd_mb: np.ndarray, n_micro: np.ndarray) -> np.ndarray:
    """Exposed data-parallel communication of one step (per GPU), plus the slowdown the hidden
    part inflicts on the compute it overlaps (:func:`comm_sm_share`).

    ZeRO 0: all-reduce of the gradients (``ctx.dp_grad_bytes`` each).  ZeRO 1-2 / distributed
    optimizer: reduce-scatter of the gradients + all-gather of the updated weights (bf16, or fp8
    with ``ctx.param_gather_bytes``); ZeRO-2, which keeps only its shard of the gradients,
    reduce-scatters every micro-batch's.  ZeRO 3 /
    FSDP: every micro-batch all-gathers the weights for forward and again for backward and
    reduce-scatters the gradients, prefetched layer by layer so only what exceeds that
    micro-batch's compute is exposed (Rajbhandari et al. 2020, ZeRO; Zhao et al. 2023, FSDP).  The
    gathers are one collective per layer (FSDP) or per submodule (DeepSpeed), each with its own
    latency (:func:`zero3_collectives_per_layer`); DeepSpeed's
    also pay one host-side copy per rank (:func:`list_collective_copy_seconds`).
    Replicas span dp x cp ranks (CP ranks hold the same weights); expert weights replicate over
    dp x cp / ep ranks.  Both groups have stride tp in the rank order.  With ``shard_group`` the
    ZeRO collectives run within a shard of that many consecutive ranks, and the shard's copies
    then all-reduce its gradients once per step (stride tp x shard), hidden under the last
    micro-batch's backward where gradient reduction overlaps."""
    net, prof = ctx.network, ctx.profile
    replicas = plans.dp * plans.cp
    group, shard_copies = plans.shard, plans.shard_copies
    # expert replicas: the expert-data-parallel group, tp x cp x dp / (etp x ep) (= dp x cp / ep at
    # etp = tp), at stride tp x cp x ep, or etp x ep when folded; a shard of it over the same copies
    egroup_all = np.maximum((plans.tp * replicas) // np.maximum(plans.etp * plans.ep, 1), 1)
    egroup = np.maximum(egroup_all // shard_copies, 1)
    # every weight is gathered under ZeRO-3; only the trained ones (all, or a LoRA's adapters) have
    # gradients to reduce, and only they change, so only they are gathered after the step
    dense, expert = params["dense"], params["expert"]
    t_dense, t_expert = params["trained_dense"], params["trained_expert"]

    def coll(fn, n_params, nbytes, g, stride, calls=1.0):
        calls = np.maximum(calls, 1.0)
        return np.where((g > 1) & (n_params > 0),
                        calls * fn(n_params * nbytes / calls, g, net, prof, stride=stride), 0.0)

    estride = np.where(plans.folded, plans.etp * plans.ep, plans.tp * plans.cp * plans.ep)
    nb, nb_e = (dp_buckets(t_dense, group, ctx.overlap_grad_reduce)[0],
                dp_buckets(t_expert, egroup, ctx.overlap_grad_reduce)[0])
    grad, gathered = ctx.dp_grad_bytes, ctx.param_gather_bytes
    ar = (coll(C.all_reduce_seconds, t_dense, grad, replicas, plans.tp, nb)
          + coll(C.all_reduce_seconds, t_expert, grad, egroup_all, estride, nb_e))
    # the shard's copies (shard_group): one all-reduce of the shard's gradients per step
    rep = (coll(C.all_reduce_seconds, t_dense / group, grad, shard_copies, plans.tp * group)
           + coll(C.all_reduce_seconds, t_expert / egroup, grad, shard_copies, plans.tp * group))
    rs = (coll(C.reduce_scatter_seconds, t_dense, grad, group, plans.tp, nb)
          + coll(C.reduce_scatter_seconds, t_expert, grad, egroup, estride, nb_e))
    ag = (coll(C.all_gather_seconds, t_dense, gathered, group, plans.tp, nb)
          + coll(C.all_gather_seconds, t_expert, gathered, egroup, estride, nb_e))
    # the last gradient bucket (first parameter bucket) is exposed even under overlap
    edge = dp_buckets(t_dense + t_expert, group, ctx.overlap_grad_reduce)[1]

    # ZeRO-3: the same bytes in many collectives (per layer or per submodule)
    layers = layers_on_slowest_stage(ctx.model.layers, plans.pp)
    gathers, reductions = zero3_collectives_per_layer(ctx.model, plans.fsdp, plans.tp)
    fetches = layers * gathers + 1.0  # + embedding/head
    share = np.where(expert > 0, dense / (dense + expert), 1.0)
    t_share = np.where(t_expert > 0, t_dense / np.maximum(t_dense + t_expert, 1e-30), 1.0)
    buckets = layers * reductions + 1.0
    # the weights as stored (bf16, or QLoRA's NF4), gathered as they are
    s_dense, s_expert = params["stored_dense"], params["stored_expert"]
    ag3 = (coll(C.all_gather_seconds, s_dense, 1.0, group, plans.tp, fetches * share)
           + coll(C.all_gather_seconds, s_expert, 1.0, egroup, estride, fetches * (1 - share)))
    rs3 = (coll(C.reduce_scatter_seconds, t_dense, PARAM_GATHER_BYTES, group, plans.tp, buckets * t_share)
           + coll(C.reduce_scatter_seconds, t_expert, PARAM_GATHER_BYTES, egroup, estride,
                  buckets * (1 - t_share)))

    # Megatron-Core --overlap-grad-reduce / --overlap-param-gather, DDP/FSDP buckets: the reduction
    # hides under the last micro-batch's backward, the gather under the first one's forward.
    # Without (Megatron-LM before Megatron-Core, DeepSpeed's pipeline engine) the gradients are
    # all-reduced after the whole backward and the updated weights gathered after the optimizer.
    bwd_window = t_bwd_mb if ctx.overlap_grad_reduce else 0.0
    fwd_window = t_fwd_mb if ctx.overlap_grad_reduce and ctx.overlap_param_gather else 0.0
    zero0 = np.maximum(ar - bwd_window, edge * ar)
    # ZeRO-2 keeps only its shard of the gradients, so each micro-batch's are reduce-scattered as its
    # backward makes them (DeepSpeed stage 2's per-micro-step reduction, FSDP's SHARD_GRAD_OP); ZeRO-1
    # and the distributed optimizer accumulate whole gradients and reduce them once a step
    rs_per_step = np.where(plans.priced_zero == 2, n_micro, 1.0)
    zero12 = rs_per_step * np.maximum(rs - bwd_window, edge * rs) + np.maximum(ag - fwd_window, edge * ag)
    # ZeRO-3: per micro-batch, gathers hide under that micro-batch's forward / backward compute
    # (prefetch) unless ``overlap_param_gather`` is off; the gradient reduce-scatter too unless
    # ``overlap_grad_reduce`` is off.
    # DeepSpeed re-gathers the recomputed layers' weights for the recompute forward, then for the
    # backward those it released (FSDP neither); its list collectives copy once per rank.
    rf = np.where(plans.fsdp, 0.0, zero3_recompute_regathers(plans, ctx.model))
    again_calls, again_bytes = deepspeed_backward_refetch(ctx.model, plans.tp)
    ag3_again = (coll(C.all_gather_seconds, s_dense * again_bytes, 1.0, group, plans.tp,
                      fetches * again_calls * share)
                 + coll(C.all_gather_seconds, s_expert * again_bytes, 1.0, egroup, estride,
                        fetches * again_calls * (1 - share)))
    bwd_ag = ag3 + rf * ag3_again
    calls = fetches * (2.0 + rf * again_calls) + buckets
    stage_bytes = s_dense + s_expert
    moved = stage_bytes * (DEEPSPEED_GATHER_HBM_BYTES_PER_BYTE * (2.0 + rf * again_bytes)
                           + DEEPSPEED_REDUCE_SCATTER_HBM_BYTES_PER_BYTE)
    copies = np.where(plans.fsdp, 0.0, list_collective_copy_seconds(ctx, group, calls, moved))
    rs3_exposed = 0.0 if ctx.overlap_grad_reduce else rs3
    ag3_exposed = 0.0 if ctx.overlap_param_gather else ag3 + bwd_ag
    hidden = 1.0 if ctx.overlap_param_gather else 0.0
    zero3 = n_micro * (np.maximum(hidden * ag3 - t_fwd_mb, 0.0)
                       + np.maximum(hidden * bwd_ag + rs3 - rs3_exposed - t_bwd_mb, 0.0)
                       + rs3_exposed + ag3_exposed + copies)
    rep_exposed = np.maximum(rep - bwd_window, edge * rep)
    zero = plans.priced_zero
    exposed = np.where(zero >= 3, zero3, np.where(zero >= 1, zero12, zero0)) + np.where(zero >= 1, rep_exposed, 0.0)
    total = (np.where(zero >= 3, n_micro * (ag3 + bwd_ag + rs3), np.where(zero >= 1, rs_per_step * rs + ag, ar))
             + np.where(zero >= 1, rep, 0.0))
    # what hides under compute still holds NCCL's SMs while it runs
    return exposed + np.maximum(total - exposed, 0.0) * comm_sm_share(ctx)


def _with_mtp(ctx: StepContext, plans: PlanArrays, head: dict[str, np.ndarray],
              last_layer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The last stage's head work with the model's multi-token-prediction modules added: each is a
    transformer block of the last layer's kind (its compute and exposed TP / EP communication),
    the projection of [norm(h); norm(embedding)] (2h) back to h, and the shared output head and loss
    once more (DeepSeek-V3 report sec. 2.2; DualPipe keeps them with the output head on the last
    stage, sec. 3.2.1).  Their weights and activations are left out of the memory model (one
    block on the last stage, whose peak is below the first stage's in 1F1B)."""
    m, tp = ctx.model, plans.tp
    tokens = plans.micro_batch * ctx.seq_len / plans.cp
    # a LoRA freezes the modules' projections with the rest of the base model
    proj = ops_seconds([O.Gemm("mtp_proj", tokens, m.hidden / tp, 2 * m.hidden, frozen=ctx.lora is not None)], ctx)
    comm = {"fwd": last_layer["tp_fwd"] + last_layer["ep_fwd"], "bwd": last_layer["tp_bwd"] + last_layer["ep_bwd"]}
    block = {"fwd": last_layer["compute_fwd"] + comm["fwd"], "bwd": last_layer["compute_bwd"] + comm["bwd"],
             "wgrad": last_layer["compute_wgrad"]}
    n = float(m.mtp_modules)
    # ``head`` is the main model's logits and loss: each module runs them once more
    out = {**head, **{k: (1.0 + n) * head[k] + n * (block[k] + proj[k]) for k in ("fwd", "bwd", "wgrad")}}
    # the blocks' exposed communication, which the step's breakdown counts with the layers' own
    out.update({k: n * last_layer[k] for k in ("tp_fwd", "tp_bwd", "ep_fwd", "ep_bwd")})
    return out


def evaluate_step(ctx: StepContext, plans: PlanArrays) -> dict[str, np.ndarray]:
    """Step time and its breakdown for every plan (arrays, seconds per step)."""
    m = ctx.model
    n_micro = micro_batches(ctx, plans)
    kinds = m.layer_kinds
    per = {k: _layer_seconds(ctx, plans, k) for k, _ in kinds}

    def per_layer(key: str) -> np.ndarray:
        return sum(per[k][key] * n for k, n in kinds) / m.layers

    keys = ("compute_fwd", "compute_bwd", "compute_wgrad", "recompute", "tp_fwd", "tp_bwd", "cp_fwd", "cp_bwd",
            "ep_fwd", "ep_bwd")
    layer = {k: per_layer(k) for k in keys}
    head_ops = O.logits_ops(m, plans.micro_batch, ctx.seq_len, plans.tp, plans.cp, plans.sequence_parallel,
                            ctx.cross_entropy_fusion, ctx.elementwise_fusion)
    # a LoRA freezes the output head (and the embedding) with the rest of the base model
    head = ops_seconds(head_ops if ctx.lora is None else L.freeze(head_ops), ctx)
    # the unfused gradient accumulation of the output layer's weights (+ the embedding at pp 1)
    accumulate = grad_accumulation_seconds(ctx, plans, head_local_params(m, plans) * (ctx.lora is None))
    head = {**head, "bwd": head["bwd"] + accumulate, "wgrad": head["wgrad"] + accumulate}
    if m.mtp_modules:
        head = _with_mtp(ctx, plans, head, per[kinds[-1][0]])

    # Slowest stage: the one with ceil(L/p) layers, or the last stage (its layers + logits); with
    # uneven stages allowed the last stage gives layers up to the others to absorb the logits.
    f_layer = layer["compute_fwd"] + layer["tp_fwd"] + layer["cp_fwd"] + layer["ep_fwd"]
    b_layer = layer["compute_bwd"] + layer["tp_bwd"] + layer["cp_bwd"] + layer["ep_bwd"]
    n_max = layers_on_slowest_stage(m.layers, plans.pp)
    n_last = layers_on_last_stage(m.layers, plans.pp, (f_layer, b_layer), (head["fwd"], head["bwd"]),
                                  balance=ctx.balance_stages)

    def stage(per_layer_s: np.ndarray, head_s: np.ndarray) -> np.ndarray:
        return np.maximum(n_max * per_layer_s, n_last * per_layer_s + head_s)

    t_fwd = stage(f_layer, head["fwd"])
    t_bwd = stage(b_layer, head["bwd"])
    # the weight-gradient share of the slowest backward: what is left of it once the slowest
    # input-gradient pass is taken out, so that the two split one backward (priced stage by stage,
    # the weight gradients of one stage and the backward of another would not add up to either,
    # and a faster weight gradient could then lengthen a zero-bubble step)
    t_wgrad = t_bwd - stage(b_layer - layer["compute_wgrad"], head["bwd"] - head["wgrad"])
    busy, bubble = pipeline_step_seconds(t_fwd, t_bwd, n_micro, plans.pp, plans.vpp,
                                         ctx.pipeline_schedule, t_wgrad)

    # Pipeline activations between stages.  Each TP rank sends 1/tp of the tensor: with sequence
    # parallelism it holds only its shard; without, Megatron-LM's scatter/gather optimisation
    # (Narayanan et al. 2021 sec. 4.1, on by default since 2021) splits it before the send and
    # all-gathers it over NVLink after the receive.
    full_msg = plans.micro_batch * ctx.seq_len / plans.cp * m.hidden * ACTIVATION_BYTES
    p2p_msg = full_msg / plans.tp
    crosses = plans.tp * plans.cp * plans.dp >= ctx.network.scaleup_domain_size
    regather = np.where(plans.sequence_parallel, 0.0,
                        C.all_gather_seconds(full_msg, plans.tp, ctx.network, ctx.profile, stride=1))
    t_act = C.send_recv_seconds(p2p_msg, ctx.network, ctx.profile, crosses_scaleout=crosses) + regather
    # Half the transfers on the critical path carry gradients (1F1B's fill sends activations, its
    # drain gradients, its steady state one of each; a replay of DeepSpeed's TrainSchedule gives
    # exactly half): sent whole where the stack does not scatter them (DeepSpeed v0.3-v0.5.3)
    t_grad = t_act if ctx.pipeline_grad_scatter_gather else np.where(
        plans.sequence_parallel, t_act,
        C.send_recv_seconds(full_msg, ctx.network, ctx.profile, crosses_scaleout=crosses))
    p2p = (p2p_exposed_transfers(plans.pp, plans.vpp, n_micro, ctx.overlap_p2p_comm, ctx.pipeline_schedule)
           * (t_act + t_grad) / 2.0)

    params = local_params(ctx, plans)
    dp = _dp_seconds(ctx, plans, params, t_fwd, t_bwd, n_micro)
    zero = plans.priced_zero
    shard = np.where(zero >= 1, plans.shard, 1)
    # ZeRO 0-1 (and the distributed optimizer) accumulate every local gradient in one fp32 buffer;
    # ZeRO 2-3 keep only the shard's (of the trained weights: all, or a LoRA's adapters)
    owned = params["trained"] / shard
    grad_buffer = np.where(zero >= 2, owned, params["trained"])
    optimizer = K.optimizer_step_seconds(owned, ctx.system.accelerator, ctx.profile,
                                         n_grad_buffer=grad_buffer, loss_scaled=ctx.precision == "fp16")

    # the slowest stage, direction by direction, as stage() took it: a middle stage's n_max layers,
    # or the last stage's n_last layers and the head; the breakdown's parts are that stage's, so
    # they add up to the busy time
    last_f = n_last * f_layer + head["fwd"] > n_max * f_layer
    last_b = n_last * b_layer + head["bwd"] > n_max * b_layer
    n_f, n_b = np.where(last_f, n_last, n_max), np.where(last_b, n_last, n_max)

    def per_step(fwd_key: str, bwd_key: str) -> np.ndarray:
        """Seconds per step of a per-layer term on the slowest stage, with the head's share of it
        (multi-token-prediction blocks' communication)."""
        return n_micro * (n_f * layer[fwd_key] + np.where(last_f, head.get(fwd_key, 0.0), 0.0)
                          + n_b * layer[bwd_key] + np.where(last_b, head.get(bwd_key, 0.0), 0.0))

    # FP8: each local weight is cast (with its transpose) once per step and cached for the
    # step's micro-batches (Transformer Engine's ``is_first_microbatch``)
    weight_casts = (K.fp8_cast_transpose_seconds(params["total"], ctx.system.accelerator, ctx.profile)
                    if ctx.precision in FP8_GEMM_PRECISIONS else np.zeros_like(busy))
    head_comm = {d: sum(head.get(f"{dim}_{d}", 0.0) for dim in ("tp", "ep")) for d in ("fwd", "bwd")}
    compute = (n_micro * (n_f * layer["compute_fwd"] + np.where(last_f, head["fwd"] - head_comm["fwd"], 0.0)
                          + n_b * layer["compute_bwd"] + np.where(last_b, head["bwd"] - head_comm["bwd"], 0.0))
               + weight_casts)
    host = np.full_like(busy, ctx.host_seconds_per_step)
    step = busy + bubble + p2p + dp + optimizer + weight_casts + host
    return {
        "step_time_s": step,
        "compute": compute,
        "recompute": n_micro * n_b * layer["recompute"],
        "tp_comm": per_step("tp_fwd", "tp_bwd"),
        "cp_comm": per_step("cp_fwd", "cp_bwd"),
        "ep_comm": per_step("ep_fwd", "ep_bwd"),
        "pp_comm": p2p,
        "dp_comm": dp,
        "pipeline_bubble": bubble,
        "optimizer_step": optimizer,
        "host_overhead": host,
        "micro_batches": n_micro,
        "params_local": params["total"],
    }
