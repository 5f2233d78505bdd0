"""The fleet dataset: organisations and their holdings (clusters and whole-fleet totals), dated.

One row of ``catalog/data/fleet.csv`` is one fact: what one source says one organisation held (or
plans to hold) at one date, with the source on every row.  The data model that keeps the numbers
honest:

- ``org`` is the organisation that owns or operates the holding; joint rows (``Microsoft/OpenAI``)
  name the owner/operator in ``org`` and the others in ``partners``.  A holding counts towards its
  ``org`` only, so no two organisations' series share a chip.
- ``scope`` is ``total`` (the organisation's whole fleet at that date) or ``cluster`` (one site or
  cluster).  A total and the clusters it contains describe the same chips and are never added:
  see :mod:`colossim.fleet.accounting` for the rule.
- ``cluster_id`` groups snapshots of the same cluster at different dates (xAI Colossus 1 at 2024-08,
  2024-09, 2025-02, 2025-07); only the latest snapshot at or before a date counts.
- ``chips`` is the chip mix as catalog ids with counts (``h100-sxm:150000;h200-sxm:50000``; a range
  ``h100-sxm:26000-30000`` counts its midpoint); chips a source counts but does not type go in
  ``untyped_chips`` and are never valued.
- ``status`` is ``existing``, ``planned`` or ``reported-equivalent`` (exists, but the source gives
  only an H100e figure, no chip mix).  Undated rows must be planned: they are listed, but left out of
  time series and rankings at a date.
- ``flags``: ``estimate`` (a model estimate), ``leased`` (not owned: listed, never summed),
  ``unverified`` (no source confirms it: listed, never summed), ``claim`` (the owner's statement,
  unconfirmed), ``target``, ``commitment`` (money pledged, not hardware), ``artifact`` (the source's
  H100e is known to be wrong), ``partial`` (covers part of what its name says, e.g. NVIDIA only) and
  ``cost-equivalent`` (the reported "H100e" is a dollar equivalence, not compute: shown, never
  summed as compute).
- The reported H100e (``h100e_reported``) keeps who computed it and on what basis; colossim's own
  H100e, computed from ``chips`` by a named metric, sits beside it and is never silently mixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from colossim.catalog import load_catalog
from colossim.catalog.loader import data_path, load_models, read_rows
from colossim.errors import CatalogError, UnknownNameError, closest
from colossim.fleet.dates import Period, parse_period

Scope = Literal["total", "cluster"]
Status = Literal["existing", "planned", "reported-equivalent"]
STATUSES = ("existing", "planned", "reported-equivalent")
Confidence = Literal["high", "medium", "low", "unverified"]
FLAGS = ("estimate", "leased", "unverified", "claim", "target", "commitment", "artifact", "partial",
         "cost-equivalent")
#: flags whose rows are listed but never summed into a series or a ranking
NOT_SUMMED = frozenset({"leased", "unverified"})
#: rank of a confidence level, best first (ties between rows at one date go to the better one)
CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2, "unverified": 3}

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_CHIP_ITEM = re.compile(r"^([a-z0-9][a-z0-9-]*):(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class ChipCount:
    """``count`` chips of catalog chip ``chip``; ``low``/``high`` when the source gives a range
    (``count`` is then its midpoint)."""

    chip: str
    count: float
    low: float
    high: float


def parse_chips(text: str) -> tuple[ChipCount, ...]:
    """``h100-sxm:150000;h200-sxm:50000`` (or ``chip:low-high``) to :class:`ChipCount` s."""
    out: list[ChipCount] = []
    for item in text.split(";"):
        item = item.strip()
        m = _CHIP_ITEM.match(item)
        if not m:
            raise ValueError(f"'{item}' is not 'chip-id:count' or 'chip-id:low-high'")
        low = float(m[2])
        high = float(m[3]) if m[3] else low
        if high < low:
            raise ValueError(f"range '{item}' runs backwards")
        if any(c.chip == m[1] for c in out):
            raise ValueError(f"chip '{m[1]}' appears twice")
        out.append(ChipCount(m[1], (low + high) / 2, low, high))
    return tuple(out)


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrganisationRow(_Row):
    """An organisation: canonical id, display name and the names it also goes by."""

    id: str
    name: str
    aliases: str | None = None
    kind: Literal["company", "aggregate"]
    source: str
    notes: str | None = None

    @property
    def alias_list(self) -> tuple[str, ...]:
        return tuple(a.strip().lower() for a in (self.aliases or "").split(";") if a.strip())


class Holding(_Row):
    """One holding or cluster of one organisation at one date, as one source gives it.

    Fields are declared in the order their cross-checks need (a check on a field sees the fields
    declared before it), so every error names the field at fault."""

    id: str
    org: str
    partners: str | None = None
    name: str
    scope: Scope
    cluster_id: str | None = None
    site: str | None = None
    chips: str | None = None
    untyped_chips: int | None = Field(default=None, ge=0)
    h100e_reported: float | None = Field(default=None, ge=0)
    h100e_reported_by: str | None = None
    h100e_basis: str | None = None
    h100e_basis_metric: Literal["bf16", "fp8"] | None = None
    status: Status
    date: str | None = None
    flags: str | None = None
    power_mw: float | None = Field(default=None, gt=0)
    power_covers: Literal["facility", "facility-calc", "reported", "chip-tdp"] | None = None
    cost_usd: float | None = Field(default=None, gt=0)
    cost_covers: Literal["hardware-calc", "total-capex", "investment", "commitment"] | None = None
    hardware_cost_usd: float | None = Field(default=None, gt=0)
    confidence: Confidence
    source: str
    notes: str | None = None
    mapping_notes: str | None = None
    given_entity: str | None = None
    given_chip: str | None = None
    given_count: str | None = None
    given_status: str | None = None
    given_confidence: str | None = None

    @field_validator("id", "org")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("ids are lower-case letters, digits and hyphens")
        return v

    @field_validator("partners")
    @classmethod
    def _partners(cls, v: str | None) -> str | None:
        for p in (v or "").split(";"):
            if p and not _ID.match(p):
                raise ValueError(f"partner '{p}' is not an organisation id")
        return v

    @field_validator("cluster_id")
    @classmethod
    def _cluster_id(cls, v: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("scope")
        if scope == "cluster" and not v:
            raise ValueError("a cluster row needs a cluster_id (its snapshots at other dates share it)")
        if scope == "total" and v:
            raise ValueError("a total row has no cluster_id")
        if v is not None and not _ID.match(v):
            raise ValueError("ids are lower-case letters, digits and hyphens")
        return v

    @field_validator("chips")
    @classmethod
    def _chips(cls, v: str | None) -> str | None:
        if v is not None:
            parse_chips(v)
        return v

    @field_validator("h100e_reported_by", "h100e_basis")
    @classmethod
    def _reported_by(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("h100e_reported") is not None and not v:
            raise ValueError("a reported H100e needs who computed it and on what basis")
        return v

    @field_validator("status")
    @classmethod
    def _status(cls, v: str, info: ValidationInfo) -> str:
        chips, reported = info.data.get("chips"), info.data.get("h100e_reported")
        if v == "reported-equivalent" and (chips or reported is None):
            raise ValueError("reported-equivalent means no chip mix and a reported H100e")
        if v == "existing" and not chips:
            raise ValueError("an existing row without a chip mix is 'reported-equivalent'")
        return v

    @field_validator("date")
    @classmethod
    def _date(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            if info.data.get("status") != "planned":
                raise ValueError("only planned rows may be undated")
            return v
        parse_period(v)
        return v

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: str | None) -> str | None:
        for f in (v or "").split(";"):
            if f and f not in FLAGS:
                raise ValueError(f"unknown flag '{f}' (allowed: {', '.join(FLAGS)})")
        return v

    @field_validator("power_covers")
    @classmethod
    def _power_covers(cls, v: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("power_mw") is None) != (v is None):
            raise ValueError("power_mw and power_covers go together")
        return v

    @field_validator("cost_covers")
    @classmethod
    def _cost_covers(cls, v: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("cost_usd") is None) != (v is None):
            raise ValueError("cost_usd and cost_covers go together")
        return v

    # --- parsed views ---------------------------------------------------------------------
    @property
    def chip_counts(self) -> tuple[ChipCount, ...]:
        return parse_chips(self.chips) if self.chips else ()

    @property
    def period(self) -> Period | None:
        return parse_period(self.date) if self.date else None

    @property
    def flag_set(self) -> frozenset[str]:
        return frozenset(f for f in (self.flags or "").split(";") if f)

    @property
    def partner_list(self) -> tuple[str, ...]:
        return tuple(p for p in (self.partners or "").split(";") if p)

    @property
    def summable(self) -> bool:
        """Counts towards series and rankings: dated, and neither leased nor unverified."""
        return self.date is not None and not (self.flag_set & NOT_SUMMED)


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    aliases: tuple[str, ...]
    kind: str
    notes: str | None


@dataclass(frozen=True)
class Fleet:
    """Organisations and holdings, cross-checked against the accelerator catalog."""

    orgs: dict[str, Organisation]
    holdings: tuple[Holding, ...]

    def org(self, name: str) -> Organisation:
        """The organisation called ``name`` (its id, display name or an alias, any case)."""
        key = name.strip().lower()
        for o in self.orgs.values():
            if key in (o.id, o.name.lower(), *o.aliases):
                return o
        raise UnknownNameError("organisation", name, self.orgs)

    def holding(self, hid: str) -> Holding:
        for h in self.holdings:
            if h.id == hid:
                return h
        raise UnknownNameError("holding", hid, [h.id for h in self.holdings])

    def of(self, org: str) -> tuple[Holding, ...]:
        """Holdings whose owner/operator is ``org``."""
        oid = self.org(org).id
        return tuple(h for h in self.holdings if h.org == oid)

    def as_partner(self, org: str) -> tuple[Holding, ...]:
        """Holdings another organisation owns with ``org`` as a partner (not counted for ``org``)."""
        oid = self.org(org).id
        return tuple(h for h in self.holdings if oid in h.partner_list)

    def __iter__(self) -> Iterator[Holding]:
        return iter(self.holdings)


def _line_numbers(path: Path) -> list[int]:
    return [line for line, _ in read_rows(path)]


def load_fleet(path: Path | None = None, orgs_path: Path | None = None) -> Fleet:
    """Load and cross-check the fleet dataset.  Any bad row raises :class:`CatalogError` naming the
    file, the line and the field; nothing is returned then."""
    path = path or data_path("fleet.csv")
    orgs_path = orgs_path or data_path("fleet_orgs.csv")
    org_rows = load_models(orgs_path, OrganisationRow, required=("name", "source"))
    orgs = {o.id: Organisation(o.id, o.name, o.alias_list, o.kind, o.notes) for o in org_rows}
    rows = load_models(path, Holding)
    lines = _line_numbers(path)
    chips = load_catalog().accelerators
    for line, h in zip(lines, rows, strict=True):
        if h.org not in orgs:
            raise CatalogError(path.name, line, "org", _unknown("organisation", h.org, orgs))
        for p in h.partner_list:
            if p not in orgs:
                raise CatalogError(path.name, line, "partners", _unknown("organisation", p, orgs))
        for c in h.chip_counts:
            if c.chip not in chips:
                raise CatalogError(path.name, line, "chips", _unknown("chip", c.chip, chips))
    clusters: dict[str, tuple[str, int]] = {}
    for line, h in zip(lines, rows, strict=True):
        if h.cluster_id:
            org, first = clusters.setdefault(h.cluster_id, (h.org, line))
            if org != h.org:
                raise CatalogError(path.name, line, "cluster_id",
                                   f"cluster '{h.cluster_id}' belongs to '{org}' (line {first}), not '{h.org}'")
    return Fleet(orgs, tuple(rows))


def _unknown(kind: str, name: str, valid: Iterable[str]) -> str:
    close = closest(name, list(valid))
    return f"unknown {kind} '{name}'" + (f" (did you mean {', '.join(close)}?)" if close else "")


@lru_cache(maxsize=1)
def fleet() -> Fleet:
    """The packaged fleet dataset, loaded once per process."""
    return load_fleet()
