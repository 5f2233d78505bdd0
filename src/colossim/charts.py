"""Charts as self-contained HTML pages (Plotly, plotly.js inline: they open offline).

The figure builders take the engine's results and return ``plotly.graph_objects.Figure`` objects,
so that the CLI, a notebook or a web service can show the same charts; :func:`html_page` wraps
figures in a page and :func:`write_html` writes it without ever leaving half a file behind.
Plotly is imported only when a chart is asked for.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from colossim.outfiles import write_text_whole
from colossim.training.labels import plan_label
from colossim.training.plans import RECOMPUTE_CODES

#: Most plans a search chart draws.  Because: beyond a few tens of thousands of points the page
#: grows to tens of MB and pans slowly; the fastest plans are the ones kept, so the best are
#: always in the chart (slow plans that need little memory may not be).
MAX_PLANS_PLOTTED = 20_000

#: Colours of a search chart: the plans by recompute policy (saturated), the best plans' rings,
#: and the parts of a step (pale, the compute grey) so that the two panels cannot be confused.
RECOMPUTE_COLOURS = {"full": "#9467bd", "selective": "#17becf", "none": "#1f77b4"}
BEST_COLOUR = "#d62728"
TIME_COLOURS = {"compute": "#c7c7c7", "recompute": "#8c8c8c", "tp_comm": "#ff9896", "cp_comm": "#98df8a",
                "ep_comm": "#c5b0d5", "pp_comm": "#ffbb78", "dp_comm": "#f7b6d2", "pipeline_bubble": "#dbdb8d",
                "optimizer_step": "#9edae5", "host_overhead": "#c49c94"}


#: Characters per line of a chart's title.  Because: Plotly does not wrap a title, and one line of
#: its 17 px title font holds about 90 characters in a 900 px window; a longer one is cut off at
#: the page's edge (tests/browser).
TITLE_LINE_CHARS = 80


def chart_title(text: str) -> str:
    """``text`` as a Plotly title: broken into lines of at most :data:`TITLE_LINE_CHARS`
    characters, at spaces."""
    return "<br>".join(textwrap.wrap(text, TITLE_LINE_CHARS, break_long_words=False)) or text


def html_page(figures: Sequence, title: str) -> str:
    """``figures`` one below the other in one page; plotly.js is inlined once."""
    body = "\n".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body>{body}</body></html>")


def write_html(path: Path, text: str) -> None:
    """Write a page to ``path`` whole or not at all (:func:`colossim.outfiles.write_text_whole`);
    an error names the ``html`` option."""
    write_text_whole(path, text, "html")


def _plotted(space, limit: int) -> np.ndarray:
    """Indices of the plans a search chart draws: all of them, or the ``limit`` fastest."""
    n = len(space)
    if n <= limit:
        return np.arange(n)
    return np.argsort(space.step_time_s, kind="stable")[:limit]


def search_figure(result, title: str, hbm_gib: float | None = None, limit: int = MAX_PLANS_PLOTTED):
    """A search at a glance.  Left: every plan priced, memory per GPU against tokens/s/GPU, one
    colour per recompute policy, the best plans ringed and numbered, the GPU's HBM as a line.
    Right: the time per step of the best plans, stacked by part (``time_breakdown_s``)."""
    import plotly.graph_objects as go  # Because: plotly is imported only when a chart is asked for
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.08,
                        subplot_titles=("every plan priced: memory against throughput",
                                        "time per step of the best plans"))
    space = result.space
    if space is not None and len(space):
        idx = _plotted(space, limit)
        rec = np.asarray(space.plans.recompute)[idx]
        for name in RECOMPUTE_COLOURS:  # full first, so that the others are drawn over it
            sel = idx[rec == RECOMPUTE_CODES[name]]
            if sel.size == 0:
                continue
            labels = [f"{plan_label(space.plans.plan_dict(int(i)))}<br>step {space.step_time_s[i]:.3g} s"
                      for i in sel]
            fig.add_trace(go.Scattergl(
                x=space.memory_gib_per_gpu[sel], y=space.tokens_per_s_per_gpu[sel], mode="markers",
                name=f"recompute {name}", marker={"size": 5, "opacity": 0.55, "color": RECOMPUTE_COLOURS[name]},
                text=labels, hovertemplate="%{text}<br>%{x:.1f} GiB/GPU, %{y:,.0f} tok/s/GPU<extra></extra>"),
                row=1, col=1)
    best = list(result.best)
    fig.add_trace(go.Scatter(
        x=[e.memory_gib_per_gpu for e in best], y=[e.tokens_per_s_per_gpu for e in best],
        mode="markers+text", name=f"best {len(best)}", text=[str(i) for i in range(1, len(best) + 1)],
        textposition="top center",
        marker={"size": 12, "symbol": "circle-open", "color": BEST_COLOUR, "line": {"width": 2}},
        customdata=[plan_label(e.parallelism) for e in best],
        hovertemplate="#%{text}: %{customdata}<br>%{x:.1f} GiB/GPU, %{y:,.0f} tok/s/GPU<extra></extra>"),
        row=1, col=1)
    if hbm_gib is not None:
        fig.add_vline(x=hbm_gib, line_dash="dash", line_color="#7f7f7f", row=1, col=1,
                      annotation_text=f"HBM {hbm_gib:.0f} GiB", annotation_position="top left")
    # the bars are named by rank only: a plan's label is wider than the gap between the panels
    # and would run over the left one (tests/browser); the plans are in the hover and the table
    names = [f"#{i}" for i in range(1, len(best) + 1)]
    plans = [plan_label(e.parallelism) for e in best]
    parts = [k for k in (best[0].time_breakdown_s if best else {}) if any(e.time_breakdown_s[k] > 0 for e in best)]
    for k in parts:
        fig.add_trace(go.Bar(y=names, x=[e.time_breakdown_s[k] for e in best], name=k, orientation="h",
                             marker={"color": TIME_COLOURS.get(k, "#bcbd22")}, customdata=plans,
                             hovertemplate=f"%{{y}} %{{customdata}}<br>{k}: %{{x:.3g}} s<extra></extra>"),
                      row=1, col=2)
    fig.update_layout(title=chart_title(title), barmode="stack", template="plotly_white", height=560,
                      legend={"orientation": "h", "y": -0.15})
    fig.update_xaxes(title_text="memory per GPU (GiB)", row=1, col=1)
    fig.update_yaxes(title_text="tokens/s per GPU", row=1, col=1)
    fig.update_xaxes(title_text="seconds per step", row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    return fig


def best_plans_table(result):
    """The best plans of a search as a table (rank, plan, step, tokens/s/GPU, MFU, memory): the
    ranks of :func:`search_figure`'s rings and bars spelt out."""
    import plotly.graph_objects as go  # Because: plotly is imported only when a chart is asked for

    best = list(result.best)
    columns = {"#": [str(i) for i in range(1, len(best) + 1)],
               "plan": [plan_label(e.parallelism) for e in best],
               "step s": [f"{e.step_time_s:.3g}" for e in best],
               "tokens/s/GPU": [f"{e.tokens_per_s_per_gpu:,.0f}" for e in best],
               "MFU": [f"{e.mfu:.1%}" for e in best],
               "GiB/GPU": [f"{e.memory_gib_per_gpu:.1f}" for e in best]}
    fig = go.Figure(go.Table(columnwidth=[0.4, 4, 0.8, 1, 0.7, 0.8],
                             header={"values": list(columns), "align": "left", "fill_color": "#f0f0f0"},
                             cells={"values": list(columns.values()), "align": "left"}))
    fig.update_layout(template="plotly_white", height=80 + 28 * max(len(best), 1),
                      margin={"t": 10, "b": 10, "l": 40, "r": 40})
    return fig


