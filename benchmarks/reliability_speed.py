"""Speed of the reliability Monte Carlo: 10,000 trials of a 90-day, 100,000-GPU run (target < 2 s
on one core).  Prints a table; run with ``OMP_NUM_THREADS=1 python benchmarks/reliability_speed.py``.

Scenario: Llama 3 failure rates (~53 interruptions a day at 100,000 GPUs), Llama 3 405B state
(405e9 x 14 bytes) at 2 TB/s, synchronous checkpoints at the optimal interval, and the recovery of
the row (default 12 min; with hot spares ~7 min)."""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from colossim.reliability.checkpoint import checkpoint_bytes  # noqa: E402
from colossim.reliability.goodput import estimate_reliability  # noqa: E402
from colossim.reliability.spec import ReliabilitySpec  # noqa: E402

SCENARIOS = [
    ("100k H100, 90 d, defaults", 100_000, {}),
    ("100k H100, 90 d, 100 hot spares", 100_000, {"hot_spares": 100}),
    ("100k H100, 90 d, async", 100_000, {"async_checkpoint": True}),
    ("200k H100, 90 d, 200 hot spares", 200_000, {"hot_spares": 200}),
]


def main() -> None:
    """Time each scenario (best of three) and print the table."""
    state = checkpoint_bytes(405e9)
    print(f"{'scenario':34s} {'trials':>7s} {'cycles/trial':>13s} {'ETTR':>6s} {'P50 days':>9s} {'seconds':>8s}")
    for name, gpus, extra in SCENARIOS:
        spec = ReliabilitySpec.parse({"duration_days": 90, "trials": 10_000, "seed": 0, **extra})
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            r = estimate_reliability(gpus, 8, state, state / gpus, 90 * 24, spec)
            best = min(best, time.perf_counter() - t0)
        print(f"{name:34s} {spec.trials:>7,d} {r.interruptions_expected:>13,.0f} {r.ettr:>6.1%} "
              f"{r.wall_time_days_p50:>9.1f} {best:>8.2f}")


if __name__ == "__main__":
    main()
