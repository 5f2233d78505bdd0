"""Validation of the training engine against published, measured runs.

The runs live in ``catalog/data/validation/training_runs.csv`` (copied from the team's reference set
with their sources; other published steps, reported apart, in ``training_steps_extra.csv``; ``trust`` A = primary table, B = aggregated from primary logs, C = secondary
copy).  We compare tokens per second per GPU -- time, not MFU, because papers count FLOPs
differently (recompute in or out, causal attention halved or not).

Error = predicted / published - 1 (positive = colossim is optimistic).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from colossim import units
from colossim.catalog.loader import data_path, load_models
from colossim.errorstats import ErrorStats, Targets, chip_family
from colossim.errorstats import error_stats as _error_stats
from colossim.specs.model import name_by_label, resolve_model

#: Scale groups by GPU count (upper bounds, inclusive).
SCALE_GROUPS: tuple[tuple[str, int], ...] = (("<=64 GPUs", 64), ("65-1024 GPUs", 1024), (">1024 GPUs", 10**9))

#: Targets from the issue: median |error| <= 7 %, max <= 20 %, mean signed within +-3 %.
TARGET_MEDIAN_ABS = 0.07
TARGET_MAX_ABS = 0.20
TARGET_MEAN_SIGNED = 0.03


class ValidationRun(BaseModel):
    """One published run (a subset of the reference columns is typed; the rest kept as text)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str
    trust: str
    model_base: str | None = None
    source: str
    table_or_figure: str | None = None
    model_name: str
    gpu_type: str
    num_gpus: int
    measured_metric: str
    measured_value: float
    tokens_per_s_per_gpu_measured: float
    conversion: str | None = None
    spec_json: str
    spec_json_as_published: str | None = None
    notes: str | None = None
    interconnect: str | None = None

    @property
    def spec(self) -> dict:
        return json.loads(self.spec_json)

    @property
    def spec_as_published(self) -> dict | None:
        """The team's spec exactly as written in the reference file (``spec_json`` is colossim's
        copy with the catalog model named and the dated flags the run's paper states); None for a
        row that is not in the reference file."""
        return json.loads(self.spec_json_as_published) if self.spec_json_as_published else None

    @property
    def chip(self) -> str:
        return self.spec["hardware"].get("gpu") or self.spec["hardware"].get("system", "?")

    @property
    def is_moe(self) -> bool:
        # a catalog id or a mapping, which the row's model name may complete (a bare label)
        return resolve_model(with_model_label(self.spec, self.model_name)["model"]).is_moe


@lru_cache(maxsize=1)
def validation_runs() -> tuple[ValidationRun, ...]:
    """Every published run in the package's validation set."""
    return tuple(load_models(data_path("validation/training_runs.csv"), ValidationRun))


@lru_cache(maxsize=1)
def extra_runs() -> tuple[ValidationRun, ...]:
    """Published measured steps that are not in the team's reference set
    (``validation/training_steps_extra.csv``, same columns, each with its source and conversion):
    reported apart, outside the targets, so that the reference figures stay comparable."""
    return tuple(load_models(data_path("validation/training_steps_extra.csv"), ValidationRun))


#: Columns a file of published runs must fill (the team's reference format,
#: ``../shared/reference/validation/training-runs.csv``, has them all; the package's own copy too).
RUN_FILE_COLUMNS = ("id", "source", "model_name", "gpu_type", "num_gpus", "measured_metric", "measured_value",
                    "tokens_per_s_per_gpu_measured", "spec_json")

#: The reference format writes a run's trust level in its notes ("trust=A; ..."), not in a column.
TRUST_IN_NOTES = re.compile(r"\btrust\s*=\s*([A-Za-z])\b")

#: The trust level of a run whose file gives none.
UNKNOWN_TRUST = "?"


#: Columns of the reference format that a spec needs for an MoE run, with the spec section and field
#: each fills where the row's ``spec_json`` leaves it out (:func:`with_run_columns`).
SPEC_FIELD_COLUMNS = (("model", "moe_experts", "experts"), ("model", "moe_topk", "top_k"),
                      ("parallelism", "ep", "ep"))


