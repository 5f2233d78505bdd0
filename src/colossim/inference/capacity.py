"""Capacity: the largest model (parameter count) whose weights -- and, when asked, weights plus a KV
cache of a stated size -- fit in the HBM of a set of GPUs.

The question is about bytes, not speed: ``count x HBM x memory_fraction`` bytes hold the weights at
their storage format and ``kv_tokens`` tokens of KV cache.  The model is one of two families, each a
catalog architecture scaled in width and depth together so the parameter count is continuous:

- ``dense``: Llama 3.1 405B (:data:`REFERENCE_MODELS`), GQA with 8 KV heads of 128;
- ``moe``: GPT-MoE-1.8T, NVIDIA's benchmark model: 16 experts, top-2, MQA (one KV head of 128).

Scaling by ``s`` (width ``hidden x s``, depth ``layers x s``; Kaplan et al. 2020 section 3.1:
at a fixed parameter count the loss depends only weakly on the depth/width ratio, so holding it
fixed is a neutral choice) with the head width, the KV heads, the expert count and the vocabulary
fixed (Llama 3 keeps 8 KV heads of 128 from 8B to 405B: Llama 3 paper table 3):

- per layer, ``q``/``o`` projections and MLP / expert matrices grow as ``s^2``; ``k``/``v``
  projections (fixed KV width), the router and the norms as ``s``;
- the embedding and the output head grow as ``s`` and stay at 16 bits
  (:data:`colossim.inference.memory.EMBEDDING_FORMAT`), as do the norms;
- the KV cache per token, ``2 x kv_heads x head_dim`` values per layer, grows with depth (``s``).

So the model's bytes are a cubic in ``s`` with positive coefficients, which has exactly one
positive root for a given budget (Descartes' rule of signs).  What is *not* counted: the engine's
activation workspace and runtime buffers (they live in the ``1 - memory_fraction`` reserve, 8 GB
of an 80 GB H100 at the default 0.9); replication of KV heads across tensor-parallel ranks
(the KV cache is counted once per token, as an ideal sharding would hold it); optimizer or
gradient state (serving only).  FP4 storage may be used on chips without FP4 tensor cores
(weight-only kernels), so capacity does not refuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colossim import units
from colossim.catalog import load_catalog
from colossim.errors import SpecError, UnknownNameError
from colossim.inference.memory import EMBEDDING_FORMAT
from colossim.specs.model import ModelSpec, resolve_model
from colossim.specs.serving import BYTES_PER_ELEMENT, ServingWorkload
from colossim.specs.system import SystemSpec, resolve_hardware

#: The catalog architecture each family scales.
#: Because: Llama 3.1 405B is the largest open dense model with a published shape; GPT-MoE-1.8T is
#: the MoE NVIDIA uses for its GB200 NVL72 claims (catalog/data/models.csv, with its caveats).
REFERENCE_MODELS = {"dense": "llama3.1-405b", "moe": "gpt-moe-1.8t"}
KINDS = tuple(REFERENCE_MODELS)

#: KV-cache headroom of the "with KV" rows of :func:`capacity_table` and of the claim check, in
#: tokens of context in total.  Because: 32 sequences of a 32,768-token context (NVIDIA's
#: GB200 serving setting) = 2^20 tokens, a modest serving batch at long context.
DEFAULT_KV_TOKENS = 32 * 32_768

#: Share of HBM the weights and KV cache may fill; the rest holds the runtime (CUDA context, cuBLAS
#: and NCCL workspaces), the activation workspace and allocator slack.
#: Because: vLLM's default ``gpu_memory_utilization`` is 0.9 and TensorRT-LLM's default
#: ``kv_cache_free_gpu_mem_fraction`` is 0.9; 10 % of an 80 GB H100 (8 GB) covers a 1 GiB runtime
#: and a few GiB of workspace at an 8k-token iteration budget.
DEFAULT_MEMORY_FRACTION = 0.9


@dataclass(frozen=True)
class ShapeFamily:
    """A reference architecture as polynomials in the scale ``s`` (``s = 1``: the reference).

    Parameters per layer are ``quad * s^2 + lin * s``; ``lin_16bit`` of ``lin`` are norm gains
    kept at 16 bits.  ``ends`` (embedding, output head, final norm) grow as ``s``, at 16 bits."""

    kind: str
    reference: str
    layers: float
    hidden: float
    quad: float
    lin: float
    lin_16bit: float
    ends: float
    kv_values_per_token_per_layer: float

    def params(self, s: float) -> float:
        return self.layers * s * (self.quad * s * s + self.lin * s) + self.ends * s

    def params_16bit(self, s: float) -> float:
        """Parameters stored at 16 bits whatever the weight format (norms, embedding, head)."""
        return self.layers * s * self.lin_16bit * s + self.ends * s

    def kv_values_per_token(self, s: float) -> float:
        return self.layers * s * self.kv_values_per_token_per_layer

    def coefficients(self, w: float, kv: float, kv_tokens: float) -> tuple[float, float, float]:
        """Bytes = ``a3 s^3 + a2 s^2 + a1 s`` with weights at ``w`` and KV at ``kv`` bytes/value."""
        e = BYTES_PER_ELEMENT[EMBEDDING_FORMAT]
        a3 = self.layers * self.quad * w
        a2 = self.layers * ((self.lin - self.lin_16bit) * w + self.lin_16bit * e)
        a1 = self.ends * e + kv_tokens * self.layers * self.kv_values_per_token_per_layer * kv
        return a3, a2, a1

    def bytes(self, s: float, w: float, kv: float, kv_tokens: float) -> float:
        a3, a2, a1 = self.coefficients(w, kv, kv_tokens)
        return ((a3 * s + a2) * s + a1) * s

    def scale_for_bytes(self, budget: float, w: float, kv: float, kv_tokens: float) -> float:
        """The one positive ``s`` whose bytes equal ``budget`` (0 when the budget is not positive)."""
        a3, a2, a1 = self.coefficients(w, kv, kv_tokens)
        return _positive_root(a3, a2, a1, budget)

    def scale_for_params(self, params: float) -> float:
        """The one positive ``s`` with ``params`` parameters (0 when ``params`` is not positive)."""
        return _positive_root(self.layers * self.quad, self.layers * self.lin, self.ends, params)


def _positive_root(a3: float, a2: float, a1: float, target: float) -> float:
    """The real root of ``a3 s^3 + a2 s^2 + a1 s = target`` (positive coefficients: exactly one
    positive root for ``target > 0``); 0 when ``target`` is not positive."""
    if target <= 0:
        return 0.0
    roots = np.roots([a3, a2, a1, -target])
    return float(max(r.real for r in roots if abs(r.imag) <= 1e-9 * max(1.0, abs(r.real))))


def shape_family(kind: str) -> ShapeFamily:
    """The scaled family of ``kind`` (``dense`` or ``moe``), from its catalog reference model."""
    if kind not in REFERENCE_MODELS:
        raise SpecError(f"kind = {kind!r}: allowed: {', '.join(KINDS)}", field="kind", value=kind,
                        allowed=KINDS)
    return family_of(resolve_model(REFERENCE_MODELS[kind]), kind)


def family_of(m: ModelSpec, kind: str | None = None) -> ShapeFamily:
    """A :class:`ShapeFamily` scaling ``m`` (GQA / MQA / MHA, no biases; MLA is not scaled)."""
    if m.attention == "mla" or m.bias or m.qkv_bias or m.is_hybrid:
        raise SpecError(f"model '{m.name}' cannot be scaled: capacity scales bias-free GQA/MQA/MHA transformers",
                        field="model", value=m.name)
    h = m.hidden
    q_o = 2 * h * m.heads * m.head_dim                 # s^2: heads grow with width, head_dim fixed
    k_v = 2 * h * m.kv_heads * m.head_dim              # s: KV heads and head_dim fixed
    norms = m.norms_per_layer * m._norm_params        # s
    mats = m.activation.mlp_matrices
    dense_mlp = mats * h * m.ffn_hidden if m.ffn_hidden else 0
    experts = (m.experts + m.shared_experts) * mats * h * m.moe_ffn_hidden if m.is_moe else 0
    router = h * m.experts if m.is_moe else 0
    mlp_quad = (m.dense_layers * dense_mlp + m.moe_layers * experts) / m.layers
    mlp_lin = m.moe_layers * router / m.layers
    ends = m.params_embedding + m.params_output_head + m.params_final_norm
    return ShapeFamily(kind=kind or ("moe" if m.is_moe else "dense"), reference=m.name, layers=m.layers,
                       hidden=h, quad=q_o + mlp_quad, lin=k_v + mlp_lin + norms, lin_16bit=norms,
                       ends=ends, kv_values_per_token_per_layer=2 * m.kv_heads * m.head_dim)


@dataclass(frozen=True)
class CapacityResult:
    """The largest model of one family on ``gpus`` GPUs.  Bytes and parameters in SI units."""

    kind: str
    reference_model: str
    chip: str
    gpus: int
    precision: str
    kv_format: str
    kv_tokens: int
    memory_fraction: float
    hbm_bytes: float
    """HBM of all the GPUs."""
    usable_bytes: float
    """``memory_fraction`` of it: what weights and KV cache may fill."""
    kv_bytes: float
    """Reserved for the KV cache of ``kv_tokens`` tokens at the model's size."""
    weight_bytes: float
    params: float
    bytes_per_param: float
    """Weight bytes per parameter, the 16-bit embeddings and norms included."""
    embedding_share: float
    """Share of the parameters kept at 16 bits (embedding, output head, norms)."""
    hidden: float
    layers: float
    """Width and depth of the scaled model (continuous: the family's shape at this size)."""

    @property
    def params_trillions(self) -> float:
        return self.params / units.TERA

    def to_dict(self) -> dict:
        """A report row: TB (10^12 bytes) and trillions of parameters."""
        return {"kind": self.kind, "family": self.reference_model, "gpus": self.gpus, "chip": self.chip,
                "precision": self.precision, "kv_cache": self.kv_format, "kv_tokens": self.kv_tokens,
                "hbm_tb": self.hbm_bytes / units.TERA, "usable_tb": self.usable_bytes / units.TERA,
                "kv_cache_tb": self.kv_bytes / units.TERA, "weights_tb": self.weight_bytes / units.TERA,
                "bytes_per_param": self.bytes_per_param, "params_t": self.params_trillions}


