"""The ``reliability:`` section of a spec: a frozen, validated pydantic model.

Bad values raise :class:`colossim.errors.SpecError` naming the field (``reliability.restart_min``),
the value and what is allowed, on one line.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from colossim.errors import SpecError
from colossim.reliability import checkpoint as ck

#: Monte Carlo trials when the spec does not say.  Because: 2,000 trials put the standard error of
#: the mean wall time under 0.1 % for the runs of interest and take well under a second.
DEFAULT_TRIALS = 2000


class ReliabilitySpec(BaseModel):
    """How a training run fails, checkpoints and recovers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_rate_source: Literal["llama3", "meta-rsc1", "meta-rsc2", "custom"] = "llama3"
    """whose failure rates: Llama 3's interruption table, Meta's RSC-1/RSC-2 node failure rates, or
    custom (then ``unexpected_per_1000_node_days`` is required)"""
    duration_days: float | None = Field(default=None, gt=0)
    """days of useful work to simulate (None: the training engine's time to train)"""
    checkpoint_interval_min: float | Literal["auto"] = "auto"
    """minutes of work between checkpoints, or auto (the numerical optimum)"""
    storage_gb_per_s: float | None = Field(default=None, gt=0)
    """aggregate checkpoint storage bandwidth (None: Llama 3's Tectonic, 2 TB/s sustained)"""
    node_storage_gb_per_s: float | None = Field(default=ck.DEFAULT_NODE_STORAGE_GB_PER_S, gt=0)
    """one node's bandwidth to storage (None: no per-node bound)"""
    async_checkpoint: bool = False
    """asynchronous checkpointing: only the device-to-host copy stalls training"""
    host_copy_gb_per_s: float = Field(default=ck.DEFAULT_HOST_COPY_GB_PER_S, gt=0)
    """device-to-host copy bandwidth per GPU for asynchronous checkpoints"""
    restart_min: float = Field(default=ck.DEFAULT_RESTART_MIN, ge=0)
    """relaunching the job after an interruption"""
    reschedule_min: float = Field(default=ck.DEFAULT_RESCHEDULE_MIN, ge=0)
    """getting a replacement node when no hot spare is free"""
    detection_min: float = Field(default=ck.DEFAULT_DETECTION_MIN, ge=0)
    """from a failure to the job noticing it"""
    hot_spares: int = Field(default=0, ge=0)
    """idle nodes kept ready to replace a failed one"""
    node_repair_hours: float = Field(default=ck.DEFAULT_NODE_REPAIR_HOURS, ge=0)
    """how long a failed node stays out of the pool"""
    unexpected_per_1000_node_days: float | None = Field(default=None, ge=0)
    """user-set unexpected failure rate (replaces the source's)"""
    planned_per_1000_node_days: float | None = Field(default=None, ge=0)
    """user-set planned interruption rate (replaces the source's)"""
    trials: int = Field(default=DEFAULT_TRIALS, ge=1, le=1_000_000)
    """Monte Carlo trials"""
    seed: int = Field(default=0, ge=0)
    """Monte Carlo seed (same seed, same result; numpy takes non-negative seeds)"""

    @model_validator(mode="after")
    def _consistent(self) -> ReliabilitySpec:
        if isinstance(self.checkpoint_interval_min, float | int) and not self.checkpoint_interval_min > 0:
            raise ValueError(f"checkpoint_interval_min must be > 0 or 'auto' "
                             f"(got {self.checkpoint_interval_min!r})")
        if self.failure_rate_source == "custom" and self.unexpected_per_1000_node_days is None:
            raise ValueError("failure_rate_source custom needs unexpected_per_1000_node_days")
        return self

    @classmethod
    def parse(cls, data: Any, where: str = "reliability") -> ReliabilitySpec:
        """Validate a mapping (a spec's ``reliability:`` section); errors become one-line
        :class:`SpecError` naming ``where.field``."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SpecError(f"{where} must be a mapping, got {type(data).__name__}", field=where, value=data)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = [str(p) for p in err["loc"] if not str(p).startswith(("float", "literal", "int"))]
            field = ".".join([where, *loc[:1]]) if loc else where
            msg = err["msg"].removeprefix("Value error, ")
            value = data.get(loc[0]) if loc and loc[0] in data else None
            got = f" (got {value!r})" if loc and loc[0] in data else ""
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(cls.model_fields)
                raise SpecError(f"{field}: unknown field; allowed: {allowed}", field=field,
                                value=value, allowed=list(cls.model_fields)) from None
            if err["type"] == "value_error":
                field = where + "." + _field_in(msg)
            raise SpecError(f"{field}: {msg}{got}", field=field, value=value) from None


def _field_in(msg: str) -> str:
    """The field a model-level check names first in its message."""
    for name in ReliabilitySpec.model_fields:
        if name in msg and name != "failure_rate_source":
            return name
    return "failure_rate_source"


#: GPUs per node for a bare GPU id (no system).  Because: HGX/DGX-class servers hold 8.
DEFAULT_GPUS_PER_NODE = 8


class ReliabilityJob(BaseModel):
    """A document's job resolved to explicit numbers for :func:`estimate_reliability`."""

    model_config = ConfigDict(frozen=True)

    chip: str
    n_gpus: int
    gpus_per_node: int
    checkpoint_bytes_total: float
    checkpoint_bytes_per_gpu: float
    useful_hours: float
    spec: ReliabilitySpec