def with_run_columns(spec: dict, row: dict[str, Any]) -> dict:
    """``spec`` completed by the row's own columns (:data:`SPEC_FIELD_COLUMNS`) where it leaves a
    field out: a row whose columns say 8 experts, top-2, ep 8 is that MoE run even if its spec
    lists only the dense columns.  A field the spec gives (under either name), a blank or
    non-integer column, and a model given by catalog name are left as they are."""
    out = dict(spec)
    for section, column, field in SPEC_FIELD_COLUMNS:
        text = str(row.get(column) or "").strip()
        part = out.get(section, {})
        if not text or not isinstance(part, dict) or field in part or column in part:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if value.is_integer():
            out[section] = {**part, field: int(value)}
    return out


class ReferenceRun(ValidationRun):
    """A run as the team's reference format writes it: the trust level in the notes
    ("trust=A; ...") unless a ``trust`` column gives it (:data:`UNKNOWN_TRUST` if neither), and
    ``spec_json`` the spec as written, so that it is also the as-published one, completed only by
    the row's MoE columns where it leaves them out (:func:`with_run_columns`)."""

    @model_validator(mode="before")
    @classmethod
    def _as_written(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        found = TRUST_IN_NOTES.search(data.get("notes") or "")
        trust = data.get("trust") or (found.group(1).upper() if found else UNKNOWN_TRUST)
        spec = data.get("spec_json")
        try:
            written = json.loads(spec) if isinstance(spec, str) else None
        except json.JSONDecodeError:
            written = None  # the spec_json validator names the fault
        if isinstance(written, dict):
            completed = with_run_columns(written, data)
            spec = spec if completed == written else json.dumps(completed)
        return {**data, "trust": trust, "spec_json": spec, "spec_json_as_published": spec}

    @field_validator("spec_json")
    @classmethod
    def _a_spec(cls, v: str) -> str:
        try:
            spec = json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg})") from None
        if not isinstance(spec, dict) or not {"model", "hardware"} <= spec.keys():
            raise ValueError("not a spec (a JSON object with at least model and hardware)")
        return v


def load_runs(path: str | Path) -> tuple[ValidationRun, ...]:
    """Published runs from a CSV file in the team's reference format (or the package's own), for
    validating the engine on runs it does not ship (:class:`ReferenceRun`).  Each run's
    ``spec_json`` is read as written, the way a run nobody annotated reaches the engine:
    :func:`validate` with ``as_published`` runs it with the row's ``model_name``, part, source,
    interconnect and notes as labels (:func:`with_run_labels`).  Raises :class:`CatalogError`
    (file, line, field) for a missing file or value (:data:`RUN_FILE_COLUMNS`), a spec that is not
    a JSON object, a bad number or a repeated id; nothing is returned then."""
    return tuple(load_models(Path(path), ReferenceRun, required=RUN_FILE_COLUMNS))


@dataclass(frozen=True)
class RunResult:
    run: ValidationRun
    predicted_tokens_per_s_per_gpu: float | None
    error: float | None  # predicted / published - 1
    plan: dict | None
    failure: str | None = None

    @property
    def groups(self) -> list[str]:
        kind = "MoE" if self.run.is_moe else "dense"
        scale = next(name for name, hi in SCALE_GROUPS if self.run.num_gpus <= hi)
        return [chip_family(self.run.chip), kind, scale, f"trust {self.run.trust}"]


def error_stats(errors: Iterable[float | None]) -> ErrorStats:
    """Median and max absolute error and mean signed error, judged against this validation's targets."""
    return _error_stats(errors, Targets(TARGET_MEDIAN_ABS, TARGET_MAX_ABS, TARGET_MEAN_SIGNED))


