"""Shared CLI helpers: the console, JSON output and the error boundary."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from colossim.errors import ColossimError

# Because: rich falls back to 80 columns when stdout is not a terminal (pipes, CI, tests), which
# truncates the wide catalog tables; 160 keeps them readable.
_PIPE_WIDTH = 160
console = Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err_console = Console(stderr=True)

#: exit code for bad input (the field, the value and what is allowed are printed on one line)
EXIT_BAD_INPUT = 2


class ColossimGroup(TyperGroup):
    """The top-level command group: a :class:`ColossimError` anywhere below becomes one line on
    stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ColossimError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, pydantic models, numpy scalars and non-finite floats to plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (no rich markup)."""
    typer.echo(json.dumps(to_jsonable(obj), indent=2))


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a table: thousands separators for big values, significant digits for small."""
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def print_fields(row: BaseModel) -> None:
    """Print a catalog row as a two-column table of its set fields, titled by its name."""
    t = Table(title=row.name, show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for k, v in row.model_dump().items():
        if v is not None:
            t.add_row(k, str(v))
    console.print(t)


def chart_written(path) -> None:
    """Say where a command's ``--html`` chart went (nothing when it wrote none)."""
    if path is not None:
        console.print(f"chart written to {path}")
