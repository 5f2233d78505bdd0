"""Capex and power of a chip mix, with every parameter used shown in the result.

Capex (USD)::

    chips_usd  = sum(count x price)            price: catalog range at ``price_point`` (low/mid/high)
    all_in_usd = chips_usd x all_in_capex_multiplier   (servers, network, storage, facility share)

Power (MW at the facility meter)::

    MW = sum(count x TDP x node_overhead) x PUE / 1e6

``node_overhead`` is node power over accelerator power: from the chip's system in the systems
catalog when it lists ``node_power_kw`` (``node_power_kw x 1000 / (gpus_per_node x tdp_w)``; DGX
H100: 10.2 kW / (8 x 700 W) = 1.82), else the ``system_overhead`` parameter (1.82, Epoch AI's
cluster methodology).  ``PUE`` is the ``pue`` parameter.  Each function takes overrides
(``multiplier=``, ``price_point=``, ``pue=``, ``system_overhead=``); a chip with no price or no TDP
in the catalog is listed as such, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from colossim import units
from colossim.catalog import load_catalog
from colossim.errors import ColossimError

PRICE_POINTS = ("low", "mid", "high")


def _pairs(chips: Mapping[str, float] | Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    items = list(chips.items()) if isinstance(chips, Mapping) else list(chips)
    for chip, n in items:
        if n < 0:
            raise ColossimError(f"count of '{chip}' must be >= 0, got {n:g}", field="count", value=n)
    return items


# --- capex ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipCapex:
    chip: str
    count: float
    unit_price_usd: float | None
    usd: float | None


@dataclass(frozen=True)
class Capex:
    """Capex of a chip mix: the chips alone and all-in, with the parameters used."""

    chips_usd: float
    all_in_usd: float
    multiplier: float
    price_point: str
    by_chip: tuple[ChipCapex, ...]
    unpriced: tuple[str, ...]

    @property
    def per_chip_all_in_usd(self) -> float | None:
        n = sum(c.count for c in self.by_chip if c.usd is not None)
        return self.all_in_usd / n if n else None


def capex(chips: Mapping[str, float] | Iterable[tuple[str, float]], multiplier: float | None = None,
          price_point: str | None = None) -> Capex:
    """Capex of ``chips`` (``{chip: count}``): count x catalog price, and x the all-in multiplier."""
    cat = load_catalog()
    multiplier = cat.parameter("all_in_capex_multiplier") if multiplier is None else multiplier
    point = price_point or cat.parameters["price_point"].value
    if point not in PRICE_POINTS:
        raise ColossimError(f"price point must be one of {', '.join(PRICE_POINTS)}, got '{point}'",
                            field="price_point", value=point, allowed=PRICE_POINTS)
    if multiplier < 1:
        raise ColossimError(f"all-in multiplier must be >= 1 (chips are part of the cost), got {multiplier:g}",
                            field="multiplier", value=multiplier)
    rows: list[ChipCapex] = []
    for chip, n in _pairs(chips):
        price = cat.accelerator(chip).price_usd(point)
        rows.append(ChipCapex(cat.accelerator(chip).id, n, price, None if price is None else n * price))
    total = sum(r.usd for r in rows if r.usd is not None)
    return Capex(total, total * multiplier, multiplier, point, tuple(rows),
                 tuple(r.chip for r in rows if r.usd is None and r.count > 0))


# --- power ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipPower:
    chip: str
    count: float
    tdp_w: float | None
    node_overhead: float
    overhead_from: str
    it_w: float | None


@dataclass(frozen=True)
class Power:
    """Facility power of a chip mix (MW), with the chips' own draw and the parameters used."""

    mw: float
    it_mw: float
    chips_mw: float
    pue: float
    by_chip: tuple[ChipPower, ...]
    unpowered: tuple[str, ...]


def node_overhead(chip: str, default: float | None = None) -> tuple[float, str]:
    """Node power / accelerator TDP for ``chip`` and where it came from (a system id, or the
    ``system_overhead`` parameter)."""
    cat = load_catalog()
    acc = cat.accelerator(chip)
    for s in cat.systems.values():
        if s.accelerator == acc.id and s.node_power_kw is not None and acc.tdp_w:
            return s.node_power_kw * units.KILO / (s.gpus_per_node * acc.tdp_w), s.id
    value = cat.parameter("system_overhead") if default is None else default
    return value, "system_overhead parameter"


def power(chips: Mapping[str, float] | Iterable[tuple[str, float]], pue: float | None = None,
          system_overhead: float | None = None) -> Power:
    """Facility power of ``chips``: count x TDP x node overhead x PUE.  ``system_overhead``, when
    given, replaces the systems catalog's overhead for every chip."""
    cat = load_catalog()
    pue = cat.parameter("pue") if pue is None else pue
    if pue < 1:
        raise ColossimError(f"PUE must be >= 1, got {pue:g}", field="pue", value=pue)
    if system_overhead is not None and system_overhead < 1:
        raise ColossimError(f"system overhead must be >= 1, got {system_overhead:g}",
                            field="system_overhead", value=system_overhead)
    rows: list[ChipPower] = []
    for chip, n in _pairs(chips):
        acc = cat.accelerator(chip)
        if system_overhead is not None:
            ovh, src = system_overhead, "system_overhead override"
        else:
            ovh, src = node_overhead(acc.id)
        it = None if acc.tdp_w is None else n * acc.tdp_w * ovh
        rows.append(ChipPower(acc.id, n, acc.tdp_w, ovh, src, it))
    it_w = sum(r.it_w for r in rows if r.it_w is not None)
    chip_w = sum(r.count * r.tdp_w for r in rows if r.tdp_w is not None)
    return Power(units.watts_to_mw(it_w * pue), units.watts_to_mw(it_w), units.watts_to_mw(chip_w), pue,
                 tuple(rows), tuple(r.chip for r in rows if r.it_w is None and r.count > 0))
