"""Goodput of a training run: failures + checkpoints + recoveries -> realistic wall time and ETTR.

``estimate_reliability`` is the core entry point: explicit job size, checkpoint size and useful
time, plus a :class:`ReliabilitySpec`.  ``required_checkpoint_bandwidth`` and
``interval_for_ettr`` answer "what does it take to keep ETTR at 90 %?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from colossim.errors import ColossimError, SpecError
from colossim.reliability.checkpoint import CheckpointCosts, checkpoint_costs
from colossim.reliability.failures import FailureModel, failure_model, reliability_fact
from colossim.reliability.interval import (IntervalModel, IntervalRange, daly_interval,
                                           expected_wall_seconds, interval_for_ettr, optimal_interval,
                                           wall_per_work, young_interval)
from colossim.reliability.montecarlo import MonteCarloResult, simulate
from colossim.reliability.spec import ReliabilitySpec
from colossim.units import SECONDS_PER_DAY, SECONDS_PER_HOUR

TB_TO_GB = 1000.0


def default_storage_gb_per_s() -> float:
    """Aggregate checkpoint bandwidth when the spec gives none: Llama 3's Tectonic storage,
    2 TB/s sustained (reliability.csv row llama3-storage-sustained)."""
    return reliability_fact("llama3-storage-sustained").number * TB_TO_GB


@dataclass(frozen=True)
class ReliabilityResult:
    """A run's realistic wall time under failures (times in the unit their name says)."""

    n_gpus: int
    useful_hours: float
    mttf_hours: float
    """mean time to an unexpected failure of the whole job"""
    mtbi_hours: float
    """mean time between interruptions (unexpected and planned)"""
    interruptions_per_day: float
    interruptions_expected: float
    """over the expected wall time (Monte Carlo mean)"""
    checkpoint_interval_min: float
    checkpoint_seconds: float
    """training stall per checkpoint"""
    checkpoint_write_seconds: float
    young_interval_min: float
    daly_interval_min: float
    optimal_interval_min: float
    ettr: float
    """useful / expected wall time (Monte Carlo)"""
    ettr_analytical: float
    """Daly's complete model at the same interval (cross-check)"""
    wall_time_days_mean: float
    wall_time_days_p10: float
    wall_time_days_p50: float
    wall_time_days_p90: float
    breakdown: dict[str, float]
    """expected hours: useful, checkpoint, lost_work, recovery (they sum to the wall time)"""
    failures: FailureModel
    checkpoint: CheckpointCosts
    monte_carlo: MonteCarloResult


def job_costs(n_gpus: int, gpus_per_node: int, checkpoint_bytes_total: float,
              checkpoint_bytes_per_gpu: float, spec: ReliabilitySpec) -> tuple[FailureModel, CheckpointCosts]:
    """The failure model and checkpoint/recovery costs of a job under ``spec``."""
    fm = failure_model(spec.failure_rate_source, n_gpus, gpus_per_node,
                       unexpected_per_1000_node_days=spec.unexpected_per_1000_node_days,
                       planned_per_1000_node_days=spec.planned_per_1000_node_days)
    costs = checkpoint_costs(
        bytes_total=checkpoint_bytes_total, bytes_per_gpu=checkpoint_bytes_per_gpu, n_gpus=n_gpus,
        gpus_per_node=gpus_per_node,
        storage_gb_per_s=spec.storage_gb_per_s or default_storage_gb_per_s(),
        node_storage_gb_per_s=spec.node_storage_gb_per_s, asynchronous=spec.async_checkpoint,
        host_copy_gb_per_s=spec.host_copy_gb_per_s, detection_min=spec.detection_min,
        restart_min=spec.restart_min, reschedule_min=spec.reschedule_min, hot_spares=spec.hot_spares,
        rate_unexpected_per_hour=fm.rate_unexpected_per_hour, node_repair_hours=spec.node_repair_hours)
    return fm, costs


