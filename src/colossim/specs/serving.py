"""The serving spec: model + hardware + parallel plan + serving workload, with the same conventions
as the training spec (YAML, JSON, stdin or a mapping; unknown fields and bad values are one-line
errors naming the field, the value and what is allowed).

```yaml
model: llama3.1-70b
hardware: {system: hgx-h100, count: 8}           # or {gpu: h100-sxm, count: 8}; gb200-nvl72 ...
parallelism: {tp: 8, pp: 1, ep: 1, replicas: 1}  # optional: omitted fields are searched
serving: {weights: fp8, activations: fp8, kv_cache: fp8, input_tokens: 2048, output_tokens: 2048,
          batch: 64, ttft_slo_s: 5.0, tpot_slo_s: 0.05, disaggregated: false}   # batch: searched
```

``count`` GPUs hold ``replicas`` copies of the model; a replica spans ``tp * pp`` GPUs
(``replicas * tp * pp = count``).  In an MoE layer the ``tp`` GPUs of a stage split the experts
``ep`` ways and each expert ``tp / ep`` ways (TensorRT-LLM's ``moe_ep_size * moe_tp_size = tp_size``;
vLLM's expert parallelism is ``ep = tp``), so ``ep`` divides both ``tp`` and the expert count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from colossim.arith import divisors_text
from colossim.errors import SpecError
from colossim.specs._validation import SpecChoice, SpecInt, check_known_fields, validate_model
from colossim.specs.model import BY_SHAPE_SUFFIX, ModelSpec, resolve_model
from colossim.specs.system import SystemSpec, resolve_hardware
from colossim.specs.training import check_heads_and_experts, check_plan_product, read_spec_document

SERVING_SECTIONS = ["model", "hardware", "parallelism", "serving"]


class NumberFormat(SpecChoice):
    """Storage / compute formats of weights, activations and the KV cache."""

    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    fp4 = "fp4"


#: Bytes per element of each format.  FP4 (NVFP4 / MXFP4) also stores one 8-bit scale per block of
#: 16 (NVFP4) elements: 0.5 + 1/16 bytes.  Source: NVIDIA Blackwell NVFP4 format (16-element
#: micro-blocks with an FP8 E4M3 scale, plus a per-tensor FP32 scale, negligible).
BYTES_PER_ELEMENT = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5 + 1.0 / 16.0}
#: Bytes per element of a recurrent state's formats (``serving.recurrent_state``).
STATE_BYTES_PER_ELEMENT = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}


class ServingPlan(BaseModel):
    """How one model replica is split, and how many replicas share the GPUs.  Every field optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: SpecInt | None = Field(None, ge=1, description="tensor-parallel degree inside a replica")
    pp: SpecInt | None = Field(None, ge=1, description="pipeline stages of a replica")
    ep: SpecInt | None = Field(None, ge=1, description="expert-parallel degree (MoE) inside a replica")
    replicas: SpecInt | None = Field(None, ge=1, description="independent model copies on the GPUs")

    @property
    def is_complete(self) -> bool:
        return None not in (self.tp, self.pp, self.ep, self.replicas)


