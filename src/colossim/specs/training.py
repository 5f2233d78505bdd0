"""The training spec: model + hardware + parallel plan + workload, from YAML, JSON or a dict, and
the checks that a plan can run (scalar :func:`validate_plan` for a user's plan, vectorised
:func:`valid_mask` for the search).

```yaml
model: llama3-405b                       # catalog id, a mapping of fields, or {name: id, overrides};
                                         # or a Hugging Face config.json: a path, or {hf_config: path, overrides}
hardware: {gpu: h100-sxm, count: 16384}  # or {system: gb200-nvl72, count: ...}
parallelism: {tp: 8, pp: 16, dp: 128, ...}   # every field optional: omitted ones are searched
training: {global_batch: 2048, precision: bf16, tokens: 15.6e12}   # software: megatron-core-2024
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from colossim.arith import divisors_text
from colossim.cost.compute import FLASH3_ARCHITECTURE
from colossim.errors import SpecError
from colossim.specs._validation import SpecChoice, SpecInt, check_known_fields, validate_model
from colossim.specs.model import HF_CONFIG_KEY, ModelSpec, load_model_catalog, names_hf_config, resolve_model
from colossim.specs.plan import ParallelPlan
from colossim.cost.comm import straddles_domains
from colossim.specs.software import apply_stack, plan_needs, resolve_stack
from colossim.specs.system import SystemSpec, resolve_hardware
from colossim.training.pipeline import layers_on_slowest_stage

SPEC_SECTIONS = ["model", "hardware", "parallelism", "training", "reliability"]


class Precision(SpecChoice):
    """Precision of the GEMMs: ``bf16`` mixed precision, ``fp16`` mixed precision with dynamic loss
    scaling (the same tensor-core rate and memory as bf16, plus the optimizer's unscale pass), or
    ``fp8`` GEMMs (Transformer Engine) with bf16/fp32 copies of the weights kept for the optimizer."""

    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"


class MfuConvention(SpecChoice):
    """The model-FLOPs convention ``mfu``, ``model_flops_per_token``, ``tflops_per_gpu`` and ``hfu``
    report (:func:`colossim.training.flops.model_flops_per_token`; ``mfu_by_convention`` always
    carries all three): ``megatron`` (Narayanan et al. 2021 eq. 3), ``palm`` (PaLM appendix B) or
    ``6nd`` (6 x active parameters)."""

    megatron = "megatron"
    palm = "palm"
    six_nd = "6nd"


class LoraTarget(SpecChoice):
    """A linear module a LoRA adapts, by Megatron-Core's name (NeMo's ``target_modules``):
    ``linear_qkv`` the attention's input projections (QKV, or MLA's query / key-value
    projections), ``linear_proj`` its output projection, ``linear_fc1`` / ``linear_fc2`` the MLP's
    up (and gate) and down projections, every expert's included
    (:data:`colossim.training.lora.LORA_TARGET_GEMMS`)."""

    linear_qkv = "linear_qkv"
    linear_proj = "linear_proj"
    linear_fc1 = "linear_fc1"
    linear_fc2 = "linear_fc2"


class LoraBasePrecision(SpecChoice):
    """How a LoRA's frozen base weights are stored: ``bf16`` (LoRA) or ``nf4`` (QLoRA, Dettmers et
    al. 2023: 4-bit NormalFloat, dequantized to bf16 for every GEMM;
    :data:`colossim.training.lora.NF4_BYTES_PER_WEIGHT`)."""

    bf16 = "bf16"
    nf4 = "nf4"


class TrainingWorkload(BaseModel):
    """What is trained: batch, precision and (optionally) the total tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    global_batch: SpecInt | None = Field(None, ge=1, description="sequences per optimizer step; omitted: "
                                     "about DEFAULT_BATCH_TOKENS tokens, a whole number of sequences "
                                     "per GPU (see default_global_batch)")
    global_batch_tokens: SpecInt | None = Field(None, ge=1, description="the global batch in tokens, as "
                                                "papers give it (Llama 3's 16M): a whole number of "
                                                "sequences, read as global_batch (see batch_from_tokens)")
    precision: Precision = Precision.bf16
    tokens: float | None = Field(None, gt=0, allow_inf_nan=False,
                                 description="tokens to train on (for time-to-train)")
    seq_len: SpecInt | None = Field(None, ge=1, description="overrides the model's sequence length")
    software: str | None = Field(None, description="software stack id (catalog/data/software_stacks.csv: "
                                 "megatron-lm-2021, megatron-core-2024, hai-llm-v2, hai-llm-v3); omitted: "
                                 "the stack the model's catalog row names (DeepSeek's models: their own "
                                 "framework), else the stack of the chip's launch years (see "
                                 "colossim.specs.software.default_stack)")
    host_seconds_per_step: float | None = Field(
        None, ge=0, description="host time each step of the training loop adds (Python, host syncs; "
        "see SoftwareStack.host_seconds_per_step); omitted: the software stack's")
    # Because megatron: Narayanan et al. 2021 eq. 3 counts attention and the logits, the FLOPs a
    # transformer really needs; the others are reported beside it.
    mfu_convention: MfuConvention = Field(
        MfuConvention.megatron, description="the model-FLOPs convention mfu, model_flops_per_token, "
        "tflops_per_gpu and hfu report: megatron (default), palm or 6nd; mfu_by_convention carries all")
    moe_load_imbalance: float = Field(
        1.0, ge=1.0, description="MoE routing: the busiest expert-parallel rank's routed tokens over "
        "the mean (1 = perfect balance, as NVIDIA's MoE benchmark recipes force it; dropless training "
        "with a balancing loss runs above 1; with a capacity factor and padded expert buffers, that "
        "factor); it gates every MoE layer of an ep > 1 plan (colossim.training.step)")
    document_tokens: SpecInt | None = Field(
        None, ge=1, description="packed sequences: each seq_len sequence holds documents of this many "
        "tokens, and attention stays within each (FlashAttention's variable-length kernels, NeMo's "
        "packed_sequence, Llama 3's document mask), so the attention core runs over documents, not the "
        "sequence; for documents of unequal length, the root of their mean squared length; at most "
        "seq_len; omitted: one document per sequence (colossim.training.ops.attention_span)")
    lora_rank: SpecInt | None = Field(
        None, ge=1, description="LoRA fine-tuning (Hu et al. 2021): adapters of this rank beside the "
        "lora_targets, every base weight (embedding and output head included) frozen, so only the "
        "adapters have gradients and optimizer state (colossim.training.lora); omitted: every weight "
        "is trained (pre-training or full fine-tuning)")
    lora_targets: list[LoraTarget] | None = Field(
        None, min_length=1, description="the linear modules the LoRA adapts: linear_qkv, linear_proj, "
        "linear_fc1, linear_fc2; omitted: all four (NeMo's default); needs lora_rank")
    lora_base_precision: LoraBasePrecision | None = Field(
        None, description="how the LoRA's frozen base weights are stored: bf16 (default) or nf4 (QLoRA: "
        "every transformer-layer linear in 4-bit NormalFloat, dequantized to bf16 for each GEMM; runs "
        "its GEMMs in 16 bits, so precision bf16 or fp16, and splits no weight over tensor-parallel GPUs, so tp 1); "
        "needs lora_rank")

    @model_validator(mode="after")
    def _targets_need_rank(self) -> TrainingWorkload:
        for name in ("lora_targets", "lora_base_precision"):
            if getattr(self, name) is not None and self.lora_rank is None:
                raise ValueError(f"{name} needs lora_rank (the adapters' rank, e.g. 16)")
        if self.lora_base_precision is LoraBasePrecision.nf4 and self.precision is Precision.fp8:
            raise ValueError("lora_base_precision nf4 dequantizes its weights to 16 bits for each GEMM: "
                             "precision must be bf16 or fp16, not fp8")
        return self

    @property
    def lora(self):
        """The LoRA this workload fine-tunes with (:class:`colossim.training.lora.Lora`), or None."""
        if self.lora_rank is None:
            return None
        from colossim.training.lora import DEFAULT_LORA_TARGETS, Lora

        targets = (DEFAULT_LORA_TARGETS if self.lora_targets is None
                   else tuple(dict.fromkeys(t.value for t in self.lora_targets)))
        return Lora(rank=self.lora_rank, targets=targets,
                    base=(self.lora_base_precision or LoraBasePrecision.bf16).value)


