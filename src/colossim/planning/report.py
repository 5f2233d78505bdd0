"""The seed report: each organisation's H100e over time, growth, capex and power, the largest
clusters, and the claim checks -- built once as data (:func:`build_report`), then rendered as rich
tables by the CLI or as an offline HTML page with Plotly charts (:func:`report_html`).

Capex and power of an organisation are computed from the chips the dataset types: all of its latest
H100e when that comes from its clusters, only its named clusters when it comes from a reported total
(the ``typed_h100e`` column says how much is covered).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from colossim.catalog import load_catalog
from colossim.fleet.accounting import REPORTED_KEY, Series, TopClusters, check_metric, point_at, series, top_clusters
from colossim.fleet.claims import ClaimCheck, check_all
from colossim.fleet.costs import Capex, Power, capex, power
from colossim.fleet.dates import quarter_label
from colossim.fleet.growth import Growth, growth
from colossim.fleet.holdings import Fleet, fleet

#: Because: the news items this report was built for (Colossus online, the Tesla and Meta claims)
#: are dated September 2024; the ranking there is shown beside the latest one.
NEWS_DATE = "2024-09"
TOP_N = 10


@dataclass(frozen=True)
class OrgSummary:
    """One organisation at the last quarter its data reaches.

    ``growth`` covers its whole series; ``growth_like`` only the trailing quarters on the same basis
    as the last one (a series that moves from named clusters to a whole-fleet estimate, or between
    two sources' H100e bases, jumps where the basis changes; like for like, it does not)."""

    org: str
    name: str
    kind: str
    quarter: str
    h100e: float
    rule: str
    reported_h100e: float
    typed_h100e: float
    growth: Growth
    growth_like: Growth
    capex: Capex
    power: Power
    planned_quarter: str | None
    planned_h100e: float | None


@dataclass(frozen=True)
class SeedReport:
    metric: str
    parameters: tuple[tuple[str, str], ...]
    orgs: tuple[OrgSummary, ...]
    series: tuple[Series, ...]
    year_ends: tuple[str, ...]
    tops: tuple[TopClusters, ...]
    claims: tuple[ClaimCheck, ...]

    def series_of(self, org: str) -> Series:
        return next(s for s in self.series if s.org == org)


def _last_quarter(f: Fleet) -> str:
    ends = [h.period.end for h in f if h.summable and h.status != "planned" and h.period]
    return quarter_label(max(ends))


def _summary(f: Fleet, oid: str, metric: str) -> OrgSummary:
    o = f.orgs[oid]
    s = series(f, oid, metric)
    last = s.points[-1]
    i = len(s.points) - 1
    while i > 0 and s.points[i - 1].basis == last.basis:
        i -= 1
    like = s.points[i:]
    typed = point_at(f, oid, last.quarter, metric, rule="clusters") if last.rule == "total" else last
    chips = dict(typed.chips) if typed else {}
    planned = series(f, oid, metric, "planned")
    p_last = planned.points[-1] if planned.points else None
    show_planned = p_last is not None and p_last.h100e > last.h100e
    return OrgSummary(oid, o.name, o.kind, last.quarter, last.h100e, last.rule, last.reported,
                      typed.computed if typed else 0.0, growth(s),
                      growth([(p.quarter, p.h100e) for p in like]), capex(chips), power(chips),
                      p_last.quarter if show_planned and p_last else None,
                      p_last.h100e if show_planned and p_last else None)


def build_report(metric: str = "bf16", f: Fleet | None = None) -> SeedReport:
    """Everything the seed report shows, as data."""
    check_metric(metric)
    f = f or fleet()
    last = _last_quarter(f)
    all_series = [series(f, oid, metric, last=last) for oid in f.orgs]
    all_series = [s for s in all_series if s.points]
    orgs = sorted((_summary(f, s.org, metric) for s in all_series),
                  key=lambda o: (o.kind == "aggregate", -o.h100e))
    first_year = min(int(s.points[0].quarter[:4]) for s in all_series)
    year_ends = [f"{y}-Q4" for y in range(first_year, int(last[:4]) + (1 if last.endswith("Q4") else 0))]
    if last not in year_ends:
        year_ends.append(last)
    cluster_ends = [h.period.end for h in f if h.scope == "cluster" and h.summable and h.status != "planned"
                    and h.period]
    latest_cluster = quarter_label(max(cluster_ends))
    tops = (top_clusters(f, NEWS_DATE, TOP_N, metric), top_clusters(f, latest_cluster, TOP_N, metric))
    cat = load_catalog()
    params = (("metric", metric), ("price_point", cat.parameters["price_point"].value),
              ("all_in_capex_multiplier", cat.parameters["all_in_capex_multiplier"].value),
              ("system_overhead (default)", cat.parameters["system_overhead"].value),
              ("pue", cat.parameters["pue"].value))
    order = [o.org for o in orgs]
    return SeedReport(metric, params, tuple(orgs), tuple(sorted(all_series, key=lambda s: order.index(s.org))),
                      tuple(year_ends), tops, check_all())


# --- HTML ---------------------------------------------------------------------------------------
def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{x * 100:+.0f}%"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _table(headers: list[str], rows: list[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures(r: SeedReport) -> list[str]:
    import plotly.graph_objects as go  # Because: plotly is imported only when HTML is asked for

    from colossim.charts import chart_title

    figs: list[go.Figure] = []
    over = go.Figure()
    for s in r.series:
        over.add_trace(go.Scatter(x=[p.quarter for p in s.points], y=[p.h100e for p in s.points],
                                  mode="lines+markers", name=s.org, line={"shape": "hv"}))
    # quarters in time order: a category axis orders them as the traces first name them, which put
    # one organisation's 2020 quarters after 2026 (tests/browser); one series alone is in time order
    # already (fleet.accounting.series walks quarters_between)
    over.update_xaxes(categoryorder="array", categoryarray=sorted({p.quarter for s in r.series for p in s.points}))
    over.update_layout(title=chart_title(f"H100-equivalents over time by organisation ({r.metric}; log scale)"),
                       yaxis_type="log", yaxis_title="H100e", height=520)
    figs.append(over)
    for s in r.series:
        chips = sorted({c for p in s.points for c, _ in p.by_chip}, key=lambda c: (c == REPORTED_KEY, c))
        fig = go.Figure()
        for chip in chips:
            fig.add_trace(go.Bar(x=[p.quarter for p in s.points],
                                 y=[dict(p.by_chip).get(chip, 0.0) for p in s.points], name=chip))
        fig.update_layout(barmode="stack", height=380, yaxis_title="H100e",
                          title=chart_title(f"{s.org}: H100e by chip ({r.metric}; '{REPORTED_KEY}' = the source's "
                                            "own H100e)"))
        figs.append(fig)
    return [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]


def report_html(r: SeedReport) -> str:
    """The seed report as one self-contained HTML page (plotly.js inline: it opens offline)."""
    orgs = [[o.name, o.quarter, _fmt(o.h100e), o.rule, _fmt(o.reported_h100e), _fmt(o.growth.cagr, True),
             _fmt(o.growth.doubling_time_years), _fmt(o.typed_h100e), _fmt(o.capex.chips_usd / 1e9),
             _fmt(o.capex.all_in_usd / 1e9), _fmt(o.power.mw),
             f"{_fmt(o.planned_h100e)} @ {o.planned_quarter}" if o.planned_quarter else "-"] for o in r.orgs]
    years = [[s.org] + [_fmt(p.h100e) if (p := s.at(q)) else "-" for q in r.year_ends] for s in r.series]
    tops = [_table(["#", "cluster", "org", "date", f"H100e ({t.metric})", "value is", "chips"],
                   [[str(c.rank), c.cluster_id, c.org, c.date, _fmt(c.h100e), c.value_is, c.chips]
                    for c in t.clusters], f"Largest clusters at {t.date}") for t in r.tops]
    claims = [[c.claim_id, c.claim, f"{c.who}; {c.published_by}", c.computed,
               "-" if c.ratio is None else f"{c.ratio:.2f}", c.verdict, c.why] for c in r.claims]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>colossim seed report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
        "caption{font-weight:bold;text-align:left}</style></head><body>",
        "<h1>colossim seed report</h1>",
        "<p>" + html.escape("; ".join(f"{k} = {v}" for k, v in r.parameters)) + "</p>",
        _table(["organisation", "quarter", "H100e", "from", "of which reported", "CAGR", "doubling (y)",
                "typed H100e", "capex chips $B", "capex all-in $B", "power MW", "planned"], orgs,
               "Organisations at their latest quarter"),
        _table(["organisation", *r.year_ends], years, f"H100e at each year end ({r.metric})"),
        *_figures(r), *tops,
        _table(["claim", "text", "who / where", "colossim computes", "ratio", "verdict", "why"], claims,
               "Claim checks"),
        "</body></html>",
    ]
    return "\n".join(parts)
