"""Small helpers shared by the built-in evaluators: formatting and chip counts of clusters."""

from __future__ import annotations

from colossim.fleet.accounting import top_clusters
from colossim.fleet.holdings import Fleet


def n(x: float | None) -> str:
    """A count: 39,145."""
    return "-" if x is None else f"{x:,.0f}"


def usd(x: float | None) -> str:
    """Dollars: $1.14B, $336M, $50,400."""
    if x is None:
        return "-"
    if abs(x) >= 1e9:
        return f"${x / 1e9:.2f}B"
    if abs(x) >= 1e6:
        return f"${x / 1e6:.0f}M"
    return f"${x:,.0f}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.0f}%"


def cluster_chips(fleet: Fleet, org: str, date: str) -> dict[str, float]:
    """Chip counts summed over the organisation's clusters at ``date`` (latest snapshot of each)."""
    out: dict[str, float] = {}
    for r in top_clusters(fleet, date, n=10_000, orgs=[org]).clusters:
        for c in fleet.holding(r.holding_id).chip_counts:
            out[c.chip] = out.get(c.chip, 0.0) + c.count
    return out
