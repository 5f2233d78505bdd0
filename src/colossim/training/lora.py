"""Low-rank adaptation (LoRA; Hu et al. 2021, arXiv:2106.09685): fine-tuning with the base model's
weights frozen and a trainable pair of low-rank matrices beside chosen linear layers.

A targeted linear layer ``y = x W`` (W of k x n) becomes ``y = x W + (alpha / r) (x A) B`` with A of
k x r and B of r x n trained, W, the embedding and the output head frozen.  What changes in the step:

- every frozen GEMM still runs forward and its input-gradient GEMM in backward (the gradient must
  reach the layers below), but no weight-gradient GEMM (:func:`with_adapters` marks them
  ``frozen``); each adapter adds two small GEMMs forward and their data and weight gradients;
- gradients, their data-parallel reduction, the optimizer state and the optimizer step cover the
  adapters only (:func:`adapter_params_local`); the frozen weights are still held, sharded under
  ZeRO-3 / FSDP, and gathered for each micro-batch like any weight;
- with tensor parallelism each adapter is split over the base layer's group and adds its own
  collectives (:func:`adapter_tp_seconds`).

The layout follows NeMo 2.5.0 (PyPI nemo_toolkit 2.5.0) ``nemo/collections/llm/peft/lora.py`` and
``utils.py`` ``ParallelLinearAdapter``: beside a column-parallel base (QKV, MLP up) ``linear_in``
is a ColumnParallelLinear (k -> r) with ``gather_output=True`` and ``linear_out`` a
ColumnParallelLinear (r -> n / tp); beside a row-parallel base (output projection, MLP down)
``linear_in`` is a RowParallelLinear (k / tp -> r, its output all-reduced) and ``linear_out`` a
ColumnParallelLinear (r -> n) with ``gather_output=True``.  Both matrices' FLOPs therefore split
over the group.  Adapter GEMMs are plain Megatron linears: bf16 even in an FP8 run.

QLoRA (Dettmers et al. 2023, arXiv:2305.14314; ``Lora.base == "nf4"``) stores the frozen weights
of every transformer-layer linear in 4-bit NormalFloat with double-quantized block scales
(:data:`NF4_BYTES_PER_WEIGHT`); the embedding, the output head, the norms and the MoE router stay
bf16.  The GEMMs still run in bf16: every forward and every input-gradient GEMM first dequantizes
its weight to a bf16 copy it then frees (:data:`NF4_DEQUANTIZE_BYTES_PER_WEIGHT`, an op per GEMM
and pass, :func:`with_adapters`), so a recomputed forward dequantizes again.  Source: bitsandbytes
0.50.2 (PyPI) ``autograd/_functions.py`` ``MatMul4Bit`` and ``backends/default/ops.py``
``_gemm_4bit_default_impl``, the path CUDA takes above 512 rows per GEMM; NeMo 1's
``adapters/qlora.py`` ``_LinearNF4`` does the same.  Neither splits a 4-bit weight over
tensor-parallel GPUs (``NF4LinearWrapper``: "Tensor Parallel is not supported"), so a QLoRA plan
has tp 1 (:mod:`colossim.specs.training`).  Under ZeRO-3 / FSDP the 4-bit storage is what is
sharded and gathered (bitsandbytes' ``quant_storage``, FSDP-QLoRA).

Activations are kept as in full training: a targeted module's input is needed for its adapter's
weight gradient anyway, and the input of a frozen module without an adapter is counted too (an
upper bound where the targets are few).  Left out: the adapter's saved rank-r intermediate (r / n
of a targeted GEMM's output), dropout on the adapter (NeMo's default is 0), and packed
fine-tuning sequences, whose attention runs within each document: the attention core is priced
over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from colossim.cost import comm as C
from colossim.specs.model import ModelSpec
from colossim.training import ops as O

ArrayLike = np.ndarray | float | int

#: The linear modules a LoRA may target, by Megatron-Core's module names (NeMo's ``target_modules``),
#: and the layer GEMM ops (:mod:`colossim.training.ops`) each covers: ``linear_qkv`` the attention's
#: input projections (fused QKV, or MLA's query and key-value projections), ``linear_proj`` the
#: attention output projection, ``linear_fc1`` / ``linear_fc2`` the MLP's up (with the gate when
#: gated) and down projections, the shared and routed experts' included.
LORA_TARGET_GEMMS: dict[str, tuple[str, ...]] = {
    "linear_qkv": ("qkv", "q_proj", "q_down", "q_up", "kv_down", "kv_up"),
    "linear_proj": ("out_proj",),
    "linear_fc1": ("mlp_up", "shared_up", "expert_up"),
    "linear_fc2": ("mlp_down", "shared_down", "expert_down"),
}

#: The targets a LoRA takes when the spec names none.  Source: NeMo 2.5.0
#: ``nemo/collections/llm/peft/lora.py`` ``LoRA.target_modules`` default
#: ``['linear_qkv', 'linear_proj', 'linear_fc1', 'linear_fc2']``.  (NeMo's performance recipes
#: narrow it to ``['linear_qkv']``: ``recipes/llama3_8b.py`` ``finetune_performance_optimizations``.)
DEFAULT_LORA_TARGETS: tuple[str, ...] = tuple(LORA_TARGET_GEMMS)

#: Base GEMMs whose input is split over the tensor-parallel group (Megatron's row-parallel
#: linears); the others split their output (column-parallel).
ROW_PARALLEL_GEMMS = ("out_proj", "mlp_down", "shared_down", "expert_down")

#: HBM bytes per element of a targeted GEMM's local output that the adapter's forward moves:
#: ``x * (alpha / dim)`` (read 2, write 2) and the sum with the base output (read 2 + 2, write 2).
#: Source: NeMo 2.5.0 ``ParallelLinearAdapter.forward`` and ``LoRALinear.forward``.
ADAPTER_FORWARD_BYTES_PER_OUTPUT = 10.0
#: ... and in backward: the scale's gradient (read 2, write 2) per output element, and per
#: element of the adapter's input the sum of its input gradient into the base's (read 2 + 2,
#: write 2).  The forward sum passes its gradient through unchanged.
ADAPTER_BACKWARD_BYTES_PER_OUTPUT = 4.0
ADAPTER_BACKWARD_BYTES_PER_INPUT = 6.0


#: NF4 storage (QLoRA's "double quantization"): a 4-bit code per weight, an 8-bit absmax scale per
#: block of 64 weights, an fp32 scale (and offset) per block of 256 scales.  Source: Dettmers et al.
#: 2023 sec 3 (block 64, 8-bit scales in blocks of 256: 0.127 bits of scales per weight);
#: bitsandbytes 0.50.2 ``nn/modules.py`` ``Params4bit`` (``blocksize`` 64, ``compress_statistics``
#: True) and ``functional.py`` ``quantize_4bit`` (``quantize_blockwise(absmax - offset,
#: blocksize=256)``); NeMo 1 ``NF4Weight(block_size=64, scale_block_size=256)``, 8 scale bits.
NF4_CODE_BITS = 4
NF4_BLOCK_WEIGHTS = 64
NF4_SCALE_BITS = 8
NF4_SCALE_BLOCK = 256
NF4_SCALE_SCALE_BITS = 32
NF4_BYTES_PER_WEIGHT = (NF4_CODE_BITS + NF4_SCALE_BITS / NF4_BLOCK_WEIGHTS
                        + NF4_SCALE_SCALE_BITS / (NF4_BLOCK_WEIGHTS * NF4_SCALE_BLOCK)) / 8
#: Bytes of the bf16 weight a GEMM runs on once dequantized.
NF4_COMPUTE_BYTES_PER_WEIGHT = 2.0
#: HBM bytes per weight of one dequantization (bitsandbytes 0.50.2 ``_gemm_4bit_default_impl`` and
#: ``dequantize_4bit``): the scales' ``dequantize_blockwise`` reads the 8-bit scale and writes it
#: in fp32, the offset's add reads and writes that fp32 scale, ``dequantize_4bit`` reads the
#: 4-bit codes and the fp32 scale and writes the bf16 weight.  Per weight, each scale being
#: shared by a block of 64: (1 + 4 + 4 + 4 + 4) / 64 for the scales, 0.5 + 2 for the weight.
NF4_DEQUANTIZE_BYTES_PER_WEIGHT = (NF4_CODE_BITS / 8 + NF4_COMPUTE_BYTES_PER_WEIGHT
                                   + (NF4_SCALE_BITS / 8 + 4 * 4) / NF4_BLOCK_WEIGHTS)


@dataclass(frozen=True)
class Lora:
    """A LoRA fine-tuning: adapters of ``rank`` beside the ``targets`` (names of
    :data:`LORA_TARGET_GEMMS`), every base weight frozen and stored in ``base``: ``bf16`` (LoRA) or
    ``nf4`` (QLoRA)."""

    rank: int
    targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    base: str = "bf16"

    @property
    def quantized(self) -> bool:
        """Whether the base weights are stored in NF4 (QLoRA)."""
        return self.base == "nf4"

    @property
    def gemm_names(self) -> frozenset[str]:
        """The layer GEMM ops the targets cover."""
        return frozenset(n for t in self.targets for n in LORA_TARGET_GEMMS[t])


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def base_gemm_shapes(model: ModelSpec, kind: str) -> dict[str, tuple[float, float]]:
    """(n, k) of each GEMM op of one ``kind`` layer ('dense' or 'moe') unsplit (tp = etp = 1; a
    routed expert's own matrix)."""
    gemms = (O.attention_ops(model, 1, model.seq_len, 1, 1)
             + O.mlp_ops(model, 1, model.seq_len, 1, 1, 1, False, kind, 1))
    return {op.name: (float(op.n), float(op.k)) for op in gemms if isinstance(op, O.Gemm)}


def _targeted(model: ModelSpec, lora: Lora):
    """(layers, op name, n, k) of every matrix the LoRA adapts, by layer kind, unsplit."""
    for kind, layers in (("dense", model.dense_layers), ("moe", model.moe_layers)):
        if layers:
            for name, (n, k) in base_gemm_shapes(model, kind).items():
                if name in lora.gemm_names:
                    yield layers, name, n, k


def _base_split(op: O.Gemm, full: dict[str, tuple[float, float]]):
    """(row-parallel?, split group, unsplit n, unsplit k, rows) of a base GEMM op."""
    n_full, k_full = full[op.name]
    row = op.name in ROW_PARALLEL_GEMMS
    group = k_full / _f(op.k) if row else n_full / _f(op.n)
    return row, group, n_full, k_full, _f(op.m) * _f(op.count)


#: The layer GEMM ops whose weights QLoRA stores in NF4: every linear module a LoRA can target
#: (bitsandbytes replaces every ``nn.Linear`` but the output head), whether adapted or not; the MoE
#: router stays bf16 (a few thousand weights per layer).
QUANTIZED_GEMMS = frozenset(n for names in LORA_TARGET_GEMMS.values() for n in names)


def freeze(ops: list[O.Op]) -> list[O.Op]:
    """``ops`` with every GEMM marked frozen (no weight gradient)."""
    return [replace(op, frozen=True) if isinstance(op, O.Gemm) else op for op in ops]


def is_adapter_name(name: str) -> bool:
    """Whether an op of this name is part of a LoRA adapter (:func:`with_adapters`)."""
    return name.startswith("lora_")


def is_adapter(op: O.Op) -> bool:
    return is_adapter_name(op.name)


def with_adapters(ops: list[O.Op], model: ModelSpec, kind: str, lora: Lora,
                  sequence_parallel: ArrayLike = False) -> list[O.Op]:
    """One layer's ops (per GPU, one micro-batch, :func:`colossim.training.ops.layer_ops`) under
    ``lora``: every base GEMM frozen, and after each targeted one its adapter, split over the base
    GEMM's group (tp, or etp for routed experts) as NeMo splits it (module docstring):

    - ``lora_a:<name>``, x A: r / group of its r outputs beside a column-parallel base, the k /
      group local inputs beside a row-parallel one;
    - ``lora_b:<name>``, (x A) B: n / group of its n outputs either way (a row-parallel base's are
      all-gathered after, :func:`adapter_tp_seconds`);
    - ``lora_add:<name>``, the scale and the sum into the base output
      (:data:`ADAPTER_FORWARD_BYTES_PER_OUTPUT`) over the base's local output: a column-parallel
      base's n / group columns, a row-parallel base's whole rows, or with ``sequence_parallel``
      its 1 / group share of the tokens, which the adapter's gathered output is scattered back to.

    A routed expert's adapter is its own, run on the rows that expert receives.  Under QLoRA each
    NF4 base GEMM is preceded by ``nf4_dequantize:<name>``, its weight dequantized to bf16 for the
    forward and again for the input gradient (:data:`NF4_DEQUANTIZE_BYTES_PER_WEIGHT`)."""
    full = base_gemm_shapes(model, kind)
    names, r = lora.gemm_names, float(lora.rank)
    sp = np.asarray(sequence_parallel, dtype=bool)
    out: list[O.Op] = []
    for op in ops:
        if not isinstance(op, O.Gemm):
            out.append(op)
            continue
        if lora.quantized and op.name in QUANTIZED_GEMMS:
            moved = NF4_DEQUANTIZE_BYTES_PER_WEIGHT * _f(op.n) * _f(op.k) * _f(op.count)
            out.append(O.MemoryBound(f"nf4_dequantize:{op.name}", moved, backward_bytes=moved))
        out.append(replace(op, frozen=True))
        if op.name not in names:
            continue
        row, group, n_full, _, rows = _base_split(op, full)
        outputs = n_full / (np.where(sp, group, 1.0) if row else group)
        out += [O.Gemm(f"lora_a:{op.name}", op.m, r if row else r / group, op.k, op.count),
                O.Gemm(f"lora_b:{op.name}", op.m, n_full / group, r, op.count),
                O.MemoryBound(f"lora_add:{op.name}", ADAPTER_FORWARD_BYTES_PER_OUTPUT * rows * outputs,
                              backward_bytes=rows * (ADAPTER_BACKWARD_BYTES_PER_OUTPUT * outputs
                                                     + ADAPTER_BACKWARD_BYTES_PER_INPUT * _f(op.k)))]
    return out


def _gemm_weights(ops: list[O.Op], keep) -> tuple[np.ndarray, np.ndarray]:
    """(dense, routed-expert) weights of the GEMMs in ``ops`` that ``keep`` (a predicate) selects:
    the k x n weight of each, times its count; a routed expert's adapter counts as routed."""
    dense = expert = np.asarray(0.0)
    for op in ops:
        if isinstance(op, O.Gemm) and keep(op):
            w = _f(op.n) * _f(op.k) * _f(op.count)
            if op.name.split(":", 1)[-1] in O.GROUPED_EXPERT_GEMMS:
                expert = expert + w
            else:
                dense = dense + w
    return dense, expert


def adapter_params_local(ops: list[O.Op]) -> tuple[np.ndarray, np.ndarray]:
    """(dense, routed-expert) adapter weights on one GPU in one layer's ops (:func:`with_adapters`)."""
    return _gemm_weights(ops, is_adapter)


def quantized_params_local(ops: list[O.Op], lora: Lora) -> tuple[np.ndarray, np.ndarray]:
    """(dense, routed-expert) NF4 base weights on one GPU in one layer's ops (:func:`with_adapters`):
    those of the base GEMMs QLoRA quantizes; zero unless ``lora`` is a QLoRA."""
    if not lora.quantized:
        return np.asarray(0.0), np.asarray(0.0)
    return _gemm_weights(ops, lambda op: not is_adapter(op) and op.name in QUANTIZED_GEMMS)


def _stage_params(count, model: ModelSpec, lora: Lora, layers: list[tuple[str, ArrayLike]], tp: ArrayLike,
                  ep: ArrayLike, etp: ArrayLike | None) -> dict[str, np.ndarray]:
    """(``dense``, ``expert``) of ``count`` (a function of one layer's ops under ``lora``) summed
    over ``layers`` ((kind, count) pairs; counts may be arrays or fractions), each layer split over
    tp (routed experts over etp x ep) as :func:`with_adapters` splits it.  Weight shapes do not
    depend on the tokens."""
    out = {"dense": np.asarray(0.0), "expert": np.asarray(0.0)}
    for kind, n in layers:
        ops = O.layer_ops(model, 1, model.seq_len, tp, 1, ep, False, kind, etp=etp)
        dense, expert = count(with_adapters(ops, model, kind, lora))
        out = {"dense": out["dense"] + n * dense, "expert": out["expert"] + n * expert}
    return out


def adapter_params_per_gpu(model: ModelSpec, lora: Lora, layers: list[tuple[str, ArrayLike]], tp: ArrayLike,
                           ep: ArrayLike, etp: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """(``dense``, ``expert``) adapter weights one GPU holds for ``layers`` (:func:`_stage_params`)."""
    return _stage_params(adapter_params_local, model, lora, layers, tp, ep, etp)


def quantized_params_per_gpu(model: ModelSpec, lora: Lora, layers: list[tuple[str, ArrayLike]], tp: ArrayLike,
                             ep: ArrayLike, etp: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """(``dense``, ``expert``) NF4 base weights one GPU holds for ``layers`` under a QLoRA, zero
    otherwise (:func:`_stage_params`, :func:`quantized_params_local`)."""
    return _stage_params(lambda ops: quantized_params_local(ops, lora), model, lora, layers, tp, ep, etp)


def adapter_params(model: ModelSpec, lora: Lora) -> float:
    """Trainable parameters of the whole model under ``lora``: r (k + n) per targeted matrix, every
    routed expert's own."""
    return sum(layers * (model.experts if name in O.GROUPED_EXPERT_GEMMS else 1) * lora.rank * (n + k)
               for layers, name, n, k in _targeted(model, lora))


def adapter_flops_per_token(model: ModelSpec, lora: Lora) -> float:
    """Forward FLOPs per token of every adapter: 2 r (k + n) per targeted matrix a token passes
    through (top_k routed experts of an MoE layer)."""
    return sum(layers * (model.top_k if name in O.GROUPED_EXPERT_GEMMS else 1) * 2.0 * lora.rank * (n + k)
               for layers, name, n, k in _targeted(model, lora))


def adapter_tp_seconds(ops: list[O.Op], lora: Lora, model: ModelSpec, kind: str, sequence_parallel: ArrayLike,
                       network, profile, activation_bytes: float) -> tuple[np.ndarray, np.ndarray]:
    """(forward, backward) seconds of the collectives one layer's adapters add, per GPU and
    micro-batch, over each base GEMM's split group (tp, or etp for routed experts), as NeMo 2.5.0's
    ``ParallelLinearAdapter`` issues them (synchronous, none overlapped):

    - beside a column-parallel base: forward, the all-gather of ``linear_in``'s (m x r) output
      (``gather_output=True``); backward, the all-reduce of ``linear_out``'s input gradient
      (m x r) and, without sequence parallelism, of ``linear_in``'s (m x k: a ColumnParallelLinear
      reduces its input gradient unless ``disable_grad_reduce``, which NeMo sets under sequence
      parallelism, where Transformer Engine's gathered norm output carries it);
    - beside a row-parallel base: forward, the all-reduce of ``linear_in``'s (m x r) output and
      the all-gather of ``linear_out``'s (m x n) output (``gather_output=True``); backward, the
      all-reduce of ``linear_out``'s input gradient (m x r)."""
    full = base_gemm_shapes(model, kind)
    sp = np.asarray(sequence_parallel, dtype=bool)
    r, B = float(lora.rank), activation_bytes
    fwd = bwd = np.asarray(0.0)
    for op in ops:
        if not (isinstance(op, O.Gemm) and not is_adapter(op) and op.name in lora.gemm_names):
            continue
        row, group, n_full, k_full, rows = _base_split(op, full)

        def ar(elements):
            return C.all_reduce_seconds(elements * B, group, network, profile)

        def ag(elements):
            return C.all_gather_seconds(elements * B, group, network, profile)

        if row:
            f, b = ar(rows * r) + ag(rows * n_full), ar(rows * r)
        else:
            f = ag(rows * r)
            b = ar(rows * r) + np.where(sp, 0.0, ar(rows * k_full))
        fwd = fwd + np.where(group > 1, f, 0.0)
        bwd = bwd + np.where(group > 1, b, 0.0)
    return fwd, bwd


__all__ = ["ADAPTER_BACKWARD_BYTES_PER_INPUT", "ADAPTER_BACKWARD_BYTES_PER_OUTPUT",
           "ADAPTER_FORWARD_BYTES_PER_OUTPUT", "DEFAULT_LORA_TARGETS", "LORA_TARGET_GEMMS",
           "Lora", "NF4_BYTES_PER_WEIGHT", "NF4_COMPUTE_BYTES_PER_WEIGHT", "NF4_DEQUANTIZE_BYTES_PER_WEIGHT",
           "QUANTIZED_GEMMS", "ROW_PARALLEL_GEMMS", "adapter_flops_per_token", "adapter_params",
           "adapter_params_local", "adapter_params_per_gpu", "adapter_tp_seconds", "base_gemm_shapes", "freeze",
           "is_adapter", "is_adapter_name", "quantized_params_local", "quantized_params_per_gpu", "with_adapters"]
