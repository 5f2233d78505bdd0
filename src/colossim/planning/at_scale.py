"""Reliability at the scale of the clusters in the news: interruptions per day, and the checkpoint
interval and storage bandwidth that keep ETTR >= 90 % (Meta's Llama 3 cluster, Colossus at 100,000
and 200,000 H100), under Llama 3's measured failure rates and a 405B-parameter training state."""

from __future__ import annotations

from dataclasses import dataclass

from colossim.reliability import checkpoint as ck
from colossim.reliability.goodput import (
    ettr_at_optimum,
    interval_model,
    intervals_for_ettr,
    job_costs,
    required_checkpoint_bandwidth,
)
from colossim.reliability.interval import optimal_interval
from colossim.reliability.spec import ReliabilitySpec

#: The clusters (name, H100 count).  Sources: fleet.csv (Meta GenAI 2024 clusters of 24,576 H100;
#: xAI Colossus 1 at 100,000 H100 in 2024-09 and 200,000 in 2025-02).
CLUSTERS = (("Meta GenAI cluster (Llama 3)", 24_576), ("xAI Colossus (2024-09)", 100_000),
            ("xAI Colossus (2025-02)", 200_000))
#: Model state checkpointed: Llama 3 405B (the largest dense model trained at this scale).
STATE_PARAMS = 405e9
TARGET_ETTR = 0.90
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class ScaleRow:
    name: str
    gpus: int
    interruptions_per_day: float
    mttf_minutes: float
    optimal_interval_min: float
    ettr_at_optimum: float
    interval_range_min: tuple[float, float] | None
    bandwidth_needed_gb_per_s: float | None


def scale_rows(source: str = "llama3") -> list[ScaleRow]:
    """One row per cluster in :data:`CLUSTERS` with the reliability engine's defaults."""
    spec = ReliabilitySpec.parse({"failure_rate_source": source})
    total = ck.checkpoint_bytes(STATE_PARAMS)
    out = []
    for name, n in CLUSTERS:
        per_gpu = total / n
        fm, costs = job_costs(n, GPUS_PER_NODE, total, per_gpu, spec)
        tau = optimal_interval(interval_model(fm, costs))
        rng = intervals_for_ettr(TARGET_ETTR, n, GPUS_PER_NODE, total, per_gpu, spec)
        lo_hi = (None if rng.shortest_seconds is None
                 else (rng.shortest_seconds / 60, rng.longest_seconds / 60))
        out.append(ScaleRow(name, n, 24.0 / fm.mtbi_hours, fm.mttf_hours * 60, tau / 60,
                            ettr_at_optimum(n, GPUS_PER_NODE, total, per_gpu, spec), lo_hi,
                            required_checkpoint_bandwidth(TARGET_ETTR, n, GPUS_PER_NODE, total, per_gpu, spec)))
    return out
