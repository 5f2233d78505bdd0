"""The per-GPU op list of a training step, which the step-time model prices with ``cost``.

One list describes one layer's forward pass for one micro-batch on one GPU.  Plan quantities
(``micro_batch``, ``tp``, ``cp``, ``ep``, ``sequence_parallel``) may be numpy arrays, one element per
plan: every op field broadcasts over them (no Python branch on a plan quantity).

Splits follow Megatron-LM (Shoeybi et al. 2019; Korthikanti et al. 2022; Megatron-Core MoE):

- ``m`` (GEMM rows) = tokens on the GPU = micro_batch * seq_len / cp (all-gathered over TP when
  sequence parallelism is on, so GEMMs always see the whole TP group's tokens);
- column-parallel GEMMs (QKV, MLA up/down projections, MLP up/gate, experts' up/gate) split ``n``
  by tp; row-parallel GEMMs (output projection, MLP down) split ``k`` by tp.  MLA's small down
  projections and GQA's K/V heads are split proportionally (Megatron duplicates them when
  tp > kv_heads; the FLOPs difference is a few percent of the attention projections at most);
- attention: heads / tp heads, queries seq_len / cp against the full sequence of keys (ring
  attention over cp ranks: cp kernel calls, one per rank's chunk of keys), causal;
- MoE: experts / ep local experts, each receiving tokens * top_k * ep / experts rows on average
  (tokens of the ep ranks, routed top_k ways, spread evenly -- perfect balance), expert GEMMs
  split by tp (expert tensor parallelism = tp, Megatron-Core's default).  The router runs on the
  local sequence shard with sequence parallelism, on every TP rank's full copy without it.

Identity (tested): sum of 2 m n k count over the GEMMs plus the attention FLOPs equals
micro_batch * seq_len * :func:`colossim.training.flops.layer_flops_per_token` / (tp * cp) with
sequence parallelism on (without it only the router is replicated over tp).

Memory-bound ops carry the bytes they move through HBM in forward (reads + writes), with
activations in ``ACTIVATION_BYTES``: norms, residual adds, the MLP activation function, RoPE,
dropout when the model uses it, MoE token permutation, and under context parallelism ring
attention's merge of its steps' outputs and gradients.  Softmax is fused into flash attention and
is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from colossim.cost.compute import ALIGN_BYTES, OPERAND_BYTES, attention_flops
from colossim.specs.model import RECURRENT_KINDS, ModelSpec

ArrayLike = np.ndarray | float | int

#: Bytes per activation element moved by memory-bound kernels.
#: Because: bf16 activations in mixed-precision training; FP8 recipes (Transformer Engine) also keep
#: bf16 activations between kernels and cast inside the GEMMs.
ACTIVATION_BYTES = 2

#: Bytes per dropout mask element.  Because: PyTorch stores dropout masks as uint8/bool.
DROPOUT_MASK_BYTES = 1

#: HBM bytes per vocabulary logit moved by the loss, (forward, backward), by implementation.
#: ``unfused`` -- Megatron-LM's vocab-parallel cross entropy on ``logits.float()`` (Megatron-LM
#: 2.x-3.0 ``post_language_model_processing``; megatron-core 0.5.0 ``LanguageModule.
#: compute_language_model_loss`` -> ``tensor_parallel/cross_entropy.py``), one kernel per line, fp32
#: after the cast: forward = cast bf16 -> fp32 (2 + 4) + max (4) + subtract the max (4 + 4) + exp
#: (4 + 4) + sum (4) + divide by the sum (4 + 4) = 38; backward = scale by the output gradient in
#: place (4 + 4) + the cast's backward fp32 -> bf16 (4 + 2) = 14.
#: ``fused`` -- one kernel each way on the bf16 logits: flash-attn's ``CrossEntropyLoss`` (the
#: ``xentropy`` CUDA kernel of flash-attn 1.0.9 csrc/xentropy/xentropy_kernel.cu, after apex's,
#: which llm-foundry's MPT uses by default as ``loss_fn: fused_crossentropy``) reads each row
#: twice in forward (max, then sum of exponentials) and writes only per-token losses (2 + 2 = 4),
#: and in backward reads the logits once and writes their gradient (2 + 2 = 4).
CROSS_ENTROPY_BYTES_PER_LOGIT = {"unfused": (38.0, 14.0), "fused": (4.0, 4.0)}

#: HBM bytes per element (forward, backward) of the block's elementwise ops when each PyTorch op is
#: its own kernel, as Hugging Face transformers' modeling code writes them (v4.46.3
#: ``models/llama/modeling_llama.py``), counted kernel by kernel with bf16 activations:
#:
#: ``rmsnorm`` (per element of the normed tensor) -- ``LlamaRMSNorm.forward``: ``.to(float32)``
#: (2 + 4), ``pow(2)`` (4 + 4), ``mean(-1)`` (4), ``* rsqrt(variance + eps)`` (4 + 4),
#: ``.to(input_dtype)`` (4 + 2), ``weight *`` (2 + 2) = 36.  Autograd runs back through the same
#: chain: the weight product (the input gradient 2 + 2, the weight's g * y 2 + 2 + 2 and its sum
#: over the tokens 2), the cast (2 + 4), the rsqrt product (g * r 4 + 4; g * x 4 + 4 + 4 and its row sum 4),
#: the mean (its expanded gradient written, 4), the square (``pow_backward``: x.pow(1) 4 + 4,
#: x 2 4 + 4, times the gradient 4 + 4 + 4), the two gradients of the fp32 copy added (4 + 4 + 4),
#: the first cast (4 + 2) = 92.
#: ``rope`` (per query / key element) -- ``apply_rotary_pos_emb``: ``q * cos`` (2 + 2),
#: ``rotate_half``'s negation of one half (1 + 1) and ``cat`` (2 + 2), ``* sin`` (2 + 2), the sum
#: (2 + 2 + 2) = 20; backward: the two products' input gradients (2 + 2 each), the negation
#: (1 + 1), the two slices' gradients (zeros written 2 and the half copied in 1 + 1, each) and the
#: three gradients of q added (2 + 2 + 2, twice) = 30.
#: ``gated`` (per element of the MLP's inner width) -- ``act_fn(gate) * up``: the activation
#: (2 + 2) and the product (2 + 2 + 2) = 10; backward: the product's two input gradients
#: (2 + 2 + 2 each) and the activation's (2 + 2 + 2) = 18.
#:
#: The fused kernels these replace move 4 (norm: read, write), 4 (rope) and 6 (gated: read gate and
#: up, write) forward and twice that backward.  A LayerNorm is one kernel either way
#: (``F.layer_norm``), and so is a non-gated activation.
EAGER_BYTES_PER_ELEMENT = {"rmsnorm": (36.0, 92.0), "rope": (20.0, 30.0), "gated": (10.0, 18.0)}

#: HBM bytes per element of the memory-bound passes with which ring attention over cp ranks merges
#: its cp per-step results, as Transformer Engine implements context parallelism for Megatron-Core
#: (TE 1.9, PyPI transformer_engine_cu12 1.9.0, transformer_engine/pytorch/attention.py
#: ``AttnFuncWithCPAndKVP2P``):
#:
#: ``out_init`` -- forward: the output is zero-filled (``torch.empty_like(q).zero_()``, bf16: write
#: 2) ...
#: ``merge`` -- ... and every step's partial output is rescaled by its log-sum-exp and added into it
#: (``flash_attn_fwd_out_correction``, one fused kernel: read the step's output 2, read and write
#: the output 2 + 2 = 6), cp times, on the rank that runs every step in full (the last one).
#: ``copy`` -- K and V are concatenated into the ring's send buffer in forward
#: (``torch.cat((k.unsqueeze(0), v.unsqueeze(0)))``), and again into the backward's
#: (``p2p_comm_buffers[0][0].copy_(kv)``), and the first step's dQ and dK/dV are copied into their
#: accumulators (read 2 + write 2 = 4 each).
#: ``accumulate`` -- backward: each later step's dQ and dK/dV are added into the accumulators
#: (``dq.add_(dq_)``, ``dkv.add_(dkv_)``: read 2 + 2, write 2 = 6), cp - 1 times.
#: The log-sum-exp corrections run per (token, head), a head dimension's share of these: left out.
RING_ATTENTION_BYTES_PER_ELEMENT = {"out_init": 2.0, "merge": 6.0, "copy": 4.0, "accumulate": 6.0}


def ring_kv_elements(model: ModelSpec, tokens: ArrayLike, tp: ArrayLike) -> np.ndarray:
    """Elements of K and V that one GPU holds for ``tokens`` local tokens, the block ring attention
    passes to the next cp rank each step: the GPU's kv_heads / tp heads (at least one: Megatron
    duplicates K/V heads when tp > kv_heads), each qk_head_dim + v_head_dim wide."""
    return _f(tokens) * np.maximum(model.kv_heads / _f(tp), 1.0) * (model.qk_head_dim + model.v_head_dim)


def ring_attention_merge_bytes(model: ModelSpec, tokens: ArrayLike, tp: ArrayLike, cp: ArrayLike):
    """(forward, backward) HBM bytes of ring attention's merge passes over ``cp`` ranks for one
    layer on one GPU (:data:`RING_ATTENTION_BYTES_PER_ELEMENT`), ``tokens`` local tokens, heads
    split over ``tp``.  Zero without context parallelism."""
    b = RING_ATTENTION_BYTES_PER_ELEMENT
    cp = _f(cp)
    heads = model.heads / _f(tp)
    out = _f(tokens) * heads * model.v_head_dim
    q = _f(tokens) * heads * model.qk_head_dim
    kv = ring_kv_elements(model, tokens, tp)
    later = np.maximum(cp - 1.0, 0.0)
    fwd = out * (b["out_init"] + cp * b["merge"]) + kv * b["copy"]
    bwd = q * (b["copy"] + later * b["accumulate"]) + kv * (2.0 * b["copy"] + later * b["accumulate"])
    return np.where(cp > 1, fwd, 0.0), np.where(cp > 1, bwd, 0.0)


@dataclass(frozen=True)
class Gemm:
    """``count`` GEMMs of (m x k) @ (k x n), forward, per GPU, one micro-batch."""

    name: str
    m: ArrayLike
    n: ArrayLike
    k: ArrayLike
    count: ArrayLike = 1
    #: the weight is not trained (a LoRA's base weights, :mod:`colossim.training.lora`): backward
    #: runs the input-gradient GEMM only
    frozen: bool = False

    @property
    def flops(self) -> np.ndarray:
        return 2.0 * np.asarray(self.m) * self.n * self.k * self.count


@dataclass(frozen=True)
class Attention:
    """The attention core (scores, softmax, values) as one flash-attention call, forward."""

    name: str
    batch: ArrayLike
    heads: ArrayLike
    seq_q: ArrayLike
    seq_kv: ArrayLike
    head_dim: int
    head_dim_v: int
    causal: bool = True
    #: the keys arrive in this many chunks, one kernel call each: ring attention's cp steps
    kv_chunks: ArrayLike = 1
    #: a sliding window: each query attends itself and the ``window - 1`` keys before it
    window: int | None = None
    #: the share of the model's layers whose attention this is (a model with sliding-window layers
    #: has one op for those and one for its global layers; one layer is priced as their average)
    share: float = 1.0

    @property
    def flops(self) -> np.ndarray:
        """2 b h s_q k (d + d_v) for k keys per query (s_kv; s_kv / 2 when causal, the masked half
        skipped; the band's mean under a window), times the layers' ``share``."""
        return self.share * attention_flops(self.batch, self.heads, self.seq_q, self.seq_kv, self.head_dim,
                                            self.head_dim_v, self.causal, self.window)


@dataclass(frozen=True)
class MemoryBound:
    """A bandwidth-bound kernel moving ``bytes`` through HBM (reads + writes), forward.
    ``backward_bytes``: what its backward moves, when known op by op; None: the step model's
    generic ratio (:data:`colossim.training.step.BACKWARD_MEMORY_FACTOR`)."""

    name: str
    bytes: ArrayLike
    backward_bytes: ArrayLike | None = None


@dataclass(frozen=True)
class BatchedMatmul:
    """``count`` small matmuls (m x k) @ (k x n) of activations by activations run as one batched
    kernel, forward, per GPU, one micro-batch: the Mamba-2 SSD scan's chunk products (mamba_ssm's
    Triton kernels, one program per chunk and head).  No weights: the backward takes both
    operands' gradients, two such calls, and there is no weight gradient; they stay in bf16 under
    FP8 (the kernels read bf16 and accumulate in fp32)."""

    name: str
    m: ArrayLike
    n: ArrayLike
    k: ArrayLike
    count: ArrayLike = 1

    @property
    def flops(self) -> np.ndarray:
        return 2.0 * np.asarray(self.m) * self.n * self.k * self.count


Op = Gemm | Attention | MemoryBound | BatchedMatmul


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


class AttentionLayerKind(NamedTuple):
    """One kind of attention among a model's layers: the op's name, a sliding ``window`` or an
    attention ``chunk`` (None: global), and the ``share`` of the layers of this kind."""

    name: str
    window: int | None
    chunk: int | None
    share: float


def attention_layer_kinds(model: ModelSpec, seq_len: int) -> list[AttentionLayerKind]:
    """Each kind of attention the model's layers run at ``seq_len``: one global kind, or with
    sliding-window layers whose window is shorter than the sequence ``attention_windowed`` for those,
    or with chunked layers whose chunk is shorter ``attention_chunked``, and ``attention`` for the rest."""
    local = model.local_attention
    if local is None or local[1] >= seq_len:
        return [AttentionLayerKind("attention", None, None, 1.0)]
    kind, span, n = local
    share = n / model.attention_layers
    kinds = [AttentionLayerKind("attention", None, None, 1.0 - share)] if n < model.attention_layers else []
    if kind == "window":
        return kinds + [AttentionLayerKind("attention_windowed", span, None, share)]
    return kinds + [AttentionLayerKind("attention_chunked", None, span, share)]


def attention_span(seq_len: int, document_tokens: int | None) -> int:
    """The tokens one attention call spans: the sequence, or with packed documents (attention
    masked to each document: FlashAttention's variable-length kernels, Transformer Engine's THD
    layout, NeMo's ``packed_sequence``, Llama 3's document mask) the documents' length, at most
    the sequence.  Attention cost goes with the sum of the documents' squared lengths, so for
    documents of unequal length the span is the root of their mean square."""
    return seq_len if document_tokens is None else min(int(document_tokens), seq_len)


def _attention_core_op(model: ModelSpec, kind: AttentionLayerKind, mb: np.ndarray, heads: np.ndarray,
                       seq_len: int, cp: np.ndarray) -> Attention:
    """The attention core of one kind of layer.  A chunked layer runs causal attention within each
    chunk: ``seq_len / chunk`` sequences of ``chunk`` tokens per micro-batch sequence (a last,
    shorter chunk priced as a fraction of a whole one)."""
    if kind.chunk is None:
        return Attention(kind.name, mb, heads, seq_len / cp, seq_len, model.qk_head_dim, model.v_head_dim,
                         causal=True, kv_chunks=cp, window=kind.window, share=kind.share)
    return Attention(kind.name, mb * seq_len / kind.chunk, heads, kind.chunk / cp, kind.chunk, model.qk_head_dim,
                     model.v_head_dim, causal=True, kv_chunks=cp, share=kind.share)


def attention_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike,
                  cp: ArrayLike, document_tokens: int | None = None) -> list[Op]:
    """Projections and the attention core of one layer (forward, per GPU, one micro-batch).
    ``document_tokens``: each sequence packs documents of that many tokens and attends within
    each (:func:`attention_span`): the core runs over ``seq_len / span`` sequences of ``span``
    tokens per micro-batch sequence, as a variable-length kernel runs it."""
    mb, tp, cp = _f(micro_batch), _f(tp), _f(cp)
    tokens = mb * seq_len / cp
    h, a = model.hidden, model.heads
    ops: list[Op] = []
    if model.attention == "mla":
        r_q, r_kv = model.mla_q_lora_rank, model.mla_kv_lora_rank
        rope, nope, v = model.mla_qk_rope_head_dim, model.mla_qk_nope_head_dim, model.mla_v_head_dim
        if r_q is None:
            ops.append(Gemm("q_proj", tokens, a * model.qk_head_dim / tp, h))
        else:
            ops += [Gemm("q_down", tokens, r_q / tp, h), Gemm("q_up", tokens, a * model.qk_head_dim / tp, r_q)]
        ops += [Gemm("kv_down", tokens, (r_kv + rope) / tp, h),
                Gemm("kv_up", tokens, a * (nope + v) / tp, r_kv)]
    else:
        d, g = model.head_dim, model.kv_heads
        gate = 2 if model.attention_output_gate else 1  # a gated attention's q projection is twice as wide
        ops.append(Gemm("qkv", tokens, (gate * a * d + 2 * g * d) / tp, h))
    span = attention_span(seq_len, document_tokens)
    ops += [_attention_core_op(model, kind, mb * seq_len / span, a / tp, span, cp)
            for kind in attention_layer_kinds(model, span)]
    if np.any(cp > 1):
        ops.append(MemoryBound("ring_attention_merge", *ring_attention_merge_bytes(model, tokens, tp, cp)))
    if model.attention_output_gate:  # o x sigmoid(gate): read both, write
        ops.append(MemoryBound("attention_gate", 3 * ACTIVATION_BYTES * tokens * a * model.v_head_dim / tp))
    ops.append(Gemm("out_proj", tokens, h, a * model.v_head_dim / tp))
    return ops


def mlp_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike,
            ep: ArrayLike, sequence_parallel: ArrayLike, layer_kind: str = "dense",
            etp: ArrayLike | None = None) -> list[Op]:
    """GEMMs of one layer's dense MLP or MoE block (forward, per GPU, one micro-batch).  The routed
    experts are split over ``etp`` GPUs (None: tp): each GPU holds experts / ep of them and computes
    the rows its etp group gathers, tokens x top_k x ep x etp / (experts x tp) per expert (perfect
    balance); the shared experts stay split over tp like a dense MLP."""
    etp = tp if etp is None else etp
    mb, tp, cp, ep, etp = _f(micro_batch), _f(tp), _f(cp), _f(ep), _f(etp)
    tokens = mb * seq_len / cp
    h, up = model.hidden, 2 if model.activation.gated else 1
    if layer_kind == "dense":
        f = model.ffn_hidden
        if f is None:
            raise ValueError(f"model '{model.name}' has no dense MLP layers (ffn_hidden is blank)")
        return [Gemm("mlp_up", tokens, up * f / tp, h), Gemm("mlp_down", tokens, h, f / tp)]
    if layer_kind != "moe":
        raise ValueError(f"layer_kind must be 'dense' or 'moe', got {layer_kind!r}")
    fe, e = model.moe_ffn_hidden, model.experts
    local_tokens = np.where(sequence_parallel, tokens / tp, tokens)
    per_expert = tokens * model.top_k * ep * etp / (e * tp)  # rows per local expert (perfect balance)
    ops: list[Op] = [Gemm("router", local_tokens, e, h),
                     Gemm("expert_up", per_expert, up * fe / etp, h, count=e / ep),
                     Gemm("expert_down", per_expert, h, fe / etp, count=e / ep)]
    if model.shared_experts:
        s = model.shared_experts
        ops += [Gemm("shared_up", tokens, s * up * fe / tp, h), Gemm("shared_down", tokens, h, s * fe / tp)]
    return ops


#: Bytes per element of a Mamba-2 SSD chunk state beyond the bf16 output its batched matmul is
#: priced with: written in fp32 (+2), read in fp32 and written back in bf16 by the state passing
#: between chunks (4 + 2).  Source: mamba_ssm 2.2.4 (PyPI sdist) ``ops/triton/ssd_combined.py``
#: ``_mamba_chunk_scan_combined_fwd``: ``_chunk_state_fwd(..., states_in_fp32=True)``, then
#: ``_state_passing_fwd(..., out_dtype=C.dtype)``.
SSD_STATE_EXTRA_BYTES = 8.0
#: HBM bytes per element of d_inner that the mixer's gating and norm move: the SSD's chunk scan
#: reads z (2) to gate its output by silu(z) in place of a plain write, and the gated RMSNorm
#: (``ExtendedRMSNorm``, a Triton kernel) reads and writes the result (2 + 2).  Source:
#: megatron-core 0.16.1 ``ssm/mamba_mixer.py`` ``_ssm_training`` (``mamba_split_conv1d_scan_combined``
#: without the norm's weight, then ``self.norm(y)``).
MAMBA_GATE_NORM_BYTES = 6.0
#: HBM bytes per channel and token of a recurrent mixer's causal depthwise convolution (read x, B
#: and C, or q, k and v, write them convolved, SiLU fused; causal_conv1d's kernel).
MAMBA_CONV_BYTES = 4.0
#: HBM bytes per element of a Gated DeltaNet chunk state: written in the keys' 16 bits by the
#: state recurrence and read back by the output kernel.  Source: fla-core 0.6.0 (PyPI sdist)
#: ``fla/ops/common/chunk_delta_h.py`` (``h = k.new_empty(B, NT, HV, K, V)``), then
#: ``fla/ops/common/chunk_o.py`` ``chunk_fwd_o``.
GDN_STATE_BYTES = 4.0


def mamba_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike) -> list[Op]:
    """One Mamba-2 mixer (Dao and Gu 2024, arXiv:2405.21060; Megatron-Core ``MambaMixer``),
    forward, per GPU, one micro-batch.

    The input projection is column-parallel (z, x, B, C and dt split with the heads and groups over
    tp), the output projection row-parallel, as Megatron-Core splits them.  Under context
    parallelism an all-to-all hands each rank whole sequences of heads / cp heads (Megatron-Core
    ``MambaContextParallel``), so the scan runs over ``seq_len`` tokens of H / (tp cp) heads.  The
    SSD scan (mamba_ssm's chunked kernels, chunk Q) is four batched products per chunk: chunk states
    B^T x (P x N over Q tokens, per head), C B^T within the chunk (Q x Q over N, per group), the
    causal intra-chunk product with x (Q x P over the Q / 2 keys below the diagonal) and the
    inter-chunk one C states (Q x P over N), with the states' fp32 traffic between chunks
    (:data:`SSD_STATE_EXTRA_BYTES`); the convolution and the gated norm are memory-bound."""
    mb, tp, cp = _f(micro_batch), _f(tp), _f(cp)
    tokens = mb * seq_len / cp
    h, P, N, Q = model.hidden, model.mamba_head_dim, model.mamba_state_dim, model.mamba_chunk_tokens
    heads = model.mamba_heads_total / (tp * cp)   # heads this GPU scans, whole sequences
    groups = np.maximum(model.mamba_groups / (tp * cp), 1.0)  # cp beyond the groups replicates them
    chunks = mb * seq_len / Q
    return [
        Gemm("in_proj", tokens, model.mamba_in_proj_width / tp, h),
        MemoryBound("mamba_conv", MAMBA_CONV_BYTES * tokens * model.mamba_conv_channels / tp),
        BatchedMatmul("ssd_chunk_state", P, N, Q, count=chunks * heads),
        BatchedMatmul("ssd_chunk_cb", Q, Q, N, count=chunks * groups),
        BatchedMatmul("ssd_chunk_scan", Q, P, Q / 2.0, count=chunks * heads),
        BatchedMatmul("ssd_state_scan", Q, P, N, count=chunks * heads),
        MemoryBound("ssd_states", SSD_STATE_EXTRA_BYTES * chunks * heads * P * N),
        MemoryBound("mamba_gate_norm", MAMBA_GATE_NORM_BYTES * tokens * model.mamba_inner / tp),
        Gemm("mamba_out_proj", tokens, h, model.mamba_inner / tp),
    ]


def gdn_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike) -> list[Op]:
    """One Gated DeltaNet mixer (Yang et al. 2024, "Gated Delta Networks", arXiv:2412.06464;
    Megatron-Core ``GatedDeltaNet``, which has no context parallelism), forward, per GPU, one
    micro-batch: the input projection (q, k, v, the output gate z, beta and the decay) column-parallel
    over the heads, the causal convolution, fla's chunked gated delta rule (chunk C, per value head,
    the queries and keys repeated to the value heads) and the gated RMSNorm, the output projection
    row-parallel.  The rule's kernels (fla-core 0.6.0 ``fla/ops/gated_delta_rule/chunk.py``
    ``chunk_gated_delta_rule_fwd``) are batched products per chunk and head: beta K K^T below the
    diagonal, the triangular solve (about C^3 / 3), w and u from it, the state recurrence (two
    d_k x d_v products over the chunk), the output from the state and within the chunk; the chunk
    states' traffic is :data:`GDN_STATE_BYTES`."""
    mb, tp, cp = _f(micro_batch), _f(tp), _f(cp)
    tokens = mb * seq_len / cp
    h, C = model.hidden, model.gdn_chunk_tokens
    dk, dv = model.gdn_key_head_dim, model.gdn_value_head_dim
    n = tokens / C * model.gdn_value_heads / tp   # chunks x value heads on this GPU
    return [
        Gemm("in_proj", tokens, model.gdn_in_proj_width / tp, h),
        MemoryBound("gdn_conv", MAMBA_CONV_BYTES * tokens * model.gdn_conv_channels / tp),
        BatchedMatmul("gdn_kkt", C, C / 2.0, dk, count=n),
        BatchedMatmul("gdn_solve", C, C, C / 3.0, count=n),
        BatchedMatmul("gdn_wu", C, dk + dv, C / 2.0, count=n),
        BatchedMatmul("gdn_state", dk, dv, 2.0 * C, count=n),
        BatchedMatmul("gdn_out_state", C, dv, dk, count=n),
        BatchedMatmul("gdn_out_qk", C, C / 2.0, dk, count=n),
        BatchedMatmul("gdn_out_av", C, dv, C / 2.0, count=n),
        MemoryBound("gdn_states", GDN_STATE_BYTES * n * dk * dv),
        MemoryBound("gdn_gate_norm", MAMBA_GATE_NORM_BYTES * tokens * model.gdn_value_width / tp),
        Gemm("gdn_out_proj", tokens, h, model.gdn_value_width / tp),
    ]


