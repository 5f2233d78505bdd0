"""Time of one op on one GPU: GEMMs, FlashAttention, memory-bound ops, FP8 casts, optimizer step.

Vectorised: every size argument may be a numpy array (one element per plan); results broadcast.
The chip (:class:`colossim.catalog.Accelerator`) gives the datasheet peaks; the profile
(:class:`colossim.cost.efficiency.CalibrationProfile`) how close to them each op gets.  Nothing here
knows about training or inference.
"""

from __future__ import annotations

import numpy as np

from colossim.catalog.schema import Accelerator
from colossim.cost.efficiency import CalibrationProfile, GemmParams, default_profile
from colossim.errors import ColossimError

ArrayLike = np.ndarray | float | int

#: Output tiles cuBLAS/CUTLASS choose among on Hopper/Blackwell-class GPUs, (tile_m, tile_n,
#: relative throughput of the tile vs the largest).  Because: CUTLASS's default SM90 bf16 configs are
#: 128x256 / 256x128 (full rate), 128x128 and 64x128 for small problems; smaller tiles re-read
#: operands more often, so run below full rate (0.9 / 0.7 are assumptions, checked against the
#: small-GEMM rows of microbenchmarks.csv through the fitted launch time).
TILE_CANDIDATES = ((128, 256, 1.0), (256, 128, 1.0), (128, 128, 0.9), (64, 128, 0.7))
#: Split-K factors cuBLAS may use to fill the SMs when m x n gives too few tiles.
SPLIT_K = (1, 2, 4, 8)
#: Because: K is consumed in 64-element steps by SM80/SM90 tensor-core main loops; a partial last step
#: costs a full one.
TILE_K = 64
#: Bytes per element of GEMM operands by precision; outputs are written in bf16 (2 bytes).
OPERAND_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}
OUTPUT_BYTES = 2.0
#: Because: TMA and 128-bit vector loads need rows aligned to 16 bytes.
ALIGN_BYTES = 16

#: FlashAttention-2 (Dao 2023, section 3.1 / flash-attn benchmarks): backward FLOPs = 2.5 x forward
#: (five matmuls vs two).
ATTENTION_BACKWARD_FLOPS_RATIO = 2.5

#: Throughput of each generation of fused attention kernel relative to FlashAttention-2, the kernel
#: the profiles' attention rows measure.  Source: Dao 2023, FlashAttention-2 (arXiv:2307.08691),
#: abstract: "around 2x speedup compared to FlashAttention, reaching 50-73% of the theoretical
#: maximum FLOPs/s on A100", against FlashAttention's "25-40%" (sec. 1).  The Triton port of
#: FlashAttention-1 (flash_attn_triton.py, vendored by llm-foundry) is "slightly slower than the
#: CUDA version" by its own header, so it is taken at FlashAttention-1's rate.
ATTENTION_KERNEL_RELATIVE_THROUGHPUT = {"flash2": 1.0, "flash1": 0.5}
#: The architecture FlashAttention-3 needs (its kernels use Hopper's wgmma and TMA: Shah et al.
#: 2024, arXiv:2407.08608, sec. 3); its speed comes from the profile (``attention.flash3_relative``).
FLASH3_ARCHITECTURE = "hopper"

#: Bytes moved per element by an FP8 cast: read bf16 (2) + write fp8 (1); the amax for the scale is
#: computed in the same pass (Transformer Engine fuses cast + amax), so it adds no traffic.
FP8_CAST_BYTES_PER_ELEMENT = 3.0

#: Bytes moved per element by an FP8 cast that also writes the transposed copy: read bf16 (2) +
#: write fp8 and fp8^T (1 + 1).  Hopper's FP8 tensor cores take only the TN layout, so the
#: weight-gradient GEMM (X^T . dY) needs both of its operands transposed in fp8 and the data-gradient
#: GEMM needs dY in fp8: Transformer Engine casts a GEMM's input and, in backward, its output
#: gradient with one fused kernel that writes both layouts (TransformerEngine
#: ``common/transpose/cast_transpose.cu``, ``fp8_cast_transpose_fused``).
FP8_CAST_TRANSPOSE_BYTES_PER_ELEMENT = 4.0

#: Adam with bf16 params and fp32 master weights (Micikevicius et al. 2018 mixed precision; Megatron
#: distributed optimizer): read fp32 grad (4), master (4), m (4), v (4); write master (4), m (4),
#: v (4) and the bf16 copy of the param (2) = 30 bytes per parameter per step.
ADAM_BYTES_PER_PARAM = 30.0

