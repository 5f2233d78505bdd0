"""Fitting the cost model's parameters to measurements — the one fitting code used both to build the
default profiles from the published rows (defaults.py) and by ``colossim calibrate`` on a live GPU.

Every fit minimises the squared log error of predicted vs measured throughput (a 10 % miss counts
the same at 1 MiB as at 8 GiB), with a small Nelder-Mead simplex in log-parameter space (numpy only;
Nelder & Mead 1965).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from colossim.catalog.schema import Accelerator
from colossim.cost import compute
from colossim.cost.efficiency import AttentionParams, BusCurve, CalibrationProfile, GemmParams
from colossim.cost.rows import AttentionSample, GemmSample, MemorySample


def nelder_mead(f: Callable[[np.ndarray], float], x0: Sequence[float], step: float = 0.5,
                iters: int = 400, tol: float = 1e-10) -> np.ndarray:
    """Minimise ``f`` from ``x0`` with the Nelder-Mead simplex (reflection 1, expansion 2,
    contraction 0.5, shrink 0.5)."""
    x0 = np.asarray(x0, dtype=float)
    pts = [x0] + [x0 + step * np.eye(len(x0))[i] for i in range(len(x0))]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < tol:
            break
        centroid = np.mean(pts[:-1], axis=0)
        xr = centroid + (centroid - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centroid + 2.0 * (centroid - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (pts[-1] - centroid)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                pts = [pts[0]] + [pts[0] + 0.5 * (p - pts[0]) for p in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
    return pts[int(np.argmin(vals))]


def log_error(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Sum of squared natural-log ratios."""
    return float(np.sum(np.log(np.asarray(predicted) / np.asarray(measured)) ** 2))


# --- GEMM ---------------------------------------------------------------------------------------
def _gemm_profile(base: CalibrationProfile, precision: str, gp: GemmParams) -> CalibrationProfile:
    return dataclasses.replace(base, gemm={**base.gemm, precision: gp})


def predict_gemm_flops_per_s(samples: Sequence[GemmSample], chip: Accelerator,
                             profile: CalibrationProfile) -> np.ndarray:
    """Predicted achieved FLOP/s for each sample's shape and precision."""
    out = []
    for s in samples:
        t = compute.gemm_seconds(s.m, s.n, s.k, s.precision, chip, profile)
        out.append(2.0 * s.m * s.n * s.k / float(t))
    return np.array(out)


#: Tile overheads tried to start their fit, in K elements (0 to 8 main-loop steps of 64).
_TILE_OVERHEAD_GRID = (0.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)