def validate(predict: Callable[[dict], tuple[float, dict]], runs: Iterable[ValidationRun] | None = None,
             progress: Callable[[ValidationRun], None] | None = None,
             as_published: bool = False) -> list[RunResult]:
    """Predict every run with ``predict(spec) -> (tokens_per_s_per_gpu, plan_used)``; with
    ``as_published``, from the team's specs as written (rows without one are left out)."""
    from colossim.errors import ColossimError

    out = []
    for run in runs if runs is not None else validation_runs():
        spec = run.spec_as_published if as_published else run.spec
        if spec is None:
            continue
        if as_published:  # the row's own model, part, source, network and flags settle what the spec leaves open
            spec = with_run_labels(spec, run.model_name, run.gpu_type, run.source, run.interconnect, run.notes)
        if progress:
            progress(run)
        try:
            tps, plan = predict(spec)
            err = tps / run.tokens_per_s_per_gpu_measured - 1.0
            out.append(RunResult(run, tps, err, plan))
        except ColossimError as e:
            out.append(RunResult(run, None, None, None, failure=str(e)))
    return out


#: A capacity or a power limit in a published row's part description: "H100 (96GB HBM2e, 500W)".
PART_GB = re.compile(r"(\d+(?:\.\d+)?)\s*GB\b")  # not Gb: 400Gb/s is a link
PART_W = re.compile(r"(\d+(?:\.\d+)?)\s*W\b")


def _hardware_gives(hw: dict, key: str) -> bool:
    """Whether a spec's ``hardware`` mapping gives the field ``key`` under any name the spec accepts."""
    from colossim.specs.system import HardwareInput

    alias = HardwareInput.model_fields[key].validation_alias
    return bool({key, *getattr(alias, "choices", ())} & hw.keys())


def with_part_label(spec: dict, gpu_type: str | None) -> dict:
    """``spec`` with the HBM capacity and power limit the row's part description (``gpu_type``)
    states, where the spec's hardware names a catalog chip, gives neither figure itself, and the
    description states exactly one value of it that differs from the chip's catalog row (torchtitan's
    H100s: 96 GB parts capped at 500 W).  A description with two capacities (a row quoting a
    conflict) or none leaves the spec as it is."""
    from colossim.catalog import load_catalog
    from colossim.errors import ColossimError

    hw = spec.get("hardware")
    if not gpu_type or not isinstance(hw, dict) or not isinstance(hw.get("gpu"), str):
        return spec
    try:
        chip = load_catalog().accelerator(hw["gpu"])
    except ColossimError:
        return spec
    add: dict[str, float] = {}
    for pattern, key, catalog in ((PART_GB, "hbm_gib", chip.hbm_gib), (PART_W, "tdp_w", chip.tdp_w)):
        stated = {float(x) for x in pattern.findall(gpu_type)}
        if len(stated) == 1 and not _hardware_gives(hw, key) and catalog is not None:
            value = stated.pop()
            if value != catalog:
                add[key] = value
    return {**spec, "hardware": {**hw, **add}} if add else spec


#: Scale-out link rates by name, Gbit/s per port, for a row that counts a node's ports without a
#: rate ("4x Omni-Path per node").  Source: InfiniBand Trade Association roadmap (4x EDR 100, HDR
#: 200, NDR 400, XDR 800 Gb/s); Intel Omni-Path Architecture 100 Series (100 Gb/s, the only
#: generation deployed).
NAMED_LINK_GBIT_PER_S = {"edr": 100.0, "hdr": 200.0, "ndr": 400.0, "xdr": 800.0, "omni-path": 100.0,
                         "omnipath": 100.0}
_RATE = r"(\d+(?:\.\d+)?)\s*([GT])(?:b/s|bps|bit/s)"  # bits: "900 GB/s" (bytes) is NVLink, never matched
#: A node's ports times a rate ("8x200Gb/s HDR InfiniBand", "8x ConnectX-7 IB NDR 400Gb/s").
LINKS_TIMES_RATE = re.compile(r"(\d+)\s*[x×]\s*(?:[A-Za-z][\w-]*\s+){0,4}?" + _RATE)
#: A node's ports times a named link ("4x Omni-Path", "8x HDR").
LINKS_TIMES_NAME = re.compile(r"(\d+)\s*[x×]\s*(?:[A-Za-z][\w-]*\s+){0,2}?(EDR|HDR|NDR|XDR|Omni-?Path)\b", re.I)
#: A rate per node or per GPU ("1600 Gbps node-node", "3.2 Tbps per node", "400 Gb/s per GPU").
RATE_PER = re.compile(_RATE + r"\s*(?:of\s+)?(?:per\s+|/\s*|node-)(node|gpu)\b", re.I)
#: GPUs per node as a row states them ("8 GPU/node", "8 GPUs per node").
GPUS_PER_NODE = re.compile(r"(\d+)\s*GPUs?\s*(?:/|per\s+)\s*node", re.I)


