"""Failure rates by component, scaled to a job's size.

Rates come from ``catalog/data/failure_rates.csv``: each row is a count of interruptions over an
exposure (GPU-hours or node-hours) with its derivation and source:

* ``llama3``: Llama 3 (arXiv 2407.21783, section 3.3.4, Table 5): 466 interruptions of one job on
  16,384 H100 over 54 days, 47 planned and 419 unexpected, by cause.
* ``meta-rsc1`` / ``meta-rsc2``: Kokolis et al. (HPCA'25): node failures per 1000 node-days on
  Meta's two research clusters (all causes, unexpected only; no planned rate is published).
* ``custom``: the caller's own rates.

First-order model: every component fails as an independent Poisson process whose rate is
proportional to the number of GPUs (``scope=gpu``) or nodes (``scope=node``) the job holds, and any
failure interrupts the whole synchronous job.  So the job's rate is the per-unit rate x units and
its MTTF is ``1 / rate`` (Kokolis et al.: MTTF = 1 / (nodes x rate)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from colossim.catalog.loader import data_path, load_models
from colossim.errors import ColossimError, UnknownNameError
from colossim.units import SECONDS_PER_HOUR

HOURS_PER_DAY = 24.0
#: the named failure-rate sources; ``custom`` takes the caller's rates
SOURCES = ("llama3", "meta-rsc1", "meta-rsc2", "custom")


class FailureRateRow(BaseModel):
    """One row of ``failure_rates.csv``: ``events`` interruptions over ``exposure_unit_hours`` of
    GPU-hours (``scope=gpu``) or node-hours (``scope=node``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    model: str
    component: str
    kind: Literal["unexpected", "planned"]
    scope: Literal["gpu", "node"]
    events: float = Field(ge=0)
    exposure_unit_hours: float = Field(gt=0)
    derivation: str
    source: str

    @property
    def rate_per_unit_hour(self) -> float:
        """Interruptions per GPU-hour or per node-hour (by ``scope``)."""
        return self.events / self.exposure_unit_hours


class ReliabilityFact(BaseModel):
    """One published fact of ``reliability.csv`` (value kept as printed: '>90', '2 each')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    fact: str
    value: str | None = None
    unit: str
    source: str
    notes: str | None = None

    @property
    def number(self) -> float:
        """The value as a number; raises if the row holds a range or a bound."""
        try:
            return float(self.value or "")
        except ValueError:
            raise ColossimError(f"reliability fact '{self.id}' is not a plain number: {self.value!r}",
                                field="id", value=self.id) from None


@lru_cache(maxsize=1)
def failure_rate_rows() -> tuple[FailureRateRow, ...]:
    """The packaged failure-rate rows (loaded once)."""
    return tuple(load_models(data_path("failure_rates.csv"), FailureRateRow))


@lru_cache(maxsize=1)
def reliability_facts() -> dict[str, ReliabilityFact]:
    """The packaged published facts of ``reliability.csv`` by id (loaded once)."""
    return {f.id: f for f in load_models(data_path("reliability.csv"), ReliabilityFact)}


def reliability_fact(fid: str) -> ReliabilityFact:
    """One published fact by id."""
    facts = reliability_facts()
    if fid not in facts:
        raise UnknownNameError("reliability fact", fid, facts)
    return facts[fid]


@dataclass(frozen=True)
class ComponentRate:
    """One component's contribution to the job's interruption rate."""

    component: str
    kind: str
    rate_per_hour: float
    """interruptions per hour of the whole job"""
    per_gpu_hour: float
    per_node_day: float
    share: float
    """fraction of the job's interruptions of the same kind"""
    source: str


@dataclass(frozen=True)
class FailureModel:
    """A job's interruption process: Poisson rates per wall-clock hour."""

    source: str
    n_gpus: int
    gpus_per_node: int
    rate_unexpected_per_hour: float
    rate_planned_per_hour: float
    mttf_hours: float
    """mean time to an unexpected failure (inf when the rate is zero)"""
    mtbi_hours: float
    """mean time between interruptions of either kind"""
    by_component: tuple[ComponentRate, ...]

    @property
    def rate_total_per_hour(self) -> float:
        """Unexpected plus planned interruptions per hour."""
        return self.rate_unexpected_per_hour + self.rate_planned_per_hour

    @property
    def rate_unexpected_per_s(self) -> float:
        """Unexpected failures per second (SI)."""
        return self.rate_unexpected_per_hour / SECONDS_PER_HOUR

    @property
    def rate_planned_per_s(self) -> float:
        """Planned interruptions per second (SI)."""
        return self.rate_planned_per_hour / SECONDS_PER_HOUR


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ColossimError(f"{name} must be a whole number >= 1, got {value!r}", field=name, value=value)


def _check_rate(name: str, value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ColossimError(f"{name} must be >= 0 failures per 1000 node-days, got {value!r}",
                            field=name, value=value)


def failure_model(source: str, n_gpus: int, gpus_per_node: int = 8, *,
                  unexpected_per_1000_node_days: float | None = None,
                  planned_per_1000_node_days: float | None = None) -> FailureModel:
    """The interruption rates of a job on ``n_gpus`` GPUs (nodes of ``gpus_per_node``).

    ``source`` is ``llama3``, ``meta-rsc1``, ``meta-rsc2`` or ``custom``.  The optional overrides
    replace the source's unexpected or planned rate (in Meta's unit, failures per 1000 node-days);
    ``custom`` needs ``unexpected_per_1000_node_days``.  An override replaces the whole kind (its
    ``by_component`` entry is one 'user-set' component).
    """
    if source not in SOURCES:
        raise UnknownNameError("failure_rate_source", source, SOURCES)
    _check_positive_int("n_gpus", n_gpus)
    _check_positive_int("gpus_per_node", gpus_per_node)
    _check_rate("unexpected_per_1000_node_days", unexpected_per_1000_node_days)
    _check_rate("planned_per_1000_node_days", planned_per_1000_node_days)
    if source == "custom" and unexpected_per_1000_node_days is None:
        raise ColossimError("failure_rate_source 'custom' needs unexpected_per_1000_node_days",
                            field="unexpected_per_1000_node_days", value=None)
    comps: list[ComponentRate] = []
    overrides = {"unexpected": unexpected_per_1000_node_days, "planned": planned_per_1000_node_days}
    for kind, override in overrides.items():
        if override is not None:
            per_node_hour = override / (1000 * HOURS_PER_DAY)  # Because: the unit is per 1000 node-days
            comps.append(_component("user-set", kind, per_node_hour / gpus_per_node, n_gpus,
                                    gpus_per_node, "user-set"))
            continue
        for row in failure_rate_rows():
            if row.model != source or row.kind != kind:
                continue
            per_gpu_hour = (row.rate_per_unit_hour if row.scope == "gpu"
                            else row.rate_per_unit_hour / gpus_per_node)
            comps.append(_component(row.component, kind, per_gpu_hour, n_gpus, gpus_per_node, row.source))
    lam_u = sum(c.rate_per_hour for c in comps if c.kind == "unexpected")
    lam_p = sum(c.rate_per_hour for c in comps if c.kind == "planned")
    totals = {"unexpected": lam_u, "planned": lam_p}
    comps = [ComponentRate(c.component, c.kind, c.rate_per_hour, c.per_gpu_hour, c.per_node_day,
                           c.rate_per_hour / totals[c.kind] if totals[c.kind] > 0 else 0.0, c.source)
             for c in comps]
    return FailureModel(
        source=source, n_gpus=n_gpus, gpus_per_node=gpus_per_node,
        rate_unexpected_per_hour=lam_u, rate_planned_per_hour=lam_p,
        mttf_hours=1 / lam_u if lam_u > 0 else float("inf"),
        mtbi_hours=1 / (lam_u + lam_p) if lam_u + lam_p > 0 else float("inf"),
        by_component=tuple(comps))


def _component(name: str, kind: str, per_gpu_hour: float, n_gpus: int, gpus_per_node: int,
               source: str) -> ComponentRate:
    return ComponentRate(component=name, kind=kind, rate_per_hour=per_gpu_hour * n_gpus,
                         per_gpu_hour=per_gpu_hour,
                         per_node_day=per_gpu_hour * gpus_per_node * HOURS_PER_DAY,
                         share=0.0, source=source)
