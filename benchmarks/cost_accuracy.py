"""Predicted vs measured for every microbenchmark row the cost model can price, used (build), held
out, timed under a hold that sets a sustained-clock fraction (sustained), or of another attention
kernel generation (other-kernel), with median / max absolute error per group.
Run: .venv/bin/python benchmarks/cost_accuracy.py"""

from __future__ import annotations

import numpy as np

from colossim.cost.validate import predictions


def main() -> None:
    """Print the table and the summary."""
    preds = predictions()
    print(f"{'row':55s} {'set':12s} {'measured':>10s} {'predicted':>10s} {'error':>8s}")
    for p in preds:
        print(f"{p.row:55s} {p.set:12s} {p.measured:10.4g} {p.predicted:10.4g} {p.error:+8.1%}")
    print()
    for kind in ("gemm", "attention", "memory", "collective"):
        for which in ("build", "held-out", "sustained", "other-kernel"):
            e = np.abs([p.error for p in preds if p.kind == kind and p.set == which])
            if len(e):
                print(f"{kind:11s} {which:12s} n={len(e):3d} median |err| {np.median(e):6.1%}  "
                      f"max {np.max(e):6.1%}")


if __name__ == "__main__":
    main()