def scaleout_gbit_per_s_per_gpu(interconnect: str | None, gpus_per_node: int) -> float | None:
    """The scale-out rate per GPU (Gbit/s) a row's interconnect description states: a node's
    ports times their rate (or their named generation, :data:`NAMED_LINK_GBIT_PER_S`), a rate per
    node, or one per GPU; a node's total is shared by its GPUs (as the row states them, else
    ``gpus_per_node``).  None where it states none, or states two that disagree."""
    if not interconnect:
        return None
    stated = GPUS_PER_NODE.search(interconnect)
    gpn = int(stated.group(1)) if stated and int(stated.group(1)) > 0 else gpus_per_node
    unit = {"G": 1.0, "T": 1000.0}
    found: set[float] = set()
    times_rate = LINKS_TIMES_RATE.findall(interconnect)
    for n, rate, scale in times_rate:
        found.add(int(n) * float(rate) * unit[scale.upper()] / gpn)
    if not times_rate:
        for n, name in LINKS_TIMES_NAME.findall(interconnect):
            found.add(int(n) * NAMED_LINK_GBIT_PER_S[name.lower()] / gpn)
    for rate, scale, per in RATE_PER.findall(interconnect):
        if times_rate and per.lower() == "node":
            continue  # "8x200Gb/s ... per node": the same figure, already counted
        found.add(float(rate) * unit[scale.upper()] / (gpn if per.lower() == "node" else 1))
    return found.pop() if len(found) == 1 else None


def with_network_label(spec: dict, interconnect: str | None) -> dict:
    """``spec`` with the scale-out rate per GPU the row's interconnect description states
    (:func:`scaleout_gbit_per_s_per_gpu`), where the spec's hardware gives none itself and it
    differs from the rate the hardware resolves to (Jean Zay's four Omni-Path ports per node of
    eight A100s: 50 Gbit/s per GPU, not a DGX's 200)."""
    from colossim.errors import ColossimError
    from colossim.specs.system import resolve_hardware

    hw = spec.get("hardware")
    if not interconnect or not isinstance(hw, dict) or _hardware_gives(hw, "scaleout_gbit_per_s"):
        return spec
    try:
        system = resolve_hardware(hw)
    except ColossimError:
        return spec
    rate = scaleout_gbit_per_s_per_gpu(interconnect, system.gpus_per_node)
    if rate is None or rate <= 0 or units.gbit_per_s_to_bytes_per_s(rate) == system.scaleout_bytes_per_s_per_gpu:
        return spec
    return {**spec, "hardware": {**hw, "scaleout_gbit_per_s": rate}}


def _open_plan(spec: dict) -> dict | None:
    """A spec's ``parallelism`` mapping ({} when it has none), or None when it is not a mapping."""
    plan = spec.get("parallelism")
    return None if plan is not None and not isinstance(plan, dict) else (plan or {})


def _with_open_plan_fields(spec: dict, fields: dict[str, Any]) -> dict:
    """``spec`` with those of ``fields`` its ``parallelism`` leaves open, absent or null (``spec``
    itself when none)."""
    plan = _open_plan(spec)
    add = {} if plan is None else {k: v for k, v in fields.items() if plan.get(k) is None}
    return {**spec, "parallelism": {**plan, **add}} if add else spec