def fit_gemm(samples: Sequence[GemmSample], precision: str, chip: Accelerator,
             base: CalibrationProfile, sm_count: int, misaligned_k_factor: float,
             derivation: str = "", joint: bool = False,
             unpinned: GemmParams | None = None) -> GemmParams:
    """Fit one precision's GEMM parameters, ``max_efficiency`` always so that the anchor -- the
    best-shape (MAMF) sample, or else the highest-throughput one -- is reproduced exactly:

    1. ``launch_seconds``, the fixed time of any kernel, by least squares (log error) over the
       other samples with no tile overhead: the smallest GEMMs, all fixed time, settle it;
    2. then ``tile_overhead_k`` by least squares over the same samples, the launch time held: the
       large GEMMs of short K settle it.  In this order the per-kernel time keeps its meaning for
       the other kernels priced with it (DeepSpeed's per-rank copies, serving's memory-bound
       kernels) on published rows, which rarely hold a launch-bound GEMM (the A100's have none:
       fitted together, a 0.7 us launch and a 277-element overhead explain them as well as 10 us
       and 20).  The order leaves part of a true overhead in the launch time.
    ``joint``: both together, from the best of a grid (for ``colossim calibrate``'s measured grid,
    whose smallest and largest shapes pin each of them).  A single sample pins neither: it sets
    ``max_efficiency`` alone, as all compute (a best-of-search MAMF row is the top of what the chip
    reaches, which the fitted form reaches at large shapes, so neither a launch time nor a tile
    overhead may lift it); the fixed time per kernel, which one row cannot show, is then
    ``unpinned``'s (another chip's fitted GEMM parameters, the caller's choice) when given, else 0.
    The anchor's own shape is then priced that much slower than it measured."""
    if not samples:
        raise ValueError("fit_gemm needs at least one sample")
    peak = chip.peak_flops_per_s(precision)
    anchor = next((s for s in samples if s.is_mamf), max(samples, key=lambda s: s.flops_per_s))
    t_anchor = 2.0 * anchor.m * anchor.n * anchor.k / anchor.flops_per_s
    rows = tuple(s.row for s in samples)
    others = [s for s in samples if s is not anchor]
    meas = np.array([s.flops_per_s for s in others])

    def make(launch_s: float, overhead_k: float = 0.0) -> GemmParams:
        util = float(compute.shape_utilisation(anchor.m, anchor.n, anchor.k, sm_count,
                                               tile_overhead_k=overhead_k))
        e_max = min(2.0 * anchor.m * anchor.n * anchor.k
                    / (peak * util * max(t_anchor - launch_s, 1e-3 * t_anchor)), 1.0)
        return GemmParams(e_max, launch_s, misaligned_k_factor, sm_count, derivation, rows,
                          tile_overhead_k=overhead_k)

    if not others:
        alone = make(0.0)
        return dataclasses.replace(alone, launch_seconds=unpinned.launch_seconds) if unpinned else alone

    def error(gp: GemmParams) -> float:
        prof = _gemm_profile(base, precision, gp)
        return log_error(predict_gemm_flops_per_s(others, chip, prof), meas)

    def launch_loss(x: np.ndarray) -> float:
        return error(make(float(np.exp(x[0]))))

    grid = np.log(np.logspace(-7, -4, 31))  # Because: 0.1 us .. 100 us brackets kernel launches
    if joint:  # x = (log launch, overhead in 64-steps)
        def joint_params(x: np.ndarray) -> GemmParams:
            return make(float(np.exp(x[0])), max(float(x[1]), 0.0) * compute.TILE_K)

        starts = [np.array([g, k0 / compute.TILE_K]) for g in grid for k0 in _TILE_OVERHEAD_GRID]
        best_start = min(starts, key=lambda x: error(joint_params(x)))
        return joint_params(nelder_mead(lambda x: error(joint_params(x)), best_start, step=0.2))
    best = grid[int(np.argmin([launch_loss(np.array([g])) for g in grid]))]
    launch = float(np.exp(nelder_mead(launch_loss, [best], step=0.2)[0]))

    def overhead_loss(x: np.ndarray) -> float:
        return error(make(launch, max(float(x[0]), 0.0)))

    k0 = min(_TILE_OVERHEAD_GRID, key=lambda v: overhead_loss(np.array([v])))
    return make(launch, max(float(nelder_mead(overhead_loss, [k0], step=16.0)[0]), 0.0))


def sustained_fraction(sample: GemmSample, chip: Accelerator, burst: CalibrationProfile) -> float:
    """Sustained / burst GEMM throughput: ``sample``, timed after the GPU has sat at its power limit
    long enough to settle at the clock it holds there, over what the burst-fitted ``burst``
    profile predicts at the same shape; capped at 1 (a chip that holds its clock loses nothing)."""
    return min(sample.flops_per_s / float(predict_gemm_flops_per_s([sample], chip, burst)[0]), 1.0)


def with_sustained_fraction(gemm: dict[str, GemmParams], precisions: Sequence[str], fraction: float,
                            rows: tuple[str, ...], origin: str = "") -> dict[str, GemmParams]:
    """``gemm`` with ``fraction`` folded into the ``max_efficiency`` of ``precisions`` (the ones
    fitted to burst measurements; parameters taken over from elsewhere already carry theirs)."""
    out = dict(gemm)
    where = ", ".join(rows) or "none"
    for p in precisions:
        g = out[p]
        out[p] = dataclasses.replace(
            g, max_efficiency=g.max_efficiency * fraction, sustained_fraction=fraction,
            sustained_rows=rows,
            derivation=f"{g.derivation}; x {fraction:.3f} sustained-clock fraction ({where}{origin})")
    return out


