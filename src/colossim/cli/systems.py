"""``colossim systems``: list and show the systems a spec's ``hardware.system`` may name."""

from __future__ import annotations

import typer
from rich.table import Table

from colossim.catalog import load_catalog
from colossim.cli.common import console, emit_json, fmt, print_fields
from colossim.errors import ColossimError

app = typer.Typer(help="Systems in the catalog: nodes, racks and cloud instances.", no_args_is_help=False)


@app.callback(invoke_without_command=True)
def list_systems(ctx: typer.Context,
                 chip: str | None = typer.Option(None, help="Only systems built on this chip (id or alias)."),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List systems: the chip, GPUs per node, scale-up domain and scale-out bandwidth per GPU."""
    if ctx.invoked_subcommand is not None:
        return
    cat = load_catalog()
    systems = list(cat.systems.values())
    if chip is not None:
        acc = cat.accelerator(chip)
        systems = [s for s in systems if s.accelerator == acc.id]
        if not systems:
            built_on = sorted({s.accelerator for s in cat.systems.values()})
            raise ColossimError(f"no catalog system is built on chip '{acc.id}': systems exist for "
                                f"{', '.join(built_on)}; a spec on this chip names it as hardware.gpu",
                                field="chip", value=chip, allowed=built_on)
    if json_out:
        emit_json(systems)
        return
    t = Table(title="Systems (scale-out per GPU, one direction)")
    for col in ("id", "chip", "GPUs/node", "scale-up domain", "scale-out Gb/s/GPU", "node kW", "aliases"):
        t.add_column(col, justify="left" if col in ("id", "chip", "aliases") else "right")
    for s in systems:
        t.add_row(s.id, s.accelerator, str(s.gpus_per_node), str(s.scaleup_domain_size),
                  fmt(s.nic_gbit_per_s * s.nics_per_gpu), fmt(s.node_power_kw), ", ".join(s.alias_list))
    console.print(t)


@app.command("show")
def show(system: str = typer.Argument(..., help="System id or alias, e.g. hgx-h100 or p5.48xlarge."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one system with its source."""
    s = load_catalog().system(system)
    if json_out:
        emit_json(s)
        return
    print_fields(s)
