"""Fleet accounting: H100e of holdings, per-organisation time series, and the largest clusters.

Every number states its metric (see :mod:`colossim.fleet.h100e`) and whether it was *computed* by
colossim from the chip mix or *reported* by the source (with who and on what basis).  A holding with
a chip mix is valued from its chips; one without (status ``reported-equivalent``, or a planned
target) falls back to its reported H100e, and the result says so.

The time-series rule (no double counting)
-----------------------------------------
For an organisation and a quarter Q, over the organisation's own rows (not those where it is only a
partner) that are dated at or before the end of Q, are summable (neither ``leased`` nor
``unverified``) and carry a value:

1. *total*: the latest ``scope=total`` row.  Several totals at that latest date are alternative
   estimates of the same fleet: the existing one beats a planned one, then the higher confidence,
   then the larger value.
2. *clusters*: for each ``cluster_id`` the latest snapshot (ties broken the same way), summed over
   clusters.  Snapshots of one cluster replace each other; they never add.
3. The point is the larger of the two -- never their sum.  A total and the clusters it contains are
   the same chips.  The total wins while it is current; when the known clusters alone exceed it, the
   total is stale (older, or ``partial``: NVIDIA only, H100 only) and the clusters are the better
   lower bound.  The point records which rule gave it (``total`` or ``clusters``).

The ``existing`` series uses rows with status ``existing`` or ``reported-equivalent``; the
``planned`` series adds planned rows, so a planned snapshot of a cluster replaces its existing one from
the planned date on (what the organisation will hold if its plans land).  Undated rows are in
neither.  A series starts at the quarter of the organisation's first summable row and holds each
value until a later row replaces it (no retirements: the sources record none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from colossim.errors import ColossimError, UnknownNameError
from colossim.fleet.dates import Period, parse_date_arg, quarter_end, quarter_label, quarters_between
from colossim.fleet.h100e import h100e, metrics
from colossim.fleet.holdings import CONFIDENCE_RANK, Fleet, Holding

ValueIs = Literal["computed", "reported", "none"]
#: the key under which a series' reported-only H100e appears in ``by_chip``
REPORTED_KEY = "reported (no chip mix)"


@dataclass(frozen=True)
class ChipValue:
    """H100e of one chip of a holding's mix; ``h100e`` is None when the metric cannot value it."""

    chip: str
    count: float
    h100e: float | None
    reason: str | None = None


@dataclass(frozen=True)
class Valuation:
    """A holding's H100e by ``metric``, computed from its chips, beside the reported figure."""

    holding_id: str
    metric: str
    computed: float | None
    by_chip: tuple[ChipValue, ...]
    reported: float | None
    reported_by: str | None
    reported_basis: str | None
    value: float | None
    value_is: ValueIs
    partial: bool

    @property
    def ratio_to_reported(self) -> float | None:
        """computed / reported, when both exist (how far the source's basis is from ``metric``)."""
        if self.computed is None or not self.reported:
            return None
        return self.computed / self.reported


def check_metric(metric: str) -> str:
    if metric not in metrics():
        raise UnknownNameError("metric", metric, metrics())
    return metric


def value_holding(h: Holding, metric: str = "bf16") -> Valuation:
    """H100e of holding ``h`` by ``metric``: computed from the chip mix when there is one (chips the
    metric cannot value are listed, not guessed), else the reported figure, flagged as such."""
    check_metric(metric)
    parts: list[ChipValue] = []
    for c in h.chip_counts:
        try:
            parts.append(ChipValue(c.chip, c.count, h100e(c.chip, c.count, metric).h100e))
        except ColossimError as e:
            parts.append(ChipValue(c.chip, c.count, None, str(e)))
    valued = [p.h100e for p in parts if p.h100e is not None]
    computed = sum(valued) if valued else None
    unvalued = len(valued) < len(parts) or bool(h.untyped_chips)
    value_is: ValueIs
    if computed is not None:
        value, value_is = computed, "computed"
    elif h.h100e_reported is not None and "cost-equivalent" not in h.flag_set:
        value, value_is = h.h100e_reported, "reported"
    else:
        value, value_is = None, "none"
    return Valuation(h.id, metric, computed, tuple(parts), h.h100e_reported, h.h100e_reported_by,
                     h.h100e_basis, value, value_is, unvalued or "partial" in h.flag_set)