def interval_model(fm: FailureModel, costs: CheckpointCosts) -> IntervalModel:
    """What the expected wall time depends on, from a failure model and checkpoint costs."""
    return IntervalModel(stall_seconds=costs.stall_seconds, rate_unexpected_per_s=fm.rate_unexpected_per_s,
                         recovery_unexpected_seconds=costs.recovery_unexpected_seconds,
                         rate_planned_per_s=fm.rate_planned_per_s,
                         recovery_planned_seconds=costs.recovery_planned_seconds,
                         write_lag_seconds=costs.write_lag_seconds)


def estimate_reliability(n_gpus: int, gpus_per_node: int, checkpoint_bytes_total: float,
                         checkpoint_bytes_per_gpu: float, useful_hours: float,
                         spec: ReliabilitySpec) -> ReliabilityResult:
    """Realistic wall time, ETTR and interruptions of ``useful_hours`` of training on ``n_gpus``.

    The interval is the spec's, or (``auto``) the numerical optimum of Daly's complete model; the
    Monte Carlo (``spec.trials``, ``spec.seed``) gives the wall-time distribution."""
    if not useful_hours > 0 or not math.isfinite(useful_hours):
        raise SpecError(f"useful time must be > 0 hours, got {useful_hours!r}", field="duration_days",
                        value=useful_hours)
    fm, costs = job_costs(n_gpus, gpus_per_node, checkpoint_bytes_total, checkpoint_bytes_per_gpu, spec)
    m = interval_model(fm, costs)
    work_s = useful_hours * SECONDS_PER_HOUR
    opt_s = optimal_interval(m, max_seconds=work_s)
    if spec.checkpoint_interval_min == "auto":
        tau_s = opt_s
    else:
        tau_s = float(spec.checkpoint_interval_min) * 60
        if tau_s < costs.write_lag_seconds:
            raise SpecError(
                f"reliability.checkpoint_interval_min: {spec.checkpoint_interval_min} min is shorter "
                f"than the asynchronous write ({costs.write_lag_seconds / 60:.3g} min); raise the "
                f"interval or the storage bandwidth", field="reliability.checkpoint_interval_min",
                value=spec.checkpoint_interval_min)
    tau_s = min(tau_s, work_s)
    mc = simulate(work_s, tau_s, costs.stall_seconds, fm.rate_unexpected_per_s,
                  costs.recovery_unexpected_seconds, rate_planned_per_s=fm.rate_planned_per_s,
                  recovery_planned_seconds=costs.recovery_planned_seconds,
                  write_lag_seconds=costs.write_lag_seconds, trials=spec.trials, seed=spec.seed)
    mttf_s = fm.mttf_hours * SECONDS_PER_HOUR
    hours = SECONDS_PER_HOUR
    breakdown = {"useful_hours": useful_hours, "checkpoint_hours": mc.checkpoint_seconds_mean / hours,
                 "lost_work_hours": mc.lost_work_seconds_mean / hours,
                 "recovery_hours": mc.recovery_seconds_mean / hours,
                 "wall_hours": mc.wall_seconds_mean / hours,
                 "interruptions_unexpected": mc.unexpected_mean,
                 "interruptions_planned": mc.planned_mean, "checkpoints": mc.checkpoints_mean}
    return ReliabilityResult(
        n_gpus=n_gpus, useful_hours=useful_hours, mttf_hours=fm.mttf_hours, mtbi_hours=fm.mtbi_hours,
        interruptions_per_day=fm.rate_total_per_hour * 24, interruptions_expected=mc.interruptions_mean,
        checkpoint_interval_min=tau_s / 60, checkpoint_seconds=costs.stall_seconds,
        checkpoint_write_seconds=costs.write_seconds,
        young_interval_min=young_interval(costs.stall_seconds, mttf_s) / 60,
        daly_interval_min=daly_interval(costs.stall_seconds, mttf_s) / 60,
        optimal_interval_min=opt_s / 60, ettr=mc.ettr,
        ettr_analytical=work_s / expected_wall_seconds(work_s, tau_s, m),
        wall_time_days_mean=mc.wall_seconds_mean / SECONDS_PER_DAY,
        wall_time_days_p10=mc.wall_seconds_p10 / SECONDS_PER_DAY,
        wall_time_days_p50=mc.wall_seconds_p50 / SECONDS_PER_DAY,
        wall_time_days_p90=mc.wall_seconds_p90 / SECONDS_PER_DAY,
        breakdown=breakdown, failures=fm, checkpoint=costs, monte_carlo=mc)


