"""Memory per GPU of a training plan: weights, gradients, optimizer state, activations, buffers.

Vectorised like :mod:`colossim.training.ops`: plan quantities may be numpy arrays (one element per
plan).  Bytes are for the most loaded GPU: the pipeline stage with ``ceil(layers / pp)`` layers,
holding the most micro-batches in flight (the first stage), or the last stage with the logits.

Model state (Rajbhandari et al. 2020, ZeRO, sec 3.1: 2 + 2 + 12 = 16 bytes per parameter with
mixed-precision Adam): bf16 weights, bf16 gradients, fp32 master weights + Adam m and v.  FP8
training (Transformer Engine) keeps that state and adds a cached fp8 copy of the weights.  ZeRO
stage 1 (= Megatron's distributed optimizer) shards the optimizer state over the data-parallel
group (dp x cp ranks hold the same weights), stage 2 also the gradients, stage 3 (= FSDP) also the
weights.  Routed-expert weights are split over tp x ep and replicated over dp x cp / ep ranks (the
expert-data-parallel group), so ZeRO shards them over that smaller group.

Activations follow Korthikanti et al. 2022 (sec 4, eqs. 1-2, Table 2), generalised op by op so the
GPT case is exactly theirs: per layer and micro-batch, 34 s b h + 5 a s^2 b bytes without
parallelism (with dropout, no flash attention); with tensor parallelism the 24 s b h of the
attention/MLP internals and the 5 a s^2 b divide by t and the 10 s b h of norm inputs, GEMM inputs
and dropout masks divide by t only with sequence parallelism.  Flash attention and selective
recomputation drop the 5 a s^2 b term; full recomputation keeps only each layer's input (2 s b h,
/ t with sequence parallelism) plus one layer's activations while it is recomputed.  GQA stores
fewer K/V elements, gated MLPs store gate and up, MoE layers store top_k expert copies of each
token, context parallelism divides s.  Micro-batches in flight on the first stage: p for 1F1B,
p (1 + (p - 1) / (p v)) interleaved (Narayanan et al. 2021 sec 2.2; Korthikanti et al. 2022
sec 4.2.3), via :func:`colossim.training.pipeline.micro_batches_in_flight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from colossim import units
from colossim.specs.model import ModelSpec
from colossim.training import lora as L
from colossim.training import ops as O
from colossim.training.pipeline import (layers_on_slowest_stage, micro_batches_in_flight, micro_batches_in_flight_last,
                                        stage_copies)
from colossim.training.plans import RECOMPUTE_CODES, full_recompute_fraction

ArrayLike = np.ndarray | float | int

#: Bytes per parameter of the bf16 weights.  Source: ZeRO (Rajbhandari et al. 2020) sec 3.1.
WEIGHT_BYTES = 2
#: Bytes per parameter of the gradients (bf16) that ZeRO-3 / FSDP shards and a LoRA's adapters
#: keep.  Source: ZeRO sec 3.1.  Under ZeRO 0-2 the gradients sit in a buffer of the data-parallel
#: reduction's dtype instead (``grad_buffer_bytes`` of :func:`memory_per_gpu`).
GRAD_BYTES = 2
#: Bytes per parameter of the optimizer state: fp32 master weights, Adam m and v.  Source: ZeRO
#: sec 3.1 (K = 12).
OPTIMIZER_BYTES = 12
#: Extra bytes per parameter when GEMMs run in fp8: Transformer Engine caches an fp8 copy of each
#: weight across micro-batches, and its fp8 transpose, which the backward's input-gradient GEMM
#: reads (Hopper's fp8 GEMMs take only the TN layout: TE 1.x ``get_fp8_workspace(...,
#: with_transpose=is_grad_enabled)``; Blackwell keeps row- and column-wise copies alike).
#: Because: one byte per element of each copy, the two the step's cast prices
#: (colossim.training.step, "cast with its transpose once per step and cached").  Only the
#: layers' weights run in fp8: the embedding and the output head stay bf16 (Megatron-Core builds
#: them outside Transformer Engine).
FP8_WEIGHT_CACHE_BYTES = 2
#: Bytes per parameter of the cached fp8 transpose of a weight kept as an fp8 parameter (the
#: plan's ``fp8_param_gather``): the parameter is the row-wise copy, the transpose is cached beside
#: it as above.  Because: one byte per element.
FP8_TRANSPOSE_CACHE_BYTES = 1
#: Bytes per parameter of the layers' weights when fp8 training keeps them as fp8 tensors (the
#: plan's ``fp8_param_gather``, ZeRO 0-2): the fp8 weight is the parameter itself, with no bf16
#: copy; the fp32 master weights stay in the optimizer state.  Source: Megatron-LM's
#: ``--fp8-param-gather`` ("keep the compute param in fp8 (do not use any other intermediate
#: dtype)"), which builds the layers under Transformer Engine's ``fp8_model_init``; the embedding
#: and the output head stay bf16.
FP8_PARAM_BYTES = 1
#: Bytes per activation element kept for backward.  Because: bf16 activations.
ACTIVATION_BYTES = 2
#: Bytes per saved GEMM input when the GEMMs run in fp8.  Source: Transformer Engine's Linear /
#: LayerNormLinear / LayerNormMLP save the fp8-cast input of each GEMM for the weight-gradient
#: GEMM of backward instead of the bf16 tensor (the cast is needed for the forward GEMM anyway):
#: the QKV and MLP inputs (norm outputs), the attention output (projection input) and the MLP
#: activation output (down-projection input) are kept at one byte per element.
FP8_SAVED_GEMM_INPUT_BYTES = 1
#: Bytes per dropout-mask element.  Source: Korthikanti et al. 2022 sec 4.1 (masks are 1 byte).
MASK_BYTES = 1
#: Bytes per logit held by the loss on the last stage at its peak, by implementation
#: (:data:`colossim.training.ops.CROSS_ENTROPY_BYTES_PER_LOGIT`): unfused, the fp32 softmax the
#: cross entropy keeps for backward and the bf16 gradient cast from it (2 + 4; Korthikanti et al.
#: 2022 eq. 4 counts 4 s b v / t); fused, the bf16 logits the kernel keeps and their bf16 gradient
#: (2 + 2).
LOGIT_BYTES = {"unfused": 6, "fused": 4}
#: Memory every GPU process reserves before the model: CUDA context, cuBLAS/cuDNN workspaces, NCCL
#: communicator buffers.  Because: an initialised PyTorch + NCCL process on an H100 shows about
#: 1.5-2.5 GB in nvidia-smi before allocating tensors; 2 GiB is the middle.
RESERVED_BYTES = 2 * units.GIB
#: Allocator fragmentation, as a fraction of the activation bytes.  Because: activations are
#: allocated and freed every micro-batch, and the PyTorch caching allocator's unusable slack under
#: 1F1B is typically of the order of 10% of the activation peak; model state is allocated once
#: (contiguous buffers) and does not fragment.
ALLOCATOR_OVERHEAD_FRACTION = 0.10
#: Layers whose gathered weights FSDP / ZeRO-3 keeps at once (current + prefetched next).
#: Because: PyTorch FSDP's default forward/backward prefetch of one layer ahead.
FSDP_GATHERED_LAYERS = 2
#: Fraction of a layer's weights DeepSpeed ZeRO-3 holds gathered at once (it fetches by submodule:
#: the current one and the prefetched next).  Because: the two largest submodules of a GPT layer
#: are the MLP's fc1 and fc2, 8 h^2 of its 12 h^2 weights (4/3 x 2/3 ~ 2/3 of the layer); DeepSpeed
#: further caps live gathered parameters with ``stage3_max_live_parameters`` (1e9 by default).
DEEPSPEED_GATHERED_LAYER_FRACTION = 2 / 3
#: ZeRO-3 / FSDP gradients exist unsharded before they are reduce-scattered: autograd writes a
#: parameter's whole gradient, the reduction then keeps the GPU's shard and frees the rest.  PyTorch
#: FSDP's post-backward hook reduce-scatters a unit's unsharded FlatParameter gradient, one layer
#: (Zhao et al. 2023, "PyTorch FSDP", sec. 3.2 and 4.2); DeepSpeed ZeRO-3 reduces tensor by
#: tensor from a backward hook on each parameter (Rajbhandari et al. 2020, ZeRO, sec. 5.3; v0.3
#: stage3.py ``reduce_ready_partitions_and_remove_grads``), so at least its largest weight's
#: gradient is whole at once.  Units (layers for FSDP, the largest weight for DeepSpeed) whose
#: unsharded gradient the backward holds at its peak.  Because: the one being reduced is the
#: minimum; more in flight would overlap further reductions.
ZERO3_UNSHARDED_GRADIENT_UNITS = 1
#: Gradient elements DeepSpeed's ZeRO-2 gathers in its reduce bucket before each reduce-scatter.
#: Source: DeepSpeed's ``zero_optimization.reduce_bucket_size`` default, 5e8 elements (docs,
#: config-json "ZeRO Optimizations"; deepspeed/runtime/zero/config.py).
DEEPSPEED_REDUCE_BUCKET_ELEMENTS = 5e8


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU (arrays, one element per plan)."""

    weights: np.ndarray
    gradients: np.ndarray
    optimizer: np.ndarray
    activations: np.ndarray
    buffers: np.ndarray
    total: np.ndarray


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _recompute_code(recompute: Any) -> np.ndarray:
    if isinstance(recompute, np.ndarray) and recompute.dtype.kind in "iuf":
        return recompute
    if isinstance(recompute, (int, np.integer)):
        return np.asarray(recompute)
    return np.asarray(RECOMPUTE_CODES[str(getattr(recompute, "value", recompute))])