def _check_precision(field: str, value: str) -> str:
    if value not in BYTES_PER_ELEMENT:
        raise SpecError(f"{field} = {value!r}: allowed: {', '.join(BYTES_PER_ELEMENT)}", field=field,
                        value=value, allowed=list(BYTES_PER_ELEMENT))
    return value


def default_kv_format(precision: str) -> str:
    """The serving spec's default KV format for weights at ``precision`` (bf16 under fp4 weights,
    else the weight format): see :class:`colossim.specs.serving.ServingWorkload`."""
    return ServingWorkload(weights=precision, input_tokens=1, output_tokens=1).kv_format


def _check_common(precision: str, kv_tokens: int, kv_format: str | None, memory_fraction: float) -> str:
    _check_precision("precision", precision)
    if kv_tokens < 0:
        raise SpecError(f"kv_tokens = {kv_tokens}: allowed: 0 or more", field="kv_tokens", value=kv_tokens)
    if not 0 < memory_fraction <= 1:
        raise SpecError(f"memory_fraction = {memory_fraction}: allowed: (0, 1]", field="memory_fraction",
                        value=memory_fraction)
    return _check_precision("kv_format", kv_format) if kv_format else default_kv_format(precision)


def largest_model(hardware: dict | SystemSpec, precision: str, *, kind: str = "dense", kv_tokens: int = 0,
                  kv_format: str | None = None,
                  memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> CapacityResult:
    """The largest ``kind`` model whose weights at ``precision`` plus ``kv_tokens`` tokens of KV
    cache (at ``kv_format``) fit in ``memory_fraction`` of the HBM of ``hardware`` (a spec's
    ``hardware`` mapping or a :class:`SystemSpec`)."""
    kvf = _check_common(precision, kv_tokens, kv_format, memory_fraction)
    hw = resolve_hardware(hardware)
    per_gpu = hw.hbm_bytes
    if not per_gpu:
        raise SpecError(f"chip '{hw.accelerator.id}' has no HBM capacity in the catalog: give hardware.hbm_gib",
                        field="hardware.hbm_gib", value=None)
    fam = shape_family(kind)
    w, kv = BYTES_PER_ELEMENT[precision], BYTES_PER_ELEMENT[kvf]
    total = per_gpu * hw.count
    usable = total * memory_fraction
    s = fam.scale_for_bytes(usable, w, kv, kv_tokens)
    params = fam.params(s)
    kv_bytes = kv_tokens * fam.kv_values_per_token(s) * kv
    weight_bytes = usable - kv_bytes
    return CapacityResult(
        kind=kind, reference_model=fam.reference, chip=hw.accelerator.id, gpus=hw.count, precision=precision,
        kv_format=kvf, kv_tokens=kv_tokens, memory_fraction=memory_fraction, hbm_bytes=total,
        usable_bytes=usable, kv_bytes=kv_bytes, weight_bytes=weight_bytes, params=params,
        bytes_per_param=weight_bytes / params if params else w,
        embedding_share=fam.params_16bit(s) / params if params else 0.0,
        hidden=fam.hidden * s, layers=fam.layers * s)


def model_bytes(params: float, precision: str, *, kind: str = "dense", kv_tokens: int = 0,
                kv_format: str | None = None) -> float:
    """Bytes a ``kind`` model of ``params`` parameters needs at ``precision`` with ``kv_tokens``
    tokens of KV cache (the inverse of :func:`largest_model`)."""
    kvf = _check_common(precision, kv_tokens, kv_format, 1.0)
    fam = shape_family(kind)
    return fam.bytes(fam.scale_for_params(params), BYTES_PER_ELEMENT[precision], BYTES_PER_ELEMENT[kvf],
                     kv_tokens)


def gpus_needed(params: float, hardware: dict | SystemSpec, precision: str, *, kind: str = "dense",
                kv_tokens: int = 0, kv_format: str | None = None,
                memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> int:
    """The fewest GPUs of ``hardware``'s chip that hold a ``kind`` model of ``params`` parameters."""
    hw = resolve_hardware(hardware)
    need = model_bytes(params, precision, kind=kind, kv_tokens=kv_tokens, kv_format=kv_format)
    return math.ceil(need / (hw.hbm_bytes * memory_fraction))


def _resolve_system(system: str, count: int | None) -> SystemSpec:
    """A catalog system id (or alias), else a chip id; ``count`` defaults to one node / rack."""
    cat = load_catalog()
    try:
        cat.system(system)
        key = "system"
    except UnknownNameError as err:
        try:
            cat.accelerator(system)
        except UnknownNameError:
            raise err from None
        key = "gpu"
    if count is None:
        count = resolve_hardware({key: system, "count": 1}).gpus_per_node
    return resolve_hardware({key: system, "count": count})


def capacity_table(system: str, precision: str, count: int | None = None, kv_tokens: int = DEFAULT_KV_TOKENS,
                   kv_format: str | None = None,
                   memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> list[CapacityResult]:
    """Rows for ``colossim serve capacity``: dense and MoE, weights only and (when ``kv_tokens`` > 0)
    with room for ``kv_tokens`` tokens of KV cache, on ``count`` GPUs of ``system`` (a catalog system
    or chip id; default one node / rack)."""
    hw = _resolve_system(system, count)
    kvs = [0] + ([kv_tokens] if kv_tokens else [])
    return [largest_model(hw, precision, kind=k, kv_tokens=t, kv_format=kv_format,
                          memory_fraction=memory_fraction) for k in KINDS for t in kvs]


__all__ = ["CapacityResult", "DEFAULT_KV_TOKENS", "DEFAULT_MEMORY_FRACTION", "KINDS", "REFERENCE_MODELS",
           "ShapeFamily", "capacity_table", "default_kv_format", "family_of", "gpus_needed", "largest_model",
           "model_bytes", "shape_family"]