def ettr_at_optimum(n_gpus: int, gpus_per_node: int, checkpoint_bytes_total: float,
                    checkpoint_bytes_per_gpu: float, spec: ReliabilitySpec) -> float:
    """Expected ETTR (Daly's complete model) at the optimal interval, for long runs."""
    fm, costs = job_costs(n_gpus, gpus_per_node, checkpoint_bytes_total, checkpoint_bytes_per_gpu, spec)
    m = interval_model(fm, costs)
    return 1 / float(wall_per_work(optimal_interval(m), m))


def intervals_for_ettr(target_ettr: float, n_gpus: int, gpus_per_node: int,
                       checkpoint_bytes_total: float, checkpoint_bytes_per_gpu: float,
                       spec: ReliabilitySpec) -> IntervalRange:
    """The checkpoint intervals (seconds) that keep expected ETTR >= ``target_ettr`` for a job."""
    fm, costs = job_costs(n_gpus, gpus_per_node, checkpoint_bytes_total, checkpoint_bytes_per_gpu, spec)
    return interval_for_ettr(target_ettr, interval_model(fm, costs))


#: Bracket for the bandwidth search (GB/s).  Because: 1 MB/s to 1 EB/s spans every real storage.
_BW_LOW_GB_PER_S, _BW_HIGH_GB_PER_S = 1e-3, 1e9
_BISECTIONS = 80  # Because: 80 halvings of a 1e12 log-range reach 1e-12 relative


def required_checkpoint_bandwidth(target_ettr: float, n_gpus: int, gpus_per_node: int,
                                  checkpoint_bytes_total: float, checkpoint_bytes_per_gpu: float,
                                  spec: ReliabilitySpec) -> float | None:
    """The least aggregate storage bandwidth (GB/s) that keeps expected ETTR >= ``target_ettr`` at
    the optimal interval (bisection in log space; ETTR rises with bandwidth).  The per-node bound
    is lifted (``node_storage_gb_per_s = None``) so the answer is the aggregate need.  None when
    even unlimited bandwidth misses the target (recovery time or failure rate dominate)."""
    if not 0 < target_ettr < 1:
        raise ColossimError(f"target ETTR must be between 0 and 1, got {target_ettr!r}",
                            field="target_ettr", value=target_ettr)

    def ettr(bw: float) -> float:
        s = replace_spec(spec, storage_gb_per_s=bw, node_storage_gb_per_s=None)
        return ettr_at_optimum(n_gpus, gpus_per_node, checkpoint_bytes_total, checkpoint_bytes_per_gpu, s)

    lo, hi = _BW_LOW_GB_PER_S, _BW_HIGH_GB_PER_S
    if ettr(hi) < target_ettr:
        return None
    if ettr(lo) >= target_ettr:
        return lo
    for _ in range(_BISECTIONS):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ettr(mid) >= target_ettr else (mid, hi)
    return hi


def replace_spec(spec: ReliabilitySpec, **changes: object) -> ReliabilitySpec:
    """A copy of ``spec`` with ``changes``, validated again."""
    return ReliabilitySpec.parse({**spec.model_dump(), **changes})


__all__ = ["ReliabilityResult", "default_storage_gb_per_s", "estimate_reliability", "ettr_at_optimum",
           "interval_model", "intervals_for_ettr", "job_costs", "required_checkpoint_bandwidth",
           "replace_spec"]
