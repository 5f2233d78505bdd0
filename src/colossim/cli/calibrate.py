"""``colossim calibrate``: measure the GPU present with PyTorch and write a calibration profile."""

from __future__ import annotations

from pathlib import Path

import typer

from colossim.catalog import load_catalog
from colossim.cli.common import console, fmt
from colossim.outfiles import check_writable


def calibrate_command(
    out: Path = typer.Option(..., "--out", help="Where to write the profile JSON."),
    chip: str = typer.Option("h100-sxm", "--chip", help="Catalog chip id of the GPU present."),
    quick: bool = typer.Option(False, "--quick",
                               help="A small grid and a shorter hold at the power limit (about a minute)."),
) -> None:
    """Measure GEMM, attention and HBM bandwidth on this GPU and fit a profile (needs PyTorch+CUDA)."""
    from colossim.cost.calibrate import measure, profile_from_measurements
    from colossim.cost.efficiency import save_profile

    acc = load_catalog().accelerator(chip)
    check_writable(out, "out")  # before minutes of measuring, not after
    meas = measure(acc.id, quick=quick)  # NoGpuError -> one line, exit 2
    prof = profile_from_measurements(meas, acc)
    save_profile(prof, out)
    bf16 = prof.gemm["bf16"]
    console.print(f"{meas.device}: bf16 GEMM max efficiency {fmt(bf16.max_efficiency)} (sustained clocks: "
                  f"{fmt(bf16.sustained_fraction)} of burst), launch {fmt(bf16.launch_seconds * 1e6)} us, "
                  f"tile overhead {fmt(bf16.tile_overhead_k)} K; HBM {fmt(prof.memory_efficiency)}; "
                  f"attention {fmt(prof.attention.max_efficiency)}{_fp8_note(prof)} -> {out}")


def _fp8_note(prof) -> str:
    g = prof.gemm.get("fp8")
    if g is None or g.derivation.startswith("from "):
        return ""
    return f"; fp8 GEMM max efficiency {fmt(g.max_efficiency)} ({fmt(g.sustained_fraction)} of burst)"


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to the top-level app."""
    app.command("calibrate")(calibrate_command)