def recurrent_ops(model: ModelSpec, kind: str, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike,
                  cp: ArrayLike) -> list[Op]:
    """The mixer ops of a recurrent layer kind (``mamba`` or ``gdn``)."""
    return (mamba_ops if kind == "mamba" else gdn_ops)(model, micro_batch, seq_len, tp, cp)


def mamba_all_to_all_bytes(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike,
                           cp: ArrayLike) -> np.ndarray:
    """Bytes per GPU that a Mamba-2 mixer's context-parallel all-to-alls move in one pass: the
    input projection's output (z, x, B, C, dt) to head-parallel before the convolution and the
    scan's output back to sequence-parallel after it (Megatron-Core ``MambaContextParallel``
    ``pre_conv_ssm`` / ``post_conv_ssm``).  The backward moves their gradients the same ways."""
    tokens = _f(micro_batch) * seq_len / _f(cp)
    return ACTIVATION_BYTES * tokens * (model.mamba_in_proj_width + model.mamba_inner) / _f(tp)


#: The layer kinds of a hybrid Mamba-Transformer (:attr:`ModelSpec.layer_kinds`), each one
#: sublayer with its own norm and residual: ``experts`` is an MoE layer.
HYBRID_KINDS = ("mamba", "gdn", "attention", "mlp", "experts")
#: A hybrid's MLP layer kinds, and the transformer block's MLP each one is (:func:`mlp_ops`).
HYBRID_MLP_KINDS = {"mlp": "dense", "experts": "moe"}


