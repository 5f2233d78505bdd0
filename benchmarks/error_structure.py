"""Where the training validation's error sits: in the compute model, or in everything around it?

For every reference run the engine predicts a step made of compute (GEMMs, attention, memory-bound
kernels, recompute) and the rest (exposed TP / CP / EP / PP / DP communication, pipeline bubble,
optimizer, host time).  A tokens/s error e is the step-time ratio measured / predicted = 1 + e; if
the compute model is off by a factor a and the rest by b, then 1 + e = a s + b (1 - s), s being the
predicted compute share.  This script fits a and b per group of runs (chip x software stack) by
least squares (:func:`colossim.errorstats.time_split`) and prints them with the spread they leave.
A second table splits the compute once more, into the GEMMs and the rest of it (attention core and
memory-bound kernels, in proportion to one layer's seconds of each), with
:func:`colossim.errorstats.factor_split`: which of the compute model's parts carries the factor.

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

from colossim.errorstats import chip_family, error_stats, factor_split, time_split
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, make_context
from colossim.training.plans import PlanArrays
from colossim.training.step import op_kind_seconds, plan_layer_ops
from colossim.training.validate import validation_runs

#: Because: a split needs runs that differ in compute share; groups smaller than this are skipped.
MIN_GROUP_RUNS = 4
#: Because: over a narrower range of compute shares the two factors trade off against each other
#: almost freely; such groups print their factors in parentheses.
MIN_SHARE_SPREAD = 0.15
#: Because: three factors need clearly more runs than three; smaller groups are left out of the
#: second table.
MIN_SPLIT_RUNS = 12
#: Because: resampling the runs shows how firmly the set pins each factor; 500 resamples put the
#: 10th and 90th percentiles within a hundredth of their limit (fixed seed: the table reproduces).
BOOTSTRAP_RESAMPLES = 500


def _compute_by_kind(spec, est) -> dict[str, float]:
    """The predicted compute share of the step split in proportion to one layer's GEMM, attention
    and memory-bound seconds (the first layer kind of the model, the plan the estimate used)."""
    ctx, plans = make_context(spec), PlanArrays.from_dicts([est.parallelism])
    ops = plan_layer_ops(ctx, plans, "dense" if spec.model.dense_layers else "moe")
    t = {k: float(np.ravel(v)[0]) for k, v in op_kind_seconds(ops, ctx).items()}
    share = (est.time_breakdown_s["compute"] + est.time_breakdown_s["recompute"]) / est.step_time_s
    return {k: share * v / sum(t.values()) for k, v in t.items()}


def _rows() -> list[dict]:
    out = []
    for run in track(validation_runs(), description="predicting the reference runs"):
        spec = load_spec(json.loads(run.spec_json))
        est = estimate(spec)
        out.append({
            **_compute_by_kind(spec, est),
            "id": run.id,
            "family": chip_family(run.chip),
            "stack": spec.training.software,
            "zero3": est.parallelism.get("zero", 0) >= 3,
            "trust": run.trust,
            "share": (est.time_breakdown_s["compute"] + est.time_breakdown_s["recompute"]) / est.step_time_s,
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
    console.print("Factors in parentheses: compute shares spread less than "
                  f"{MIN_SHARE_SPREAD:.2f}, so a and b are not separately determined.")

    # the compute part split once more: GEMMs, and the attention core with the memory-bound kernels
    split = Table(title="Compute split: measured step = g x GEMM + k x (attention + memory-bound) + b x rest")
    for col in ("group", "n", "GEMM share", "g (GEMM)", "k (attention, memory)", "b (rest)"):
        split.add_column(col, justify="left" if col == "group" else "right")

    def fit(rs: list[dict]) -> dict[str, float]:
        return factor_split({"gemm": [r["gemm"] for r in rs],
                             "other": [r["attention"] + r["memory"] for r in rs],
                             "rest": [1.0 - r["share"] for r in rs]}, [r["error"] for r in rs])

    rng = np.random.default_rng(0)
    for name, rs in _groups(rows).items():
        if len(rs) < MIN_SPLIT_RUNS:
            continue
        f = fit(rs)
        boot = [fit([rs[i] for i in rng.integers(0, len(rs), len(rs))]) for _ in range(BOOTSTRAP_RESAMPLES)]
        def cell(k: str) -> str:
            lo, hi = np.nanpercentile([b[k] for b in boot], [10, 90])
            return f"{f[k]:.2f} ({lo:.2f}-{hi:.2f})"
        g = [r["gemm"] for r in rs]
        split.add_row(name, str(len(rs)), f"{min(g):.2f}-{max(g):.2f}", cell("gemm"), cell("other"), cell("rest"))
    console.print(split)
    console.print("In parentheses: the 10th-90th percentile of the factor over "
                  f"{BOOTSTRAP_RESAMPLES} bootstrap resamples of the group's runs.")


if __name__ == "__main__":
    main()