#: The two passes over the fp32 gradients that every step makes besides Adam itself.  Source:
#: Megatron-LM's optimizer step (``megatron/core/optimizer``): ``clip_grad_norm_fp32`` reads every
#: gradient of the shard this rank updates for the global norm (4 B; GPT-3 and the Megatron
#: recipes clip at 1.0), and ``zero_grad_buffer`` clears the whole fp32 gradient buffer for the
#: next step's accumulation (4 B written per local parameter).  DeepSpeed and PyTorch FSDP clip and
#: zero their gradients the same way.
GRAD_NORM_BYTES_PER_PARAM = 4.0
GRAD_ZERO_BYTES_PER_PARAM = 4.0

#: fp16 training's extra pass over the fp32 gradients before the optimizer: dynamic loss scaling
#: divides every gradient by the loss scale and checks it for inf/NaN in one fused kernel that reads
#: and writes each fp32 gradient (4 + 4 B).  Source: Megatron-LM ``megatron/core/optimizer/
#: optimizer.py`` ``MixedPrecisionOptimizer._unscale_main_grads_and_check_for_nan`` and PyTorch's
#: ``GradScaler.unscale_`` both call ``torch._amp_foreach_non_finite_check_and_unscale_``; bf16
#: training has no loss scale (Megatron builds no grad scaler for ``--bf16``).
LOSS_SCALE_UNSCALE_BYTES_PER_PARAM = 8.0


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _peak(chip: Accelerator, precision: str) -> float:
    p = chip.peak_flops_per_s(precision)
    if p is None:
        have = [q for q in ("bf16", "fp8", "fp4") if chip.peak_flops_per_s(q)]
        raise ColossimError(f"chip '{chip.id}' has no dense {precision} peak in the catalog: allowed precision: "
                            f"{', '.join(have) or 'none'}", field="precision", value=precision, allowed=have)
    return p


def _hbm(chip: Accelerator) -> float:
    if chip.hbm_bytes_per_s is None:
        raise ColossimError(f"chip '{chip.id}' has no HBM bandwidth in the catalog", field="chip",
                            value=chip.id)
    return chip.hbm_bytes_per_s


def shape_utilisation(m: ArrayLike, n: ArrayLike, k: ArrayLike, sm_count: int,
                      batch: ArrayLike = 1, tile_overhead_k: float = 0.0) -> np.ndarray:
    """Fraction of the tensor-core peak the shape allows, best over the tile/split-K configs the
    library could pick: tile quantisation (m, n padded to the tile; k to 64) x wave quantisation
    (tiles x splits spread over ``sm_count`` SMs in whole waves) x the tile's relative rate.
    Each split pads its K share to whole 64-steps, so the time never falls as K grows, and pays
    ``tile_overhead_k`` more (pipeline fill and epilogue, :class:`GemmParams`), so a short K
    runs below the rate of a long one and splitting K is not free.
    ``batch``: GEMMs of one batched call (strided-batched bmm), whose tiles share the waves.
    Wave/tile quantisation as in NVIDIA's "Matrix Multiplication Background User's Guide"."""
    m, n, k, b = _arr(m), _arr(n), _arr(k), np.maximum(_arr(batch), 1.0)
    best = np.zeros(np.broadcast(m, n, k, b).shape)
    for tm, tn, rel in TILE_CANDIDATES:
        tiles_m, tiles_n = np.ceil(m / tm), np.ceil(n / tn)
        tile_q = (m * n) / (tiles_m * tm * tiles_n * tn)
        for s in SPLIT_K:
            units = b * tiles_m * tiles_n * s
            wave_q = units / (np.ceil(units / sm_count) * sm_count)
            # each split runs whole K steps: K padded to s x ceil(K / (s x TILE_K)) x TILE_K,
            # plus the tile's fixed fill and epilogue
            k_q = k / (s * (np.ceil(k / (s * TILE_K)) * TILE_K + tile_overhead_k))
            best = np.maximum(best, rel * tile_q * wave_q * k_q)
    return best


