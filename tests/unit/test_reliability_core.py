"""Reliability core: failure rates from the data, checkpoint costs, intervals, Monte Carlo vs Daly."""

from __future__ import annotations

import math

import pytest

from colossim.errors import ColossimError, UnknownNameError
from colossim.reliability.checkpoint import (BYTES_PER_PARAM_MIXED_ADAM, checkpoint_bytes, checkpoint_costs,
                                             spare_coverage)
from colossim.reliability.failures import failure_model, failure_rate_rows, reliability_fact
from colossim.reliability.interval import (IntervalModel, daly_interval, ettr_first_order,
                                           expected_wall_seconds, interval_for_ettr, optimal_interval,
                                           wall_per_work, young_interval)
from colossim.reliability.montecarlo import MAX_SIMULATED_CYCLES, MIN_TRIALS_WHEN_CAPPED, simulate


def test_llama3_table5_rows_sum_to_the_published_totals():
    rows = [r for r in failure_rate_rows() if r.model == "llama3"]
    assert sum(r.events for r in rows if r.kind == "unexpected") == reliability_fact(
        "llama3-interruptions-unexpected").number
    assert sum(r.events for r in rows if r.kind == "planned") == reliability_fact(
        "llama3-interruptions-planned").number
    assert all(r.source and r.derivation for r in failure_rate_rows())


def test_rates_scale_linearly_with_gpus_and_meta_mttf_projections():
    a, b = failure_model("llama3", 1000), failure_model("llama3", 4000)
    assert b.rate_unexpected_per_hour == pytest.approx(4 * a.rate_unexpected_per_hour)
    # Kokolis et al.: projected MTTF 1.8 h at 16,384 GPUs and 0.23 h at 131,072 GPUs (RSC-1 rate)
    assert failure_model("meta-rsc1", 16384).mttf_hours == pytest.approx(1.8, abs=0.01)
    assert failure_model("meta-rsc1", 131072).mttf_hours == pytest.approx(0.23, abs=0.01)
    assert failure_model("meta-rsc1", 16384).rate_planned_per_hour == 0


def test_component_shares_and_per_node_day_views():
    fm = failure_model("llama3", 16384)
    gpu = next(c for c in fm.by_component if c.component == "faulty GPU")
    assert gpu.share == pytest.approx(148 / 419)
    assert gpu.per_node_day == pytest.approx(gpu.per_gpu_hour * 8 * 24)
    assert sum(c.share for c in fm.by_component if c.kind == "unexpected") == pytest.approx(1)


def test_custom_and_override_rates():
    fm = failure_model("custom", 800, 8, unexpected_per_1000_node_days=10)
    assert fm.rate_unexpected_per_hour == pytest.approx(100 * 10 / 1000 / 24)
    fm = failure_model("meta-rsc2", 800, 8, planned_per_1000_node_days=1)
    assert fm.rate_planned_per_hour == pytest.approx(100 / 1000 / 24)
    with pytest.raises(ColossimError, match="unexpected_per_1000_node_days"):
        failure_model("custom", 8)
    with pytest.raises(UnknownNameError, match="llama3"):
        failure_model("llama-3", 8)
    with pytest.raises(ColossimError, match="n_gpus"):
        failure_model("llama3", 0)


def test_a_trillion_parameter_checkpoint_is_the_size_megatron_wrote():
    # Narayanan et al. 2021 sec. 5.10: the 1T model's checkpoint is 13.8 TB; 3 % covers what the
    # paper does not say (which tensors besides weights and Adam state it saved)
    from colossim.specs.model import resolve_model

    params = resolve_model("megatron-1t").params_total
    assert checkpoint_bytes(params) == pytest.approx(13.8e12, rel=0.03)


