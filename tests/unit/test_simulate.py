"""Request-level serving simulator: closed-form cases, queueing laws, preemption, lengths, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from colossim.errors import SpecError
from colossim.specs._validation import MAX_SPEC_INTEGER
from colossim.inference.simulate import (
    LengthDistribution,
    LinearIterationCost,
    SchedulerConfig,
    parse_length,
    simulate,
    simulate_trace,
    summarise,
)

F, T, KV, PAIR = 0.01, 1e-5, 1e-8, 1e-10
COST = LinearIterationCost(F, T, KV, PAIR)


def it(tokens, kv=0, pairs=0.0):
    """One iteration of COST, written out by hand."""
    return F + T * tokens + KV * kv + PAIR * pairs


def causal(c, prefix=0):
    return c * (prefix + (c + 1) / 2)


# ---- closed forms ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arrival", [0.0, 3.0])
def test_one_request_alone_prefill_then_decodes(arrival):
    p, o = 512, 64
    t = simulate_trace(COST, SchedulerConfig(100_000, 8, 4096), [arrival], [p], [o])
    prefill = it(p, pairs=causal(p))
    decodes = [it(1, kv=p + k) for k in range(1, o)]   # step k reads p + k - 1 cached entries + the fed token
    assert t.first_token_s[0] - arrival == pytest.approx(prefill, rel=1e-12)
    assert t.finish_s[0] - arrival == pytest.approx(prefill + sum(decodes), rel=1e-12)
    r = summarise(t)
    assert r.ttft_s["p50"] == pytest.approx(prefill, rel=1e-12)
    assert r.tpot_s["mean"] == pytest.approx(it(1, kv=p + o / 2), rel=1e-12)   # mean decode iteration
    assert r.iterations == o and r.mean_batch == 1 and r.preemptions == 0


def test_one_long_prompt_is_prefilled_in_budget_sized_chunks():
    t = simulate_trace(COST, SchedulerConfig(100_000, 8, 256), [0.0], [1000], [1])
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    expected = sum(it(c, pairs=causal(c, pre)) for c, pre in chunks)
    assert t.first_token_s[0] == pytest.approx(expected, rel=1e-12)
    assert t.finish_s[0] == t.first_token_s[0] and t.iterations == 4   # one output token: done at prefill


def test_offline_identical_requests_with_room_for_all():
    b, p, o = 8, 100, 10
    r = simulate(COST, SchedulerConfig(100_000, b, 1024), rate_per_s=math.inf, requests=b,
                 input_len=LengthDistribution.fixed(p), output_len=LengthDistribution.fixed(o))
    first = it(b * p, pairs=b * causal(p))
    total = first + sum(it(b, kv=b * (p + k)) for k in range(1, o))
    assert r.ttft_s["p50"] == r.ttft_s["p99"] == pytest.approx(first, rel=1e-12)
    assert r.duration_s == pytest.approx(total, rel=1e-12)
    assert r.output_tokens_per_s == pytest.approx(b * o / total, rel=1e-12)
    assert r.input_tokens_per_s == pytest.approx(b * p / total, rel=1e-12)
    assert r.requests_per_s == pytest.approx(b / total, rel=1e-12)
    assert r.mean_batch == b and r.iterations == o


def test_token_budget_admits_in_fcfs_order_and_chunks_the_last_prompt():
    # budget 400, 8 x (100 in, 10 out): it1 prefills r0-r3; it2 = 4 decodes + r4-r6 + 96 tokens of r7;
    # it3 = 7 decodes + the last 4 tokens of r7.
    t = simulate_trace(COST, SchedulerConfig(100_000, 8, 400), [0.0] * 8, [100] * 8, [10] * 8)
    t1 = it(400, pairs=4 * causal(100))
    t2 = it(400, kv=4 * 101, pairs=3 * causal(100) + causal(96))
    t3 = it(11, kv=4 * 102 + 3 * 101, pairs=causal(4, 96))
    np.testing.assert_allclose(t.first_token_s, [t1] * 4 + [t1 + t2] * 3 + [t1 + t2 + t3], rtol=1e-12)


def test_without_chunked_prefill_a_prompt_waits_for_a_whole_budget():
    cfg = SchedulerConfig(100_000, 8, 400, chunked_prefill=False)
    t = simulate_trace(COST, cfg, [0.0] * 8, [100] * 8, [10] * 8)
    t1 = it(400, pairs=4 * causal(100))
    t2 = it(304, kv=4 * 101, pairs=3 * causal(100))           # r7's 100 tokens do not fit in 96
    t3 = it(107, kv=4 * 102 + 3 * 101, pairs=causal(100))
    np.testing.assert_allclose(t.first_token_s, [t1] * 4 + [t1 + t2] * 3 + [t1 + t2 + t3], rtol=1e-12)


def test_single_slot_engine_is_an_md1_queue():
    # max_batch 1 and fixed lengths: each request holds the engine for S = 10 iterations of 10 ms, so
    # the mean time in system is S + rho S / (2 (1 - rho)) (Pollaczek-Khinchine, deterministic service).
    cost = LinearIterationCost(0.01, 0.0)
    s, rate = 0.1, 5.0
    rho = rate * s
    r = simulate(cost, SchedulerConfig(10_000, 1, 1024), rate_per_s=rate, requests=40_000,
                 input_len=LengthDistribution.fixed(64), output_len=LengthDistribution.fixed(10), seed=3)
    assert r.e2e_s["mean"] == pytest.approx(s + rho * s / (2 * (1 - rho)), rel=0.03)
    assert r.tpot_s["p99"] == pytest.approx(0.01, rel=1e-9)   # nobody shares or interrupts the slot


def test_littles_law_at_steady_state():
    rate, n = 8.0, 30_000
    rng = np.random.default_rng(0)
    arrivals = np.concatenate(([0.0], np.cumsum(rng.exponential(1 / rate, n - 1))))
    t = simulate_trace(LinearIterationCost(0.012, 20e-6, 2e-9, 5e-12), SchedulerConfig(400_000, 64, 4096),
                       arrivals, LengthDistribution("lognormal", 1024, sigma=0.8).sample(rng, n),
                       LengthDistribution("lognormal", 256, sigma=0.8).sample(rng, n))
    assert t.preemptions == 0 and np.isfinite(t.finish_s).all()
    horizon = arrivals[-1]
    probes = rng.uniform(0.1 * horizon, 0.9 * horizon, 20_000)
    in_system = (np.searchsorted(np.sort(arrivals), probes, "right")
                 - np.searchsorted(np.sort(t.finish_s), probes, "right"))
    window = (arrivals > 0.1 * horizon) & (arrivals < 0.9 * horizon)
    e2e = (t.finish_s - arrivals)[window].mean()
    assert in_system.mean() == pytest.approx(rate * e2e, rel=0.05)   # L = lambda W
    assert summarise(t).requests_per_s == pytest.approx(rate, rel=0.03)


# ---- KV cache: preemption, rejection ----------------------------------------------------------------

def test_tight_kv_cache_preempts_and_every_request_still_completes_exactly():
    n, p, o = 20, 200, 300
    cfg = SchedulerConfig(kv_capacity_tokens=1024, max_batch=16, max_num_tokens=512)
    t = simulate_trace(COST, cfg, [0.0] * n, [p] * n, [o] * n)
    r = summarise(t)
    assert r.preemptions > 0
    assert r.completed == n and r.rejected == 0
    assert r.output_tokens_per_s * r.duration_s == pytest.approx(n * o, rel=1e-12)
    assert t.peak_kv_tokens <= 1024
    roomy = summarise(simulate_trace(COST, SchedulerConfig(100_000, 16, 512), [0.0] * n, [p] * n, [o] * n))
    assert roomy.preemptions == 0 and r.duration_s > roomy.duration_s   # recompute costs time
    assert t.finish_s[0] == t.finish_s.min()                           # the oldest is never preempted


def test_a_request_that_can_never_fit_is_rejected_not_looped_on():
    cfg = SchedulerConfig(kv_capacity_tokens=1024, max_batch=4, max_num_tokens=512)
    t = simulate_trace(COST, cfg, [0.0, 0.0, 0.0], [100, 1000, 100], [10, 26, 10])   # 1000 + 26 - 1 > 1024
    assert t.rejected.tolist() == [False, True, False]
    r = summarise(t)
    assert (r.completed, r.rejected, r.goodput_fraction) == (2, 1, pytest.approx(2 / 3))
    assert not simulate_trace(COST, cfg, [0.0], [1000], [25]).rejected[0]           # exactly 1024 fits


def test_unchunked_prefill_rejects_a_sequence_longer_than_the_budget():
    cfg = SchedulerConfig(100_000, 4, 512, chunked_prefill=False)
    t = simulate_trace(COST, cfg, [0.0, 0.0], [400, 500], [113, 14])   # 512 fits, 513 does not
    assert t.rejected.tolist() == [False, True]


# ---- summary, determinism, progress, goodput ------------------------------------------------------

def _load(**kw):
    base = dict(rate_per_s=12.0, requests=3000, input_len=parse_length("lognormal:1024,0.8"),
                output_len=parse_length("exponential:200"))
    return simulate(LinearIterationCost(0.012, 20e-6, 2e-9, 5e-12), SchedulerConfig(300_000, 64, 4096),
                    **{**base, **kw})


def test_percentiles_are_ordered_and_the_result_is_json():
    r = _load()
    for d in (r.ttft_s, r.tpot_s, r.e2e_s):
        assert 0 < d["p50"] <= d["p90"] <= d["p99"]
    assert r.ttft_s["p99"] < r.e2e_s["p99"]
    json.dumps(r.to_dict())


def test_deterministic_for_a_seed():
    assert _load(seed=7).to_dict() == _load(seed=7).to_dict()
    assert _load(seed=7).to_dict() != _load(seed=8).to_dict()


def test_progress_is_called_about_every_percent_and_ends_at_completed():
    seen = []
    r = _load(progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == r.completed
    assert 50 <= len(seen) <= 130


def test_goodput_counts_requests_meeting_both_slos():
    r = _load()
    assert r.goodput_fraction == 1.0 and r.goodput_requests_per_s == pytest.approx(r.requests_per_s)
    half = _load(ttft_slo_s=r.ttft_s["p50"])
    assert 0.45 <= half.goodput_fraction <= 0.55
    assert _load(tpot_slo_s=r.tpot_s["p50"] / 10).goodput_fraction < 0.05   # single-token requests pass TPOT
    both = _load(ttft_slo_s=r.ttft_s["p50"], tpot_slo_s=r.tpot_s["p50"])
    assert both.goodput_fraction < half.goodput_fraction


# ---- lengths and errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, mean", [
    ("2048", "fixed", 2048), ("fixed:2048", "fixed", 2048), ("uniform:128-4096", "uniform", 2112),
    ("exponential:1024", "exponential", 1024), ("lognormal:1024,0.8", "lognormal", 1024), (512, "fixed", 512)])
def test_parse_length_forms_and_sample_means(text, kind, mean):
    d = parse_length(text)
    assert (d.kind, d.mean) == (kind, mean)
    x = d.sample(np.random.default_rng(0), 200_000)
    assert x.dtype == np.int64 and x.min() >= 1
    assert x.mean() == pytest.approx(mean, rel=0.02)
    if kind == "uniform":
        assert (x.min(), x.max()) == (128, 4096)


@pytest.mark.parametrize("text", ["", "abc", "0", "-5", "fixed:1.5", "uniform:4096-128", "uniform:100",
                                  "exponential:0", "lognormal:1024", "lognormal:1024,0", "gamma:3", "2048.5",
                                  "10000000000", "uniform:1-3000000000", "lognormal:1e30,5"])
def test_parse_length_errors_are_one_line_with_field_and_allowed_forms(text):
    with pytest.raises(SpecError) as e:
        parse_length(text, field="serving.input_tokens")
    msg = str(e.value)
    assert "\n" not in msg and e.value.field == "serving.input_tokens"
    assert msg.startswith("serving.input_tokens:") and "uniform:LOW-HIGH" in msg and "lognormal:MEAN,SIGMA" in msg


def test_a_lognormal_s_far_tail_is_clipped_not_overflowed():
    # lognormal:1e30,5 drew values past int64 (a RuntimeWarning, then negative lengths); the mean is
    # now bounded, and a wide sigma's tail stops at the largest length a spec takes
    x = parse_length("lognormal:1000000000,3").sample(np.random.default_rng(0), 10_000)
    assert x.min() >= 1 and x.max() == MAX_SPEC_INTEGER


@pytest.mark.parametrize("kw, field", [
    (dict(max_num_tokens=128, max_batch=256), "max_num_tokens"),
    (dict(kv_capacity_tokens=8), "kv_capacity_tokens"),
    (dict(max_batch=0), "max_batch"),
    (dict(kv_block_tokens=0), "kv_block_tokens")])
def test_scheduler_config_refuses_impossible_limits(kw, field):
    with pytest.raises(SpecError) as e:
        SchedulerConfig(**{**dict(kv_capacity_tokens=1024, max_batch=8, max_num_tokens=256), **kw})
    assert e.value.field == field


@pytest.mark.parametrize("kw, field", [(dict(rate_per_s=0.0), "rate"), (dict(rate_per_s=math.nan), "rate"),
                                       (dict(requests=0), "requests")])
def test_simulate_refuses_bad_load(kw, field):
    with pytest.raises(SpecError) as e:
        _load(**kw)
    assert e.value.field == field