def gemm_roofline(m: ArrayLike, n: ArrayLike, k: ArrayLike, precision: str, chip: Accelerator,
                  profile: CalibrationProfile, weight_bytes: float | None = None, batch: ArrayLike = 1,
                  k_contiguous: bool = True):
    """The two roofline terms of one GEMM and its fixed time: (launch_seconds, compute_seconds,
    memory_seconds); its time is launch + max(compute, memory).  ``weight_bytes``: see
    :func:`gemm_seconds`; ``batch``: the GEMM is one of a batched call (wave quantisation over the
    whole batch's tiles).  ``k_contiguous``: K is the operands' contiguous dimension, whose
    misalignment costs ``misaligned_k_factor`` (the measured case: P.V over an odd key count);
    false for a weight gradient, dY^T X over the tokens, whose operands are contiguous in the
    hidden sizes: an odd token count only leaves a partial last K tile."""
    gp: GemmParams = profile.gemm_params(precision)
    m, n, k = _arr(m), _arr(n), _arr(k)
    elt = OPERAND_BYTES.get(precision, 2.0)
    w_elt = elt if weight_bytes is None else weight_bytes
    aligned = (np.mod(k * elt, ALIGN_BYTES) == 0) | (not k_contiguous)
    eff = gp.max_efficiency * shape_utilisation(m, n, k, gp.sm_count, batch,
                                                gp.tile_overhead_k) * np.where(
        aligned, 1.0, gp.misaligned_k_factor)
    t_compute = 2.0 * m * n * k / (_peak(chip, precision) * eff)
    n_bytes = m * k * elt + k * n * w_elt + m * n * OUTPUT_BYTES
    t_memory = n_bytes / (_hbm(chip) * profile.memory_efficiency)
    return gp.launch_seconds, t_compute, t_memory


def _gemm_parts(m, n, k, precision: str, chip: Accelerator, profile: CalibrationProfile,
                weight_bytes: float | None = None, k_contiguous: bool = True):
    launch, t_compute, t_memory = gemm_roofline(m, n, k, precision, chip, profile, weight_bytes,
                                                k_contiguous=k_contiguous)
    flops = 2.0 * _arr(m) * _arr(n) * _arr(k)
    return flops, launch + np.maximum(t_compute, t_memory)


def batched_gemm_seconds(m: ArrayLike, n: ArrayLike, k: ArrayLike, batch: ArrayLike, precision: str,
                         chip: Accelerator, profile: CalibrationProfile, k_contiguous: bool = True) -> np.ndarray:
    """Time of one strided-batched call of ``batch`` GEMMs (m x k) @ (k x n) (``torch.bmm`` /
    ``cublasGemmStridedBatchedEx``, as in unfused attention's Q.K^T and P.V over batch x heads):
    one launch, and the batch's tiles fill the waves together, so only the tile and K quantisation
    of one GEMM remain; each GEMM's roofline max as in :func:`gemm_seconds`."""
    launch, t_compute, t_memory = gemm_roofline(m, n, k, precision, chip, profile, batch=batch,
                                                k_contiguous=k_contiguous)
    return launch + _arr(batch) * np.maximum(t_compute, t_memory)


def gemm_seconds(m: ArrayLike, n: ArrayLike, k: ArrayLike, precision: str, chip: Accelerator,
                 profile: CalibrationProfile, count: ArrayLike = 1,
                 weight_bytes: float | None = None, k_contiguous: bool = True) -> np.ndarray:
    """Time of ``count`` GEMMs (m x k) @ (k x n) at ``precision`` (bf16 | fp16 | fp8 | fp4):
    launch + max(2mnk / (peak x efficiency(shape)), operand+output bytes / achievable HBM bandwidth).
    The roofline max is Williams et al. 2009 ("Roofline"), per GEMM.  ``weight_bytes`` (bytes per
    element of the k x n operand) prices weight-only quantisation (e.g. fp8 or fp4 weights read by a
    bf16 GEMM in decode); default: the operand width of ``precision``.  ``k_contiguous``: see
    :func:`gemm_roofline` (false for weight gradients)."""
    _, t = _gemm_parts(m, n, k, precision, chip, profile, weight_bytes, k_contiguous)
    return t * _arr(count)


def gemm_efficiency(m: ArrayLike, n: ArrayLike, k: ArrayLike, precision: str, chip: Accelerator,
                    profile: CalibrationProfile) -> np.ndarray:
    """Achieved fraction of the dense peak for one GEMM of this shape, in (0, 1]."""
    flops, t = _gemm_parts(m, n, k, precision, chip, profile)
    return np.clip(flops / (t * _peak(chip, precision)), np.finfo(float).tiny, 1.0)