@dataclass(frozen=True)
class TrainingSpec:
    """A full training spec.  ``model.seq_len`` already carries ``training.seq_len`` when given.
    ``zero3_alternative``: where the spec leaves ``zero`` open and a written ``zero: 3`` would run
    other software (the chip's default stack's ``zero3_stack``: Megatron-Core's 2024 releases had
    no FSDP), the same spec with zero 3 on that software, which a search prices beside the other
    ZeRO stages this stack runs (``zero_stages``); None otherwise, and where the stack is the
    model's own framework (its catalog row names it, as HAI-LLM for DeepSeek-V3), which is
    searched as it ran."""

    model: ModelSpec
    hardware: SystemSpec
    parallelism: ParallelPlan
    training: TrainingWorkload
    zero3_alternative: TrainingSpec | None = None

    @property
    def seq_len(self) -> int:
        return self.model.seq_len


def _parse_text(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)  # YAML 1.2 is a superset of JSON
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML/JSON{at}: {problem}", field="spec") from None


def _read_source(source: str | Path | Mapping[str, Any], text: str | None) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if str(source) == "-":
        if text is None:
            raise SpecError("spec '-' means stdin: pass its text", field="spec", value="-")
        data = _parse_text(text, "<stdin>")
    else:
        path = Path(source)
        try:
            raw = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise SpecError(f"spec file '{path}' not found", field="spec", value=str(path)) from None
        except UnicodeDecodeError:
            raise SpecError(f"spec file '{path}' is not UTF-8 text", field="spec", value=str(path)) from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                raise SpecError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                                field="spec") from None
        else:
            data = _parse_text(raw, str(path))
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec is a mapping with {', '.join(SPEC_SECTIONS)}; got {type(data).__name__}",
                        field="spec", value=data, allowed=SPEC_SECTIONS)
    return data if str(source) == "-" else anchor_model_files(data, Path(source).parent)


