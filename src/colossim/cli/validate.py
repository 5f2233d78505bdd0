"""``colossim validate training``: predicted vs published tokens/s/GPU with error statistics."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from colossim.cli.common import chart_written, console, emit_json, fmt
from colossim.training.labels import plan_label

app = typer.Typer(help="Validate the engines against published measured runs.")


def print_group_stats(title: str, stats: dict) -> None:
    """One table of error statistics by group (n, median |err|, max |err|, mean signed)."""
    s = Table(title=title)
    for c in ("group", "n", "median |err|", "max |err|", "mean signed"):
        s.add_column(c, justify="left" if c == "group" else "right")
    for g, st in stats.items():
        s.add_row(g, str(st.n), f"{st.median_abs:.1%}", f"{st.max_abs:.1%}", f"{st.mean_signed:+.1%}")
    console.print(s)


def predict_training(spec_dict: dict) -> tuple[float, dict]:
    """tokens/s/GPU colossim predicts for a published run's spec (omitted plan fields searched)."""
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    est = estimate(load_spec(spec_dict))
    return est.tokens_per_s_per_gpu, est.parallelism


def _validate_runs(validate, runs: list, label: str, show_progress: bool) -> list:
    """``validate(runs, progress=...)`` under a transient progress bar (one step per run), or
    without one."""
    if not show_progress:
        return validate(runs)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(runs))
        return validate(runs, progress=lambda r: bar.advance(task))


def run_training_validation(trust: str | None = None, show_progress: bool = True, extra: bool = False,
                            as_published: bool = False, runs_file: str | Path | None = None):
    """Validation results and grouped statistics (used by the CLI and the benchmark scripts); with
    ``extra``, of the published steps outside the reference set instead; with ``as_published``,
    from the team's specs exactly as written (no catalog names, no dated flags); with
    ``runs_file``, of the runs in that CSV file (the team's reference format), their specs as
    written (:func:`colossim.training.validate.load_runs`)."""
    from colossim.training.validate import extra_runs, grouped_stats, load_runs, validate, validation_runs

    if runs_file is not None:
        source, as_published = load_runs(runs_file), True
    else:
        source = extra_runs() if extra else validation_runs()
    runs = [r for r in source if trust is None or r.trust in trust]
    if as_published:
        runs = [r for r in runs if r.spec_as_published is not None]
    results = _validate_runs(partial(validate, predict_training, as_published=as_published), runs,
                             "validating", show_progress)
    return results, grouped_stats(results)


def print_training_table(results, stats, title: str = "Training: predicted vs published tokens/s/GPU",
                         stats_title: str = "Error by group (targets: median |err| <= 7 %, max <= 20 %, "
                                            "mean signed within +-3 %)") -> None:
    t = Table(title=title)
    for c in ("run", "model", "GPUs", "chip", "trust", "published", "predicted", "error", "plan used"):
        t.add_column(c, justify="right" if c in ("GPUs", "published", "predicted", "error") else "left")
    for r in results:
        p = r.plan or {}
        plan = plan_label(p) if p else (r.failure or "")
        t.add_row(r.run.id, r.run.model_name[:24], str(r.run.num_gpus), r.run.chip, r.run.trust,
                  fmt(r.run.tokens_per_s_per_gpu_measured),
                  fmt(r.predicted_tokens_per_s_per_gpu), "-" if r.error is None else f"{r.error:+.1%}", plan[:60])
    console.print(t)
    print_group_stats(stats_title, stats)


def print_extra_training_table(results, stats) -> None:
    """The published steps outside the reference set, apart and outside the targets."""
    print_training_table(results, stats,
                         title="Other published steps (not in the reference set, outside the targets)",
                         stats_title="Error by group, other published steps")


