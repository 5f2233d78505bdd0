"""Time of one serving engine iteration on one replica, op by op, with the shared cost model.

An iteration is one forward pass over a mixed batch (continuous batching): ``tokens`` new tokens
(one per decoding sequence plus the prefill chunks scheduled), attention over the KV cache
(``decode_kv_tokens``: the context lengths of the decoding sequences summed) and causal attention of
the prefill chunks (``prefill_pairs``: query-key pairs), and the output head for the ``sampled``
rows.  Every argument may be a numpy array (one element per batch size); the plan is scalar.

Per layer and GPU (tp-way tensor parallel, one pipeline stage):

- GEMMs with ``m = tokens``: QKV (or MLA's projections), output projection, dense MLP or the MoE
  block (router; the experts a batch touches; shared experts).  Compute precision is the
  activation format; weights are read at their storage format (``gemm_seconds(weight_bytes=)``),
  so a small-batch decode is bound by the bytes of weights, a large prefill by FLOPs;
- attention over the cache: KV bytes read (memory) vs FLOPs (compute), whichever is longer
  (FlashDecoding-style kernels stream the cache once); MLA decodes on the compressed latent
  (weight absorption, DeepSeek-V2 section 2.1.2: per head a ``kv_lora_rank + rope`` key and a
  ``kv_lora_rank`` value);
- prefill attention: FlashAttention FLOPs at the fitted attention efficiency;
- memory-bound ops (norms, residuals, RoPE, the MLP activation, MoE permutation): the training
  op list (:func:`colossim.training.ops.memory_bound_ops`) for ``tokens`` tokens;
- TP all-reduce of the hidden states after attention and after the MLP (one for a parallel block),
  priced by :func:`colossim.cost.comm.all_reduce_seconds` over the replica's scale-up domain (or
  the scale-out fabric when tp exceeds it); MoE experts are reduced in the same all-reduce
  (tokens are replicated over the tp ranks, so no all-to-all);
- between pipeline stages, a send/recv of the hidden states; on the last stage, the final norm,
  the output head for the sampled rows (16-bit weights) and sampling over fp32 logits;
- every kernel that is not a GEMM (norms, RoPE, attention, activation: see
  :func:`non_gemm_kernels_per_layer`) also pays the chip's fixed time per kernel, the launch /
  prologue / tail time the profile fits on small GEMMs (``GemmParams.launch_seconds``): at batch 1
  these fixed times are a fifth of a decode step;
- a fixed host/scheduler overhead per iteration (:data:`ITERATION_OVERHEAD_S`).

Each op's time goes to the ``compute`` or the ``memory`` bucket by which roofline term sets it;
collectives go to ``comm``: the largest bucket names the phase's bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colossim.catalog import Accelerator
from colossim.cost import comm as C
from colossim.cost import compute as K
from colossim.cost.efficiency import CalibrationProfile
from colossim.cost.power import profile_for_chip
from colossim.inference.memory import (EMBEDDING_FORMAT, LOGIT_BYTES, MAMBA_SSM_STATE_BYTES, attention_share,
                                       kv_bytes_per_token_per_layer, local_share, recurrent_state_bytes_per_layer,
                                       stage_layers)
from colossim.specs.model import RECURRENT_KINDS, ModelSpec
from colossim.specs.serving import BYTES_PER_ELEMENT
from colossim.specs.system import SystemSpec
from colossim.training.ops import (ACTIVATION_BYTES, BatchedMatmul, Gemm, MemoryBound, busiest_rank_load,
                                  memory_bound_ops, recurrent_ops)

ArrayLike = np.ndarray | float | int

#: Host-side time per engine iteration that the GPU waits for (scheduling, sampling bookkeeping,
#: launching the CUDA graph).  Because: TensorRT-LLM's C++ executor overlaps most of it with the
#: GPU; a few hundred microseconds remain per iteration in its traces (the "inflight batching"
#: step gap); 0.3 ms is that order, an assumption rather than a measurement.
ITERATION_OVERHEAD_S = 3e-4

#: Fraction of the FlashAttention efficiency that decode attention (one query per sequence against
#: a long cache) reaches when it is compute-bound.  Because: with GQA, the q-heads of one KV group
#: form the MMA's M dimension (8 rows for Llama's 64/8), so decode kernels use a quarter to half of
#: a 64-row tensor-core tile; 0.5 is the middle.  Memory-bound decode (the usual case) ignores it.
DECODE_ATTENTION_COMPUTE_FRACTION = 0.5

BUCKETS = ("compute", "memory", "comm")


@dataclass(frozen=True)
class ServingContext:
    """Everything fixed for one replica plan: the model, chip, network, formats and degrees."""

    model: ModelSpec
    chip: Accelerator
    hardware: SystemSpec
    network: C.Network
    profile: CalibrationProfile
    weights: str
    activations: str
    kv_cache: str
    tp: int
    pp: int
    ep: int
    attention_seq_hint: float
    """Keys per query for the prefill attention efficiency (the workload's prompt length)."""
    grouped_kv_decode: bool = True
    """Decode attention reads each KV head once per group of query heads (else once per query head)."""
    moe_load_imbalance: float = 1.0
    """The busiest expert-parallel GPU's routed tokens over the mean (the workload's
    ``moe_load_imbalance``; 1: balanced)."""
    recurrent_state_bytes: float = MAMBA_SSM_STATE_BYTES
    """Bytes per element of a hybrid's recurrent (Mamba-2 or Gated DeltaNet) state (the workload's
    ``recurrent_state``)."""

    @property
    def compute_precision(self) -> str:
        return self.activations if self.activations in ("fp8", "fp4") else "bf16"


def make_context(model: ModelSpec, hardware: SystemSpec, *, weights: str, activations: str,
                 kv_cache: str, tp: int, pp: int, ep: int, attention_seq_hint: float,
                 grouped_kv_decode: bool = True, moe_load_imbalance: float = 1.0,
                 profile: CalibrationProfile | None = None,
                 recurrent_state_bytes: float = MAMBA_SSM_STATE_BYTES) -> ServingContext:
    chip = hardware.accelerator
    prof = profile if profile is not None else profile_for_chip(chip)
    return ServingContext(model, chip, hardware, C.network_of_hardware(hardware), prof, weights, activations,
                          kv_cache, tp, pp, ep, float(attention_seq_hint), bool(grouped_kv_decode),
                          float(moe_load_imbalance), float(recurrent_state_bytes))


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


class _Acc:
    """Accumulates op times into the compute / memory / comm buckets."""

    def __init__(self, shape) -> None:
        self.t = {b: np.zeros(shape) for b in BUCKETS}

    def gemm(self, ctx: ServingContext, m, n, k, count=1.0, *, precision: str | None = None,
             weight_format: str | None = None, times: float = 1.0, grouped: bool = False) -> None:
        """``count`` GEMMs of one shape: each its own kernel, or with ``grouped`` one kernel for
        all of them (a grouped GEMM: one launch, their tiles sharing the waves)."""
        prec = precision or ctx.compute_precision
        wfmt = weight_format or ctx.weights
        w_bytes = BYTES_PER_ELEMENT[wfmt]
        m, n, k, count = _f(m), _f(n), _f(k), _f(count)
        launch, t_compute, t_memory = K.gemm_roofline(np.maximum(m, 1e-9), n, k, prec, ctx.chip,
                                                      ctx.profile, weight_bytes=w_bytes,
                                                      batch=count if grouped else 1)
        memory_bound = t_memory >= t_compute  # the roofline's max picked the bytes
        per = np.maximum(t_compute, t_memory)
        t = launch + per * count if grouped else (launch + per) * count
        t = np.where(m > 0, t, 0.0) * times
        self.t["memory"] = self.t["memory"] + np.where(memory_bound, t, 0.0)
        self.t["compute"] = self.t["compute"] + np.where(memory_bound, 0.0, t)

    def add(self, bucket: str, t) -> None:
        self.t[bucket] = self.t[bucket] + _f(t)

    def split(self, t_compute, t_memory, times: float = 1.0) -> None:
        """An op whose time is max(compute, memory): booked to the larger."""
        t_compute, t_memory = _f(t_compute) * times, _f(t_memory) * times
        mem = t_memory >= t_compute
        self.t["memory"] = self.t["memory"] + np.where(mem, t_memory, 0.0)
        self.t["compute"] = self.t["compute"] + np.where(mem, 0.0, t_compute)


def _expected_experts_touched(experts: float, top_k: float, tokens: np.ndarray) -> np.ndarray:
    """Expected distinct experts that ``tokens`` tokens route to, each picking ``top_k`` of
    ``experts`` uniformly: E (1 - (1 - k/E)^T) (balanced routing; the load-balancing losses of
    Switch / Mixtral / DeepSeek aim at it)."""
    return experts * (1.0 - np.power(1.0 - top_k / experts, tokens))


def _attention_gemms(acc: _Acc, ctx: ServingContext, T: np.ndarray, layers: float) -> None:
    m, tp = ctx.model, ctx.tp
    h, a = m.hidden, m.heads
    if m.attention == "mla":
        r_q, r_kv = m.mla_q_lora_rank, m.mla_kv_lora_rank
        rope, nope, v = m.mla_qk_rope_head_dim, m.mla_qk_nope_head_dim, m.mla_v_head_dim
        if r_q is None:
            acc.gemm(ctx, T, a * m.qk_head_dim / tp, h, times=layers)
        else:
            acc.gemm(ctx, T, r_q, h, times=layers)                      # q_down (replicated)
            acc.gemm(ctx, T, a * m.qk_head_dim / tp, r_q, times=layers)
        acc.gemm(ctx, T, r_kv + rope, h, times=layers)                  # kv_down (replicated)
        acc.gemm(ctx, T, a * (nope + v) / tp, r_kv, times=layers)       # kv_up / absorbed q, o
        acc.gemm(ctx, T, h, a * v / tp, times=layers)
        return
    d, g = m.head_dim, m.kv_heads
    gate = 2 if m.attention_output_gate else 1  # a gated attention's q projection is twice as wide
    acc.gemm(ctx, T, (gate * a / tp + 2 * math.ceil(g / tp)) * d, h, times=layers)
    acc.gemm(ctx, T, h, a * d / tp, times=layers)


def _attention_core(acc: _Acc, ctx: ServingContext, decode_kv: np.ndarray, pairs: np.ndarray,
                    layers: float, decode_kv_local: np.ndarray, pairs_local: np.ndarray) -> None:
    """Decode and prefill attention of ``layers`` layers; the model's local (sliding-window or
    chunked) share of them reads ``decode_kv_local`` keys and runs ``pairs_local`` pairs instead
    (the kernels skip what lies outside the window or chunk whether or not the cache keeps it)."""
    m, chip, prof = ctx.model, ctx.chip, ctx.profile
    heads_local = m.heads / ctx.tp
    peak16 = chip.peak_flops_per_s("bf16")
    hbm = chip.hbm_bytes_per_s * prof.memory_efficiency
    if m.attention == "mla":  # decode on the latent: key r_kv + rope, value r_kv
        dk, dv = m.mla_kv_lora_rank + m.mla_qk_rope_head_dim, m.mla_kv_lora_rank
    else:
        dk, dv = m.qk_head_dim, m.v_head_dim
    eff_dec = prof.attention.max_efficiency * DECODE_ATTENTION_COMPUTE_FRACTION
    eff = K.attention_efficiency(ctx.attention_seq_hint, m.qk_head_dim, True, prof)
    local = layers * local_share(m)
    for n, kv, prs in ((layers - local, decode_kv, pairs), (local, decode_kv_local, pairs_local)):
        if not n:
            continue
        # decode: stream the cache once (once per query head of a group without a GQA-aware
        # kernel); FLOPs 2 (dk + dv) per key per local head
        kv_bytes = kv * kv_bytes_per_token_per_layer(m, ctx.kv_cache, ctx.tp)
        if not ctx.grouped_kv_decode and m.attention != "mla":
            kv_bytes = kv_bytes * (m.heads / m.kv_heads)
        dec_flops = 2.0 * kv * heads_local * (dk + dv)
        acc.split(dec_flops / (peak16 * eff_dec), kv_bytes / hbm, times=n)
        # prefill: causal FlashAttention over the chunk and its cached prefix
        pre_flops = 2.0 * prs * heads_local * (m.qk_head_dim + m.v_head_dim)
        acc.add("compute", pre_flops / (peak16 * eff) * n)


def _mlp(acc: _Acc, ctx: ServingContext, T: np.ndarray, dense_layers: float, moe_layers: float) -> None:
    m, tp = ctx.model, ctx.tp
    h, up = m.hidden, 2 if m.activation.gated else 1
    if dense_layers:
        acc.gemm(ctx, T, up * m.ffn_hidden / tp, h, times=dense_layers)
        acc.gemm(ctx, T, h, m.ffn_hidden / tp, times=dense_layers)
    if moe_layers:
        e, k, fe, ep = m.experts, m.top_k, m.moe_ffn_hidden, ctx.ep
        etp = tp / ep
        acc.gemm(ctx, T, e, h, precision="bf16", weight_format="bf16", times=moe_layers)   # router
        touched = _expected_experts_touched(e, k, T) / ep                 # distinct local experts
        rows = T * k / ep / np.maximum(touched, 1e-9)                     # rows per touched expert
        # the busiest expert-parallel GPU runs its load's share of rows and the others wait for it
        # in the layer's all-reduce; weights read are the same
        rows = rows * busiest_rank_load(ep, ctx.moe_load_imbalance)
        # the touched experts in one grouped kernel each way, as serving engines run them
        # (TensorRT-LLM's MoE plugin, vLLM's fused_moe)
        acc.gemm(ctx, rows, up * fe / etp, h, touched, times=moe_layers, grouped=True)
        acc.gemm(ctx, rows, h, fe / etp, touched, times=moe_layers, grouped=True)
        if m.shared_experts:
            s = m.shared_experts
            acc.gemm(ctx, T, s * up * fe / tp, h, times=moe_layers)
            acc.gemm(ctx, T, h, s * fe / tp, times=moe_layers)


#: Kernels of a hybrid's layers besides their GEMMs and collectives (TensorRT-LLM / vLLM fusion
#: level): a Mamba-2 layer's norm, convolution, scan (mamba_ssm's chunked scan in prefill, its
#: ``selective_state_update`` in decode) and gated norm; an attention layer's norm, RoPE with the
#: KV-cache write, and attention; an MLP layer's norm and activation; an MoE layer's norm,
#: activation, token permutation and weighted un-permutation.
HYBRID_NON_GEMM_KERNELS = {"mamba": 4, "gdn": 4, "attention": 3, "mlp": 2, "experts": 4}


def non_gemm_kernels_per_layer(model: ModelSpec, layer_kind: str) -> int:
    """Kernels of one layer besides its GEMMs and collectives: each norm (fused with its residual
    add), RoPE with the KV-cache write, the attention kernel, the MLP activation; an MoE layer adds
    the token permutation and the weighted un-permutation (TensorRT-LLM / vLLM fusion level); a
    hybrid's layers :data:`HYBRID_NON_GEMM_KERNELS`."""
    if layer_kind in HYBRID_NON_GEMM_KERNELS:
        return HYBRID_NON_GEMM_KERNELS[layer_kind]
    n = model.norms_per_layer + 1 + 1 + 1
    return n + (2 if layer_kind == "moe" else 0)


def _recurrent(acc: _Acc, ctx: ServingContext, T: np.ndarray, sequences: np.ndarray, kind: str,
               layers: float) -> None:
    """``layers`` recurrent mixers of ``kind`` (Mamba-2 or Gated DeltaNet) over ``T`` new tokens of
    ``sequences`` sequences, from the training op list of one token
    (:func:`colossim.training.ops.recurrent_ops`, forward): the projections (weights at their
    storage format), the convolution and gated norm by bytes, the chunked scan's products and
    chunk-state traffic per token; and each sequence's recurrent state read and written once (in
    the workload's ``recurrent_state`` format, with its convolution's cached inputs): a decode step is
    one token per sequence, so the state, not the tokens, sets its bytes."""
    if not layers:
        return
    m, tp = ctx.model, ctx.tp
    hbm = ctx.chip.hbm_bytes_per_s * ctx.profile.memory_efficiency
    for op in recurrent_ops(m, kind, 1, 1, tp, 1):  # one token's op list: its terms scale with T
        if isinstance(op, Gemm):
            acc.gemm(ctx, T, op.n, op.k, times=layers)
        elif isinstance(op, BatchedMatmul):  # one batched kernel of the tokens' chunks
            acc.gemm(ctx, op.m, op.n, op.k, _f(op.count) * T, precision="bf16", weight_format="bf16",
                     times=layers, grouped=True)
        elif isinstance(op, MemoryBound):
            acc.add("memory", _f(op.bytes) * T / hbm * layers)
    state = recurrent_state_bytes_per_layer(m, kind, tp, ctx.recurrent_state_bytes)
    acc.add("memory", np.where(T > 0, 2.0 * sequences * state / hbm * layers, 0.0))


def _memory_bound(acc: _Acc, ctx: ServingContext, T: np.ndarray, kinds: list[tuple[str, float]]) -> None:
    hbm = ctx.chip.hbm_bytes_per_s * ctx.profile.memory_efficiency
    fixed = ctx.profile.gemm_params("bf16").launch_seconds  # the chip's fixed time per kernel
    for kind, n in kinds:
        if n:
            ops = memory_bound_ops(ctx.model, T, 1, ctx.tp, 1, False, kind)
            acc.add("memory", sum(_f(op.bytes) for op in ops) / hbm * n)
            acc.add("memory", np.where(T > 0, fixed * non_gemm_kernels_per_layer(ctx.model, kind) * n, 0.0))


def _tp_comm(acc: _Acc, ctx: ServingContext, T: np.ndarray, layers: float) -> None:
    if ctx.tp == 1:
        return
    # a transformer block reduces after attention and after the MLP (once in a parallel block),
    # a hybrid's layer once
    per_layer = 1 if ctx.model.parallel_block or ctx.model.is_hybrid else 2
    msg = T * ctx.model.hidden * ACTIVATION_BYTES
    t = C.all_reduce_seconds(np.maximum(msg, 1.0), ctx.tp, ctx.network, ctx.profile)
    acc.add("comm", np.where(T > 0, t, 0.0) * per_layer * layers)


def _pp_comm(acc: _Acc, ctx: ServingContext, T: np.ndarray) -> None:
    if ctx.pp == 1:
        return
    msg = np.maximum(T * ctx.model.hidden * ACTIVATION_BYTES, 1.0)
    crosses = ctx.tp * ctx.pp > ctx.network.scaleup_domain_size or ctx.tp * ctx.pp > ctx.network.gpus_per_node
    acc.add("comm", C.send_recv_seconds(msg, ctx.network, ctx.profile, crosses_scaleout=crosses))


def _head(acc: _Acc, ctx: ServingContext, sampled: np.ndarray) -> None:
    m = ctx.model
    hbm = ctx.chip.hbm_bytes_per_s * ctx.profile.memory_efficiency
    acc.add("memory", 2 * sampled * m.hidden * ACTIVATION_BYTES / hbm)          # final norm
    acc.gemm(ctx, sampled, m.vocab / ctx.tp, m.hidden, precision="bf16", weight_format=EMBEDDING_FORMAT)
    acc.add("memory", sampled * m.vocab / ctx.tp * LOGIT_BYTES * 2 / hbm)       # write + read for sampling


def stage_seconds(ctx: ServingContext, tokens: ArrayLike, decode_kv_tokens: ArrayLike = 0.0,
                  prefill_pairs: ArrayLike = 0.0, sampled: ArrayLike = 0.0, *,
                  decode_kv_local: ArrayLike | None = None,
                  prefill_pairs_local: ArrayLike | None = None,
                  sequences: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Time of one micro-batch through the largest pipeline stage (its layers, plus the output head
    and the stage-to-stage send), by bucket; ``total`` is their sum plus the iteration overhead
    divided over the stages.  ``decode_kv_local`` / ``prefill_pairs_local``: the keys read and
    the query-key pairs in the model's local (sliding-window or chunked) layers (``decode_kv_tokens`` /
    ``prefill_pairs`` when None, as when no context is longer than the window or chunk).
    ``sequences``: those the iteration carries, whose recurrent state a hybrid reads and writes
    (None: ``sampled``, one per sampled row)."""
    kv_w = decode_kv_tokens if decode_kv_local is None else decode_kv_local
    pairs_w = prefill_pairs if prefill_pairs_local is None else prefill_pairs_local
    seqs = sampled if sequences is None else sequences
    T, kv, pairs, smp, kv_w, pairs_w, seqs = np.broadcast_arrays(
        _f(tokens), _f(decode_kv_tokens), _f(prefill_pairs), _f(sampled), _f(kv_w), _f(pairs_w), _f(seqs))
    m = ctx.model
    L = stage_layers(m, ctx.pp)
    # the stage's layers of each kind, in the model's proportions
    on = {k: L * n / m.layers for k, n in m.layer_kinds}
    attending = L * attention_share(m)
    acc = _Acc(T.shape)
    _attention_gemms(acc, ctx, T, attending)
    _attention_core(acc, ctx, kv, pairs, attending, kv_w, pairs_w)
    _mlp(acc, ctx, T, on.get("dense", 0.0) + on.get("mlp", 0.0), on.get("moe", 0.0) + on.get("experts", 0.0))
    for kind in RECURRENT_KINDS:
        _recurrent(acc, ctx, T, seqs, kind, on.get(kind, 0.0))
    _memory_bound(acc, ctx, T, list(on.items()))
    _tp_comm(acc, ctx, T, L)
    _pp_comm(acc, ctx, T)
    _head(acc, ctx, smp)
    out = dict(acc.t)
    out["overhead"] = np.full(T.shape, ITERATION_OVERHEAD_S / ctx.pp)
    out["total"] = sum(out[b] for b in BUCKETS) + out["overhead"]
    return out


def iteration_seconds(ctx: ServingContext, tokens: ArrayLike, decode_kv_tokens: ArrayLike = 0.0,
                      prefill_pairs: ArrayLike = 0.0, sampled: ArrayLike = 0.0, *,
                      decode_kv_local: ArrayLike | None = None,
                      prefill_pairs_local: ArrayLike | None = None,
                      sequences: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Latency of one iteration of a micro-batch through all ``pp`` stages (per bucket and total)."""
    s = stage_seconds(ctx, tokens, decode_kv_tokens, prefill_pairs, sampled, decode_kv_local=decode_kv_local,
                      prefill_pairs_local=prefill_pairs_local, sequences=sequences)
    return {k: v * ctx.pp for k, v in s.items()}


def causal_pairs(chunk: ArrayLike, prefix: ArrayLike = 0.0, window: int | None = None) -> np.ndarray:
    """Query-key pairs of causal attention for ``chunk`` new tokens after ``prefix`` cached ones;
    with a ``window``, each query sees at most ``window`` keys (itself and ``window - 1`` before)."""
    c, p = _f(chunk), _f(prefix)
    if window is None:
        return c * (p + (c + 1.0) / 2.0)
    return _windowed_pairs_to(p + c, window) - _windowed_pairs_to(p, window)


def _windowed_pairs_to(n: np.ndarray, window: int) -> np.ndarray:
    """Pairs of the first ``n`` queries under a ``window``: sum over q = 1..n of min(q, window)."""
    inside = np.minimum(n, window)
    return inside * (inside + 1.0) / 2.0 + np.maximum(n - window, 0.0) * window


def chunked_pairs(chunk: ArrayLike, prefix: ArrayLike, attention_chunk: int) -> np.ndarray:
    """Query-key pairs of ``chunk`` new tokens after ``prefix`` in a chunked-attention layer, each
    query seeing the keys of its own ``attention_chunk``-token chunk up to itself."""
    def to(n: np.ndarray) -> np.ndarray:   # sum over q = 1..n of ((q - 1) mod C) + 1
        whole, rest = np.floor(n / attention_chunk), np.mod(n, attention_chunk)
        return whole * attention_chunk * (attention_chunk + 1.0) / 2.0 + rest * (rest + 1.0) / 2.0
    c, p = _f(chunk), _f(prefix)
    return to(p + c) - to(p)


def local_pairs(model: ModelSpec, chunk: ArrayLike, prefix: ArrayLike = 0.0) -> np.ndarray:
    """:func:`causal_pairs` in the model's local layers (its window or chunk; global without them)."""
    local = model.local_attention
    if local is not None and local[0] == "chunk":
        return chunked_pairs(chunk, prefix, local[1])
    return causal_pairs(chunk, prefix, None if local is None else local[1])


def mean_decode_context(input_tokens: float, output_tokens: float, window: int | None = None,
                        attention_chunk: int | None = None) -> float:
    """Keys a decode step reads per layer, averaged over a request's ``output_tokens`` steps whose
    context runs from ``input_tokens`` to ``input_tokens + output_tokens``: ``I + O / 2``; under
    a ``window`` the mean of ``min(context, window)`` over that range; in a chunked layer the mean
    of the context's position within its chunk (a sawtooth between 0 and the chunk)."""
    I, O = float(input_tokens), float(output_tokens)
    if attention_chunk is not None and attention_chunk < I + O:
        C = float(attention_chunk)

        def area(x: float) -> float:   # integral from 0 to x of (t mod C)
            return math.floor(x / C) * C * C / 2.0 + (x % C) ** 2 / 2.0
        return (area(I + O) - area(I)) / O
    if window is None or window >= I + O:
        return I + O / 2.0
    if window <= I:
        return float(window)
    return ((window * window - I * I) / 2.0 + window * (I + O - window)) / O


def local_decode_context(model: ModelSpec, input_tokens: float, output_tokens: float) -> float:
    """:func:`mean_decode_context` in the model's local layers (its window or chunk)."""
    local = model.local_attention
    if local is None:
        return mean_decode_context(input_tokens, output_tokens)
    if local[0] == "chunk":
        return mean_decode_context(input_tokens, output_tokens, attention_chunk=local[1])
    return mean_decode_context(input_tokens, output_tokens, window=local[1])


@dataclass(frozen=True)
class TabulatedIterationCost:
    """The iteration cost as the request simulator needs it, cheap per call:
    ``fixed(tokens)`` tabulated for 1..max_tokens (linear interpolation), plus linear terms for
    the decode KV reads and the prefill attention pairs (both are linear in the model above), in
    the global layers and in the local ones (whose terms are 0 for a model without them)."""

    tokens_grid: np.ndarray
    seconds_grid: np.ndarray
    per_kv_token_s: float
    per_pair_s: float
    per_kv_local_token_s: float = 0.0
    per_pair_local_s: float = 0.0
    per_sequence_seconds: float = 0.0
    """A hybrid's recurrent state read and written, per sequence the iteration carries (the
    simulator adds it)."""

    def iteration_seconds(self, tokens: int, decode_kv_tokens: float, prefill_attention_pairs: float,
                          decode_kv_local: float | None = None,
                          prefill_pairs_local: float | None = None) -> float:
        """See :class:`colossim.inference.simulate.IterationCostModel`; the local terms default
        to the global ones (no context longer than the window or chunk)."""
        i = min(max(int(tokens), 1), len(self.seconds_grid)) - 1
        kv_w = decode_kv_tokens if decode_kv_local is None else decode_kv_local
        pairs_w = prefill_attention_pairs if prefill_pairs_local is None else prefill_pairs_local
        return float(self.seconds_grid[i] + self.per_kv_token_s * decode_kv_tokens
                     + self.per_pair_s * prefill_attention_pairs
                     + self.per_kv_local_token_s * kv_w + self.per_pair_local_s * pairs_w)


def tabulate(ctx: ServingContext, max_tokens: int) -> TabulatedIterationCost:
    """:class:`TabulatedIterationCost` of ``ctx`` for iterations of up to ``max_tokens`` tokens.
    Sampled rows are taken equal to the tokens when below the batch limit: a decode iteration samples
    every row (prefill rows add at most one each, a second-order term)."""
    grid = np.arange(1, max_tokens + 1, dtype=float)
    base = iteration_seconds(ctx, grid, 0.0, 0.0, grid, sequences=0.0)["total"]
    big = 1e6
    zero = float(iteration_seconds(ctx, 1.0, 0.0, 0.0, 1.0, sequences=0.0)["total"][()])

    def per(kv: float, pairs: float, kv_w: float, pairs_w: float, seqs: float = 0.0) -> float:
        t = iteration_seconds(ctx, 1.0, kv, pairs, 1.0, decode_kv_local=kv_w, prefill_pairs_local=pairs_w,
                              sequences=seqs)
        return (float(t["total"][()]) - zero) / big

    return TabulatedIterationCost(grid, base, per(big, 0.0, 0.0, 0.0), per(0.0, big, 0.0, 0.0),
                                  per(0.0, 0.0, big, 0.0), per(0.0, 0.0, 0.0, big),
                                  per(0.0, 0.0, 0.0, 0.0, big))


__all__ = ["BUCKETS", "DECODE_ATTENTION_COMPUTE_FRACTION", "ITERATION_OVERHEAD_S", "ServingContext",
           "TabulatedIterationCost", "causal_pairs", "chunked_pairs", "iteration_seconds", "local_decode_context",
           "local_pairs", "make_context", "mean_decode_context", "stage_seconds", "tabulate"]