def read_spec_document(source: str | Path | Mapping[str, Any], text: str | None = None) -> Mapping[str, Any]:
    """The raw spec document (a mapping) from a YAML/JSON path, ``-`` with ``text``, or a mapping."""
    return _read_source(source, text)


def anchor_model_files(data: Mapping[str, Any], folder: Path) -> Mapping[str, Any]:
    """``data`` with a relative Hugging Face config path its model names (the model string, or its
    ``hf_config``) taken from ``folder``, the spec file's: a spec means the files beside it,
    whichever directory it is run from."""
    model = data.get("model") if isinstance(data, Mapping) else None
    key = HF_CONFIG_KEY if isinstance(model, Mapping) else None
    path = model.get(key) if key else model
    if not isinstance(path, str) or Path(path).expanduser().is_absolute() \
            or (key is None and not names_hf_config(path, folder)):
        return data
    anchored = str(folder / path)
    return {**data, "model": {**model, key: anchored} if key else anchored}


def load_spec(source: str | Path | Mapping[str, Any], *, text: str | None = None,
              validate: bool = True) -> TrainingSpec:
    """Read a training spec from a YAML/JSON file path, ``"-"`` (stdin, whose ``text`` the caller
    passes) or a mapping.  Unknown fields at any level, bad values and impossible plans raise
    :class:`SpecError` with one line naming the field, the value and what is allowed."""
    data = _read_source(source, text)
    check_known_fields(data, SPEC_SECTIONS, "")
    for section in ("model", "hardware"):
        if section not in data:
            raise SpecError(f"spec is missing '{section}'", field=section, allowed=SPEC_SECTIONS)
    # every training field has a default (the batch about 2M tokens, bf16): the section may be left out
    workload = validate_model(TrainingWorkload, data.get("training") or {}, "training")
    model = resolve_model(data["model"])
    if workload.seq_len is not None:
        model = model.model_copy(update={"seq_len": workload.seq_len})
    if workload.lora_rank is not None and model.is_hybrid:
        raise SpecError(f"training.lora_rank = {workload.lora_rank}: LoRA adapters on a hybrid Mamba-Transformer "
                        f"({model.name}) are not modelled; allowed: leave lora_rank out",
                        field="training.lora_rank", value=workload.lora_rank)
    if workload.document_tokens is not None and workload.document_tokens > model.seq_len:
        raise SpecError(f"training.document_tokens = {workload.document_tokens:,} is longer than the sequence: "
                        f"allowed 1 ... seq_len ({model.seq_len:,})", field="training.document_tokens",
                        value=workload.document_tokens)
    hardware = resolve_hardware(data["hardware"])
    chip, precision = hardware.accelerator, workload.precision.value
    if chip.peak_flops_per_s(precision) is None:
        have = [q.value for q in Precision if chip.peak_flops_per_s(q.value)]
        raise SpecError(f"training.precision = {precision} but {chip.id} has no {precision} tensor cores: allowed: "
                        f"{', '.join(have)}", field="training.precision", value=precision, allowed=have)
    if workload.global_batch_tokens is not None:
        workload = workload.model_copy(update={"global_batch": batch_from_tokens(workload, model.seq_len)})
    if workload.global_batch is None:
        workload = workload.model_copy(update={"global_batch": default_global_batch(model.seq_len, hardware.count)})
    written = read_expert_layout(model, hardware.count,
                                 validate_model(ParallelPlan, data.get("parallelism") or {}, "parallelism"))
    check_attention_kernel(written.attention_kernel, hardware.accelerator)
    year, model_software = hardware.accelerator.release_year, load_model_catalog().software_of(model.name)
    written = quantized_base_plan(written, workload)
    stack = resolve_stack(workload.software, year, model_software, written)
    plan = apply_stack(written, stack)
    if validate:
        try:
            validate_plan(model, hardware, plan, workload)
        except SpecError:
            # the model's own framework (named by its catalog row, not by the spec) cannot run the
            # plan as written, e.g. DualPipe with an odd pp: the run used the chip's software
            if workload.software is not None or stack.id != model_software:
                raise
            other = resolve_stack(None, year, None, written)
            other_plan = apply_stack(written, other)
            if not _runs(model, hardware, other_plan, workload):
                raise
            stack, plan = other, other_plan
    alternative = None
    # (the search pairs ZeRO-3 with pipelining only where the spec fixes both; a model's own
    # framework, named by its catalog row, is searched as it ran)
    own_framework = workload.software is None and (model_software or "").strip().lower() == stack.id
    if written.zero is None and plan.fsdp is not False and (written.pp or 1) == 1 and not own_framework:
        fsdp_run = written.model_copy(update={"zero": 3})
        other = resolve_stack(workload.software, year, model_software, fsdp_run)
        other_plan = apply_stack(fsdp_run, other)
        other_work = workload.model_copy(update={"software": other.id})
        if (other.id != stack.id and plan_needs(other_plan, other) is None
                and _runs(model, hardware, other_plan, other_work)):
            alternative = TrainingSpec(model=model, hardware=hardware, parallelism=other_plan, training=other_work)
    workload = workload.model_copy(update={"software": stack.id})
    return TrainingSpec(model=model, hardware=hardware, parallelism=plan, training=workload,
                        zero3_alternative=alternative)