def causal_keys_per_query(seq_kv: ArrayLike, window: ArrayLike | None = None) -> np.ndarray:
    """Keys a query attends on average under a causal mask over ``seq_kv`` tokens: ``seq_kv / 2``
    (the masked upper triangle is skipped); with a sliding ``window`` (each query sees itself and
    the ``window - 1`` tokens before it: Mistral 7B, Gemma 2) the band's mean, w - w^2 / (2 s) for
    w = min(window, s) -- the first w queries see a growing prefix, the rest w keys each.  The two
    agree at w = s.  A kernel that skips the tiles outside the band (FlashAttention-2 from v2.3's
    ``window_size``, FlashAttention-3) does this work."""
    s = _arr(seq_kv)
    if window is None:
        return s / 2.0
    w = np.minimum(_arr(window), s)
    return w - w * w / (2.0 * np.maximum(s, np.finfo(float).tiny))


def _keys_per_query(seq_kv: ArrayLike, causal: ArrayLike, window: ArrayLike | None) -> np.ndarray:
    return np.where(np.asarray(causal, dtype=bool), causal_keys_per_query(seq_kv, window), _arr(seq_kv))


def attention_flops(batch: ArrayLike, heads: ArrayLike, seq_q: ArrayLike, seq_kv: ArrayLike,
                    head_dim: ArrayLike, head_dim_v: ArrayLike, causal: ArrayLike,
                    window: ArrayLike | None = None) -> np.ndarray:
    """Forward FLOPs of attention: 2 b h s_q k (d + d_v) (QK^T and PV) for k keys per query: s_kv,
    or when causal :func:`causal_keys_per_query` (s_kv / 2; the band's mean under a sliding
    ``window``).  FlashAttention-2 (Dao 2023) counts 4 b h s^2 d for d = d_v, halved for causal."""
    keys = _keys_per_query(seq_kv, causal, window)
    return 2.0 * _arr(batch) * _arr(heads) * _arr(seq_q) * keys * (_arr(head_dim) + _arr(head_dim_v))


def attention_efficiency(seq_kv: ArrayLike, head_dim: ArrayLike, causal: ArrayLike,
                         profile: CalibrationProfile, window: ArrayLike | None = None) -> np.ndarray:
    """FlashAttention efficiency (fraction of the bf16 peak): rises with the keys each query sees
    (fewer rows of partial tiles / softmax rescaling per FLOP; a sliding ``window`` caps them) and
    with head dim (more FLOPs per byte of K/V loaded).  Parameters fitted to the FlashAttention
    fwd+bwd rows (FlashAttention-2 kernel benchmarks; on Blackwell, FlashAttention-4 measured inside
    a training step)."""
    ap = profile.attention
    s = _keys_per_query(seq_kv, causal, window)
    d = _arr(head_dim)
    return ap.max_efficiency * s / (s + ap.half_seq) * d / (d + ap.half_head_dim)


def attention_seconds(batch: ArrayLike, heads: ArrayLike, seq_q: ArrayLike, seq_kv: ArrayLike,
                      head_dim: ArrayLike, head_dim_v: ArrayLike, causal: ArrayLike, precision: str,
                      chip: Accelerator, profile: CalibrationProfile,
                      backward: bool = False, kernel: str = "flash2",
                      kv_chunks: ArrayLike = 1, window: ArrayLike | None = None) -> np.ndarray:
    """Time of a FlashAttention forward (or backward: 2.5x the FLOPs, FlashAttention-2) pass.
    Attention runs at the bf16 tensor rate whatever ``precision`` says: Transformer Engine /
    Megatron FP8 recipes keep attention in bf16 (documented treatment, not a measurement).
    ``kernel`` ('flash2' or 'flash1') scales the time by ATTENTION_KERNEL_RELATIVE_THROUGHPUT;
    'flash3' by the profile's ``attention.flash3_relative`` (Hopper only).
    ``kv_chunks``: the keys arrive in that many chunks, one kernel call each (ring attention over
    ``kv_chunks`` context-parallel ranks): the FLOPs are those of all ``seq_kv`` keys, the
    efficiency that of a kernel over one chunk, ``seq_kv / kv_chunks`` keys, causal: Transformer
    Engine's load-balanced ring runs the diagonal step so, and on the last rank, which runs every
    step in full, each other step sees half a chunk of keys without the mask, the same keys per
    query (TE 1.9 ``AttnFuncWithCPAndKVP2P``).  ``window``: a sliding window (causal only), the
    band's FLOPs at the efficiency of the keys a query sees in one call, at most the window."""
    del precision  # see docstring
    flops = attention_flops(batch, heads, seq_q, seq_kv, head_dim, head_dim_v, causal, window)
    if backward:
        flops = flops * ATTENTION_BACKWARD_FLOPS_RATIO
    per_call = _arr(seq_kv) / np.maximum(_arr(kv_chunks), 1.0)
    eff = attention_efficiency(per_call, head_dim, causal, profile, window) * attention_kernel_relative(
        kernel, chip, profile)
    return flops / (_peak(chip, "bf16") * eff)