def _elementwise(name: str, elements: ArrayLike, fused_bytes: float, eager: str | None) -> MemoryBound:
    """An elementwise op over ``elements``: ``fused_bytes`` per element forward (backward twice
    that), or, with ``eager`` naming its PyTorch-eager form, that form's bytes each way
    (:data:`EAGER_BYTES_PER_ELEMENT`)."""
    if eager is None:
        return MemoryBound(name, fused_bytes * elements)
    fwd, bwd = EAGER_BYTES_PER_ELEMENT[eager]
    return MemoryBound(name, fwd * elements, backward_bytes=bwd * elements)


def _eager_norm(model: ModelSpec, elementwise_fusion: bool) -> str | None:
    """The eager form of the model's norm when elementwise ops are not fused: an RMSNorm's kernel
    chain; a LayerNorm is one kernel either way."""
    return "rmsnorm" if not elementwise_fusion and model.norm == "rmsnorm" else None


def memory_bound_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike,
                     cp: ArrayLike, sequence_parallel: ArrayLike, layer_kind: str = "dense",
                     elementwise_fusion: bool = True) -> list[Op]:
    """Bandwidth-bound kernels of one layer (forward bytes per GPU, one micro-batch); without
    ``elementwise_fusion`` the RMSNorms, the rotary embedding and a gated activation run as PyTorch
    eager kernel chains (:data:`EAGER_BYTES_PER_ELEMENT`)."""
    mb, tp, cp = _f(micro_batch), _f(tp), _f(cp)
    B = ACTIVATION_BYTES
    tokens = mb * seq_len / cp
    # norms, residuals and dropout run on the sequence shard with SP, replicated over tp without
    shard = np.where(sequence_parallel, tokens / tp, tokens)
    h = model.hidden
    eager = not elementwise_fusion
    sub = layer_kind in HYBRID_KINDS  # a hybrid's layer: one norm, one residual add
    ops: list[Op] = [
        _elementwise("norms", (1 if sub else model.norms_per_layer) * shard * h, 2 * B,  # read x, write y
                     _eager_norm(model, elementwise_fusion)),
        MemoryBound("residual_adds", (1 if sub else 2) * 3 * shard * h * B),       # an add: read 2, write 1
    ]
    if layer_kind in RECURRENT_KINDS:
        return ops
    if model.qk_norm and layer_kind not in HYBRID_MLP_KINDS:  # each q and k head normed: read + write
        width = (model.heads + model.kv_heads) / tp * model.head_dim
        ops.append(_elementwise("qk_norms", tokens * width, 2 * B, _eager_norm(model, elementwise_fusion)))
    if model.position == "rope" and layer_kind not in HYBRID_MLP_KINDS:
        if model.attention == "mla":  # rope on the decoupled parts: a query heads + 1 shared key
            width = (model.heads / tp + 1) * model.mla_qk_rope_head_dim
        else:
            width = (model.heads + model.kv_heads) / tp * model.head_dim
        ops.append(_elementwise("rope", tokens * width, 2 * B, "rope" if eager else None))  # read + write q, k
    if layer_kind == "attention":
        return ops
    gated = model.activation.gated
    act_io = 3 if gated else 2  # gated: read gate and up, write; else read, write
    act_eager = "gated" if eager and gated else None
    if HYBRID_MLP_KINDS.get(layer_kind, layer_kind) == "dense":
        ops.append(_elementwise("activation", tokens * model.ffn_hidden / tp, act_io * B, act_eager))
    else:
        rows = tokens * (model.top_k + model.shared_experts)
        ops.append(_elementwise("activation", rows * model.moe_ffn_hidden / tp, act_io * B, act_eager))
        # dispatch permutation and combine (un-permute + weighted sum): read + write each copy
        ops.append(MemoryBound("moe_permute", 4 * shard * model.top_k * h * B))
    if model.dropout:  # after attention and after the MLP: read, write, mask
        ops.append(MemoryBound("dropout", 2 * shard * h * (2 * B + DROPOUT_MASK_BYTES)))
    return ops