def quantized_base_plan(plan: ParallelPlan, workload: TrainingWorkload) -> ParallelPlan:
    """``plan`` for a QLoRA (``training.lora_base_precision: nf4``): tp 1 where the spec leaves it
    open (routed experts follow, etp dividing tp).  No QLoRA implementation splits a 4-bit weight
    over tensor-parallel GPUs (:mod:`colossim.training.lora`), so a written tp above 1 raises
    :class:`SpecError`.  Any other workload's plan is returned unchanged."""
    lora = workload.lora
    if lora is None or not lora.quantized:
        return plan
    if plan.tp is not None and plan.tp > 1:
        raise SpecError(f"parallelism.tp = {plan.tp} but training.lora_base_precision nf4 splits no weight "
                        f"over tensor-parallel GPUs: allowed tp: 1", field="parallelism.tp", value=plan.tp,
                        allowed=[1])
    return plan if plan.tp == 1 else plan.model_copy(update={"tp": 1})


def _runs(model: ModelSpec, hardware: SystemSpec, plan: ParallelPlan, workload: TrainingWorkload) -> bool:
    try:
        validate_plan(model, hardware, plan, workload)
    except SpecError:
        return False
    return True


def read_expert_layout(model: ModelSpec, count: int, plan: ParallelPlan) -> ParallelPlan:
    """An MoE plan read the way published runs write it.  Two conventions differ from Megatron's
    (``ep`` carved out of ``dp x cp``) and each is read only where Megatron's reading cannot run:

    - ``dp`` written without the experts: tp x pp x cp x dp x ep equals the GPU count and
      tp x pp x cp x dp does not (DeepSeek-V3's 2,048 GPUs as 16-way PP x 64-way EP x 2-way DP).
      ``dp`` becomes dp x ep, the data-parallel degree of the non-expert layers.
    - the experts folded over tp x cp x dp (Megatron-Core's expert tensor parallelism,
      ``--expert-tensor-parallel-size 1``) where the plan fixes tp and pp, leaves ``etp`` and
      ``moe_parallel_folding`` open, and ep does not divide dp x cp = count / (tp x pp) but does
      divide count / pp (NVIDIA's DeepSeek-V3 recipe: tp 2, pp 16, ep 64 on 1,024 GPUs).  The
      plan gets ``moe_parallel_folding: true`` (etp 1 searched beside tp).

    A dense model, ep 1 or a plan that runs as written is returned unchanged."""
    if not model.is_moe or not plan.ep or plan.ep <= 1:
        return plan
    update: dict[str, Any] = {}
    ep, tp, pp, cp = plan.ep, plan.tp, plan.pp, plan.cp or 1
    if tp is not None and pp is not None and plan.dp is not None:
        if tp * pp * cp * plan.dp != count and tp * pp * cp * plan.dp * ep == count:
            update["dp"] = plan.dp * ep
    if tp is not None and pp is not None and plan.etp is None and plan.moe_parallel_folding is None:
        dp = update.get("dp", plan.dp)
        # the data x context GPUs of a stage, where the plan's product is the GPU count
        if dp is not None:
            dp_cp = dp * cp if tp * pp * cp * dp == count else None
        else:
            dp_cp = count // (tp * pp) if count % (tp * pp) == 0 else None
        if dp_cp is not None and dp_cp % ep and (tp * dp_cp) % ep == 0:
            update["moe_parallel_folding"] = True
    return plan.model_copy(update=update) if update else plan


