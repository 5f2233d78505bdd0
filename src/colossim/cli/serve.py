"""``colossim serve estimate|frontier|capacity|simulate``: the inference engine from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from colossim.cli.common import chart_written, console, emit_json, fmt

app = typer.Typer(help="Inference: serving latency, throughput, KV cache, capacity, request simulation.")

SPEC_ARG = typer.Argument(..., help="Serving spec file (YAML/JSON) or - for stdin.")
PROFILE_OPT = typer.Option(None, "--profile", help="Calibration profile JSON (colossim calibrate).")


def _spec(path: str):
    from colossim.specs.serving import load_serving_spec

    text = sys.stdin.read() if path == "-" else None
    return load_serving_spec(path, text=text)


def _profile(path: Path | None):
    if path is None:
        return None
    from colossim.cost.efficiency import load_profile

    return load_profile(path)


def _plan_text(p: dict) -> str:
    return f"tp {p['tp']} pp {p['pp']} ep {p['ep']} x{p['replicas']}"


def _slo_text(e, serving) -> str:
    """Whether the estimate meets the spec's latency limits, naming them; none given: says so."""
    limits = []
    if serving.ttft_slo_s is not None:
        limits.append(f"TTFT <= {serving.ttft_slo_s:g} s")
    if serving.tpot_slo_s is not None:
        limits.append(f"TPOT <= {serving.tpot_slo_s * 1e3:g} ms")
    if not limits:
        return "no latency limits given"
    return ("meets " if e.meets_slo else "MISSES ") + ", ".join(limits)


