"""``colossim h100e COUNT CHIP --metric M``: H100-equivalents by a named metric."""

from __future__ import annotations

import typer
from rich.table import Table

from colossim.cli.common import console, emit_json, fmt
from colossim.fleet.h100e import H100e, all_metrics, check_count, h100e, metrics


def h100e_command(count: float = typer.Argument(..., help="Number of chips."),
                  chip: str = typer.Argument(..., help="Chip id, e.g. a100-80gb-sxm."),
                  metric: str = typer.Option("bf16", "--metric", "-m",
                                             help="Metric, or 'all' for every metric side by side."),
                  json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """H100-equivalents of COUNT chips of CHIP by a named metric (always stated)."""
    check_count(count)  # before the metrics, each of which would report it as its own error
    if metric == "all":
        rows = all_metrics(chip, count)
    else:
        rows = [h100e(chip, count, metric)]
    if json_out:
        emit_json([r if isinstance(r, H100e) else {"metric": r[0], "error": r[1]} for r in rows]
                  if metric == "all" else rows[0])
        return
    t = Table(title=f"{count:,.0f} x {chip} in H100-equivalents")
    for c in ("metric", "H100e", "per chip", "basis"):
        t.add_column(c, justify="right" if c in ("H100e", "per chip") else "left")
    for r in rows:
        if isinstance(r, H100e):
            t.add_row(r.metric, fmt(r.h100e), f"{r.per_chip:.4f}", r.basis)
        else:
            t.add_row(r[0], "-", "-", r[1])
    console.print(t)
    console.print(f"metrics: {', '.join(metrics())}", style="dim")
