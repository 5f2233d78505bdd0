"""Checkpoint intervals: Young (1974), Daly (2006), and the numerical optimum of the expected wall
time, plus the analytical expected wall time and ETTR used to cross-check the Monte Carlo.

All times are seconds.  ``d`` (delta) is the training time one checkpoint costs (the stall), ``M``
the mean time to an unexpected failure, ``R`` the recovery time after one (detection + restart +
reschedule + restore), ``tau`` the useful work between two checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colossim.errors import ColossimError

#: points of the log-spaced grid the numerical optimum starts from.  Because: the curve is smooth
#: and unimodal in log(tau); 1025 points over the bracket put the grid step under 2 %, and the
#: golden-section refinement that follows finishes the job.
_GRID_POINTS = 1025
#: golden-section iterations; each shrinks the bracket by 0.618 (60 -> 1e-12 of it)
_GOLDEN_ITERATIONS = 60
_GOLDEN = (math.sqrt(5) - 1) / 2  # Because: the golden ratio conjugate, 0.618...


def _check(name: str, value: float, *, allow_zero: bool = False, allow_inf: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (math.isinf(value) and not allow_inf) or math.isnan(value):
        rule = ">= 0" if allow_zero else "> 0"
        raise ColossimError(f"{name} must be {rule}, got {value!r}", field=name, value=value)


def young_interval(d_seconds: float, mttf_seconds: float) -> float:
    """Young's first-order optimum interval ``sqrt(2 d M)`` (J. W. Young, CACM 17(9), 1974)."""
    _check("checkpoint_seconds", d_seconds)
    _check("mttf", mttf_seconds, allow_inf=True)
    return math.sqrt(2 * d_seconds * mttf_seconds)


def daly_interval(d_seconds: float, mttf_seconds: float) -> float:
    """Daly's higher-order optimum interval (J. T. Daly, FGCS 22(3), 2006, the higher-order estimate):
    ``sqrt(2 d M) [1 + (1/3) sqrt(d / 2M) + (1/9) (d / 2M)] - d`` for ``d < 2M``, else ``M``.
    The restart time R does not enter it."""
    _check("checkpoint_seconds", d_seconds)
    _check("mttf", mttf_seconds, allow_inf=True)
    if math.isinf(mttf_seconds):
        return math.inf
    if d_seconds >= 2 * mttf_seconds:
        return mttf_seconds
    x = d_seconds / (2 * mttf_seconds)
    return math.sqrt(2 * d_seconds * mttf_seconds) * (1 + math.sqrt(x) / 3 + x / 9) - d_seconds


@dataclass(frozen=True)
class IntervalModel:
    """What the expected wall time depends on (seconds and events per second)."""

    stall_seconds: float
    rate_unexpected_per_s: float
    recovery_unexpected_seconds: float
    rate_planned_per_s: float = 0.0
    recovery_planned_seconds: float = 0.0
    write_lag_seconds: float = 0.0
    """asynchronous checkpoints: time after the stall until the checkpoint is durable"""

    @property
    def min_interval_seconds(self) -> float:
        """Shortest allowed interval: an asynchronous write must finish before the next starts."""
        return self.write_lag_seconds


def wall_per_work(tau_seconds: float | np.ndarray, m: IntervalModel) -> float | np.ndarray:
    """Expected wall-clock seconds per second of useful work at interval ``tau`` (array-aware).

    Daly (2006), the complete model of the expected wall time for exponential failures with
    restarts that can fail: one segment of ``tau + d`` takes
    ``e^(lambda R) (e^(lambda (tau + d)) - 1) / lambda``.  Two first-order additions: an
    asynchronous write lag L loses one more segment when a failure falls within L of a checkpoint,
    about L per failure, so R becomes R + L; planned interruptions lose no work and add
    ``lambda_p R_p`` wall time per wall second, a factor ``1 + lambda_p R_p``.
    """
    tau = np.asarray(tau_seconds, dtype=float)
    s = tau + m.stall_seconds
    lam = m.rate_unexpected_per_s
    r = m.recovery_unexpected_seconds + m.write_lag_seconds
    if lam > 0:
        with np.errstate(over="ignore"):  # Because: hopeless intervals overflow to inf, which is right
            seg = np.exp(lam * r) * np.expm1(lam * s) / lam
    else:
        seg = s
    out = seg / tau * (1 + m.rate_planned_per_s * m.recovery_planned_seconds)
    return float(out) if np.ndim(out) == 0 else out