def layer_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike,
              ep: ArrayLike, sequence_parallel: ArrayLike, layer_kind: str = "dense",
              elementwise_fusion: bool = True, etp: ArrayLike | None = None,
              document_tokens: int | None = None) -> list[Op]:
    """Every op of one layer, forward, per GPU, one micro-batch: a transformer block (``dense`` or
    ``moe``), or a hybrid's ``mamba``, ``attention`` or ``mlp`` layer (:data:`HYBRID_KINDS`)
    (packed documents of ``document_tokens``: :func:`attention_ops`)."""
    tail = memory_bound_ops(model, micro_batch, seq_len, tp, cp, sequence_parallel, layer_kind, elementwise_fusion)
    if layer_kind in RECURRENT_KINDS:
        return recurrent_ops(model, layer_kind, micro_batch, seq_len, tp, cp) + tail
    if layer_kind == "attention":
        return attention_ops(model, micro_batch, seq_len, tp, cp, document_tokens) + tail
    if layer_kind in HYBRID_MLP_KINDS:
        return mlp_ops(model, micro_batch, seq_len, tp, cp, ep, sequence_parallel, HYBRID_MLP_KINDS[layer_kind],
                       etp) + tail
    return (attention_ops(model, micro_batch, seq_len, tp, cp, document_tokens)
            + mlp_ops(model, micro_batch, seq_len, tp, cp, ep, sequence_parallel, layer_kind, etp)
            + tail)


