"""``colossim claims``: the public claims, what colossim computes for each, and a verdict."""

from __future__ import annotations

import typer
from rich.table import Table

from colossim.cli.common import console, emit_json
from colossim.fleet.claims import CONSISTENT, INCONSISTENT, ClaimCheck, check_all

VERDICT_STYLE = {CONSISTENT: "green", INCONSISTENT: "red"}


def claims_table(checks: tuple[ClaimCheck, ...], why: bool = True, compact: bool = False) -> Table:
    """The claims as a table; ``compact`` names only who said it (not where) and drops the claim's
    own words after its id."""
    t = Table(title="Claim checks (verdict within the stated tolerance; ratio = colossim / claim)")
    t.add_column("claim", overflow="fold", max_width=30 if compact else 34)
    t.add_column("who" if compact else "who / where", overflow="fold", max_width=16 if compact else 22)
    t.add_column("colossim computes", overflow="fold", ratio=3)
    t.add_column("ratio", justify="right")
    t.add_column("verdict", overflow="fold")
    if why:
        t.add_column("why", overflow="fold", ratio=3)
    for c in checks:
        tol = "" if c.tolerance is None else (f" (x{c.tolerance:g})" if c.tolerance > 1 else f" (±{c.tolerance:.0%})")
        verdict = f"[{VERDICT_STYLE.get(c.verdict, 'yellow')}]{c.verdict}[/]" + tol
        where = c.who if compact else f"{c.who}; {c.published_by} ({c.published_on})"
        row = [f"[bold]{c.claim_id}[/]" + ("" if compact else f"\n{c.claim}"), where, c.computed,
               "-" if c.ratio is None else f"{c.ratio:.2f}", verdict]
        if why:
            row.append(c.why)
        t.add_row(*row)
    return t


def claims_command(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                   verdict: str | None = typer.Option(None, help="Only claims with this verdict.")) -> None:
    """Check every public claim in the dataset against the catalog and the fleet data."""
    checks = check_all()
    if verdict is not None:
        from colossim.errors import ColossimError
        from colossim.fleet.claims import VERDICTS
        if verdict not in VERDICTS:
            raise ColossimError(f"unknown verdict '{verdict}': valid: {', '.join(VERDICTS)}", field="verdict",
                                value=verdict, allowed=VERDICTS)
        checks = tuple(c for c in checks if c.verdict == verdict)
    if json_out:
        emit_json([c.to_dict() for c in checks])
        return
    console.print(claims_table(checks))
    counts = {v: sum(c.verdict == v for c in checks) for v in dict.fromkeys(c.verdict for c in checks)}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()), style="dim")


def register(root: typer.Typer) -> None:
    root.command("claims")(claims_command)
