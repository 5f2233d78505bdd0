"""Error statistics of predictions against published measurements (shared by the training and
serving validations): median and max absolute relative error, mean signed error, and whether a set
of targets holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Targets:
    """Accuracy targets: median |err|, max |err| and (when given) |mean signed err| at most these."""

    median_abs: float
    max_abs: float
    mean_signed: float | None = None


@dataclass(frozen=True)
class ErrorStats:
    n: int
    median_abs: float
    max_abs: float
    mean_signed: float
    targets: Targets | None = None

    @property
    def meets_targets(self) -> bool:
        t = self.targets
        if t is None or self.n == 0:
            return False
        ok = self.median_abs <= t.median_abs and self.max_abs <= t.max_abs
        return ok and (t.mean_signed is None or abs(self.mean_signed) <= t.mean_signed)


def chip_family(chip: str) -> str:
    """The group a catalog chip id reports under: ``A100`` / ``H100`` for their SKUs, else the id."""
    return "A100" if chip.startswith("a100") else "H100" if chip.startswith("h100") else chip


def error_stats(errors: Iterable[float | None], targets: Targets | None = None) -> ErrorStats:
    """Statistics of relative errors (predicted / published - 1); ``None`` entries are skipped."""
    e = np.asarray([x for x in errors if x is not None], dtype=float)
    if e.size == 0:
        return ErrorStats(0, float("nan"), float("nan"), float("nan"), targets)
    return ErrorStats(int(e.size), float(np.median(np.abs(e))), float(np.max(np.abs(e))),
                      float(np.mean(e)), targets)


__all__ = ["ErrorStats", "Targets", "chip_family", "error_stats"]