#: Tokens per optimizer step assumed when a spec gives no global batch.  Because: the published
#: large runs train with 2-4 M-token batches (GPT-3 175B 3.2 M, OPT-175B 2 M, Llama 2 4 M); 2^21
#: is the lower end, where the step time of a fixed cluster is least flattered by the batch.
DEFAULT_BATCH_TOKENS = 2**21


def batch_from_tokens(workload: TrainingWorkload, seq_len: int) -> int:
    """The sequences of ``workload.global_batch_tokens`` at ``seq_len`` tokens each.  A token count
    that is no whole number of sequences, or that disagrees with a ``global_batch`` also given,
    raises :class:`SpecError` naming the field and the nearest batches that are."""
    tokens, field = workload.global_batch_tokens, "training.global_batch_tokens"
    if tokens % seq_len:
        below = tokens // seq_len * seq_len
        near = [n for n in (below, below + seq_len) if n > 0]
        raise SpecError(f"{field} {tokens} is not a whole number of {seq_len}-token sequences "
                        f"(allowed: multiples of {seq_len}, e.g. {' or '.join(map(str, near))})",
                        field=field, value=tokens, allowed=[str(n) for n in near])
    batch = tokens // seq_len
    if workload.global_batch is not None and workload.global_batch != batch:
        raise SpecError(f"{field} {tokens} is {batch} sequences of {seq_len} tokens, but training.global_batch "
                        f"is {workload.global_batch}: give one of the two", field=field, value=tokens)
    return batch


def default_global_batch(seq_len: int, gpus: int) -> int:
    """About :data:`DEFAULT_BATCH_TOKENS` tokens, rounded to a whole number (>= 1) of sequences per
    GPU so that every data-parallel layout of the GPUs divides it."""
    return gpus * max(1, round(DEFAULT_BATCH_TOKENS / (seq_len * gpus)))


def check_attention_kernel(kernel: str | None, accelerator) -> None:
    """Raise :class:`SpecError` when the plan asks for FlashAttention-3 on a chip that cannot run it."""
    if kernel == "flash3" and accelerator.architecture != FLASH3_ARCHITECTURE:
        raise SpecError(f"parallelism.attention_kernel = flash3 (FlashAttention-3) runs on Hopper GPUs "
                        f"only; {accelerator.id} is {accelerator.architecture or 'of another architecture'}: "
                        f"allowed: flash2, flash1", field="parallelism.attention_kernel", value=kernel,
                        allowed=["flash2", "flash1"])


