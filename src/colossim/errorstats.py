"""Error statistics of predictions against published measurements (shared by the training and
serving validations): median and max absolute relative error, mean signed error, and whether a set
of targets holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


@dataclass(frozen=True)
class TimeSplit:
    """Where a set of step-time errors sits: measured step = ``compute_factor`` x the predicted
    compute + ``rest_factor`` x the predicted rest (exposed communication, pipeline bubble,
    optimizer, host), fitted over the set (:func:`time_split`)."""

    n: int
    compute_factor: float
    rest_factor: float
    residual_sd: float
    """Standard deviation of measured / predicted step time left after the two factors."""
    share_range: tuple[float, float]
    """Smallest and largest predicted compute share in the set (a narrow range leaves the split
    ill-determined)."""


def time_split(compute_share: Iterable[float], error: Iterable[float]) -> TimeSplit:
    """Least-squares split of tokens/s errors into a compute and a non-compute part.

    A tokens/s error e (predicted / published - 1) is the step-time ratio measured / predicted =
    1 + e.  Writing the predicted step as compute C plus the rest R, with compute share
    s = C / (C + R), a model whose compute is off by a factor a and whose rest by b predicts
    1 + e = a s + b (1 - s); a and b are fitted over the runs.  It says whether a set's error
    comes from the compute model or from everything around it, which the mean error cannot tell
    when the two cancel.  Needs two runs of different shares; otherwise the factors are NaN."""
    s = np.asarray(list(compute_share), dtype=float)
    y = 1.0 + np.asarray(list(error), dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"compute_share and error differ in length ({s.size} vs {y.size})")
    if s.size < 2 or np.ptp(s) <= 1e-9:
        nan = float("nan")
        rng = (float(s.min()), float(s.max())) if s.size else (nan, nan)
        return TimeSplit(int(s.size), nan, nan, nan, rng)
    a = np.column_stack([s, 1.0 - s])
    (fc, fr), *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ np.array([fc, fr])
    return TimeSplit(int(s.size), float(fc), float(fr), float(np.std(resid)), (float(s.min()), float(s.max())))


def factor_split(shares: Mapping[str, Iterable[float]], error: Iterable[float]) -> dict[str, float]:
    """Least-squares factors of a step split into named parts: 1 + e = sum_k f_k s_k over the runs,
    ``shares`` giving each part's predicted share s_k of every run's step (the shares of a run add
    up to 1).  :func:`time_split` is the two-part case (compute, rest).  NaN factors when the runs
    are fewer than the parts or the shares do not tell the parts apart (rank-deficient)."""
    names = list(shares)
    x = np.column_stack([np.asarray(list(shares[k]), dtype=float) for k in names]) if names else np.empty((0, 0))
    y = 1.0 + np.asarray(list(error), dtype=float)
    if x.shape[0] != y.size:
        raise ValueError(f"shares and error differ in length ({x.shape[0]} vs {y.size})")
    if y.size < len(names) or np.linalg.matrix_rank(x) < len(names):
        return {k: float("nan") for k in names}
    f, *_ = np.linalg.lstsq(x, y, rcond=None)
    return {k: float(v) for k, v in zip(names, f)}


__all__ = ["ErrorStats", "Targets", "TimeSplit", "chip_family", "error_stats", "factor_split", "time_split"]