class ServingWorkload(BaseModel):
    """The traffic and the formats.  ``activations`` defaults to ``weights`` when the chip computes in
    that format (fp8 weights -> fp8 GEMMs), else to bf16 (weight-only quantisation, as W8A16 / W4A16
    kernels run on chips without FP8 / FP4 tensor cores); ``kv_cache`` defaults to ``activations``
    (bf16 when the activations are fp4: no production FP4 KV cache in the 2024-2025 engines)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: NumberFormat = NumberFormat.bf16
    activations: NumberFormat | None = None
    kv_cache: NumberFormat | None = None
    input_tokens: SpecInt = Field(ge=1, description="prompt tokens per request")
    output_tokens: SpecInt = Field(ge=1, description="generated tokens per request")
    batch: SpecInt | None = Field(None, ge=1, description="concurrent sequences per replica; searched when omitted")
    ttft_slo_s: float | None = Field(None, gt=0, description="time-to-first-token limit")
    tpot_slo_s: float | None = Field(None, gt=0, description="time-per-output-token limit")
    disaggregated: bool = Field(False, description="separate prefill and decode GPU pools")
    batching: Literal["continuous", "static"] = Field(
        "continuous", description="continuous (in-flight) batching, or static batches run to completion")
    chunked_prefill: bool = Field(True, description="prompts split into chunks mixed with decodes")
    max_num_tokens: SpecInt = Field(8192, ge=1, description="token budget of one engine iteration")
    max_batch_size: SpecInt = Field(2048, ge=1, description="engine limit on running sequences per replica")
    kv_cache_fraction: float = Field(0.9, gt=0, le=1.0, description="share of the HBM left after weights "
                                     "and workspace given to the KV cache (TensorRT-LLM's "
                                     "kv_cache_free_gpu_mem_fraction, default 0.9)")
    grouped_kv_decode: bool = Field(True, description="decode attention reads each KV head once for its "
                                    "group of query heads (GQA-aware kernels: TensorRT-LLM XQA, "
                                    "FlashInfer, FlashAttention); false for engines that read it per query head")
    windowed_kv_cache: bool = Field(True, description="sliding-window and chunked-attention layers keep only "
                                    "their window's (at most a chunk's) keys and values (TensorRT-LLM's "
                                    "per-window pools, vLLM's hybrid KV-cache manager, SGLang's SWA pool); "
                                    "false: every layer keeps the whole context")
    prefill_fraction: float | None = Field(None, gt=0, lt=1, description="disaggregated: share of GPUs "
                                           "doing prefill; sized from the traffic when omitted")
    recurrent_state: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="format of a hybrid's recurrent state in the cache, its Mamba-2 SSM or Gated "
        "DeltaNet state (vLLM's --mamba-ssm-cache-dtype); fp32 as Nemotron-H's config (mamba_ssm_cache_dtype) "
        "asks")
    moe_load_imbalance: float = Field(1.0, ge=1.0, description="MoE routing: the busiest expert-parallel "
                                      "GPU's routed tokens over the mean (1 = perfect balance); with ep > 1 "
                                      "its expert GEMMs run that many times the mean rows")

    @model_validator(mode="after")
    def _formats(self) -> ServingWorkload:
        order = ["fp4", "fp8", "bf16", "fp16"]
        if self.activations is not None and order.index(self.activations.value) < order.index(
                self.weights.value) and self.weights.value not in ("bf16", "fp16"):
            raise ValueError(f"activations {self.activations.value} are narrower than weights "
                             f"{self.weights.value}: allowed activations: {self.weights.value} or wider")
        return self

    @property
    def activation_format(self) -> str:
        if self.activations is not None:
            return self.activations.value
        return self.weights.value

    @property
    def kv_format(self) -> str:
        if self.kv_cache is not None:
            return self.kv_cache.value
        a = self.activation_format
        return "bf16" if a == "fp4" else a


@dataclass(frozen=True)
class ServingSpec:
    model: ModelSpec
    hardware: SystemSpec
    parallelism: ServingPlan
    serving: ServingWorkload


def validate_serving_plan(model: ModelSpec, hardware: SystemSpec, plan: ServingPlan) -> None:
    """Raise :class:`SpecError` when given plan fields cannot run: tp divides heads; pp <= layers;
    ep divides the experts and tp (1 for dense models); replicas * tp * pp = count."""
    p, n = plan, hardware.count
    check_heads_and_experts(model, p.tp, p.ep)
    if p.pp is not None and p.pp > model.layers:
        raise SpecError(f"parallelism.pp = {p.pp} > model.layers = {model.layers}",
                        field="parallelism.pp", value=p.pp)
    if p.ep is not None and p.ep > 1:
        if p.tp is not None and p.tp % p.ep:
            raise SpecError(f"parallelism.ep = {p.ep} does not divide tp = {p.tp} (a stage's tp GPUs "
                            f"split the experts ep ways): allowed ep: {divisors_text(p.tp)}",
                            field="parallelism.ep", value=p.ep)
    check_plan_product([(k, getattr(p, k)) for k in ("tp", "pp", "replicas")], n)


def load_serving_spec(source: str | Path | Mapping[str, Any], *, text: str | None = None) -> ServingSpec:
    """Read a serving spec from a YAML/JSON path, ``"-"`` (stdin, whose ``text`` the caller passes)
    or a mapping; raise :class:`SpecError` (one line) on anything wrong."""
    data = read_spec_document(source, text)
    check_known_fields(data, SERVING_SECTIONS, "")
    for section in ("model", "hardware", "serving"):
        if section not in data:
            raise SpecError(f"spec is missing '{section}'", field=section, allowed=SERVING_SECTIONS)
    workload = validate_model(ServingWorkload, data["serving"], "serving")
    model = resolve_model(data["model"])
    check_context(model, workload)
    hardware = resolve_hardware(data["hardware"])
    plan = validate_model(ServingPlan, data.get("parallelism") or {}, "parallelism")
    validate_serving_plan(model, hardware, plan)
    chip = hardware.accelerator
    if workload.activations is None and workload.weights.value in ("fp8", "fp4") \
            and not chip.peak_flops_per_s(workload.weights.value):
        # weight-only quantisation (W8A16 / W4A16 kernels, e.g. Marlin) on chips without that format
        workload = workload.model_copy(update={"activations": NumberFormat.bf16})
    fmt = workload.activation_format
    if fmt in ("fp8", "fp4") and not chip.peak_flops_per_s(fmt):
        have = [q for q in ("bf16", "fp8", "fp4") if chip.peak_flops_per_s(q)]
        raise SpecError(f"serving.activations = {fmt}: chip '{chip.id}' has no {fmt} tensor cores; "
                        f"allowed: {', '.join(have)}", field="serving.activations", value=fmt, allowed=have)
    return ServingSpec(model=model, hardware=hardware, parallelism=plan, serving=workload)


def check_context(model: ModelSpec, workload: ServingWorkload) -> None:
    """Raise :class:`SpecError` when a request (prompt and generated tokens) is longer than the
    model's context, ``model.max_seq_len``, as a serving engine refuses it (vLLM's
    ``max_model_len``).  A model without one (a custom shape) is not checked, nor one given by
    shape, whose context is the matched catalog model's, not one the spec stated."""
    context, longest = model.max_seq_len, workload.input_tokens + workload.output_tokens
    if context is not None and longest > context and not model.name.endswith(BY_SHAPE_SUFFIX):
        raise SpecError(f"serving.input_tokens + output_tokens = {longest:,} is longer than {model.name}'s "
                        f"context of {context:,} tokens (allowed: at most {context:,}; a context-extended "
                        "variant gives model.max_seq_len)", field="serving.input_tokens", value=longest,
                        allowed=[f"<= {context}"])


__all__ = ["BYTES_PER_ELEMENT", "STATE_BYTES_PER_ELEMENT", "NumberFormat", "SERVING_SECTIONS", "ServingPlan",
           "ServingSpec",
           "ServingWorkload", "check_context", "load_serving_spec", "validate_serving_plan"]
