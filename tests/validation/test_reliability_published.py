"""Reliability against published figures.

* Llama Team, 'The Llama 3 Herd of Models' (arXiv 2407.21783), section 3.3.4: 466 interruptions
  (419 unexpected, 47 planned) of one job on 16,384 H100 over a 54-day snapshot; > 90 % effective
  training time.  Assumptions (Meta-like, not published): Llama 3 405B state at 14 bytes/param
  (5.67 TB) written to Tectonic at 2 TB/s sustained (section 3.3.1), synchronous checkpoints,
  2 min detection, 5 min restart, 5 min reschedule, no hot spares.
* Kokolis et al. (HPCA'25): projected MTTF 1.8 h at 16,384 GPUs, 0.23 h at 131,072 (RSC-1 rate).
"""

from __future__ import annotations

import pytest

from colossim.reliability.checkpoint import checkpoint_bytes
from colossim.reliability.failures import reliability_fact
from colossim.reliability.goodput import estimate_reliability, required_checkpoint_bandwidth
from colossim.reliability.spec import ReliabilitySpec

LLAMA3_STATE = checkpoint_bytes(405e9)


def _llama3(useful_days: float, trials: int = 400):
    spec = ReliabilitySpec.parse({"failure_rate_source": "llama3", "duration_days": useful_days,
                                  "trials": trials, "seed": 1})
    return estimate_reliability(16384, 8, LLAMA3_STATE, LLAMA3_STATE / 16384, useful_days * 24, spec)


def test_llama3_interruptions_over_the_54_day_window_and_ettr():
    window_days = reliability_fact("llama3-window-days").number
    # simulate the useful work that fits in the window at the model's ETTR, then count
    first = _llama3(window_days * 0.9)
    r = _llama3(window_days * first.ettr)
    assert r.wall_time_days_mean == pytest.approx(window_days, rel=0.01)
    total = reliability_fact("llama3-interruptions-total").number
    unexpected = reliability_fact("llama3-interruptions-unexpected").number
    assert r.interruptions_expected == pytest.approx(total, rel=0.03)
    assert r.breakdown["interruptions_unexpected"] == pytest.approx(unexpected, rel=0.03)
    assert r.ettr > 0.90  # Llama 3: "higher than 90% effective training time"
    assert r.ettr < 0.97  # but interruptions still cost several percent


def test_meta_projection_of_mttf():
    spec = ReliabilitySpec.parse({"failure_rate_source": "meta-rsc1", "duration_days": 1, "trials": 50})
    r = estimate_reliability(131072, 8, LLAMA3_STATE, LLAMA3_STATE / 131072, 24, spec)
    assert r.mttf_hours == pytest.approx(reliability_fact("meta-mttf-131k-proj").number, abs=0.01)


def test_colossus_needs_fast_recovery_for_90_percent():
    """100,000 H100 at Llama 3 rates: ~53 interruptions a day; with 12-minute recoveries no storage
    bandwidth reaches 90 % ETTR, with 1-minute recoveries a finite bandwidth does."""
    slow = ReliabilitySpec.parse({"duration_days": 90})
    assert required_checkpoint_bandwidth(0.9, 100000, 8, LLAMA3_STATE, LLAMA3_STATE / 100000, slow) is None
    fast = ReliabilitySpec.parse({"duration_days": 90, "detection_min": 0.25, "restart_min": 0.5,
                                  "reschedule_min": 0.25})
    bw = required_checkpoint_bandwidth(0.9, 100000, 8, LLAMA3_STATE, LLAMA3_STATE / 100000, fast)
    assert bw is not None and 100 < bw < 1e5