def attention_kernel_relative(kernel: str, chip: Accelerator, profile: CalibrationProfile) -> float:
    """Throughput of attention kernel ``kernel`` relative to the one ``profile`` models; a
    one-line error for an unknown kernel or FlashAttention-3 on a chip that cannot run it."""
    if kernel == "flash3":
        factor = profile.attention.flash3_relative
        if factor is None and chip.architecture == FLASH3_ARCHITECTURE:
            # a measured profile (colossim calibrate) without it: the published rows' factor
            factor = default_profile(chip.id).attention.flash3_relative
        if factor is None:
            raise ColossimError(
                f"attention_kernel 'flash3' (FlashAttention-3) runs on Hopper GPUs only; {chip.id} is "
                f"{chip.architecture or 'of another architecture'}", field="attention_kernel",
                value=kernel, allowed=list(ATTENTION_KERNEL_RELATIVE_THROUGHPUT))
        return factor
    if kernel not in ATTENTION_KERNEL_RELATIVE_THROUGHPUT:
        raise ColossimError(f"unknown attention kernel '{kernel}'", field="attention_kernel", value=kernel,
                            allowed=[*ATTENTION_KERNEL_RELATIVE_THROUGHPUT, "flash3"])
    return ATTENTION_KERNEL_RELATIVE_THROUGHPUT[kernel]


def memory_bound_seconds(n_bytes: ArrayLike, chip: Accelerator,
                         profile: CalibrationProfile) -> np.ndarray:
    """Time of a streaming op (norm, softmax, elementwise, optimizer) moving ``n_bytes`` (reads +
    writes): bytes / (HBM bandwidth x achievable fraction from the copy benchmarks)."""
    return _arr(n_bytes) / (_hbm(chip) * profile.memory_efficiency)


def fp8_cast_overhead_seconds(n_elements: ArrayLike, chip: Accelerator,
                              profile: CalibrationProfile) -> np.ndarray:
    """Time to quantise ``n_elements`` bf16 values to fp8 with per-tensor scaling (delayed or
    current): one memory-bound pass of 3 bytes per element (FP8_CAST_BYTES_PER_ELEMENT).  A caller
    prices a linear layer's forward with the activations (m x k) and weights (n x k), and its
    backward with the output gradient (m x n); cached weight casts need not be counted again."""
    return memory_bound_seconds(_arr(n_elements) * FP8_CAST_BYTES_PER_ELEMENT, chip, profile)


def fp8_cast_transpose_seconds(n_elements: ArrayLike, chip: Accelerator,
                               profile: CalibrationProfile) -> np.ndarray:
    """Time to cast ``n_elements`` bf16 values to fp8 and write their transpose too (one fused
    memory-bound pass of FP8_CAST_TRANSPOSE_BYTES_PER_ELEMENT bytes per element): what an FP8
    linear layer costs per input of its forward and per output gradient of its backward."""
    return memory_bound_seconds(_arr(n_elements) * FP8_CAST_TRANSPOSE_BYTES_PER_ELEMENT, chip, profile)


def optimizer_step_seconds(n_params_local: ArrayLike, chip: Accelerator, profile: CalibrationProfile,
                           bytes_per_param_moved: float = ADAM_BYTES_PER_PARAM,
                           n_grad_buffer: ArrayLike | None = None, loss_scaled: bool = False) -> np.ndarray:
    """Time of an optimizer step on this GPU, memory-bound: a fused Adam over the ``n_params_local``
    parameters it owns (``bytes_per_param_moved``, default 30 B: see ADAM_BYTES_PER_PARAM), the
    gradient-norm read of those parameters for clipping, and the zeroing of its fp32 gradient
    buffer of ``n_grad_buffer`` elements (the local parameters unless the gradients are sharded).
    Without ``n_grad_buffer``: the Adam kernel alone.  ``loss_scaled`` (fp16 training) adds the
    unscale-and-check pass over the owned gradients (LOSS_SCALE_UNSCALE_BYTES_PER_PARAM)."""
    n = _arr(n_params_local)
    moved = n * bytes_per_param_moved
    if loss_scaled:
        moved = moved + n * LOSS_SCALE_UNSCALE_BYTES_PER_PARAM
    if n_grad_buffer is not None:
        moved = moved + n * GRAD_NORM_BYTES_PER_PARAM + _arr(n_grad_buffer) * GRAD_ZERO_BYTES_PER_PARAM
    return memory_bound_seconds(moved, chip, profile)
