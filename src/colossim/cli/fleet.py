"""``colossim fleet``: holdings, time series, growth, comparisons and the largest clusters."""

from __future__ import annotations

from typing import Literal

import typer
from rich.table import Table

from colossim.cli.common import console, emit_json, fmt
from colossim.errors import ColossimError
from colossim.fleet.accounting import (Series, TopClusters, check_metric, series, top_clusters,
                                       value_holding)
from colossim.fleet.dates import parse_date_arg, quarter_number, quarters_between
from colossim.fleet.growth import Growth, growth
from colossim.fleet.holdings import STATUSES, Holding, fleet

app = typer.Typer(help="AI compute holdings by organisation, in H100-equivalents.", no_args_is_help=True)

METRIC_HELP = "H100e metric: bf16 (default), fp8, tf32, hbm_bandwidth, power, price, ... (see `colossim h100e`)."


def _metric_opt() -> str:
    return typer.Option("bf16", "--metric", "-m", help=METRIC_HELP)  # type: ignore[no-any-return]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.0f}%"


def years(x: float | None) -> str:
    if x is None:
        return "-"
    return "never" if x == float("inf") else f"{x:.2f} y"


def _chips_text(h: Holding) -> str:
    text = ", ".join(f"{c.count:,.0f} {c.chip}" if c.low == c.high else f"{c.low:,.0f}-{c.high:,.0f} {c.chip}"
                     for c in h.chip_counts)
    if h.untyped_chips:
        text += (" + " if text else "") + f"{h.untyped_chips:,} untyped"
    return text or "-"


def holdings_table(rows: list[Holding], metric: str, title: str) -> Table:
    t = Table(title=title)
    for c in ("id", "date", "scope", "status", "chips", f"H100e {metric}", "reported", "basis", "flags"):
        t.add_column(c, justify="right" if c.startswith("H100e") or c == "reported" else "left",
                     overflow="fold")
    for h in rows:
        v = value_holding(h, metric)
        basis = h.h100e_basis_metric or ("unstated" if h.h100e_reported is not None else "-")
        t.add_row(h.id, h.date or "undated", h.scope, h.status, _chips_text(h), fmt(v.computed),
                  fmt(h.h100e_reported), basis, (h.flags or "").replace(";", " "))
    return t


def series_table(s: Series, g: Growth, title: str) -> Table:
    t = Table(title=title)
    for c in ("quarter", f"H100e {s.metric}", "QoQ", "YoY", "basis", "of which reported", "holdings"):
        t.add_column(c, justify="left" if c in ("quarter", "basis", "holdings") else "right", overflow="fold")
    for p, gp in zip(s.points, g.points, strict=True):
        t.add_row(p.quarter, fmt(p.h100e), pct(gp.qoq), pct(gp.yoy), p.basis, fmt(p.reported) if p.reported else "-",
                  ", ".join(p.holdings))
    return t


def growth_line(g: Growth) -> str:
    return (f"{g.first_quarter} -> {g.last_quarter} ({g.years:.2f} y): CAGR {pct(g.cagr)}, "
            f"doubling time {years(g.doubling_time_years)}")


def top_table(top: TopClusters) -> Table:
    what = "existing and planned" if top.planned else "existing"
    t = Table(title=f"Largest single clusters at {top.date} ({what}; H100e by {top.metric})")
    for c in ("#", "cluster", "org", "snapshot", f"H100e {top.metric}", "value is", "chips", "conf."):
        t.add_column(c, justify="right" if c in ("#", f"H100e {top.metric}") else "left", overflow="fold")
    f = fleet()
    for r in top.clusters:
        t.add_row(str(r.rank), r.cluster_id, r.org, r.date, fmt(r.h100e), r.value_is,
                  _chips_text(f.holding(r.holding_id)), r.confidence)
    return t


