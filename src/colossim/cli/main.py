"""The ``colossim`` command: one typer sub-app per domain, all thin over the pure core."""

from __future__ import annotations

import typer

from colossim.cli import chips, h100e, systems
from colossim.cli.common import ColossimGroup

app = typer.Typer(
    cls=ColossimGroup,
    help="colossim: plan, size and simulate AI supercomputers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(chips.app, name="chips")
app.add_typer(systems.app, name="systems")
app.command("h100e")(h100e.h100e_command)


def _register_optional() -> None:
    """Sub-apps of the other domains, registered when their modules exist."""
    import importlib

    for name in ("fleet", "claims", "report", "train", "validate", "calibrate", "serve", "reliability"):
        try:
            mod = importlib.import_module(f"colossim.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"colossim.cli.{name}":
                continue
            raise
        mod.register(app)


_register_optional()


def run() -> None:
    """Console-script entry point."""
    app()
