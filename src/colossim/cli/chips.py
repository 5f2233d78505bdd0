"""``colossim chips``: list and show accelerators."""

from __future__ import annotations

import typer
from rich.table import Table

from colossim.catalog import load_catalog
from colossim.cli.common import console, emit_json, fmt, print_fields
from colossim.errors import UnknownNameError

app = typer.Typer(help="Accelerators in the catalog.", no_args_is_help=False)


@app.callback(invoke_without_command=True)
def list_chips(ctx: typer.Context,
               vendor: str | None = typer.Option(None, help="Only this vendor (e.g. NVIDIA, AMD)."),
               year: int | None = typer.Option(None, help="Only chips released in this year."),
               since: int | None = typer.Option(None, help="Only chips released in or after this year."),
               json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List accelerators (dense peak figures, no sparsity)."""
    if ctx.invoked_subcommand is not None:
        return
    cat = load_catalog()
    chips = list(cat.accelerators.values())
    if vendor is not None:
        vendors = sorted({a.vendor for a in chips})
        if vendor.lower() not in {v.lower() for v in vendors}:
            raise UnknownNameError("vendor", vendor, vendors)
        chips = [a for a in chips if a.vendor.lower() == vendor.lower()]
    if year is not None:
        chips = [a for a in chips if a.release_year == year]
    if since is not None:
        chips = [a for a in chips if a.release_year >= since]
    if json_out:
        emit_json(chips)
        return
    t = Table(title="Accelerators (dense peaks)")
    for col in ("id", "vendor", "year", "BF16 TF", "FP8 TF", "FP4 TF", "HBM GiB", "HBM TB/s", "TDP W", "price USD"):
        t.add_column(col, justify="left" if col in ("id", "vendor") else "right")
    for a in chips:
        lo, hi = a.price_usd_low, a.price_usd_high
        price = "-" if lo is None else (f"{lo:,.0f}" if lo == hi else f"{lo:,.0f}-{hi:,.0f}")
        t.add_row(a.id, a.vendor, str(a.release_year), fmt(a.tflops("bf16")), fmt(a.dense_tflops_fp8),
                  fmt(a.dense_tflops_fp4), fmt(a.hbm_gib), fmt(a.hbm_tb_per_s), fmt(a.tdp_w), price)
    console.print(t)


@app.command("show")
def show(chip: str = typer.Argument(..., help="Chip id, e.g. h100-sxm."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one accelerator with its sources and the values other sources give."""
    cat = load_catalog()
    a = cat.accelerator(chip)
    alts = cat.alternatives_for(a.id)
    if json_out:
        emit_json({"chip": a, "alternatives": alts})
        return
    print_fields(a)
    if alts:
        at = Table(title="Other sources (the engine uses the catalog value above unless marked)")
        for c in ("field", "value", "used", "source"):
            at.add_column(c)
        for x in alts:
            at.add_row(x.field, f"{x.value:g}", "yes" if x.used_by_engine else "no", x.source)
        console.print(at)