@app.command("list")
def list_holdings(org: str | None = typer.Option(None, help="Only this organisation."),
                  status: str | None = typer.Option(None, help=f"Only this status: {', '.join(STATUSES)}."),
                  metric: str = _metric_opt(),
                  json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every holding in the dataset, with colossim's H100e beside the reported one."""
    check_metric(metric)
    f = fleet()
    rows = list(f.of(org) if org else f.holdings)
    if status is not None:
        if status not in STATUSES:
            raise ColossimError(f"unknown status '{status}': valid: {', '.join(STATUSES)}", field="status",
                                value=status, allowed=STATUSES)
        rows = [h for h in rows if h.status == status]
    if json_out:
        emit_json([{"holding": h, "valuation": value_holding(h, metric)} for h in rows])
        return
    console.print(holdings_table(rows, metric, f"Holdings ({len(rows)} rows; H100e computed from chips by {metric})"))


@app.command("show")
def show(org: str = typer.Argument(..., help="Organisation, e.g. tesla, meta, xai."),
         metric: str = _metric_opt(),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One organisation: its holdings, where it is a partner, and its H100e series."""
    check_metric(metric)
    f = fleet()
    o = f.org(org)
    own, partner = f.of(o.id), f.as_partner(o.id)
    existing, planned = series(f, o.id, metric), series(f, o.id, metric, "planned")
    if json_out:
        emit_json({"organisation": o, "holdings": [{"holding": h, "valuation": value_holding(h, metric)} for h in own],
                   "as_partner": [h.id for h in partner], "existing": existing, "planned": planned,
                   "growth": growth(existing)})
        return
    console.print(holdings_table(list(own), metric, f"{o.name}: holdings"))
    if partner:
        console.print(f"As partner (counted for their owners): {', '.join(f'{h.id} ({h.org})' for h in partner)}",
                      style="dim")
    if existing.points:
        console.print(series_table(existing, growth(existing), f"{o.name}: H100e by quarter (existing)"))
        console.print(growth_line(growth(existing)))
    if planned.points and planned.pairs() != existing.pairs():
        last = planned.points[-1]
        console.print(f"With planned rows: {fmt(last.h100e)} H100e at {last.quarter} ({', '.join(last.holdings)})")
    undated = [h.id for h in own if h.date is None]
    if undated:
        console.print(f"Undated planned rows (not in the series): {', '.join(undated)}", style="dim")


@app.command("growth")
def growth_cmd(org: str = typer.Argument(..., help="Organisation."),
               metric: str = _metric_opt(),
               planned: bool = typer.Option(False, "--planned", help="Include planned rows."),
               json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Quarter-on-quarter and year-on-year growth, CAGR and doubling time of an organisation's H100e."""
    f = fleet()
    status: Literal["existing", "planned"] = "planned" if planned else "existing"
    s = series(f, org, metric, status)
    g = growth(s)
    if json_out:
        emit_json({"series": s, "growth": g})
        return
    name = f.org(org).name
    console.print(series_table(s, g, f"{name}: H100e growth ({'with planned' if planned else 'existing'})"))
    if g.points:
        console.print(growth_line(g))


@app.command("compare")
def compare(orgs: list[str] = typer.Argument(..., help="Two or more organisations."),
            metric: str = _metric_opt(),
            planned: bool = typer.Option(False, "--planned", help="Include planned rows."),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Organisations side by side, quarter by quarter."""
    check_metric(metric)
    f = fleet()
    ids = list(dict.fromkeys(f.org(o).id for o in orgs))
    status: Literal["existing", "planned"] = "planned" if planned else "existing"
    first = [series(f, o, metric, status) for o in ids]
    quarters = sorted({p.quarter for s in first for p in s.points}, key=quarter_number)
    if not quarters:
        raise ColossimError(f"no dated holdings for {', '.join(ids)}", field="org", value=orgs)
    all_q = quarters_between(quarters[0], quarters[-1])
    full = [series(f, o, metric, status, last=all_q[-1]) for o in ids]
    growths = [growth(s) for s in first]
    if json_out:
        emit_json({"metric": metric, "series": full, "growth": dict(zip(ids, growths, strict=True))})
        return
    t = Table(title=f"H100e by quarter ({metric}; {'with planned' if planned else 'existing'})")
    t.add_column("quarter")
    for o in ids:
        t.add_column(o, justify="right")
    for q in all_q:
        t.add_row(q, *[fmt(p.h100e) if (p := s.at(q)) else "-" for s in full])
    t.add_row("CAGR", *[pct(g.cagr) for g in growths], style="bold")
    t.add_row("doubling", *[years(g.doubling_time_years) for g in growths], style="bold")
    console.print(t)


@app.command("top")
def top(date: str = typer.Option(..., "--date", "-d", help="Date: YYYY-MM, YYYY-Qn or YYYY-Hn."),
        n: int = typer.Option(10, "--n", help="How many clusters."),
        metric: str = _metric_opt(),
        planned: bool = typer.Option(False, "--planned", help="Include planned snapshots."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The largest single clusters at a date (latest snapshot of each, ranked by H100e)."""
    result = top_clusters(fleet(), parse_date_arg(date), n, metric, planned)
    if json_out:
        emit_json(result)
        return
    console.print(top_table(result))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="fleet")