def logits_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike,
               sequence_parallel: ArrayLike, cross_entropy_fusion: bool = False,
               elementwise_fusion: bool = True) -> list[Op]:
    """Final norm, output projection (vocab split by tp) and cross entropy, on the last stage;
    the loss fused or not (:data:`CROSS_ENTROPY_BYTES_PER_LOGIT`), the norm too
    (:data:`EAGER_BYTES_PER_ELEMENT`)."""
    mb, tp, cp = _f(micro_batch), _f(tp), _f(cp)
    tokens = mb * seq_len / cp
    shard = np.where(sequence_parallel, tokens / tp, tokens)
    logits = tokens * model.vocab / tp
    fwd, bwd = CROSS_ENTROPY_BYTES_PER_LOGIT["fused" if cross_entropy_fusion else "unfused"]
    return [_elementwise("final_norm", shard * model.hidden, 2 * ACTIVATION_BYTES,
                         _eager_norm(model, elementwise_fusion)),
            Gemm("logits", tokens, model.vocab / tp, model.hidden),
            MemoryBound("cross_entropy", logits * fwd, backward_bytes=logits * bwd)]


def embedding_ops(model: ModelSpec, micro_batch: ArrayLike, seq_len: int, tp: ArrayLike, cp: ArrayLike,
                  sequence_parallel: ArrayLike) -> list[Op]:
    """Token (and learned position) embedding lookup on the first stage: each TP rank reads its
    vocabulary shard's rows and writes the full (tokens x h) output before the reduction."""
    mb, cp = np.broadcast_arrays(_f(micro_batch), _f(cp), _f(tp))[:2]
    tokens = mb * seq_len / cp
    reads = 2 if model.position == "learned" else 1
    return [MemoryBound("embedding", (reads + 1) * tokens * model.hidden * ACTIVATION_BYTES)]


