"""Monte Carlo of a training run under failures, vectorised over trials and over failure events.

The run needs ``W`` seconds of useful work.  It checkpoints after every ``tau`` of work, each
checkpoint stalling training for ``d``; an asynchronous checkpoint becomes durable only
``lag`` seconds after its stall.  Interruptions arrive as a Poisson process (rate
``lambda_u + lambda_p``, exponential inter-arrival times); each is unexpected with probability
``lambda_u / (lambda_u + lambda_p)``:

* unexpected: the work since the last durable checkpoint is lost, then a recovery of ``R_u``
  (detection + restart + reschedule + restore);
* planned: the job saves first, so nothing is lost, then a recovery of ``R_p``.

An interruption can strike during a recovery, which then starts over (as in Daly 2006).

Vectorisation: a *cycle* is the stretch from one interruption to the next (the pending recovery,
then running).  What a cycle adds to the progress depends only on its own inter-arrival time, so
for a block of trials we draw K cycles at once as a (trials x K) matrix, take cumulative sums along
the cycles, and find per trial the first cycle in which the remaining work fits.  Trials that need
more than K cycles go on with another chunk.  There is no Python loop over events or trials, only
over chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colossim.errors import ColossimError

#: Matrix elements per chunk (trials x cycles).  Because: ~2 M float64 keeps each temporary at
#: 16 MB, inside the CPU caches' reach and far from memory limits, while numpy's per-call overhead
#: stays negligible.
CHUNK_ELEMENTS = 1 << 21
#: Extra cycles drawn beyond the expected count, in standard deviations of a Poisson count.
#: Because: 4 sigma leaves ~0.003 % of trials for a second chunk.
_MARGIN_SIGMA = 4.0
#: Refuse runs that would need more than this many interruptions per trial: the job makes no
#: progress (recoveries longer than the time between failures).  Because: 10 M cycles per trial is
#: orders past any real run (a 90-day run at a 1-minute MTTF has 130,000).
MAX_CYCLES_PER_TRIAL = 10_000_000
#: Cycles (trials x interruptions per trial) one simulation runs at most: with more interruptions
#: per run, fewer trials run (at least ``MIN_TRIALS_WHEN_CAPPED``), and the result says how many.
#: Because: the mean wall time of T runs of N interruptions each has a relative standard error of
#: about 1 / sqrt(T N) of a cycle's spread, so the product, not T, sets the precision; 2e8 cycles
#: take a few seconds at the ~50 M cycles/s this code runs (``benchmarks/reliability_speed.py``),
#: where 2,000 trials of a 7-million-interruption run took minutes.
MAX_SIMULATED_CYCLES = 200_000_000
#: Fewest trials run when ``MAX_SIMULATED_CYCLES`` caps them.  Because: percentiles (P10 / P90) need
#: a handful of runs; with >= 2e7 interruptions each they barely differ.
MIN_TRIALS_WHEN_CAPPED = 10
#: Columns per block for the prefix sums (a chunk's column count is a multiple of it).
_BLOCK = 64
#: Cycles checked exactly after the first one that could finish the run.  Because: finishing needs
#: one cycle without an interruption over the last ~2 segments; 64 misses in a row is negligible.
_WINDOW = 64
#: Rounding slack when counting the checkpoints of the last stretch of work (relative to tau).
_EPS = 1e-9


@dataclass(frozen=True)
class MonteCarloResult:
    """Summary over ``trials`` simulated runs (seconds; means unless named otherwise)."""

    trials: int
    seed: int
    useful_seconds: float
    wall_seconds_mean: float
    wall_seconds_p10: float
    wall_seconds_p50: float
    wall_seconds_p90: float
    wall_seconds_std: float
    ettr: float
    """useful / mean wall time"""
    interruptions_mean: float
    unexpected_mean: float
    planned_mean: float
    checkpoints_mean: float
    lost_work_seconds_mean: float
    """compute (and its checkpoint stalls) thrown away by unexpected failures"""
    checkpoint_seconds_mean: float
    """training stalled for checkpoints that were kept"""
    recovery_seconds_mean: float
    """detection, restart, reschedule, restore (and interrupted recoveries)"""


def simulate(useful_seconds: float, interval_seconds: float, stall_seconds: float,
             rate_unexpected_per_s: float, recovery_unexpected_seconds: float, *,
             rate_planned_per_s: float = 0.0, recovery_planned_seconds: float = 0.0,
             write_lag_seconds: float = 0.0, trials: int = 1000, seed: int = 0) -> MonteCarloResult:
    """Simulate ``trials`` runs of ``useful_seconds`` of work (see the module docstring); fewer
    where each has so many interruptions that ``MAX_SIMULATED_CYCLES`` caps them (the result's
    ``trials`` is the number run)."""
    w, tau, d, lag = useful_seconds, interval_seconds, stall_seconds, write_lag_seconds
    for name, v, zero_ok in (("useful_seconds", w, False), ("interval_seconds", tau, False),
                             ("stall_seconds", d, True), ("write_lag_seconds", lag, True),
                             ("rate_unexpected_per_s", rate_unexpected_per_s, True),
                             ("rate_planned_per_s", rate_planned_per_s, True),
                             ("recovery_unexpected_seconds", recovery_unexpected_seconds, True),
                             ("recovery_planned_seconds", recovery_planned_seconds, True)):
        if not (v >= 0 if zero_ok else v > 0) or not math.isfinite(v):
            raise ColossimError(f"{name} must be {'>= 0' if zero_ok else '> 0'} and finite, got {v!r}",
                                field=name, value=v)
    if not isinstance(trials, int) or trials < 1:
        raise ColossimError(f"trials must be a whole number >= 1, got {trials!r}", field="trials", value=trials)
    if lag > tau + d:
        raise ColossimError(f"an asynchronous write of {lag:.4g} s cannot finish within the checkpoint "
                            f"interval of {tau:.4g} s", field="checkpoint_interval", value=tau)
    lam = rate_unexpected_per_s + rate_planned_per_s
    p_unexpected = rate_unexpected_per_s / lam if lam > 0 else 0.0
    rng = np.random.default_rng(seed)
    if lam == 0:  # no interruptions: every trial is the same, W + ceil(W / tau) checkpoints
        n_ckpt = math.ceil(w / tau - _EPS)
        wall = w + n_ckpt * d
        return MonteCarloResult(trials, seed, w, wall, wall, wall, wall, 0.0, w / wall, 0.0, 0.0,
                                0.0, float(n_ckpt), 0.0, n_ckpt * d, 0.0)

    # Expected cycles per trial (Daly's complete model for the wall time) sizes the chunks.
    s = tau + d
    if rate_unexpected_per_s > 0:
        lam_u, r_u = rate_unexpected_per_s, recovery_unexpected_seconds + lag
        log_wall = (lam_u * r_u + _log_expm1(lam_u * s) - math.log(lam_u) + math.log(w / tau)
                    + math.log1p(rate_planned_per_s * recovery_planned_seconds))
        expected_cycles = lam * math.exp(min(log_wall, 700.0)) + 1  # Because: exp(700) ~ float max
    else:
        expected_cycles = lam * w * s / tau * (1 + rate_planned_per_s * recovery_planned_seconds) + 1
    if expected_cycles > MAX_CYCLES_PER_TRIAL:
        raise ColossimError(
            f"the job cannot make progress: about {expected_cycles:.3g} interruptions per run; the "
            f"recovery ({recovery_unexpected_seconds:.4g} s) or the interval is too long for the "
            f"time between failures ({1 / lam:.4g} s)", field="failure rates", value=lam)
    trials = min(trials, max(MIN_TRIALS_WHEN_CAPPED, int(MAX_SIMULATED_CYCLES // expected_cycles)))
    k_cols = int(min(expected_cycles + _MARGIN_SIGMA * math.sqrt(expected_cycles) + 8,
                     CHUNK_ELEMENTS))
    k_cols = -(-k_cols // _BLOCK) * _BLOCK  # round up to whole blocks
    rows_per_block = max(1, CHUNK_ELEMENTS // k_cols)

    out = {key: np.zeros(trials) for key in ("wall", "unexp", "plan", "ckpt_n", "ckpt", "rec")}
    for start in range(0, trials, rows_per_block):
        idx = np.arange(start, min(start + rows_per_block, trials))
        _simulate_block(idx, out, rng, k_cols, w, tau, d, lag, lam, p_unexpected,
                        recovery_unexpected_seconds, recovery_planned_seconds)
    wall = out["wall"]
    lost = wall - w - out["ckpt"] - out["rec"]
    p10, p50, p90 = np.percentile(wall, [10, 50, 90])
    return MonteCarloResult(
        trials=trials, seed=seed, useful_seconds=w, wall_seconds_mean=float(wall.mean()),
        wall_seconds_p10=float(p10), wall_seconds_p50=float(p50), wall_seconds_p90=float(p90),
        wall_seconds_std=float(wall.std()), ettr=float(w / wall.mean()),
        interruptions_mean=float((out["unexp"] + out["plan"]).mean()),
        unexpected_mean=float(out["unexp"].mean()), planned_mean=float(out["plan"].mean()),
        checkpoints_mean=float(out["ckpt_n"].mean()),
        lost_work_seconds_mean=float(max(lost.mean(), 0.0)),
        checkpoint_seconds_mean=float(out["ckpt"].mean()),
        recovery_seconds_mean=float(out["rec"].mean()))


def _log_expm1(x: float) -> float:
    """log(exp(x) - 1) for x > 0, without overflow where exp(x) would (x above ~709)."""
    return x + math.log(-math.expm1(-x))


def _prefix_sums(x: np.ndarray, first: np.ndarray, block: int) -> np.ndarray:
    """Per row, the sum of ``x[row, :first[row]]`` (``first`` may equal the row length): block
    sums, their running total, then the partial block."""
    n, k_cols = x.shape
    blocks = x.reshape(n, k_cols // block, block).sum(axis=2, dtype=np.float32)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(blocks, axis=1, dtype=np.float64)], axis=1)
    rows = np.arange(n)
    blk = np.minimum(first // block, k_cols // block - 1)
    off = first - blk * block
    part = x[rows[:, None], blk[:, None] * block + np.arange(block)[None, :]]
    return cum[rows, blk] + np.where(np.arange(block)[None, :] < off[:, None], part, 0).sum(axis=1)


def _simulate_block(idx: np.ndarray, out: dict[str, np.ndarray], rng: np.random.Generator,
                    k_cols: int, w: float, tau: float, d: float, lag: float, lam: float,
                    p_unexpected: float, r_u: float, r_p: float) -> None:
    """Run the trials ``idx`` to completion, chunk by chunk, accumulating into ``out``.

    Float32 matrices (seconds; progress in units of tau, whole numbers except after planned
    interruptions) keep the memory traffic down; per-row totals are summed in float64."""
    f32 = np.float32
    s = tau + d
    w_tau = w / tau                       # work to do, in segments
    n = len(idx)
    progress = np.zeros(n)                # durable useful work so far, in segments
    pending = np.zeros(n, dtype=f32)      # recovery owed before running again (0 at the start)
    thr = int(round(p_unexpected * 65536))  # Because: types drawn as 16-bit integers
    size = n * k_cols
    # Work buffers, allocated once and reused by every chunk (fresh pages cost more than the math)
    buf = {name: np.empty(size, dtype=f32) for name in ("e", "ra", "rb", "rt", "k", "p", "g", "t")}
    flags = {name: np.empty(size, dtype=bool) for name in ("u", "pl", "x")}
    while n:
        m = n * k_cols

        def view(a: np.ndarray) -> np.ndarray:
            return a[:m].reshape(n, k_cols)

        e, rec_after, rec_before, rec_time = (view(buf[x]) for x in ("e", "ra", "rb", "rt"))
        kept, partial, gained, tmp = (view(buf[x]) for x in ("k", "p", "g", "t"))
        unexpected, planned, scratch = (view(flags[x]) for x in ("u", "pl", "x"))
        rng.standard_exponential(out=e, dtype=f32)
        e *= f32(1 / lam)                 # time to the next interruption
        bits = rng.bit_generator.random_raw((m + 3) // 4).view(np.uint16)[:m].reshape(n, k_cols)
        np.less(bits, thr, out=unexpected)
        np.multiply(unexpected, f32(r_u - r_p), out=rec_after)
        rec_after += f32(r_p)
        rec_before[:, 0] = pending
        rec_before[:, 1:] = rec_after[:, :-1]
        np.minimum(e, rec_before, out=rec_time)
        run = np.subtract(e, rec_before, out=tmp)
        np.maximum(run, 0, out=run)
        np.multiply(run, f32(1 / s), out=kept)
        np.floor(kept, out=kept)          # whole segments completed
        np.multiply(kept, f32(s), out=partial)
        np.subtract(run, partial, out=partial)
        if lag > 0:  # unexpected: the last checkpoint counts only if its async write had finished
            np.less(partial, f32(lag), out=scratch)
            scratch &= unexpected
            scratch &= kept >= 1
            kept -= scratch
        np.copyto(gained, kept)
        if p_unexpected < 1:  # planned: the work and the stall in progress are saved too
            np.logical_not(unexpected, out=planned)
            np.multiply(partial, f32(1 / tau), out=tmp)
            np.minimum(tmp, f32(1), out=tmp)
            tmp *= planned
            gained += tmp
            partial -= f32(tau)
            np.maximum(partial, f32(0), out=partial)
            partial *= planned            # now: the stall in progress kept by a planned save

        first = _first_finish(e, rec_before, gained, progress, w_tau, tau, d)
        done = first < k_cols
        out["wall"][idx] += _prefix_sums(e, first, _BLOCK)
        out["rec"][idx] += _prefix_sums(rec_time, first, _BLOCK)
        n_ckpt = _prefix_sums(kept, first, _BLOCK)
        out["ckpt_n"][idx] += n_ckpt
        out["ckpt"][idx] += n_ckpt * d
        if p_unexpected < 1:
            out["ckpt"][idx] += _prefix_sums(partial, first, _BLOCK)
        n_unexp = _prefix_sums(unexpected.view(np.int8), first, _BLOCK)
        out["unexp"][idx] += n_unexp
        out["plan"][idx] += np.minimum(first, k_cols) - n_unexp
        # the finishing cycle: its pending recovery, the remaining work and final checkpoints
        rows = np.nonzero(done)[0]
        f = first[rows]
        before = progress[rows] + _prefix_sums(gained[rows], f, _BLOCK)
        remaining = np.maximum(w_tau - before, 0.0)
        n_final = np.ceil(remaining - _EPS)
        ids = idx[rows]
        out["wall"][ids] += rec_before[rows, f] + remaining * tau + n_final * d
        out["rec"][ids] += rec_before[rows, f]
        out["ckpt"][ids] += n_final * d
        out["ckpt_n"][ids] += n_final
        keep = ~done
        progress = progress[keep] + gained[keep].sum(axis=1, dtype=np.float64)
        pending = rec_after[keep, -1].copy()
        idx = idx[keep]
        n = len(idx)


def _first_finish(e: np.ndarray, rec_before: np.ndarray, gained: np.ndarray, progress: np.ndarray,
                  w_tau: float, tau: float, d: float) -> np.ndarray:
    """Per row, the first cycle in which the remaining work (and its checkpoints) fits before the
    next interruption; the row length when none does.

    A cycle can only finish the run if the progress through it would reach ``w_tau - 2`` segments
    (it completes at least ``ceil(rem) - 1`` segments, one fewer if an asynchronous checkpoint was
    not yet durable), so the exact test runs only from that cycle on, over a window."""
    n, k_cols = e.shape
    blocks = gained.reshape(n, k_cols // _BLOCK, _BLOCK).sum(axis=2, dtype=np.float64)
    cum_blocks = np.cumsum(blocks, axis=1) + progress[:, None]
    goal = w_tau - 2 - 1e-6  # Because: slack for float32 rounding of fractional progress
    has = cum_blocks[:, -1] >= goal
    b0 = np.where(has, (cum_blocks >= goal).argmax(axis=1), 0)
    # progress before each row's candidate block, then exact running totals from there
    start = np.where(b0 > 0, cum_blocks[np.arange(n), b0 - 1], progress)
    span = _BLOCK + _WINDOW
    first = np.full(n, k_cols)
    rows = np.nonzero(has)[0]
    if len(rows) == 0:
        return first
    win = np.arange(span)[None, :]
    j = b0[rows, None] * _BLOCK + win
    valid = j < k_cols
    j = np.minimum(j, k_cols - 1)
    r = rows[:, None]
    g = np.where(valid, gained[r, j], 0)
    before = start[rows, None] + np.cumsum(g, axis=1, dtype=np.float64) - g
    remaining = np.maximum(w_tau - before, 0.0)
    need = rec_before[r, j] + remaining * tau + np.ceil(remaining - _EPS) * d
    fin = (need <= e[r, j]) & valid
    got = fin.any(axis=1)
    first[rows[got]] = j[got, fin[got].argmax(axis=1)]
    slow = rows[~got & valid[:, -1]]   # no finish within the window but columns remain: full test
    for row in slow:  # Because: rare (needs _WINDOW interruptions in a row near the end)
        cum = np.cumsum(gained[row], dtype=np.float64) + progress[row]
        remaining = np.maximum(w_tau - (cum - gained[row]), 0.0)
        need = rec_before[row] + remaining * tau + np.ceil(remaining - _EPS) * d
        fin = need <= e[row]
        if fin.any():
            first[row] = int(fin.argmax())
    return first