def expected_wall_seconds(work_seconds: float, tau_seconds: float, m: IntervalModel) -> float:
    """Expected wall time of ``work_seconds`` of useful work with a checkpoint after every ``tau``
    of work (the last segment is shorter): Daly's (2006) complete model summed over the segments,
    with the first-order async and planned terms of :func:`wall_per_work`."""
    _check("useful work", work_seconds)
    _check("checkpoint_interval", tau_seconds)
    n_full = math.floor(work_seconds / tau_seconds)
    last = work_seconds - n_full * tau_seconds
    total = n_full * tau_seconds * wall_per_work(tau_seconds, m)
    if last > 0:
        total += last * wall_per_work(last, m)
    return float(total)


def ettr_first_order(tau_seconds: float, m: IntervalModel) -> float:
    """First-order expected ETTR (useful / wall), Young's (1974) expansion: the checkpoint overhead
    ``d / (tau + d)`` and, per failure, half a segment of lost work plus the recovery:
    ``tau / (tau + d) x (1 - lambda_u (R + L + (tau + d) / 2) - lambda_p R_p)``, floored at 0."""
    _check("checkpoint_interval", tau_seconds)
    s = tau_seconds + m.stall_seconds
    waste = (m.rate_unexpected_per_s * (m.recovery_unexpected_seconds + m.write_lag_seconds + s / 2)
             + m.rate_planned_per_s * m.recovery_planned_seconds)
    return max(0.0, tau_seconds / s * (1 - waste))


def optimal_interval(m: IntervalModel, max_seconds: float | None = None) -> float:
    """The interval minimising :func:`wall_per_work` (numerically: a log grid, then golden-section
    search), at least :attr:`IntervalModel.min_interval_seconds` and at most ``max_seconds``
    (the run's length: one checkpoint at the end)."""
    lo = max(m.min_interval_seconds, 1e-3)  # Because: a millisecond is below any real interval
    if m.rate_unexpected_per_s <= 0:
        # Because: with no failures a checkpoint only costs; the longest interval is best
        return max_seconds if max_seconds is not None else math.inf
    mttf = 1 / m.rate_unexpected_per_s
    hi = 100 * mttf + 100 * m.stall_seconds  # Because: far past Daly's bound tau <= M
    if max_seconds is not None:
        hi = min(hi, max_seconds)
    if hi <= lo:
        return lo
    grid = np.geomspace(lo, hi, _GRID_POINTS)
    i = int(np.argmin(wall_per_work(grid, m)))
    a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])

    def f(x: float) -> float:
        return float(wall_per_work(math.exp(x), m))

    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(_GOLDEN_ITERATIONS):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    return math.exp((a + b) / 2)


@dataclass(frozen=True)
class IntervalRange:
    """The intervals that keep expected ETTR at or above a target."""

    target_ettr: float
    optimum_seconds: float
    ettr_at_optimum: float
    shortest_seconds: float | None
    """None when even the optimum misses the target"""
    longest_seconds: float | None


def interval_for_ettr(target_ettr: float, m: IntervalModel) -> IntervalRange:
    """The range of checkpoint intervals whose expected ETTR (1 / :func:`wall_per_work`) is at
    least ``target_ettr`` (bisection on each side of the optimum); empty when the optimum misses."""
    if not 0 < target_ettr < 1:
        raise ColossimError(f"target ETTR must be between 0 and 1, got {target_ettr!r}",
                            field="target_ettr", value=target_ettr)
    opt = optimal_interval(m)
    best = 1 / wall_per_work(opt, m)
    if best < target_ettr or math.isinf(opt):
        return IntervalRange(target_ettr, opt, best, None, None)

    def ok(tau: float) -> bool:
        return 1 / wall_per_work(tau, m) >= target_ettr

    def bisect(good: float, bad: float) -> float:
        for _ in range(_GOLDEN_ITERATIONS):
            mid = math.sqrt(good * bad)
            good, bad = (mid, bad) if ok(mid) else (good, mid)
        return good

    lo_bound = max(m.min_interval_seconds, 1e-3)  # Because: a millisecond is below any real interval
    shortest = lo_bound if ok(lo_bound) else bisect(opt, lo_bound)
    far = opt
    while ok(far) and far < 1e12:  # Because: 1e12 s (30,000 years) is beyond any run
        far *= 2
    return IntervalRange(target_ettr, opt, best, shortest, bisect(opt, far))
