"""``colossim reliability SPEC [--json]``: realistic wall time under failures, checkpoints and restarts."""

from __future__ import annotations

import sys

import typer
import yaml
from rich.table import Table

from colossim.cli.common import console, emit_json, fmt, to_jsonable
from colossim.errors import SpecError


def _read(path: str) -> object:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        raise SpecError(f"cannot read spec '{path}': {e.strerror}", field="SPEC", value=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"spec '{path}' is not valid YAML/JSON{where}", field="SPEC", value=path) from None


def reliability_command(spec: str = typer.Argument(..., help="Spec file (YAML or JSON), or - for stdin."),
                        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Failures, checkpoints and restarts: MTTF, interruptions, best interval, ETTR, wall time."""
    from colossim.planning.realistic import reliability_job, run

    job = reliability_job(_read(spec))
    r = run(job)
    if json_out:
        emit_json({"chip": job.chip, "gpus_per_node": job.gpus_per_node, **to_jsonable(r), "spec": job.spec})
        return
    t = Table(title=f"{job.n_gpus:,} x {job.chip}: {job.useful_hours / 24:g} days of useful work "
                    f"({job.spec.failure_rate_source} failure rates, {r.monte_carlo.trials:,} trials)",
              show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    rows = [("MTTF (h)", fmt(r.mttf_hours)), ("interruptions per day", fmt(r.interruptions_per_day)),
            ("interruptions (expected)", fmt(r.interruptions_expected)),
            ("checkpoint stall (s)", fmt(r.checkpoint_seconds)),
            ("checkpoint write (s)", fmt(r.checkpoint_write_seconds)),
            ("interval used (min)", fmt(r.checkpoint_interval_min)),
            ("Young / Daly / optimum (min)",
             f"{fmt(r.young_interval_min)} / {fmt(r.daly_interval_min)} / {fmt(r.optimal_interval_min)}"),
            ("ETTR (Monte Carlo / analytical)", f"{r.ettr:.1%} / {r.ettr_analytical:.1%}"),
            ("wall time days P10 / P50 / P90",
             f"{fmt(r.wall_time_days_p10)} / {fmt(r.wall_time_days_p50)} / {fmt(r.wall_time_days_p90)}")]
    rows += [(f"  {k}", fmt(v)) for k, v in r.breakdown.items()]
    for row in rows:
        t.add_row(*row)
    console.print(t)
    if r.monte_carlo.trials < job.spec.trials:
        console.print(f"ran {r.monte_carlo.trials:,} of the {job.spec.trials:,} trials asked: a run has "
                      f"{fmt(r.interruptions_expected)} interruptions, so these runs already fix the mean "
                      f"wall time (the cap: colossim.reliability.montecarlo.MAX_SIMULATED_CYCLES)", style="dim")


def register(app: typer.Typer) -> None:
    """Add ``colossim reliability`` to the top-level app."""
    app.command("reliability")(reliability_command)