def _number(section: dict, key: str, where: str, *, integer: bool = False) -> float:
    value = section.get(key)
    if isinstance(value, str):  # Because: YAML 1.1 reads 405e9 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if ok and integer and float(value) != int(value):
        ok = False
    if not ok:
        kind = "a whole number > 0" if integer else "a number > 0"
        raise SpecError(f"{where}.{key} must be {kind}, got {value!r}", field=f"{where}.{key}", value=value)
    return int(value) if integer else float(value)


def job_from_document(doc: Any) -> ReliabilityJob:
    """Resolve a spec document (``hardware: {gpu|system, count}``, ``reliability:``, and for now
    ``checkpoint: {params [, bytes_per_param] | bytes_total [, bytes_per_gpu]}``) to explicit
    numbers.  Other top-level sections (model, parallelism, training) are ignored here.

    Without ``bytes_per_gpu`` the state is taken as evenly sharded over the GPUs (ZeRO-3/FSDP)."""
    from colossim.catalog import load_catalog

    if not isinstance(doc, dict):
        raise SpecError(f"a spec must be a mapping, got {type(doc).__name__}", field="spec", value=doc)
    hw = doc.get("hardware")
    if not isinstance(hw, dict):
        raise SpecError("hardware must be a mapping with gpu (or system) and count", field="hardware", value=hw)
    n_gpus = int(_number(hw, "count", "hardware", integer=True))
    cat = load_catalog()
    if hw.get("system") is not None:
        system = cat.system(str(hw["system"]))
        chip, per_node = system.accelerator, system.gpus_per_node
    elif hw.get("gpu") is not None:
        chip, per_node = cat.accelerator(str(hw["gpu"])).id, DEFAULT_GPUS_PER_NODE
    else:
        raise SpecError("hardware needs gpu (a chip id) or system", field="hardware.gpu", value=None)
    spec = ReliabilitySpec.parse(doc.get("reliability"))
    ckpt = doc.get("checkpoint")
    if not isinstance(ckpt, dict) or not ({"params", "bytes_total"} & set(ckpt)):
        raise SpecError("checkpoint: {params: N} or {bytes_total: B} is required (the state size), "
                        "or model + training sections to derive it from",
                        field="checkpoint", value=ckpt)
    if "bytes_total" in ckpt:
        total = _number(ckpt, "bytes_total", "checkpoint")
    else:
        per_param = (_number(ckpt, "bytes_per_param", "checkpoint") if "bytes_per_param" in ckpt
                     else ck.BYTES_PER_PARAM_MIXED_ADAM)
        total = ck.checkpoint_bytes(_number(ckpt, "params", "checkpoint"), per_param)
    per_gpu = _number(ckpt, "bytes_per_gpu", "checkpoint") if "bytes_per_gpu" in ckpt else total / n_gpus
    if spec.duration_days is None:
        raise SpecError("reliability.duration_days (days of useful work) is required",
                        field="reliability.duration_days", value=None)
    return ReliabilityJob(chip=chip, n_gpus=n_gpus, gpus_per_node=per_node, checkpoint_bytes_total=total,
                          checkpoint_bytes_per_gpu=per_gpu, useful_hours=spec.duration_days * 24, spec=spec)