#: Megatron-LM command-line flags a row's notes may name, and the plan field each sets: a run
#: launched with ``--tp-comm-overlap`` overlapped its TP communication, whatever its stack's
#: default.  Source: Megatron-LM megatron/training/arguments.py (the flags' help texts).
RUN_FLAG_FIELDS = {"--tp-comm-overlap": ("tp_overlap", True),
                   "--overlap-grad-reduce": ("overlap_grad_reduce", True),
                   "--overlap-param-gather": ("overlap_param_gather", True),
                   "--sequence-parallel": ("sequence_parallel", True),
                   "--use-distributed-optimizer": ("zero", 1),
                   "--cross-entropy-loss-fusion": ("cross_entropy_fusion", True),
                   "--fp8-param-gather": ("fp8_param_gather", True)}
#: A flag named only to be denied ("without --tp-comm-overlap", "--tp-comm-overlap off").
NEGATED_FLAG = re.compile(r"(?:\b(?:no|not|without|disabled?)\s+(?:\S+\s+){0,2}?$)"  # before the flag
                          r"|^\s*[=:]?\s*(?:off|false|disabled?)\b", re.I)  # after it
FLAG = re.compile(r"--[a-z][a-z0-9-]*[a-z0-9]")


def with_run_flags(spec: dict, notes: str | None) -> dict:
    """``spec`` with the plan fields of the Megatron-LM flags its row's notes name
    (:data:`RUN_FLAG_FIELDS`), each where the spec leaves that field open: the Megatron-Core
    README's runs, "--overlap-grad-reduce --overlap-param-gather --tp-comm-overlap", ran with TP
    overlap although Megatron-Core's default has none.  A flag the notes deny (:data:`NEGATED_FLAG`)
    or name together with a denial sets nothing."""
    if not notes:
        return spec
    named: dict[str, set] = {}
    for m in FLAG.finditer(notes):
        if m.group(0) not in RUN_FLAG_FIELDS:
            continue
        field, value = RUN_FLAG_FIELDS[m.group(0)]
        denied = NEGATED_FLAG.search(notes[max(0, m.start() - 30):m.start()]) or \
            NEGATED_FLAG.match(notes[m.end():m.end() + 12])
        named.setdefault(field, set()).add(None if denied else value)
    return _with_open_plan_fields(spec, {f: v.pop() for f, v in named.items() if len(v) == 1 and None not in v})


def with_tp_convention(spec: dict) -> dict:
    """``spec`` with ``tp_fills_server`` where it leaves tp open and the stack it runs
    (``training.software``, or the one the spec resolves to) chose tp by Narayanan et al. 2021's
    rule (the stack's ``tp_fills_server``): Megatron-LM's published runs put tensor parallelism
    over a whole server before pipelining across servers, so a run of that code with pp > 1 ran tp
    8 on DGX nodes, whatever split the engine would price fastest.  A spec that gives tp, sets the
    field, or does not load is left as it is."""
    from colossim.errors import ColossimError
    from colossim.specs.software import software_stacks
    from colossim.specs.training import load_spec

    plan = _open_plan(spec)
    if plan is None or plan.get("tp") is not None or plan.get("tp_fills_server") is not None:
        return spec
    try:
        stack = software_stacks().get(load_spec(spec).training.software or "")
    except (ColossimError, ValueError):
        return spec
    return _with_open_plan_fields(spec, {"tp_fills_server": True}) if stack and stack.tp_fills_server else spec


def with_run_labels(spec: dict, model_name: str | None, gpu_type: str | None, source: str | None = None,
                    interconnect: str | None = None, notes: str | None = None) -> dict:
    """``spec`` as a published row's own words complete it: :func:`with_model_label`,
    :func:`with_part_label`, from its source :func:`with_run_software` and :func:`with_run_date`,
    from its interconnect :func:`with_network_label`, from its notes :func:`with_run_flags`, and
    then, for the stack all that settles, :func:`with_tp_convention`."""
    spec = with_run_software(with_part_label(with_model_label(spec, model_name), gpu_type), source)
    return with_tp_convention(with_run_flags(with_network_label(with_run_date(spec, source), interconnect), notes))