def test_checkpoint_bytes_and_write_bounds():
    assert BYTES_PER_PARAM_MIXED_ADAM == 14
    assert checkpoint_bytes(1e9) == 14e9
    # 8 TB over 1000 GB/s aggregate = 8 s; per node 8 TB / 100 nodes / 10 GB/s = 8 s -> both 8 s
    c = checkpoint_costs(bytes_total=8e12, bytes_per_gpu=1e10, n_gpus=800, gpus_per_node=8,
                         storage_gb_per_s=1000, node_storage_gb_per_s=10, asynchronous=False)
    assert c.write_seconds == pytest.approx(8)
    c = checkpoint_costs(bytes_total=8e12, bytes_per_gpu=1e10, n_gpus=800, gpus_per_node=8,
                         storage_gb_per_s=1000, node_storage_gb_per_s=5, asynchronous=False)
    assert c.write_seconds == pytest.approx(16)  # the per-node bound is slower and wins
    assert c.stall_seconds == c.write_seconds and c.write_lag_seconds == 0


def test_async_stalls_only_for_the_host_copy():
    c = checkpoint_costs(bytes_total=8e12, bytes_per_gpu=1e10, n_gpus=800, gpus_per_node=8,
                         storage_gb_per_s=100, node_storage_gb_per_s=None, asynchronous=True,
                         host_copy_gb_per_s=20)
    assert c.stall_seconds == pytest.approx(0.5)      # 10 GB / 20 GB/s
    assert c.write_lag_seconds == pytest.approx(80)   # 8 TB / 100 GB/s


def test_recovery_parts_and_hot_spares():
    kw = dict(bytes_total=1e12, bytes_per_gpu=1e10, n_gpus=800, gpus_per_node=8, storage_gb_per_s=100,
              node_storage_gb_per_s=None, asynchronous=False, detection_min=2, restart_min=5,
              reschedule_min=5, rate_unexpected_per_hour=0.5, node_repair_hours=24)
    none = checkpoint_costs(**kw)
    assert none.recovery_unexpected_seconds == pytest.approx(12 * 60 + 10)
    many = checkpoint_costs(**kw, hot_spares=100)
    assert many.recovery_unexpected_seconds == pytest.approx(7 * 60 + 10, abs=1)
    # Poisson(12) nodes in repair: P[N <= 11] with 12 spares
    assert spare_coverage(12, 0.5, 24) == pytest.approx(
        sum(math.exp(-12) * 12**k / math.factorial(k) for k in range(12)))


def test_inconsistent_or_negative_sizes_name_the_field():
    base = dict(bytes_total=8e12, bytes_per_gpu=1e10, n_gpus=800, gpus_per_node=8, storage_gb_per_s=10,
                node_storage_gb_per_s=None, asynchronous=False)
    with pytest.raises(ColossimError, match="checkpoint_bytes_per_gpu"):
        checkpoint_costs(**{**base, "bytes_per_gpu": 1e9})  # 800 GB on GPUs < 8 TB
    with pytest.raises(ColossimError, match="storage_gb_per_s"):
        checkpoint_costs(**{**base, "storage_gb_per_s": 0})
    with pytest.raises(ColossimError, match="restart_min"):
        checkpoint_costs(**base, restart_min=-1)


@pytest.mark.parametrize(("fact", "mttf_min"), [("daly-2006-ex1", 24 * 60), ("daly-2006-ex2", 6 * 60),
                                                 ("daly-2006-ex3", 15)])
def test_daly_worked_examples(fact, mttf_min):
    """Daly (2006): d = 5 min, R = 10 min (R does not enter the estimate); printed to 3 digits."""
    printed = reliability_fact(fact).value
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    got = daly_interval(5 * 60, mttf_min * 60) / 60
    assert round(got, decimals) == float(printed)
    assert abs(got - float(printed)) <= 0.5 * 10**-decimals


def test_young_and_daly_limits():
    assert young_interval(300, 86400) == pytest.approx(math.sqrt(2 * 300 * 86400))
    assert daly_interval(100, 40) == 40  # d >= 2M: tau = M
    assert daly_interval(1, 1e9) / young_interval(1, 1e9) == pytest.approx(1, rel=1e-4)


def test_numerical_optimum_matches_daly_estimate():
    for mttf in (24 * 3600, 6 * 3600, 15 * 60):
        m = IntervalModel(300, 1 / mttf, 600)
        assert optimal_interval(m) == pytest.approx(daly_interval(300, mttf), rel=0.01)