def _show(e, serving) -> None:
    console.print(f"[bold]{e.model}[/bold] on {e.gpus} x {e.chip} — {_plan_text(e.parallelism)}; "
                  f"weights {e.formats['weights']}, activations {e.formats['activations']}, "
                  f"KV {e.formats['kv_cache']}; {e.input_tokens} in / {e.output_tokens} out; {e.batching} batching"
                  + ("; disaggregated prefill/decode" if e.disaggregated else ""))
    t = Table(show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    slo = _slo_text(e, serving)
    rows = [("batch (sequences per replica)", f"{e.batch} (max {e.max_batch})"),
            ("TTFT (s)", fmt(e.ttft_s, 4)), ("TPOT (ms)", fmt(e.tpot_s * 1e3, 3)), ("", slo),
            ("output tokens/s", fmt(e.tokens_per_s)), ("tokens/s/GPU", fmt(e.tokens_per_s_per_gpu)),
            ("tokens/s/user", fmt(e.tokens_per_s_per_user)), ("requests/s", fmt(e.requests_per_s)),
            ("memory GiB/GPU", f"{e.memory_gib_per_gpu:.1f} ({'fits' if e.fits else 'DOES NOT FIT'})"),
            ("  weights", f"{e.weights_gib_per_gpu:.1f}"), ("  KV cache", f"{e.kv_cache_gib_per_gpu:.1f}"),
            *([("    of which recurrent state", f"{e.assumptions['recurrent_state_gib_per_gpu']:.1f}")]
              if "recurrent_state_gib_per_gpu" in e.assumptions else []),
            ("bound (prefill / decode)", f"{e.bound['prefill']} / {e.bound['decode']}"),
            ("USD per million tokens", fmt(e.cost_usd_per_million_tokens, 3)),
            ("kWh per million tokens", fmt(e.energy_kwh_per_million_tokens, 3))]
    if e.prefill_gpu_fraction is not None:
        rows.append(("prefill share of GPUs", f"{e.prefill_gpu_fraction:.0%}"))
    for r in rows:
        t.add_row(*r)
    console.print(t)
    bars = Table(title="one iteration, by bucket (seconds)", show_header=True)
    bars.add_column("phase")
    for b in ("compute", "memory", "comm", "overhead", "total"):
        bars.add_column(b, justify="right")
    for phase, d in e.time_breakdown_s.items():
        bars.add_row(phase, *(f"{d[b] * 1e3:.2f} ms" for b in ("compute", "memory", "comm", "overhead", "total")))
    console.print(bars)


@app.command("estimate")
def estimate_cmd(spec: str = SPEC_ARG, json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 profile: Path | None = PROFILE_OPT) -> None:
    """Latency, throughput, memory and cost of serving (omitted plan fields and batch are searched)."""
    from colossim.inference.estimate import estimate

    s = _spec(spec)
    e = estimate(s, profile=_profile(profile))
    emit_json(e) if json_out else _show(e, s.serving)


def frontier_html(points, title: str) -> str:
    """A self-contained HTML page (plotly.js inline) with the frontier."""
    import plotly.graph_objects as go  # Because: plotly is imported only when HTML is asked for

    from colossim import charts

    fig = go.Figure(go.Scatter(
        x=[p.tokens_per_s_per_user for p in points], y=[p.tokens_per_s_per_gpu for p in points],
        mode="lines+markers",
        text=[f"{_plan_text(p.parallelism)}, batch {p.batch}, TTFT {p.ttft_s:.2f} s" for p in points],
        hovertemplate="%{text}<br>%{x:.1f} tok/s/user, %{y:.0f} tok/s/GPU<extra></extra>"))
    fig.update_layout(title=charts.chart_title(title), xaxis_title="output tokens/s per user (1 / TPOT)",
                      yaxis_title="output tokens/s per GPU", template="plotly_white")
    return charts.html_page([fig], title)


@app.command("frontier")
def frontier_cmd(spec: str = SPEC_ARG, json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 html: Path | None = typer.Option(None, "--html", help="Write an HTML chart to this file."),
                 profile: Path | None = PROFILE_OPT) -> None:
    """Pareto frontier of tokens/s/GPU against tokens/s/user over batch sizes and parallel plans."""
    from colossim.inference.estimate import frontier

    s = _spec(spec)
    pts = frontier(s, profile=_profile(profile))
    title = (f"{s.model.name} on {s.hardware.count} x {s.hardware.accelerator.id}, "
             f"{s.serving.input_tokens} in / {s.serving.output_tokens} out, weights {s.serving.weights.value}")
    if html is not None:
        from colossim.charts import write_html  # Because: charts (numpy) only when a chart is asked for

        write_html(html, frontier_html(pts, title))
    if json_out:
        emit_json({"frontier": pts})
        return
    t = Table(title=f"throughput-latency frontier: {title}")
    for c in ("plan", "batch", "TTFT s", "TPOT ms", "tok/s/user", "tok/s/GPU", "USD/M tok", "SLO"):
        t.add_column(c, justify="left" if c == "plan" else "right")
    for p in pts:
        t.add_row(_plan_text(p.parallelism), str(p.batch), fmt(p.ttft_s, 3), fmt(p.tpot_s * 1e3, 3),
                  fmt(p.tokens_per_s_per_user), fmt(p.tokens_per_s_per_gpu), fmt(p.cost_usd_per_million_tokens, 3),
                  "ok" if p.meets_slo else "miss")
    console.print(t)
    chart_written(html)


@app.command("capacity")
def capacity_cmd(system: str = typer.Argument(..., help="Catalog system (gb200-nvl72, hgx-h100, ...) or chip id."),
                 precision: str = typer.Option("fp8", "--precision", help="Weight format: bf16, fp8 or fp4."),
                 count: int | None = typer.Option(None, "--count", min=1, help="GPUs (default: one system)."),
                 kv_tokens: int = typer.Option(0, "--kv-tokens", min=0,
                                               help="Tokens of KV cache to keep room for (0: weights only)."),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The largest model (dense and MoE) whose weights, and weights plus a KV cache, fit."""
    from colossim.inference.capacity import capacity_table

    rows = capacity_table(system, precision, count=count, kv_tokens=kv_tokens)
    if json_out:
        emit_json({"capacity": [r.to_dict() for r in rows]})
        return
    cols = [k for k in rows[0].to_dict()] if rows else []
    t = Table(title=f"largest model that fits: {system} at {precision}")
    for c in cols:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*(fmt(v) if isinstance(v, float) else str(v) for v in r.to_dict().values()))
    console.print(t)


@app.command("simulate")
def simulate_cmd(spec: str = SPEC_ARG,
                 rate: float = typer.Option(..., "--rate", min=0.0, help="Requests per second (all replicas); 0 = all at once."),
                 requests: int = typer.Option(10_000, "--requests", min=1, help="Requests to simulate."),
                 input_len: str | None = typer.Option(None, "--input", help="Input length: N, fixed:N, uniform:A-B, "
                                                      "exponential:MEAN, lognormal:MEAN,SIGMA (default: the spec's)."),
                 output_len: str | None = typer.Option(None, "--output", help="Output length, same forms."),
                 seed: int = typer.Option(0, "--seed", min=0),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 profile: Path | None = PROFILE_OPT) -> None:
    """Event-driven simulation of requests under continuous batching on the spec's best plan."""
    from rich.progress import Progress

    from colossim.inference.serving_sim import run_simulation

    s = _spec(spec)
    if json_out or not sys.stdout.isatty():
        res = run_simulation(s, rate=rate, requests=requests, input_len=input_len, output_len=output_len,
                             seed=seed, profile=_profile(profile))
    else:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=requests)
            res = run_simulation(s, rate=rate, requests=requests, input_len=input_len, output_len=output_len,
                                 seed=seed, profile=_profile(profile),
                                 progress=lambda n: bar.update(task, completed=n))
    if json_out:
        emit_json(res)
        return
    r = res["result"]
    console.print(f"{requests:,} requests at {rate:g}/s on {_plan_text(res['parallelism'])} "
                  f"({res['replicas']} replica(s); one simulated at {res['rate_per_replica']:.3g}/s)")
    t = Table()
    for c in ("metric", "p50", "p90", "p99", "mean"):
        t.add_column(c, justify="right")
    for name, key, scale in (("TTFT (s)", "ttft_s", 1.0), ("TPOT (ms)", "tpot_s", 1e3), ("end-to-end (s)", "e2e_s", 1.0)):
        d = r[key]
        t.add_row(name, *(fmt(d[q] * scale if d[q] is not None else None, 3) for q in ("p50", "p90", "p99", "mean")))
    console.print(t)
    s2 = Table(show_header=False)
    s2.add_column("k", style="bold")
    s2.add_column("v", justify="right")
    for k, v in (("output tokens/s (all replicas)", fmt(res["output_tokens_per_s"])),
                 ("output tokens/s/GPU", fmt(res["output_tokens_per_s_per_gpu"])),
                 ("goodput (requests/s meeting the SLOs)", fmt(res["goodput_requests_per_s"])),
                 ("goodput fraction", f"{r['goodput_fraction']:.1%}"), ("preemptions", str(r["preemptions"])),
                 ("mean running batch", fmt(r["mean_batch"])), ("simulated seconds", fmt(r["duration_s"])),
                 ("wall seconds", fmt(res["wall_s"], 3))):
        s2.add_row(k, v)
    console.print(s2)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="serve")