@app.command("training")
def training_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 trust: str | None = typer.Option(None, help="Only runs of these trust levels, e.g. A or AB."),
                 as_published: bool = typer.Option(False, "--as-published",
                                                   help="The team's specs exactly as written: what a run "
                                                        "nobody annotated looks like to the engine."),
                 runs: Path | None = typer.Option(None, "--runs", metavar="FILE",
                                                  help="Validate the runs of this CSV file instead (the team's "
                                                       "reference format: id, source, model_name, gpu_type, "
                                                       "num_gpus, measured_metric, measured_value, "
                                                       "tokens_per_s_per_gpu_measured, spec_json; trust from "
                                                       "the notes' trust=X), each spec as written."),
                 html: Path | None = typer.Option(None, "--html", metavar="FILE",
                                                  help="Also write a chart (predicted against published, "
                                                       "each run's error, the targets' bands) as a "
                                                       "self-contained HTML page.")) -> None:
    """Predict every published training run and print the errors; then, apart and outside the
    targets, the published steps that are not in the reference set.  With --runs, the runs of a
    file of published runs instead, each spec as written."""
    def rows(rs):
        return [{"id": r.run.id, "published": r.run.tokens_per_s_per_gpu_measured,
                 "predicted": r.predicted_tokens_per_s_per_gpu, "error": r.error,
                 "plan": r.plan, "failure": r.failure} for r in rs]

    results, stats = run_training_validation(trust, show_progress=not json_out, as_published=as_published,
                                             runs_file=runs)
    if as_published or runs is not None:
        what = f"runs of {runs.name}, specs as written" if runs is not None else "specs as published"
        if html is not None:
            _write_validation_chart(html, results, stats, f"Training, {what}")
        if json_out:
            emit_json({"runs": rows(results), "stats": stats})
        else:
            print_training_table(results, stats, title=f"Training, {what}: predicted vs published tokens/s/GPU")
            chart_written(html)
        return
    extra, extra_stats = run_training_validation(trust, show_progress=not json_out, extra=True)
    if html is not None:
        _write_validation_chart(html, results, stats, "Training", extra)
    if json_out:
        emit_json({"runs": rows(results), "stats": stats, "extra_runs": rows(extra), "extra_stats": extra_stats})
        return
    print_training_table(results, stats)
    if extra:
        print_extra_training_table(extra, extra_stats)
    chart_written(html)


def _write_validation_chart(path: Path, results, stats, what: str, extra=()) -> None:
    from colossim import charts
    from colossim.training.validate import TARGET_MAX_ABS, TARGET_MEDIAN_ABS

    st = stats.get("all")
    figures = "" if st is None else (f": median |err| {st.median_abs:.1%}, max {st.max_abs:.1%}, "
                                     f"mean signed {st.mean_signed:+.1%} over {st.n} runs")
    title = f"{what}, predicted vs published tokens/s/GPU{figures}"
    fig = charts.validation_figure(results, title, extra=extra, targets=(TARGET_MEDIAN_ABS, TARGET_MAX_ABS))
    charts.write_html(path, charts.html_page([fig], title))


def run_serving_validation(trust: str | None = None, show_progress: bool = True):
    """Serving validation entries and grouped statistics (used by the CLI and the benchmark script)."""
    from colossim.inference.validate import grouped_stats, serving_runs, validate

    runs = [r for r in serving_runs() if trust is None or r.trust in trust]
    results = _validate_runs(validate, runs, "validating serving", show_progress)
    return results, grouped_stats(results)


def _fmt_metric(metric: str, value: float | None) -> str:
    """Throughputs as tokens/s, latencies in ms."""
    if value is None:
        return "-"
    return fmt(value) if metric == "tokens_per_s" else f"{value * 1e3:,.1f} ms"


def print_serving_table(results, stats) -> None:
    from colossim.inference.validate import TARGET_MAX_ABS, TARGET_MEDIAN_ABS

    targets = f"targets: median |err| <= {TARGET_MEDIAN_ABS:.0%}, max <= {TARGET_MAX_ABS:.0%}"
    t = Table(title=f"Serving: predicted vs published, error = predicted / published - 1 ({targets})")
    for c in ("entry", "model", "chip", "GPUs", "metric", "published", "predicted", "error", "plan, batch"):
        t.add_column(c, justify="right" if c in ("GPUs", "published", "predicted", "error") else "left",
                     no_wrap=c == "entry")
    for r in results:
        p = r.plan
        plan = f"tp{p['tp']} pp{p['pp']} x{p['replicas']} b{r.batch}" if p else (r.failure or "")[:60]
        t.add_row(r.entry_id, r.run.model.split(" (")[0], r.run.gpu, str(r.run.gpus), r.metric,
                  _fmt_metric(r.metric, r.published), _fmt_metric(r.metric, r.predicted),
                  "-" if r.error is None else f"{r.error:+.1%}", plan)
    console.print(t)
    print_group_stats(f"Serving error by group ({targets})", stats)


@app.command("serving")
def serving_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                trust: str | None = typer.Option(None, help="Only rows of these trust levels, e.g. A or AB.")) -> None:
    """Predict every published serving result and print the errors."""
    results, stats = run_serving_validation(trust, show_progress=not json_out)
    if json_out:
        emit_json({"results": [{"id": r.entry_id, "row": r.run.id, "model": r.run.model, "chip": r.run.gpu,
                                "gpus": r.run.gpus, "metric": r.metric, "published": r.published,
                                "predicted": r.predicted, "error": r.error, "plan": r.plan, "batch": r.batch,
                                "trust": r.run.trust, "groups": r.groups, "failure": r.failure}
                               for r in results],
                   "stats": stats})
        return
    print_serving_table(results, stats)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="validate")
