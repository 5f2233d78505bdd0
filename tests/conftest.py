"""Shared fixtures."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from colossim.cli.main import app


@pytest.fixture()
def cli():
    """Invoke the CLI; returns (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        r = runner.invoke(app, list(args), input=input)
        return r.exit_code, r.stdout, r.stderr

    return invoke
