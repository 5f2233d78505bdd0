"""``colossim validate training``: predicted vs published tokens/s/GPU with error statistics."""

from __future__ import annotations

import typer
from rich.progress import Progress
from rich.table import Table

from colossim.cli.common import console, emit_json, fmt

app = typer.Typer(help="Validate the engines against published measured runs.")


def predict_training(spec_dict: dict) -> tuple[float, dict]:
    """tokens/s/GPU colossim predicts for a published run's spec (omitted plan fields searched)."""
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    est = estimate(load_spec(spec_dict))
    return est.tokens_per_s_per_gpu, est.parallelism


def run_training_validation(trust: str | None = None, show_progress: bool = True):
    """Validation results and grouped statistics (used by the CLI and the benchmark script)."""
    from colossim.training.validate import grouped_stats, validate, validation_runs

    runs = [r for r in validation_runs() if trust is None or r.trust in trust]
    if show_progress:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("validating", total=len(runs))
            results = validate(predict_training, runs, progress=lambda r: bar.advance(task))
    else:
        results = validate(predict_training, runs)
    return results, grouped_stats(results)


def print_training_table(results, stats) -> None:
    t = Table(title="Training: predicted vs published tokens/s/GPU")
    for c in ("run", "model", "GPUs", "chip", "trust", "published", "predicted", "error", "plan used"):
        t.add_column(c, justify="right" if c in ("GPUs", "published", "predicted", "error") else "left")
    for r in results:
        p = r.plan or {}
        plan = (f"tp{p['tp']} pp{p['pp']} cp{p['cp']} dp{p['dp']} v{p['vpp']} mb{p['micro_batch']} "
                f"{p['recompute']} z{p['zero']}") if p else (r.failure or "")
        t.add_row(r.run.id, r.run.model_name[:24], str(r.run.num_gpus), r.run.chip, r.run.trust,
                  fmt(r.run.tokens_per_s_per_gpu_measured),
                  fmt(r.predicted_tokens_per_s_per_gpu), "-" if r.error is None else f"{r.error:+.1%}", plan[:60])
    console.print(t)
    s = Table(title="Error by group (targets: median |err| <= 7 %, max <= 20 %, mean signed within +-3 %)")
    for c in ("group", "n", "median |err|", "max |err|", "mean signed"):
        s.add_column(c, justify="left" if c == "group" else "right")
    for g, st in stats.items():
        s.add_row(g, str(st.n), f"{st.median_abs:.1%}", f"{st.max_abs:.1%}", f"{st.mean_signed:+.1%}")
    console.print(s)


@app.command("training")
def training_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 trust: str | None = typer.Option(None, help="Only runs of these trust levels, e.g. A or AB.")) -> None:
    """Predict every published training run and print the errors."""
    results, stats = run_training_validation(trust, show_progress=not json_out)
    if json_out:
        emit_json({"runs": [{"id": r.run.id, "published": r.run.tokens_per_s_per_gpu_measured,
                             "predicted": r.predicted_tokens_per_s_per_gpu, "error": r.error,
                             "plan": r.plan, "failure": r.failure} for r in results],
                   "stats": stats})
        return
    print_training_table(results, stats)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="validate")