# --- attention ----------------------------------------------------------------------------------
#: FlashAttention-2 fwd+bwd FLOPs = 3.5 x forward (flash-attn benchmark_flash_attention.py).
FWD_BWD_FLOPS_FACTOR = 1.0 + compute.ATTENTION_BACKWARD_FLOPS_RATIO


def predict_attention_flops_per_s(samples: Sequence[AttentionSample], peak: float,
                                  params: AttentionParams) -> np.ndarray:
    """Predicted fwd+bwd FLOP/s (efficiency x bf16 peak) for each sample."""
    s = np.array([x.seq * (0.5 if x.causal else 1.0) for x in samples], dtype=float)
    d = np.array([x.head_dim for x in samples], dtype=float)
    return peak * params.max_efficiency * s / (s + params.half_seq) * d / (d + params.half_head_dim)


def fit_attention(samples: Sequence[AttentionSample], peak: float, derivation: str = "",
                  start: AttentionParams | None = None) -> AttentionParams:
    """Fit (max_efficiency, half_seq, half_head_dim); with fewer than 3 samples only
    ``max_efficiency`` is fitted and the shape comes from ``start``."""
    meas = np.array([s.flops_per_s for s in samples])
    rows = tuple(s.row for s in samples)
    x0 = start or AttentionParams(0.4, 512.0, 32.0)
    if len(samples) < 3:
        probe = dataclasses.replace(x0, max_efficiency=1.0)
        ratio = np.exp(np.mean(np.log(meas / predict_attention_flops_per_s(samples, peak, probe))))
        return AttentionParams(float(min(ratio, 1.0)), x0.half_seq, x0.half_head_dim, derivation, rows)

    def params(x: np.ndarray) -> AttentionParams:
        return AttentionParams(float(min(np.exp(x[0]), 1.0)), float(np.exp(x[1])), float(np.exp(x[2])))

    def loss(x: np.ndarray) -> float:
        return log_error(predict_attention_flops_per_s(samples, peak, params(x)), meas)

    x = nelder_mead(loss, np.log([x0.max_efficiency, x0.half_seq, x0.half_head_dim]))
    p = params(x)
    return AttentionParams(p.max_efficiency, p.half_seq, p.half_head_dim, derivation, rows)


# --- memory -------------------------------------------------------------------------------------
def fit_memory_efficiency(samples: Sequence[MemorySample], hbm_bytes_per_s: float) -> float:
    """Achieved / datasheet HBM bandwidth: the geometric mean over the copy samples."""
    ratios = np.array([s.bytes_per_s / hbm_bytes_per_s for s in samples])
    return float(np.exp(np.mean(np.log(ratios))))


# --- bus-bandwidth curves -----------------------------------------------------------------------
def fit_bus_curve(predict: Callable[[BusCurve], np.ndarray], measured: np.ndarray, start: BusCurve,
                  fit_shape: bool = True, derivation: str = "", rows: tuple[str, ...] = ()) -> BusCurve:
    """Fit a curve's (link_fraction, half_size_bytes, gamma) — or only link_fraction when
    ``fit_shape`` is False — so that ``predict(curve)`` matches ``measured`` (latency kept)."""
    measured = np.asarray(measured, dtype=float)

    def curve(x: np.ndarray) -> BusCurve:
        if fit_shape:
            return dataclasses.replace(start, link_fraction=float(np.exp(x[0])),
                                       half_size_bytes=float(np.exp(x[1])),
                                       gamma=float(np.clip(np.exp(x[2]), 0.2, 3.0)))
        return dataclasses.replace(start, link_fraction=float(np.exp(x[0])))

    def loss(x: np.ndarray) -> float:
        return log_error(predict(curve(x)), measured)

    x0 = [np.log(start.link_fraction)]
    if fit_shape:
        x0 += [np.log(start.half_size_bytes), np.log(start.gamma)]
    best = curve(nelder_mead(loss, x0, step=0.3, iters=600))
    return dataclasses.replace(best, derivation=derivation, rows=rows)