# --- time series ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesPoint:
    """An organisation's H100e at the end of ``quarter``."""

    quarter: str
    h100e: float
    rule: Literal["total", "clusters"]
    computed: float
    reported: float
    by_chip: tuple[tuple[str, float], ...]
    chips: tuple[tuple[str, float], ...]
    holdings: tuple[str, ...]
    #: what the value rests on: ``clusters``, ``total computed`` or ``total reported (<basis>)``;
    #: growth between points on different bases compares different measures
    basis: str = ""


@dataclass(frozen=True)
class Series:
    org: str
    metric: str
    status: Literal["existing", "planned"]
    points: tuple[SeriesPoint, ...]

    def at(self, quarter: str) -> SeriesPoint | None:
        for p in self.points:
            if p.quarter == quarter:
                return p
        return None

    def pairs(self) -> list[tuple[str, float]]:
        return [(p.quarter, p.h100e) for p in self.points]


def _in_series(h: Holding, status: str) -> bool:
    allowed = ("existing", "reported-equivalent") + (("planned",) if status == "planned" else ())
    return h.summable and h.status in allowed


def _pick(rows: list[tuple[Holding, Valuation]]) -> tuple[Holding, Valuation]:
    """The row that stands for a cluster (or the org's total): latest date, then existing over
    planned, then higher confidence, then the larger value."""
    def key(hv: tuple[Holding, Valuation]) -> tuple:
        h, v = hv
        p = h.period
        assert p is not None  # summable rows are dated
        return (-p.end, h.status == "planned", CONFIDENCE_RANK[h.confidence], -(v.value or 0.0))
    return min(rows, key=key)


def _point(quarter: str, chosen: list[tuple[Holding, Valuation]], rule: Literal["total", "clusters"]) -> SeriesPoint:
    by_chip: dict[str, float] = {}
    counts: dict[str, float] = {}
    computed = reported = 0.0
    for h, v in chosen:
        if v.value_is == "computed":
            computed += v.value or 0.0
            for c in v.by_chip:
                if c.h100e is not None:
                    by_chip[c.chip] = by_chip.get(c.chip, 0.0) + c.h100e
            for cc in h.chip_counts:
                counts[cc.chip] = counts.get(cc.chip, 0.0) + cc.count
        elif v.value_is == "reported":
            reported += v.value or 0.0
            by_chip[REPORTED_KEY] = by_chip.get(REPORTED_KEY, 0.0) + (v.value or 0.0)
    if rule == "clusters":
        basis = "clusters"
    elif chosen[0][1].value_is == "computed":
        basis = "total computed"
    else:
        basis = f"total reported ({chosen[0][0].h100e_basis_metric or 'unstated'})"
    return SeriesPoint(quarter, computed + reported, rule, computed, reported,
                       tuple(sorted(by_chip.items())), tuple(sorted(counts.items())),
                       tuple(h.id for h, _ in chosen), basis)


def _valued_rows(fleet: Fleet, org: str, metric: str, status: str) -> list[tuple[Holding, Valuation]]:
    rows = [(h, value_holding(h, metric)) for h in fleet.of(org) if _in_series(h, status)]
    return [(h, v) for h, v in rows if v.value is not None]


Rule = Literal["auto", "total", "clusters"]


def _point_from(rows: list[tuple[Holding, Valuation]], end_month: int, label: str,
                rule: Rule = "auto") -> SeriesPoint | None:
    rows = [(h, v) for h, v in rows if h.period is not None and h.period.end <= end_month]
    if not rows:
        return None
    totals = [hv for hv in rows if hv[0].scope == "total"] if rule != "clusters" else []
    total = _point(label, [_pick(totals)], "total") if totals else None
    if rule == "total":
        return total
    by_cluster: dict[str, list[tuple[Holding, Valuation]]] = {}
    for hv in rows:
        if hv[0].scope == "cluster":
            by_cluster.setdefault(hv[0].cluster_id or "", []).append(hv)
    clusters = _point(label, [_pick(v) for v in by_cluster.values()], "clusters") if by_cluster else None
    if total is None:
        return clusters
    if clusters is None or total.h100e >= clusters.h100e:
        return total
    return clusters