def deepspeed_layer_weights(model, tp: ArrayLike) -> list[np.ndarray]:
    """Elements of one layer's weight matrices on one GPU, in the order the forward uses them:
    fused QKV (or MLA's down / up projections), the output projection, the MLP's gate and up (or
    fc1) and down (or fc2), each split over tp (the dense MLP; an MoE layer's expert width stands in;
    a hybrid's heaviest layer kind stands in for its layers)."""
    tp = np.asarray(tp, dtype=float)
    h, a = float(model.hidden), float(model.heads)
    if model.is_hybrid:  # the heaviest of a hybrid's layers stands in for one
        kind = max((k for k, _ in model.layer_kinds), key=model.params_per_layer)
        return [float(op.n) * float(op.k) / tp for op in layer_ops(model, 1, 1, 1, 1, 1, False, kind)
                if isinstance(op, Gemm)]
    if model.attention == "mla":
        qk, rope = float(model.qk_head_dim), float(model.mla_qk_rope_head_dim)
        r_q, r_kv = model.mla_q_lora_rank, float(model.mla_kv_lora_rank)
        q = [h * a * qk] if r_q is None else [h * r_q, r_q * a * qk]
        attn = q + [h * (r_kv + rope), r_kv * a * (model.mla_qk_nope_head_dim + model.v_head_dim),
                    a * model.v_head_dim * h]
    else:
        q_dim, kv_dim = a * model.head_dim, float(model.kv_heads * model.head_dim)
        attn = [h * (q_dim + 2 * kv_dim), q_dim * h]
    width = float(model.ffn_hidden or model.moe_ffn_hidden)
    mlp = [h * width] * (model.activation.mlp_matrices - 1) + [width * h]
    return [w / tp for w in attn + mlp]


