"""Where the training validation's error sits: in the compute model, or in everything around it?

For every reference run the engine predicts a step made of compute (GEMMs, attention, memory-bound
kernels, recompute) and the rest (exposed TP / CP / EP / PP / DP communication, pipeline bubble,
optimizer, host time).  A tokens/s error e is the step-time ratio measured / predicted = 1 + e; if
the compute model is off by a factor a and the rest by b, then 1 + e = a s + b (1 - s), s being the
predicted compute share.  This script fits a and b per group of runs (chip x software stack) by
least squares (:func:`colossim.errorstats.time_split`) and prints them with the spread they leave.

a > 1 says real compute is slower than the engine's (the engine optimistic on compute-bound
runs); b < 1 says real communication / bubbles cost less than the engine charges.  When both hold,
the two errors cancel on runs of middling compute share and the mean error understates both.  A
diagnostic, not a correction: nothing here feeds the engine.
Run: .venv/bin/python benchmarks/error_structure.py"""

from __future__ import annotations

import json

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from colossim.errorstats import chip_family, error_stats, time_split
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.validate import validation_runs

#: Because: a split needs runs that differ in compute share; groups smaller than this are skipped.
MIN_GROUP_RUNS = 4
#: Because: over a narrower range of compute shares the two factors trade off against each other
#: almost freely; such groups print their factors in parentheses.
MIN_SHARE_SPREAD = 0.15


def _rows() -> list[dict]:
    out = []
    for run in track(validation_runs(), description="predicting the reference runs"):
        spec = load_spec(json.loads(run.spec_json))
        est = estimate(spec)
        out.append({
            "id": run.id,
            "family": chip_family(run.chip),
            "stack": spec.training.software,
            "zero3": est.parallelism.get("zero", 0) >= 3,
            "trust": run.trust,
            "share": est.time_breakdown_s["compute"] / est.step_time_s,
            "error": est.tokens_per_s_per_gpu / run.tokens_per_s_per_gpu_measured - 1.0,
        })
    return out


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {"all": rows}
    for r in rows:
        groups.setdefault(f"{r['family']} / {r['stack']}", []).append(r)
    groups["A100 / megatron-lm-2021, TP + PP only (no ZeRO-3, no trust C)"] = [
        r for r in rows if r["family"] == "A100" and r["stack"] == "megatron-lm-2021"
        and not r["zero3"] and r["trust"] != "C"]
    groups["H100 (every stack)"] = [r for r in rows if r["family"] == "H100"]
    return {k: v for k, v in groups.items() if len(v) >= MIN_GROUP_RUNS}


def main() -> None:
    rows = _rows()
    table = Table(title="Step-time error split: measured step = a x predicted compute + b x predicted rest")
    for col in ("group", "n", "mean err", "compute share", "a (compute)", "b (rest)",
                "sd before", "sd after"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, rs in _groups(rows).items():
        shares, errors = [r["share"] for r in rs], [r["error"] for r in rs]
        ts = time_split(shares, errors)
        lo, hi = ts.share_range
        fmt = "{:.2f}" if hi - lo >= MIN_SHARE_SPREAD else "({:.2f})"
        table.add_row(name, str(ts.n), f"{error_stats(errors).mean_signed:+.1%}", f"{lo:.2f}-{hi:.2f}",
                      fmt.format(ts.compute_factor), fmt.format(ts.rest_factor),
                      f"{np.std(1.0 + np.asarray(errors)):.3f}", f"{ts.residual_sd:.3f}")
    console = Console(width=max(Console().width, 132))
    console.print(table)
    console.print(f"Factors in parentheses: compute shares spread less than {MIN_SHARE_SPREAD:.2f}, "
                  "so a and b are not separately determined.")


if __name__ == "__main__":
    main()