def validation_figure(results, title: str, extra: Sequence = (), targets: tuple[float, float] | None = None):
    """Predicted against published tokens/s/GPU, log-log, one colour per chip family, beside each
    run's error in order.  ``targets`` (median, max |error|) draws their bands; ``extra`` are runs
    outside the reference set, drawn apart (hollow)."""
    import plotly.graph_objects as go  # Because: plotly is imported only when a chart is asked for
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                        subplot_titles=("predicted against published tokens/s/GPU",
                                        "error by run (predicted / published - 1)"))
    ok = [r for r in results if r.error is not None]
    more = [r for r in extra if r.error is not None]
    families = sorted({r.groups[0] for r in (*ok, *more)})
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
    colour = {f: palette[i % len(palette)] for i, f in enumerate(families)}

    def hover(r) -> str:
        plan = plan_label(r.plan) if r.plan else ""
        return (f"{r.run.id}: {r.run.model_name}, {r.run.num_gpus:,} x {r.run.chip}<br>"
                f"published {r.run.tokens_per_s_per_gpu_measured:,.4g}, predicted "
                f"{r.predicted_tokens_per_s_per_gpu:,.4g} ({r.error:+.1%})<br>{plan}")

    for fam in families:
        for runs, label, symbol in ((ok, "", "circle"), (more, " (outside the set)", "circle-open")):
            sel = [r for r in runs if r.groups[0] == fam]
            if not sel:
                continue
            fig.add_trace(go.Scatter(
                x=[r.run.tokens_per_s_per_gpu_measured for r in sel], y=[r.predicted_tokens_per_s_per_gpu for r in sel],
                mode="markers", name=fam + label, legendgroup=fam,
                marker={"size": 8, "color": colour[fam], "symbol": symbol},
                text=[hover(r) for r in sel], hovertemplate="%{text}<extra></extra>"), row=1, col=1)
    xs = [r.run.tokens_per_s_per_gpu_measured for r in (*ok, *more)] or [1.0]
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    bands = [(0.0, "solid", "predicted = published")]
    if targets is not None:
        bands += [(targets[0], "dot", f"+-{targets[0]:.0%} (median target)"),
                  (targets[1], "dash", f"+-{targets[1]:.0%} (max target)")]
    for band, dash, name in bands:
        for sign in ((1,) if band == 0 else (1, -1)):
            k = 1 + sign * band
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo * k, hi * k], mode="lines", name=name,
                                     showlegend=sign == 1, legendgroup=name, hoverinfo="skip",
                                     line={"color": "#7f7f7f", "dash": dash, "width": 1}), row=1, col=1)
    ranked = sorted(ok, key=lambda r: r.error)
    fig.add_trace(go.Bar(x=[r.run.id for r in ranked], y=[r.error for r in ranked], showlegend=False,
                         marker={"color": [colour[r.groups[0]] for r in ranked]},
                         text=[hover(r) for r in ranked], hovertemplate="%{text}<extra></extra>",
                         textposition="none"), row=1, col=2)
    if targets is not None:
        for sign in (1, -1):
            fig.add_hline(y=sign * targets[1], line_dash="dash", line_color="#7f7f7f", row=1, col=2)
    fig.update_layout(title=chart_title(title), template="plotly_white", height=600,
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(type="log", title_text="published tokens/s/GPU", row=1, col=1)
    fig.update_yaxes(type="log", title_text="predicted tokens/s/GPU", row=1, col=1)
    fig.update_xaxes(showticklabels=False, title_text="runs, by error", row=1, col=2)
    fig.update_yaxes(tickformat="+.0%", title_text="error", row=1, col=2)
    return fig