def mixer_split_ok(model: ModelSpec, tp: Any, cp: Any) -> np.ndarray:
    """Where Megatron-Core can split a hybrid's recurrent mixers over ``tp`` x ``cp`` GPUs (arrays
    broadcast; True for a model without them).  Mamba-2: tp divides the groups, tp x cp the heads,
    and the groups left on a TP rank divide cp or are divided by it (megatron-core 0.16.1
    ``ssm/mamba_mixer.py`` and ``ssm/mamba_context_parallel.py`` asserts).  Gated DeltaNet: tp
    divides the key heads (and so the value heads), and cp is 1 (``ssm/gated_delta_net.py``: "TODO:
    Implement GatedDeltaNetContextParallel")."""
    tp, cp = np.asarray(tp, dtype=np.int64), np.asarray(cp, dtype=np.int64)
    ok = np.ones(np.broadcast(tp, cp).shape, dtype=bool)
    if model.mamba_layers:
        g, h = model.mamba_groups, model.mamba_heads_total
        local = np.where(g % tp == 0, g // np.maximum(tp, 1), 0)
        ok = ok & (g % tp == 0) & (h % (tp * cp) == 0)
        ok = ok & ((local % cp == 0) | ((local > 0) & (cp % np.maximum(local, 1) == 0)))
    if model.gdn_layers:
        ok = ok & (model.gdn_key_heads % tp == 0) & (cp == 1)
    return ok


def check_heads_and_experts(model: ModelSpec, tp: int | None, ep: int | None) -> None:
    """Raise :class:`SpecError` unless ``tp`` divides the heads and ``ep`` (> 1) divides the experts
    of an MoE model (shared by the training and serving specs)."""
    if tp is not None and model.heads % tp:
        raise SpecError(f"parallelism.tp = {tp} does not divide model.heads = {model.heads}: "
                        f"allowed tp: {divisors_text(model.heads)}", field="parallelism.tp", value=tp)
    if tp is not None and model.recurrent_layers and not mixer_split_ok(model, tp, 1):
        allowed = [d for d in range(1, model.heads + 1) if model.heads % d == 0 and mixer_split_ok(model, d, 1)]
        what = (f"model.mamba_groups = {model.mamba_groups} (and mamba heads {model.mamba_heads_total})"
                if model.mamba_layers else f"model.gdn_key_heads = {model.gdn_key_heads}")
        raise SpecError(f"parallelism.tp = {tp} does not divide {what}: allowed tp: {', '.join(map(str, allowed))}",
                        field="parallelism.tp", value=tp, allowed=allowed)
    if ep is not None and ep > 1:
        if not model.is_moe:
            raise SpecError(f"parallelism.ep = {ep} but model '{model.name}' is dense: allowed ep: 1",
                            field="parallelism.ep", value=ep, allowed=["1"])
        if model.experts % ep:
            raise SpecError(f"parallelism.ep = {ep} does not divide model.experts = {model.experts}: "
                            f"allowed ep: {divisors_text(model.experts)}", field="parallelism.ep", value=ep)


def check_plan_product(factors: list[tuple[str, int | None]], count: int) -> None:
    """Raise :class:`SpecError` when the plan's given factors cannot make ``count`` GPUs: with every
    factor given their product must equal it, with some given it must divide it.  The message shows
    every factor (one given factor: the values it may take)."""
    given = [(k, v) for k, v in factors if v is not None]
    prod = math.prod(v for _, v in given)  # exact: int64 would wrap for four factors near the bound
    lhs, rhs = "*".join(k for k, _ in given), "*".join(str(v) for _, v in given)
    if len(given) == len(factors) and prod != count:
        raise SpecError(f"{lhs} = {rhs} = {prod} != hardware.count {count}", field="parallelism",
                        value=dict(given))
    if count % prod:
        if len(given) == 1:
            raise SpecError(f"parallelism.{lhs} = {prod} does not divide hardware.count {count}: allowed "
                            f"{lhs}: a divisor of {count} ({divisors_text(count)})",
                            field=f"parallelism.{lhs}", value=prod)
        raise SpecError(f"{lhs} = {rhs} = {prod} does not divide hardware.count {count}: allowed: factors whose "
                        f"product divides {count} ({divisors_text(count)})", field="parallelism", value=dict(given))


def validate_plan(model: ModelSpec, hardware: SystemSpec, plan: ParallelPlan,
                  workload: TrainingWorkload | None = None) -> None:
    """Raise :class:`SpecError` if the given fields of ``plan`` cannot run ``model`` on
    ``hardware`` (fields left ``None`` are not checked: the search fills them).  Checks: tp divides
    heads; ep divides experts (and ``dp * cp``; 1 for dense models); pp divides layers (unless
    ``uneven_stages``) and layers split into pp * vpp chunks; cp divides the sequence;
    tp * pp * cp * dp equals the GPU count; dp * micro_batch divides the global batch; zero-bubble
    and DualPipe schedules run vpp 1, DualPipe an even pp and at least 2 pp micro-batches."""
    p = plan
    check_heads_and_experts(model, p.tp, p.ep)
    if p.etp is not None:
        if not model.is_moe and p.tp is not None and p.etp != p.tp:
            raise SpecError(f"parallelism.etp = {p.etp} but model '{model.name}' is dense: allowed etp: "
                            f"the tp ({p.tp})", field="parallelism.etp", value=p.etp)
        if p.tp is not None and p.tp % p.etp:
            raise SpecError(f"parallelism.etp = {p.etp} does not divide tp = {p.tp}: allowed etp: "
                            f"{divisors_text(p.tp)}", field="parallelism.etp", value=p.etp)
    check_plan_product([(k, getattr(p, k)) for k in ("tp", "pp", "cp", "dp")], hardware.count)
    if p.ep is not None and p.ep > 1 and p.dp is not None:
        # left open, etp is tp, or 1 where the search may fold the experts
        etp = p.etp if p.etp is not None else (1 if p.moe_parallel_folding else p.tp)
        if etp is None or etp == p.tp:  # experts sharded within the data-parallel group
            if (p.dp * (p.cp or 1)) % p.ep:
                raise SpecError(f"parallelism.ep = {p.ep} does not divide dp*cp = {p.dp}*{p.cp or 1} = "
                                f"{p.dp * (p.cp or 1)} (experts are sharded within the data-parallel "
                                f"group; set parallelism.etp below tp, e.g. 1, to fold them over tp x cp x dp)",
                                field="parallelism.ep", value=p.ep)
        elif p.tp is not None and (p.tp * (p.cp or 1) * p.dp) % (etp * p.ep):
            raise SpecError(f"parallelism.ep x etp = {p.ep} x {etp} does not divide tp*cp*dp = "
                            f"{p.tp}*{p.cp or 1}*{p.dp} = {p.tp * (p.cp or 1) * p.dp}",
                            field="parallelism.ep", value=p.ep)
    if p.pp is not None:
        if p.pp > model.layers:
            raise SpecError(f"parallelism.pp = {p.pp} > model.layers = {model.layers}: allowed pp: 1 ... "
                            f"{model.layers}", field="parallelism.pp", value=p.pp)
        if model.layers % p.pp and not p.uneven_stages:
            raise SpecError(f"parallelism.pp = {p.pp} does not divide model.layers = {model.layers}: "
                            f"allowed pp: {divisors_text(model.layers)} (or set parallelism.uneven_stages: true)",
                            field="parallelism.pp", value=p.pp)
        if p.vpp is not None and p.vpp > 1:
            if p.pp == 1:
                raise SpecError(f"parallelism.vpp = {p.vpp} needs pp > 1 (interleaving splits pipeline stages)",
                                field="parallelism.vpp", value=p.vpp)
            if model.layers % (p.pp * p.vpp) and not p.uneven_stages:
                raise SpecError(f"pp*vpp = {p.pp}*{p.vpp} = {p.pp * p.vpp} does not divide model.layers = "
                                f"{model.layers}", field="parallelism.vpp", value=p.vpp)
            check_interleaving(model, p, workload)
    if p.recompute_num_layers is not None:
        stage = int(layers_on_slowest_stage(model.layers, p.pp)) if p.pp is not None else model.layers
        if p.recompute_num_layers > stage:
            where = f"the {stage} layers of a stage (pp {p.pp})" if p.pp is not None else f"the {stage} layers"
            raise SpecError(f"parallelism.recompute_num_layers = {p.recompute_num_layers} is more than {where}: "
                            f"allowed: 1 ... {stage}", field="parallelism.recompute_num_layers",
                            value=p.recompute_num_layers)
    sched = p.pipeline_schedule or "1f1b"
    if sched != "1f1b" and p.vpp is not None and p.vpp > 1:
        raise SpecError(f"parallelism.vpp = {p.vpp} with pipeline_schedule {sched}: allowed vpp: 1 "
                        "(only 1f1b interleaves)", field="parallelism.vpp", value=p.vpp)
    if sched == "dualpipe" and p.pp is not None and p.pp > 1:
        if p.pp % 2:
            raise SpecError(f"parallelism.pp = {p.pp} with pipeline_schedule dualpipe: allowed pp: 1 or even "
                            "(stages pair up, i with pp - 1 - i)", field="parallelism.pp", value=p.pp)
        if workload is not None and p.dp is not None and p.micro_batch is not None:
            m = workload.global_batch // (p.dp * p.micro_batch)
            if m < 2 * p.pp:
                raise SpecError(f"pipeline_schedule dualpipe needs at least 2*pp = {2 * p.pp} micro-batches; "
                                f"global_batch/(dp*micro_batch) = {workload.global_batch}/({p.dp}*{p.micro_batch})"
                                f" = {m}", field="parallelism.pipeline_schedule", value=sched)
    group = p.dp * (p.cp or 1) if p.dp is not None else None
    if p.shard_group is not None and group is not None and group % p.shard_group:
        raise SpecError(f"parallelism.shard_group = {p.shard_group} does not divide dp*cp = {p.dp}*{p.cp or 1} = "
                        f"{group}: allowed shard_group: {divisors_text(group)}",
                        field="parallelism.shard_group", value=p.shard_group)
    if p.cp is not None and model.seq_len % p.cp:
        raise SpecError(f"parallelism.cp = {p.cp} does not divide the sequence length {model.seq_len}: allowed cp: "
                        f"{divisors_text(model.seq_len)}", field="parallelism.cp", value=p.cp)
    if p.cp is not None and not mixer_split_ok(model, p.tp or 1, p.cp):
        rule = ("allowed cp: 1 (Megatron-Core has no context parallelism for Gated DeltaNet)" if model.gdn_layers
                else f"Megatron-Core splits a Mamba-2 mixer's heads ({model.mamba_heads_total}) and groups "
                     f"({model.mamba_groups}) over tp x cp = {p.tp or 1} x {p.cp}; allowed cp: a divisor of the "
                     f"heads left per TP rank whose groups it divides or that divides them")
        raise SpecError(f"parallelism.cp = {p.cp}: {rule}", field="parallelism.cp", value=p.cp)
    if workload is not None and p.dp is not None:
        per_step = p.dp * (p.micro_batch or 1)
        if workload.global_batch % per_step:
            raise SpecError(f"training.global_batch = {workload.global_batch} is not a multiple of "
                            f"dp*micro_batch = {p.dp}*{p.micro_batch or 1} = {per_step}",
                            field="training.global_batch", value=workload.global_batch)


def check_interleaving(model: ModelSpec, p: ParallelPlan, workload: TrainingWorkload | None) -> None:
    """Megatron's interleaved 1F1B (vpp > 1, pp > 1) as the search allows it: whole-layer chunks
    (:func:`colossim.training.search.interleaving_splits_stages`), and the step's micro-batches,
    global_batch / (dp x micro_batch), a multiple of pp (Megatron-LM's schedules.py asserts it; Narayanan et al. 2021
    sec. 2.2.2); :class:`SpecError` naming vpp otherwise.  Fields left open are not checked."""
    from colossim.training.search import EMBEDDING_HEAD_CHUNKS, interleaving_splits_stages  # it imports this module

    fullest = int(layers_on_slowest_stage(model.layers, p.pp))
    if not interleaving_splits_stages(model.layers, p.pp, p.vpp):
        room = (model.layers + EMBEDDING_HEAD_CHUNKS) // p.pp
        allowed = [v for v in range(1, fullest + 1) if fullest % v == 0 and v <= room]
        raise SpecError(f"parallelism.vpp = {p.vpp}: pp x vpp = {p.pp * p.vpp} chunks of whole layers, the "
                        f"fullest stage's {fullest} layers split vpp ways, and at most layers + "
                        f"{EMBEDDING_HEAD_CHUNKS} = {model.layers + EMBEDDING_HEAD_CHUNKS} chunks (the embedding and "
                        f"head each fill one): allowed vpp: {', '.join(map(str, allowed))}",
                        field="parallelism.vpp", value=p.vpp)
    if workload is not None and p.dp is not None and p.micro_batch is not None:
        m = workload.global_batch // (p.dp * p.micro_batch)
        if m % p.pp:
            raise SpecError(f"parallelism.vpp = {p.vpp} (interleaved 1F1B) needs the micro-batches, "
                            f"global_batch/(dp*micro_batch) = {workload.global_batch}/({p.dp}*{p.micro_batch}) = "
                            f"{m}, to be a multiple of pp = {p.pp}: allowed vpp: 1, or such a global_batch",
                            field="parallelism.vpp", value=p.vpp)


def valid_mask(model: ModelSpec, hardware: SystemSpec, tp: Any, pp: Any, cp: Any, ep: Any, dp: Any,
               vpp: Any, micro_batch: Any, global_batch: int, *, uneven_stages: bool = False,
               tp_within_domain: bool = True, etp: Any = None) -> np.ndarray:
    """Vectorised :func:`validate_plan` for the search: arrays of plan degrees (broadcast together)
    -> a boolean array, True where the plan is valid.  Also requires ``tp <= scaleup_domain_size``,
    dividing it where the GPUs span domains, when ``tp_within_domain`` (TP traffic stays on
    NVLink: tp 6 of 8-GPU nodes would put ranks 6-11 on two), which :func:`validate_plan` does not
    (a user may ask for it).  ``etp`` (expert tensor parallelism; None: tp) must divide tp, and
    etp x ep the tp x cp x dp GPUs of a stage."""
    tp, pp, cp, ep, dp, vpp, mb = (np.asarray(x, dtype=np.int64)
                                   for x in (tp, pp, cp, ep, dp, vpp, micro_batch))
    etp = tp if etp is None else np.asarray(etp, dtype=np.int64)
    ok = (model.heads % tp == 0) & (model.seq_len % cp == 0) & mixer_split_ok(model, tp, cp)
    ok &= (tp * pp * cp * dp == hardware.count)
    ok &= (pp <= model.layers) & ((vpp == 1) | (pp > 1))
    if not uneven_stages:
        ok &= (model.layers % (pp * vpp) == 0)
    if model.is_moe:
        ok &= (model.experts % ep == 0) & (tp % etp == 0) & ((tp * dp * cp) % (etp * ep) == 0)
    else:
        ok &= (ep == 1) & (etp == tp)
    ok &= (global_batch % (dp * mb) == 0)
    if tp_within_domain:  # and its groups tile the domain (tp 6 of 8 GPUs straddles nodes)
        domain = hardware.scaleup_domain_size
        ok &= (tp <= domain) & ~straddles_domains(tp, domain, hardware.count)
    return ok


__all__ = ["LoraBasePrecision", "LoraTarget", "MfuConvention", "Precision", "SPEC_SECTIONS", "TrainingSpec",
           "TrainingWorkload", "anchor_model_files", "load_spec", "quantized_base_plan", "read_expert_layout",
           "valid_mask", "validate_plan"]