def gemm_and_attention_flops(ops: list[Op]) -> np.ndarray:
    """Sum of the FLOPs of the GEMMs and attention calls in ``ops`` (memory-bound ops have none)."""
    return sum((op.flops for op in ops if not isinstance(op, MemoryBound)), np.asarray(0.0))


#: GEMM ops whose rows are routed expert tokens: torchtitan's MoE runs them as grouped matmuls
#: (``torch._grouped_mm``), which its per-op policy neither counts nor saves, so they run again.
GROUPED_EXPERT_GEMMS = ("expert_up", "expert_down")


def torch_mm_parts(name: str, model: ModelSpec) -> tuple[float, ...]:
    """The ``aten.mm`` calls the layer GEMM op ``name`` is in a PyTorch-native model, in forward
    order, as fractions of its output width.  torchtitan's Llama (``models/llama3/model/model.py``,
    torchtitan 0.1.0 on PyPI) projects q, k and v with three ``nn.Linear`` (wq, wk, wv) and a
    gated MLP with two (w1 the gate, w3 the up projection) before w2; every other projection is
    one linear.  Grouped expert GEMMs are no ``aten.mm``: ()."""
    if name in GROUPED_EXPERT_GEMMS:
        return ()
    if name == "qkv":
        a, g = float(model.heads), float(model.kv_heads)
        return (a / (a + 2 * g), g / (a + 2 * g), g / (a + 2 * g))
    if name in ("mlp_up", "shared_up") and model.activation.gated:
        return (0.5, 0.5)
    return (1.0,)


