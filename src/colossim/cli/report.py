"""``colossim report``: the seed report as rich tables, or as an offline HTML page with Plotly charts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from colossim.cli.claims import claims_table
from colossim.cli.common import console, emit_json, fmt
from colossim.cli.fleet import pct, top_table, years
from colossim.planning.report import OrgSummary, SeedReport, build_report, report_html


def _usd_b(x: float) -> str:
    return "-" if not x else f"{x / 1e9:,.1f}"


def _from(o: OrgSummary) -> str:
    if o.rule == "clusters":
        return "clusters"
    return "reported total" if o.reported_h100e >= o.h100e > 0 else "computed total"


def orgs_table(r: SeedReport) -> Table:
    t = Table(title=f"Organisations at the last quarter their data reaches (H100e by {r.metric})")
    cols = ("org", "quarter", "H100e", "from", "YoY", "CAGR", "since", "doubling", "typed H100e", "capex $B",
            "all-in $B", "power MW", "planned")
    for c in cols:
        t.add_column(c, justify="left" if c in ("org", "quarter", "from", "since", "planned") else "right",
                     no_wrap=c != "planned")
    for o in r.orgs:
        like = o.growth_like
        yoy = like.points[-1].yoy if like.points else None
        t.add_row(o.org, o.quarter, fmt(o.h100e), _from(o), pct(yoy), pct(like.cagr),
                  like.first_quarter if like.cagr is not None else "-", years(like.doubling_time_years),
                  fmt(o.typed_h100e) if o.typed_h100e else "-", _usd_b(o.capex.chips_usd),
                  _usd_b(o.capex.all_in_usd), fmt(o.power.mw) if o.power.mw else "-",
                  f"{fmt(o.planned_h100e)} by {o.planned_quarter}" if o.planned_quarter else "-")
    return t


def years_table(r: SeedReport) -> Table:
    t = Table(title=f"H100e at each year end ({r.metric}; the last column is the latest quarter)")
    t.add_column("organisation")
    for q in r.year_ends:
        t.add_column(q, justify="right")
    for s in r.series:
        t.add_row(s.org, *[fmt(p.h100e) if (p := s.at(q)) else "-" for q in r.year_ends])
    return t


def report_command(html: Path | None = typer.Option(None, "--html", help="Write the report as HTML with charts."),
                   metric: str = typer.Option("bf16", "--metric", "-m", help="H100e metric."),
                   json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The seed report: H100e over time, growth, capex and power, the largest clusters, the claims."""
    r = build_report(metric)
    if html is not None:
        from colossim.charts import write_html  # Because: charts (numpy) only when a chart is asked for

        write_html(html, report_html(r))
        console.print(f"wrote {html} ({html.stat().st_size / 1e6:.1f} MB, opens offline)")
        return
    if json_out:
        emit_json(r)
        return
    console.print("[bold]colossim seed report[/]  " + "; ".join(f"{k} = {v}" for k, v in r.parameters), style="")
    console.print(orgs_table(r))
    console.print("from: an organisation's whole-fleet total or the sum of its named clusters, whichever is larger "
                  "(never both). YoY, CAGR and doubling are like for like: only the quarters since the basis last "
                  "changed. Capex and power cover the typed H100e (chips the data names): capex = count x price "
                  "(x all-in multiplier); power = count x TDP x node overhead x PUE.", style="dim")
    console.print(years_table(r))
    for top in r.tops:
        console.print(top_table(top))
    console.print(claims_table(r.claims, compact=True))
    console.print(scale_table())


def scale_table() -> Table:
    """Reliability at the scale of the clusters in the news (the reliability engine)."""
    from colossim.planning.at_scale import STATE_PARAMS, TARGET_ETTR, scale_rows

    t = Table(title=f"Failures at scale (Llama 3 failure rates; {STATE_PARAMS / 1e9:.0f}B-parameter state; "
                    f"ETTR target {TARGET_ETTR:.0%})")
    for c in ("cluster", "H100", "interruptions/day", "MTTF min", "best interval min", "ETTR at best",
              f"intervals for {TARGET_ETTR:.0%}", "storage GB/s needed"):
        t.add_column(c, justify="left" if c == "cluster" else "right")
    for row in scale_rows():
        rng = "unreachable" if row.interval_range_min is None else \
            f"{row.interval_range_min[0]:.1f}-{row.interval_range_min[1]:.1f}"
        bw = "unreachable" if row.bandwidth_needed_gb_per_s is None else f"{row.bandwidth_needed_gb_per_s:,.0f}"
        t.add_row(row.name, f"{row.gpus:,}", f"{row.interruptions_per_day:.1f}", f"{row.mttf_minutes:.0f}",
                  f"{row.optimal_interval_min:.1f}", f"{row.ettr_at_optimum:.1%}", rng, bw)
    return t


def register(root: typer.Typer) -> None:
    root.command("report")(report_command)