#: The first month whose software could run FlashAttention-2: flash-attn 2.0.0 and Dao 2023
#: (arXiv:2307.08691) were both released on 17 July 2023, so a container built in July 2023 or
#: before could not ship it.
FLASH2_FIRST_MONTH = (2023, 8)

#: Publication month of each MLPerf Training round's results (MLCommons' announcements, recalled):
#: a run submitted to a round ran software no later than that month.
MLPERF_TRAINING_ROUND_MONTH = {"0.5": (2018, 12), "0.6": (2019, 7), "0.7": (2020, 7), "1.0": (2021, 6),
                               "1.1": (2021, 12), "2.0": (2022, 6), "2.1": (2022, 11), "3.0": (2023, 6),
                               "3.1": (2023, 11), "4.0": (2024, 6), "4.1": (2024, 11), "5.0": (2025, 6)}

#: An NGC container tag in a source ("ngc23.04": NVIDIA's container of April 2023, named by year
#: and month), and an MLPerf Training round ("training_results_v3.0", "MLPerf Training v3.0").
NGC_TAG = re.compile(r"(?<![a-z])ngc(\d{2})\.(\d{2})(?!\d)", re.I)
MLPERF_ROUND = re.compile(r"(?:training_results_v|mlperf training v)(\d+\.\d+)", re.I)


def run_month(source: str | None) -> tuple[int, int] | None:
    """The latest month the published run's software can date from, as its source states it: the
    NGC container it names, else the MLPerf Training round it was submitted to (the earlier of
    the two where it names both); None where the source dates nothing."""
    if not source:
        return None
    months = [(2000 + int(y), int(m)) for y, m in NGC_TAG.findall(source) if 1 <= int(m) <= 12]
    months += [MLPERF_TRAINING_ROUND_MONTH[r] for r in MLPERF_ROUND.findall(source) if r in MLPERF_TRAINING_ROUND_MONTH]
    return min(months) if months else None


def with_run_date(spec: dict, source: str | None) -> dict:
    """``spec`` with the attention kernel its run's date allows: a run whose software dates from
    before FlashAttention-2 (:func:`run_month` before :data:`FLASH2_FIRST_MONTH`) ran a
    FlashAttention-1-generation kernel at best (``attention_kernel: flash1``), where the spec
    names no kernel and does not turn flash attention off."""
    month, plan = run_month(source), _open_plan(spec)
    if month is None or month >= FLASH2_FIRST_MONTH or plan is None or plan.get("flash_attention") is False:
        return spec
    return _with_open_plan_fields(spec, {"attention_kernel": "flash1"})


def with_run_software(spec: dict, source: str | None) -> dict:
    """``spec`` with ``training.software`` set to the stack whose ``run_sources`` the published
    row's ``source`` names (NeMo's performance tables ran NeMo's performance recipes,
    ``nemo-2024``), where the spec names no stack and exactly one stack matches."""
    from colossim.specs.software import software_stacks

    training = spec.get("training")
    if not source or (training is not None and not isinstance(training, dict)) \
            or (training or {}).get("software") is not None:
        return spec
    text = source.lower()
    found = [s.id for s in software_stacks().values() if any(p in text for p in s.run_source_phrases)]
    return {**spec, "training": {**(training or {}), "software": found[0]}} if len(found) == 1 else spec


def with_model_label(spec: dict, model_name: str | None) -> dict:
    """``spec`` with its model named after the published row's ``model_name`` where that names a
    catalog model its shape agrees with (:func:`colossim.specs.model.name_by_label`)."""
    model = name_by_label(spec.get("model"), model_name)
    return spec if model is spec.get("model") else {**spec, "model": model}


def grouped_stats(results: list[RunResult]) -> dict[str, ErrorStats]:
    """Error statistics overall and by group (A100/H100, dense/MoE, scale, trust)."""
    groups: dict[str, list[float]] = {"all": [r.error for r in results if r.error is not None]}
    for r in results:
        if r.error is None:
            continue
        for g in r.groups:
            groups.setdefault(g, []).append(r.error)
    return {g: error_stats(v) for g, v in groups.items()}