def point_at(fleet: Fleet, org: str, date: str | Period, metric: str = "bf16",
             status: Literal["existing", "planned"] = "existing", rule: Rule = "auto") -> SeriesPoint | None:
    """The organisation's H100e at ``date`` (a month, quarter or half; its last month counts) by the
    rule in the module docstring (``rule="clusters"`` or ``"total"``: that part alone); None before
    its first row."""
    check_metric(metric)
    period = date if isinstance(date, Period) else parse_date_arg(date)
    oid = fleet.org(org).id
    return _point_from(_valued_rows(fleet, oid, metric, status), period.end, period.text, rule)


def series(fleet: Fleet, org: str, metric: str = "bf16", status: Literal["existing", "planned"] = "existing",
           first: str | None = None, last: str | None = None) -> Series:
    """Quarterly H100e of ``org`` from its first row (or ``first``) to its last (or ``last``); see
    the module docstring for the rule."""
    check_metric(metric)
    oid = fleet.org(org).id
    rows = _valued_rows(fleet, oid, metric, status)
    points: list[SeriesPoint] = []
    if rows:
        ends = [h.period.end for h, _ in rows if h.period]
        q0 = first or quarter_label(min(ends))
        q1 = last or quarter_label(max(ends))
        for q in quarters_between(q0, q1):
            p = _point_from(rows, quarter_end(q), q)
            if p is not None:
                points.append(p)
    return Series(oid, metric, status, tuple(points))


# --- largest clusters -----------------------------------------------------------------------
@dataclass(frozen=True)
class RankedCluster:
    rank: int
    cluster_id: str
    org: str
    name: str
    holding_id: str
    date: str
    status: str
    h100e: float
    value_is: ValueIs
    metric: str
    chips: str
    reported: float | None
    reported_basis: str | None
    confidence: str


@dataclass(frozen=True)
class TopClusters:
    date: str
    metric: str
    planned: bool
    clusters: tuple[RankedCluster, ...]


def top_clusters(fleet: Fleet, date: str | Period, n: int = 10, metric: str = "bf16",
                 planned: bool = False, orgs: Iterable[str] | None = None) -> TopClusters:
    """The ``n`` largest single clusters at ``date`` by H100e (``metric``): the latest snapshot of
    each ``cluster_id`` at or before the date, existing (and reported-equivalent) only unless
    ``planned``.  Totals, leased and unverified rows are not clusters here."""
    check_metric(metric)
    if n < 1:
        raise ColossimError(f"n must be >= 1, got {n}", field="n", value=n)
    period = date if isinstance(date, Period) else parse_date_arg(date)
    status = "planned" if planned else "existing"
    only = {fleet.org(o).id for o in orgs} if orgs is not None else None
    groups: dict[str, list[tuple[Holding, Valuation]]] = {}
    for h in fleet:
        if h.scope != "cluster" or not _in_series(h, status) or (only and h.org not in only):
            continue
        if h.period is None or h.period.end > period.end:
            continue
        v = value_holding(h, metric)
        if v.value is not None:
            groups.setdefault(h.cluster_id or "", []).append((h, v))
    # largest first; ties go to the earlier snapshot (it got there first), then the id
    picked = sorted((_pick(g) for g in groups.values()),
                    key=lambda hv: (-(hv[1].value or 0.0), hv[0].period.end if hv[0].period else 0, hv[0].cluster_id))
    out = tuple(
        RankedCluster(i, h.cluster_id or "", h.org, h.name, h.id, h.date or "", h.status, v.value or 0.0,
                      v.value_is, metric, h.chips or "", h.h100e_reported, h.h100e_basis, h.confidence)
        for i, (h, v) in enumerate(picked[:n], start=1))
    return TopClusters(period.text, metric, planned, out)