def test_monte_carlo_matches_daly_complete_model():
    m = IntervalModel(60, 1 / 3600, 600, 1 / 36000, 300, write_lag_seconds=0)
    tau, work = optimal_interval(m), 500 * 3600
    mc = simulate(work, tau, 60, 1 / 3600, 600, rate_planned_per_s=1 / 36000, recovery_planned_seconds=300,
                  trials=2000, seed=3)
    assert mc.wall_seconds_mean == pytest.approx(expected_wall_seconds(work, tau, m), rel=0.005)
    # the parts add up to the wall time
    parts = work + mc.checkpoint_seconds_mean + mc.lost_work_seconds_mean + mc.recovery_seconds_mean
    assert parts == pytest.approx(mc.wall_seconds_mean, rel=1e-6)
    # about one unexpected failure per 3600 s of wall time
    assert mc.unexpected_mean == pytest.approx(mc.wall_seconds_mean / 3600, rel=0.02)


def test_first_order_ettr_agrees_when_failures_are_rare():
    m = IntervalModel(30, 1 / (20 * 3600), 600, 1 / (200 * 3600), 300)
    tau, work = optimal_interval(m), 2000 * 3600
    mc = simulate(work, tau, 30, 1 / (20 * 3600), 600, rate_planned_per_s=1 / (200 * 3600),
                  recovery_planned_seconds=300, trials=1000, seed=1)
    assert mc.ettr == pytest.approx(ettr_first_order(tau, m), abs=0.003)


def test_monte_carlo_async_lag_costs_about_one_lag_per_failure():
    m = IntervalModel(5, 1 / 3600, 600, write_lag_seconds=120)
    tau, work = 900.0, 300 * 3600
    mc = simulate(work, tau, 5, 1 / 3600, 600, write_lag_seconds=120, trials=2000, seed=5)
    assert mc.wall_seconds_mean == pytest.approx(expected_wall_seconds(work, tau, m), rel=0.01)


def test_monte_carlo_is_seeded_and_no_failure_case_is_exact():
    a = simulate(1e6, 3600, 30, 1e-4, 600, trials=200, seed=7)
    b = simulate(1e6, 3600, 30, 1e-4, 600, trials=200, seed=7)
    assert a == b
    none = simulate(36000, 3600, 30, 0, 600, trials=10)
    assert none.wall_seconds_p50 == 36000 + 10 * 30 and none.interruptions_mean == 0


def test_a_run_of_a_million_interruptions_runs_fewer_trials_and_still_matches_daly():
    # 2,000 trials of such runs took minutes; the product of trials and interruptions is capped
    m = IntervalModel(30, 1 / 3600, 600)
    tau, work = 600.0, 3e9  # ~ 960,000 interruptions a run
    mc = simulate(work, tau, 30, 1 / 3600, 600, trials=2000, seed=1)
    assert MIN_TRIALS_WHEN_CAPPED <= mc.trials < 2000
    assert mc.trials * mc.interruptions_mean <= MAX_SIMULATED_CYCLES * 1.01
    assert mc.wall_seconds_mean == pytest.approx(expected_wall_seconds(work, tau, m), rel=0.002)


def test_interruptions_beyond_float_range_are_refused_not_an_overflow():
    # exp(rate x segment) overflowed a float (math range error) before the check could refuse it
    with pytest.raises(ColossimError, match="^the job cannot make progress: about .* interruptions per run"):
        simulate(1e6, 3600, 30, 1.0, 600, trials=10)


def test_interval_for_ettr_brackets_the_optimum():
    m = IntervalModel(3, 1 / (3 * 3600), 12 * 60)
    r = interval_for_ettr(0.9, m)
    assert r.shortest_seconds < r.optimum_seconds < r.longest_seconds
    for tau in (r.shortest_seconds, r.longest_seconds):
        assert 1 / wall_per_work(tau, m) == pytest.approx(0.9, abs=1e-6)
    assert interval_for_ettr(0.999, m).shortest_seconds is None