def held_gradient_bytes(zero: ArrayLike, grad_buffer_bytes: float, lora: bool) -> np.ndarray:
    """Bytes each gradient is held in: under ZeRO 0-2 the data-parallel reduction's buffer
    (``grad_buffer_bytes``), under ZeRO-3 and for a LoRA's adapters :data:`GRAD_BYTES` (bf16)."""
    return np.where((_f(zero) >= 3) | lora, GRAD_BYTES, grad_buffer_bytes)


def fp8_layer_params(fp8_params: ArrayLike, zero: ArrayLike) -> np.ndarray:
    """Where an fp8 run keeps the layers' weights as fp8 parameters (:data:`FP8_PARAM_BYTES`):
    ``fp8_params`` under ZeRO 0-2; ZeRO-3 gathers bf16 weights and caches an fp8 copy."""
    return np.asarray(fp8_params, dtype=bool) & (_f(zero) < 3)


def params_per_gpu(model: ModelSpec, tp: ArrayLike, pp: ArrayLike, ep: ArrayLike,
                   etp: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Parameters held by one GPU of the most loaded stage before ZeRO sharding: ``dense`` (split
    over tp) and ``expert`` (routed experts, split over etp x ep; etp None: tp).  The stage with
    ceil(L/p) layers is taken to hold as many MoE layers as it can (expert weights dominate: all of
    them, or one in ``moe_layer_interval`` under interleaving); the vocabulary
    matrices sit on the first (embedding) and last (head, or a copy of the tied embedding) stage."""
    etp = tp if etp is None else etp
    tp, pp, ep, etp = _f(tp), _f(pp), _f(ep), _f(etp)
    stage = layers_on_slowest_stage(model.layers, pp)
    on = model.stage_layer_kinds(stage)
    vh = float(model.vocab * model.hidden)
    both = float(model.params_embedding + model.params_output_head)
    vocab = np.where(pp == 1, both, max(float(model.params_embedding), vh)) + model.params_final_norm
    dense = (sum(n * (model.params_per_layer(k) - model.routed_params_per_layer(k)) for k, n in on) + vocab) / tp
    expert = sum(n * model.routed_params_per_layer(k) for k, n in on) / (etp * ep)
    return {"dense": dense, "expert": expert, "total": dense + expert, "vocab": vocab / tp}


def activation_bytes_per_layer(model: ModelSpec, seq_len: int, micro_batch: ArrayLike, tp: ArrayLike,
                               cp: ArrayLike, sequence_parallel: ArrayLike, recompute: Any = "none",
                               layer_kind: str = "dense", flash_attention: bool = True,
                               precision: str = "bf16", etp: ArrayLike | None = None,
                               selective_recompute: str = "attention",
                               moe_load: ArrayLike = 1.0) -> np.ndarray:
    """Activation bytes one layer keeps for backward, per GPU and micro-batch (Korthikanti et al.
    2022 sec 4.1, generalised; see the module docstring).  With fp8 GEMMs the GEMM inputs are kept
    in fp8 (:data:`FP8_SAVED_GEMM_INPUT_BYTES`).  A MoE layer keeps its permuted expert inputs as
    its expert-tp group gathered them (``etp``, None: tp; :func:`colossim.training.ops.mlp_ops`),
    ``moe_load`` times the mean on the busiest expert-parallel rank
    (:func:`colossim.training.step.expert_rank_load`), and so its routed MLP activations.
    Selective recompute under ``selective_recompute='ops'`` keeps what torchtitan's per-op policy
    saves instead (:func:`op_sac_saved_bytes`)."""
    t, cp = _f(tp), _f(cp)
    et = t if etp is None else _f(etp)
    sp = np.asarray(sequence_parallel, dtype=bool)
    rc = _recompute_code(recompute)
    s = seq_len / cp
    tok = _f(micro_batch) * s  # tokens s*b on this GPU's sequence shard
    B, h = ACTIVATION_BYTES, model.hidden
    G = FP8_SAVED_GEMM_INPUT_BYTES if str(getattr(precision, "value", precision)) == "fp8" else B
    rep = np.where(sp, t, 1.0)  # divisor of the parts TP replicates unless sequence-parallel
    if layer_kind in O.HYBRID_KINDS:
        full_layer = hybrid_activation_bytes(model, seq_len, micro_batch, tp, cp, sequence_parallel, layer_kind,
                                             flash_attention, rc, G, etp, moe_load)
        return np.where(rc == RECOMPUTE_CODES["full"], B * tok * h / rep, full_layer)
    drop = model.dropout
    # --- replicated without SP: norm inputs, QKV and MLP GEMM inputs, the two dropout masks
    shared = tok * h * (model.norms_per_layer * B + G + G + (2 * MASK_BYTES if drop else 0))
    attention = attention_saved_bytes(model, seq_len, micro_batch, cp, rc, flash_attention, G)
    if layer_kind == "dense":
        mlp, moe_rep = dense_mlp_saved_bytes(model, tok, G), 0.0
    else:
        mlp, moe_rep = moe_saved_bytes(model, tok, moe_load, G, np.where(sp, et, 1.0))
    split = attention + mlp
    full_layer = (shared + moe_rep) / rep + split / t
    kept_input = B * tok * h / rep
    if selective_recompute == "ops":
        full_layer = np.where(rc == RECOMPUTE_CODES["selective"],
                              op_sac_saved_bytes(model, seq_len, micro_batch, tp, cp, sequence_parallel,
                                                 layer_kind, etp),
                              full_layer)
    return np.where(rc == RECOMPUTE_CODES["full"], kept_input, full_layer)


#: Bytes per element of d_inner that a Mamba-2 mixer keeps for its backward beyond its input
#: projection's output: the scan's ungated output ``out_x`` (2), the gated output the norm saves
#: (2).  Source: mamba_ssm 2.2.4 ``ops/triton/ssd_combined.py`` ``MambaSplitConv1dScanCombinedFn``
#: (``ctx.save_for_backward(zxbcdt, ..., out_x, ...)``; the convolution and the SSD states are
#: recomputed in its backward), then ``ops/triton/layernorm_gated.py``'s norm, which saves its
#: input; the output projection's input is the GEMM input counted apart.
MAMBA_SAVED_INNER_BYTES = 4


def dense_mlp_saved_bytes(model: ModelSpec, tok: ArrayLike, gemm_input_bytes: float) -> np.ndarray:
    """Bytes a dense MLP keeps for backward for ``tok`` tokens, before the tp split: the
    activation's input(s) (gate and up when gated) and its output, the down projection's input."""
    up = 2 if model.activation.gated else 1
    return _f(tok) * model.ffn_hidden * (up * ACTIVATION_BYTES + gemm_input_bytes)


def moe_saved_bytes(model: ModelSpec, tok: ArrayLike, moe_load: ArrayLike, gemm_input_bytes: float,
                    gathered: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(split over tp, replicated unless sequence-parallel) bytes an MoE MLP keeps for backward
    for ``tok`` tokens: the activation's input(s) and output for the routed copies (``moe_load``
    times top_k on the busiest expert-parallel rank) and the shared experts; and the permuted
    expert inputs, the routed rows of the SP shard ``gathered`` over the expert-tp group."""
    B = ACTIVATION_BYTES
    up = 2 if model.activation.gated else 1
    routed = model.top_k * _f(moe_load)
    mlp = _f(tok) * (routed + model.shared_experts) * model.moe_ffn_hidden * (up * B + gemm_input_bytes)
    return mlp, B * _f(tok) * routed * model.hidden * _f(gathered)


def attention_saved_bytes(model: ModelSpec, seq_len: int, micro_batch: ArrayLike, cp: ArrayLike, rc: np.ndarray,
                          flash_attention: bool, gemm_input_bytes: float) -> np.ndarray:
    """Bytes an attention layer keeps for backward between its projections, per micro-batch on
    one GPU before the tp split (Korthikanti et al. 2022 sec 4.1): Q, K and V (MLA: the per-head q
    and k, v and the latents; with q/k norms also the norms' inputs), the output projection's
    input, flash attention's fp32 log-sum-exp, or without it and recompute the scores (softmax
    output, and with dropout its mask and output: 5 a s^2 b, / cp)."""
    cp = _f(cp)
    s = seq_len / cp
    tok = _f(micro_batch) * s
    B, a = ACTIVATION_BYTES, model.heads
    if model.attention == "mla":
        qk = B * tok * a * model.qk_head_dim * 2  # per-head q and k are materialised
        v = B * tok * a * model.v_head_dim
        latent = B * tok * ((model.mla_q_lora_rank or 0) + model.mla_kv_lora_rank + model.mla_qk_rope_head_dim)
    else:
        # q and k as attention reads them, and with q/k norms the norms' inputs too
        qk = B * tok * (a + model.kv_heads) * model.head_dim * (2 if model.qk_norm else 1)
        v = B * tok * model.kv_heads * model.head_dim
        latent = 0.0
    out_in = gemm_input_bytes * tok * a * model.v_head_dim
    if model.attention_output_gate:  # the gate's projection and the ungated output, for the product's backward
        out_in = out_in + 2 * B * tok * a * model.v_head_dim
    score_bytes = B + (MASK_BYTES + B if model.dropout else 0)
    scores = score_bytes * a * s * seq_len * _f(micro_batch)
    core = np.where((rc == RECOMPUTE_CODES["none"]) & (not flash_attention), scores, 0.0)
    lse = 4.0 * a * tok if flash_attention else 0.0  # Because: flash attention keeps fp32 log-sum-exp
    return qk + v + latent + out_in + lse + core


def hybrid_activation_bytes(model: ModelSpec, seq_len: int, micro_batch: ArrayLike, tp: ArrayLike,
                            cp: ArrayLike, sequence_parallel: ArrayLike, layer_kind: str,
                            flash_attention: bool, rc: np.ndarray, gemm_input_bytes: float,
                            etp: ArrayLike | None = None, moe_load: ArrayLike = 1.0) -> np.ndarray:
    """Activation bytes one layer of a hybrid Mamba-Transformer keeps for backward, per GPU and
    micro-batch, without full recompute: its norm's input and its first GEMM's input (the parts
    TP replicates unless sequence-parallel), and split over tp:

    - ``mamba``: the input projection's output (z, x, B, C, dt: saved whole by mamba_ssm's combined
      kernel), :data:`MAMBA_SAVED_INNER_BYTES` per d_inner element and the output projection's input;
    - ``gdn``: the input projection's output, what fla's ``ChunkGatedDeltaRuleFunction`` saves (q and
      k repeated to the value heads, v, and the solved A, C per value head; fla-core 0.6.0
      ``fla/ops/gated_delta_rule/chunk.py``), the gated norm's input and the output projection's;
    - ``attention``: what :func:`attention_saved_bytes` counts;
    - ``mlp``: the activation's input(s) and output, as a transformer block's MLP keeps them;
    - ``experts``: what an MoE block keeps of its MLP (:func:`moe_saved_bytes`)."""
    t, cp = _f(tp), _f(cp)
    et = t if etp is None else _f(etp)
    sp = np.asarray(sequence_parallel, dtype=bool)
    tok = _f(micro_batch) * seq_len / cp
    B, h, G = ACTIVATION_BYTES, model.hidden, gemm_input_bytes
    shared = tok * h * (B + G)
    if layer_kind == "mamba":
        split = tok * (B * model.mamba_in_proj_width + (MAMBA_SAVED_INNER_BYTES + G) * model.mamba_inner)
    elif layer_kind == "gdn":
        # the input projection's output (the convolution's input), the rule's saved q, k (repeated to
        # the value heads), v and its A (C per value head), the norm's input, the output projection's
        H = model.gdn_value_heads
        rule = H * (2 * model.gdn_key_head_dim + model.gdn_value_head_dim + model.gdn_chunk_tokens)
        split = tok * (B * (model.gdn_in_proj_width + rule + model.gdn_value_width) + G * model.gdn_value_width)
    elif layer_kind == "attention":
        split = attention_saved_bytes(model, seq_len, micro_batch, cp, rc, flash_attention, G)
    elif layer_kind == "mlp":
        split = dense_mlp_saved_bytes(model, tok, G)
    else:
        split, moe_rep = moe_saved_bytes(model, tok, moe_load, G, np.where(sp, et, 1.0))
        shared = shared + moe_rep
    return shared / np.where(sp, t, 1.0) + split / t


def op_sac_saved_bytes(model: ModelSpec, seq_len: int, micro_batch: ArrayLike, tp: ArrayLike,
                       cp: ArrayLike, sequence_parallel: ArrayLike, layer_kind: str = "dense",
                       etp: ArrayLike | None = None) -> np.ndarray:
    """Activation bytes one layer keeps under torchtitan's per-op selective checkpointing, per GPU
    and micro-batch: the block's input (the checkpoint's own), the bf16 output of each matmul the
    policy saves (every other ``aten.mm``; :func:`colossim.training.ops.op_sac_recomputed_shares`),
    the attention output with its fp32 log-sum-exp, and with sequence parallelism the two
    reduce-scatter outputs (torchtitan 0.1.0 ``_save_list``).  Grouped expert GEMMs and every
    memory-bound op's output are recomputed, so nothing of theirs is kept."""
    t, cp = _f(tp), _f(cp)
    sp = np.asarray(sequence_parallel, dtype=bool)
    tok = _f(micro_batch) * seq_len / cp
    B, h, a = ACTIVATION_BYTES, model.hidden, model.heads
    gemms = [op for op in (O.attention_ops(model, micro_batch, seq_len, tp, cp)
                           + O.mlp_ops(model, micro_batch, seq_len, tp, cp, 1, sp, layer_kind, etp))
             if isinstance(op, O.Gemm)]
    shares = O.op_sac_recomputed_shares([op.name for op in gemms], model)
    mm_out = sum(B * (1.0 - shares[op.name]) * _f(op.m) * _f(op.n) * _f(op.count) for op in gemms)
    attention_out = B * tok * a * model.v_head_dim / t + 4.0 * a * tok / t
    block_input = B * tok * h / np.where(sp, t, 1.0)
    scattered = np.where(sp & (t > 1), 2.0 * B * tok * h / t, 0.0)
    return block_input + mm_out + attention_out + scattered


def memory_per_gpu(model: ModelSpec, tp: ArrayLike = 1, pp: ArrayLike = 1, cp: ArrayLike = 1,
                   ep: ArrayLike = 1, dp: ArrayLike = 1, vpp: ArrayLike = 1, micro_batch: ArrayLike = 1,
                   recompute: Any = "none", zero: ArrayLike = 0, sequence_parallel: ArrayLike = False,
                   precision: str = "bf16", seq_len: int | None = None, global_batch: int | None = None,
                   flash_attention: bool = True, cross_entropy_fusion: bool = False,
                   fsdp: ArrayLike = True,
                   recompute_layers: ArrayLike = 0, schedule: str = "1f1b",
                   etp: ArrayLike | None = None, selective_recompute: str = "attention",
                   moe_load_imbalance: float = 1.0, shard: ArrayLike | None = None,
                   lora: L.Lora | None = None, grad_buffer_bytes: float = GRAD_BYTES,
                   fp8_params: bool = False) -> MemoryBreakdown:
    """Bytes per GPU of the most loaded GPU for a plan (or arrays of plans).  ``global_batch``
    (sequences) caps the micro-batches in flight at the micro-batches per step; without it the
    schedule is assumed long enough to fill the pipeline.  ``fsdp`` (ZeRO-3 only): flat-parameter
    units gathered a layer at a time (PyTorch FSDP), else DeepSpeed's per-submodule fetches.
    ``recompute_layers`` (full recompute only): layers of the stage recomputed, the others keeping
    every activation; 0 = all.  ``schedule`` 'dualpipe' holds two stages' model state and p + 1
    micro-batches of activations (:mod:`colossim.training.pipeline`).  ``moe_load_imbalance``: the
    busiest expert-parallel rank's routed tokens over the mean, which its MoE layers keep
    activations for when ep > 1.  ``shard``: the ranks a ZeRO stage shards over (the plan's
    ``shard_group``, dividing dp x cp; None: all of dp x cp); expert weights shard over their
    expert-data-parallel group divided by the same number of copies.  ``lora``: a LoRA fine-tuning
    (:mod:`colossim.training.lora`), whose frozen base weights have neither gradients nor optimizer
    state: those, and the weights' bf16 copy, cover its adapters, held beside the base weights.
    Under QLoRA the layers' linear base weights take :data:`colossim.training.lora.NF4_BYTES_PER_WEIGHT`
    each (the embedding, head and norms stay bf16), ZeRO-3 gathers them in NF4, and the buffers hold
    the one bf16 matrix a GEMM runs on while it is dequantized (the largest of a layer's).
    ``grad_buffer_bytes``: bytes per gradient of ZeRO 0-2, whose gradients sit in a buffer of the
    data-parallel reduction's dtype (:data:`colossim.training.step.GRAD_REDUCE_BYTES`: Megatron's
    fp32 ``main_grad`` under bf16, 6 + 12 / d bytes per parameter with the distributed optimizer,
    Megatron-LM docs/source/api-guide/dist_optimizer.md; NeMo's bf16 reduction, 4 + 12 / d).
    ``fp8_params`` (fp8 only, ZeRO 0-2): the layers' weights are fp8 parameters
    (:data:`FP8_PARAM_BYTES`) instead of bf16 ones with a cached fp8 copy."""
    s = seq_len or model.seq_len
    tp, pp, cp, ep, dp, vpp, mb, zero = (_f(x) for x in (tp, pp, cp, ep, dp, vpp, micro_batch, zero))
    etp = tp if etp is None else _f(etp)
    rc = _recompute_code(recompute)
    prec = str(getattr(precision, "value", precision))

    # --- model state
    copies = stage_copies(pp, schedule)
    p = {k: copies * v for k, v in params_per_gpu(model, tp, pp, ep, etp).items()}
    group = dp * cp if shard is None else _f(shard)
    shard_copies = dp * cp / group
    # expert data parallel: tp cp dp / (etp ep), over the same copies
    egroup = np.maximum(tp * dp * cp / (etp * ep * shard_copies), 1.0)
    def sharded(q: dict[str, np.ndarray], stage_from: int) -> np.ndarray:
        return (q["dense"] / np.where(zero >= stage_from, group, 1.0)
                + q["expert"] / np.where(zero >= stage_from, egroup, 1.0))

    stage = layers_on_slowest_stage(model.layers, pp)
    kinds = model.stage_layer_kinds(stage)
    weights = WEIGHT_BYTES * sharded(p, 3)
    if prec == "fp8":  # the layers' weights (not the embedding or head): + a cached fp8 copy, or fp8 only
        layer_weights = sharded({"dense": p["dense"] - p["vocab"], "expert": p["expert"]}, 3)
        per_param = np.where(fp8_layer_params(fp8_params, zero),
                             FP8_PARAM_BYTES + FP8_TRANSPOSE_CACHE_BYTES - WEIGHT_BYTES, FP8_WEIGHT_CACHE_BYTES)
        weights = weights + per_param * layer_weights
    trained = p
    dequantized = 0.0
    largest = max(float(w) for w in O.deepspeed_layer_weights(model, 1.0))  # a layer's largest matrix
    if lora is not None:
        adapters = L.adapter_params_per_gpu(model, lora, kinds, tp, ep, etp)
        trained = {k: copies * v + 0.0 * tp for k, v in adapters.items()}
        weights = weights + WEIGHT_BYTES * sharded(trained, 3)
        if lora.quantized:  # QLoRA: the layers' linear weights in NF4 instead of bf16
            nf4 = {k: copies * v for k, v in L.quantized_params_per_gpu(model, lora, kinds, tp, ep, etp).items()}
            weights = weights - (WEIGHT_BYTES - L.NF4_BYTES_PER_WEIGHT) * sharded(nf4, 3)
            # ... and one of them at a time dequantized to bf16 for its GEMM
            dequantized = L.NF4_COMPUTE_BYTES_PER_WEIGHT * largest / tp
    # ZeRO 0-2: the gradient buffer in the reduction's dtype; ZeRO-3 and adapters: bf16
    gradients = held_gradient_bytes(zero, grad_buffer_bytes, lora is not None) * sharded(trained, 2)
    optimizer = OPTIMIZER_BYTES * sharded(trained, 1)

    # --- activations
    load = O.busiest_rank_load(ep, moe_load_imbalance)
    def per_layer(r: Any) -> dict[str, np.ndarray]:
        return {k: activation_bytes_per_layer(model, s, mb, tp, cp, sequence_parallel, r, k,
                                              flash_attention, prec, etp, selective_recompute, load)
                for k, _ in kinds}
    kept = per_layer(rc)
    whole = per_layer("none")
    # full recompute of ``recompute_layers`` of the stage's layers (all when 0): a layer kind's
    # recomputed layers keep only their input, the others everything
    frac = full_recompute_fraction(rc, recompute_layers, stage)
    full = rc == RECOMPUTE_CODES["full"]
    stage_mb = sum(np.where(full, frac * kept[k] + (1.0 - frac) * whole[k], kept[k]) * n for k, n in kinds)
    # recompute: what one layer recomputes is live again during its backward -- all its activations
    # under full recompute, the attention core's under selective (without flash attention, the
    # s x s scores and softmax)
    live = np.maximum.reduce([whole[k] for k, _ in kinds]) if kinds else 0.0
    redone = np.maximum.reduce([whole[k] - kept[k] for k, _ in kinds]) if kinds else 0.0
    recomputing = np.where(full, live, np.where(rc == RECOMPUTE_CODES["selective"], redone, 0.0))
    n_micro = global_batch / (dp * mb) if global_batch else np.full_like(pp, np.inf)
    in_flight = micro_batches_in_flight(pp, vpp, np.maximum(n_micro, 1.0), schedule)
    logit_bytes = LOGIT_BYTES["fused" if cross_entropy_fusion else "unfused"]
    logits = logit_bytes * mb * (s / cp) * model.vocab / tp
    first = in_flight * stage_mb + recomputing
    last = micro_batches_in_flight_last(pp, vpp, np.maximum(n_micro, 1.0), schedule) * stage_mb + recomputing + logits
    activations = np.where(pp == 1, first + logits, np.maximum(first, last))

    # --- buffers: reserved memory, FSDP's gathered layers, allocator slack
    layer_max = max(model.params_per_layer(k) - model.routed_params_per_layer(k) for k, _ in model.layer_kinds)
    expert_layer = model.experts * model.params_expert if model.moe_layers else 0
    # only sharded weights need gathering (an expert-data-parallel group of 1 holds them whole)
    flat = np.asarray(fsdp, dtype=bool)
    layer = np.where(group > 1, layer_max / tp, 0.0) + np.where(egroup > 1, expert_layer / (etp * ep), 0.0)
    held = np.where(flat, FSDP_GATHERED_LAYERS, DEEPSPEED_GATHERED_LAYER_FRACTION)
    gathered_bytes = L.NF4_BYTES_PER_WEIGHT if lora is not None and lora.quantized else WEIGHT_BYTES
    gathered = held * gathered_bytes * layer
    # ... and the unsharded gradient waiting for its reduce-scatter: a layer's, or one weight's
    unit = np.where(flat, layer, np.where(group > 1, largest / tp, 0.0))
    # (a LoRA's frozen base weights have no gradient; its adapters' are left out, r / h of a layer's)
    unsharded_grad = ZERO3_UNSHARDED_GRADIENT_UNITS * GRAD_BYTES * unit * (lora is None)
    # ZeRO-2 also writes whole gradients before reducing them: FSDP's SHARD_GRAD_OP a unit at a
    # time, DeepSpeed's stage 2 into its reduce bucket (at most the rank's own parameters)
    bucket = np.where(flat, layer, np.minimum(DEEPSPEED_REDUCE_BUCKET_ELEMENTS, p["total"]))
    zero2_grad = GRAD_BYTES * bucket * (lora is None)
    buffers = (RESERVED_BYTES + np.where(zero >= 3, gathered + unsharded_grad, 0.0)
               + np.where(zero == 2, zero2_grad, 0.0) + dequantized
               + ALLOCATOR_OVERHEAD_FRACTION * activations)
    total = weights + gradients + optimizer + activations + buffers
    return MemoryBreakdown(weights=weights, gradients=gradients, optimizer=optimizer,
                           activations=activations, buffers=buffers, total=total)


__all__ = ["ACTIVATION_BYTES", "ALLOCATOR_OVERHEAD_FRACTION", "DEEPSPEED_GATHERED_LAYER_FRACTION",
           "FP8_PARAM_BYTES", "FP8_SAVED_GEMM_INPUT_BYTES", "FP8_TRANSPOSE_CACHE_BYTES", "FP8_WEIGHT_CACHE_BYTES",
           "DEEPSPEED_REDUCE_BUCKET_ELEMENTS",
           "FSDP_GATHERED_LAYERS", "GRAD_BYTES", "LOGIT_BYTES", "MASK_BYTES", "MemoryBreakdown",
           "OPTIMIZER_BYTES", "RESERVED_BYTES", "WEIGHT_BYTES", "ZERO3_UNSHARDED_GRADIENT_UNITS",
           "MAMBA_SAVED_INNER_BYTES", "activation_bytes_per_layer", "attention_saved_bytes", "dense_mlp_saved_bytes",
           "fp8_layer_params", "held_gradient_bytes", "hybrid_activation_bytes", "memory_per_gpu",
           "op_sac_saved_bytes", "params_per_gpu"]
