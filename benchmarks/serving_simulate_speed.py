"""Speed of the request-level serving simulator: 100,000 requests (target < 10 s on one core).
Prints a table; run with ``OMP_NUM_THREADS=1 python benchmarks/serving_simulate_speed.py``.

Scenario (the issue's): Poisson arrivals, lognormal input (mean 2048) and output (mean 256, sigma 0.8),
a Llama-70B-on-8xH100-like linear iteration cost (12 ms fixed: weight reads; 20 us per token: about
140 GFLOP per token over 8 GPUs at ~90 % of 8 x 989 TFLOPS; 2e-9 s per KV entry read; 5e-12 s per
prefill query-key pair), 1.5 M KV tokens, 256 sequences, 8,192 tokens per iteration.  At 20 requests/s
this replica is past saturation (the queue grows; TTFT is minutes), so lower rates are timed too:
they run more, smaller iterations, which is the slow case for the simulator."""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from colossim.inference.simulate import (  # noqa: E402
    LinearIterationCost,
    SchedulerConfig,
    parse_length,
    simulate,
)

COST = LinearIterationCost(fixed_seconds=0.012, per_token_seconds=20e-6, per_kv_token_seconds=2e-9,
                           per_pair_seconds=5e-12)
ROOMY = SchedulerConfig(kv_capacity_tokens=1_500_000, max_batch=256, max_num_tokens=8192)
TIGHT = SchedulerConfig(kv_capacity_tokens=200_000, max_batch=256, max_num_tokens=8192)
SCENARIOS = [
    ("rate 20/s (overloaded)", 20.0, ROOMY),
    ("rate 12/s", 12.0, ROOMY),
    ("rate 5/s", 5.0, ROOMY),
    ("offline (all at t=0)", math.inf, ROOMY),
    ("rate 12/s, 200k KV tokens", 12.0, TIGHT),
]
REQUESTS = 100_000


def main() -> None:
    """Time each scenario (best of three) and print the table."""
    inp, out = parse_length("lognormal:2048,0.8"), parse_length("lognormal:256,0.8")
    print(f"{'scenario':28s} {'requests':>9s} {'iterations':>11s} {'preempt':>8s} {'TTFT p50 s':>11s} "
          f"{'TPOT p50 ms':>12s} {'wall s':>7s} {'sim req/s':>10s}")
    for name, rate, cfg in SCENARIOS:
        best, r = float("inf"), None
        for _ in range(3):
            t0 = time.perf_counter()
            r = simulate(COST, cfg, rate_per_s=rate, requests=REQUESTS, input_len=inp, output_len=out, seed=0)
            best = min(best, time.perf_counter() - t0)
        print(f"{name:28s} {r.requests:>9,d} {r.iterations:>11,d} {r.preemptions:>8,d} {r.ttft_s['p50']:>11.3f} "
              f"{r.tpot_s['p50'] * 1e3:>12.1f} {best:>7.2f} {r.requests / best:>10,.0f}")


if __name__ == "__main__":
    main()