def op_sac_recomputed_shares(gemm_names: list[str], model: ModelSpec) -> dict[str, float]:
    """The share of each of a layer's GEMM ops (named in forward order) that torchtitan's per-op
    selective activation checkpointing (``selective_ac_option = 'op'``) runs again in the backward.

    Source: torchtitan 0.1.0 (PyPI) ``models/llama3/infra/parallelize.py``
    ``_apply_ac_to_transformer_block``: the policy saves the outputs of ``aten.mm``, the SDPA
    kernels, ``reduce_scatter_tensor`` and ``aten.max`` ("Saves output of all compute ops, except
    every second mm") and marks everything else PREFER_RECOMPUTE.  The mm count runs per block in
    forward order, so the 2nd, 4th, ... matmul runs again (Llama: wk, wo and w3) and so does any
    grouped expert GEMM (:func:`torch_mm_parts`)."""
    shares: dict[str, float] = {}
    count = 0
    for name in gemm_names:
        parts = torch_mm_parts(name, model)
        share = 0.0 if parts else 1.0
        for frac in parts:
            count += 1
            share += frac if count % 2 == 0 else 0.0
        shares[name] = share
    return shares


def busiest_rank_load(ep: ArrayLike, imbalance: float) -> np.ndarray:
    """Routed tokens of the busiest expert-parallel GPU over the mean: ``imbalance`` where the
    experts are spread over ``ep`` > 1 GPUs, 1 where each GPU holds them all (its load is its own
    tokens' copies, however they spread over the experts)."""
    return np.where(_f(ep) > 1, float(imbalance), 1.0)


#: Rows an expert's tokens on the busiest rank are counted in whole multiples of: the alignment
#: the GEMMs need at the narrowest operand (16 bytes of fp8, :data:`colossim.cost.compute.ALIGN_BYTES`),
#: as Megatron-Core pads each expert's tokens for fp8 (``--moe-router-padding-for-fp8``, to 16).
#: Because: ``load`` times the mean rows is an average, not a shape; left fractional, the weight
#: gradient's K (those rows) would turn aligned and misaligned as the load grows, and a busier rank
#: could run faster.
EXPERT_ROWS_ALIGN = ALIGN_BYTES / OPERAND_BYTES["fp8"]


def busiest_expert_rank_ops(ops: list[Op], model: ModelSpec, load: ArrayLike) -> list[Op]:
    """One MoE layer's ops as its busiest expert-parallel rank runs them: the routed expert GEMMs
    (:data:`GROUPED_EXPERT_GEMMS`) take ``load`` times the mean rows :func:`mlp_ops` gives them
    (above the mean, padded to :data:`EXPERT_ROWS_ALIGN`), and so does the routed share of the
    activation function (the shared experts' share stays).  ``load`` is that rank's routed tokens
    over the mean (1: perfect balance).  The all-to-all is a barrier every MoE layer, so the other
    ranks wait for this one."""
    load = _f(load)
    k, s = float(model.top_k), float(model.shared_experts)
    act = (k * load + s) / (k + s)
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Gemm) and op.name in GROUPED_EXPERT_GEMMS:
            rows = _f(op.m) * load
            padded = np.ceil(rows / EXPERT_ROWS_ALIGN) * EXPERT_ROWS_ALIGN
            op = replace(op, m=np.where(load > 1.0, padded, rows))
        elif isinstance(op, MemoryBound) and op.name == "activation":
            op = replace(op, bytes=_f(op.bytes) * act,
                         backward_bytes=None if op.backward_bytes is None else _f(op.backward_bytes) * act)
        out.append(op)
    return out


def op_sac_recompute_ops(ops: list[Op], model: ModelSpec) -> list[Op]:
    """The ops of one layer that torchtitan's per-op selective activation checkpointing runs
    again in the backward: the recomputed share of each GEMM (:func:`op_sac_recomputed_shares`)
    and every memory-bound op (norms, rotary embedding, activation, residual adds: not in the
    policy's save list); the attention core's output is saved, so it does not run again."""
    shares = op_sac_recomputed_shares([op.name for op in ops if isinstance(op, Gemm)], model)
    again: list[Op] = []
    for op in ops:
        if isinstance(op, Gemm) and shares[op.name] > 0:
            again.append(replace(op, n=np.asarray(op.n, dtype=float) * shares[op.name]))
        elif isinstance(op, MemoryBound):
            again.append(op)
    return again


__all__ = ["ACTIVATION_BYTES", "CROSS_ENTROPY_BYTES_PER_LOGIT", "DROPOUT_MASK_BYTES", "EAGER_BYTES_PER_ELEMENT",
           "GDN_STATE_BYTES", "HYBRID_KINDS", "HYBRID_MLP_KINDS", "MAMBA_CONV_BYTES", "MAMBA_GATE_NORM_BYTES",
           "SSD_STATE_EXTRA_BYTES",
           "gdn_ops", "recurrent_ops",
           "Attention", "AttentionLayerKind", "BatchedMatmul", "Gemm", "mamba_all_to_all_bytes", "mamba_ops",
           "MemoryBound", "Op", "attention_layer_kinds", "attention_ops",
           "attention_span",
           "EXPERT_ROWS_ALIGN", "busiest_expert_rank_ops", "busiest_rank_load",
           "deepspeed_layer_weights", "embedding_ops", "gemm_and_attention_flops", "GROUPED_EXPERT_GEMMS", "layer_ops", "logits_ops",
           "memory_bound_ops", "mlp_ops", "op_sac_recompute_ops", "op_sac_recomputed_shares", "torch_mm_parts"]
