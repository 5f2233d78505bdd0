"""Invariants of the request-level serving simulator (hypothesis), and agreement with a naive reference.

The reference below keeps every request's KV entries and blocks explicitly and allocates decode blocks
request by request in admission order, preempting from the tail as vLLM v1's scheduler does; it is
O(batch) per iteration and shares no bookkeeping with the O(log n) simulator.  Both must give the same
per-request times, preemptions and iterations on random small configurations, with and without
sliding-window layers (their reads and pairs priced apart, their blocks capped at the window's), and
with a recurrent state per sequence (its memory held while the sequence runs, its cost paid per
sequence an iteration carries)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.inference.simulate import LinearIterationCost, SchedulerConfig, simulate_trace


class WindowCost:
    """A linear cost with its own terms for the sliding-window layers' reads and pairs."""

    def __init__(self, base: LinearIterationCost, per_kv_w: float, per_pair_w: float) -> None:
        self.base, self.per_kv_w, self.per_pair_w = base, per_kv_w, per_pair_w

    def iteration_seconds(self, tokens, kv, pairs, kv_w=None, pairs_w=None):
        kv_w = kv if kv_w is None else kv_w
        pairs_w = pairs if pairs_w is None else pairs_w
        return self.base.iteration_seconds(tokens, kv, pairs) + self.per_kv_w * kv_w + self.per_pair_w * pairs_w


class _Req:
    def __init__(self, i: int, prompt: int, output: int) -> None:
        self.i, self.prompt, self.output = i, prompt, output
        self.gen = 0          # output tokens generated
        self.kv = 0           # KV entries written
        self.blocks = 0
        self.prefill_len = 0  # tokens of the current prefill; 0 when decoding
        self.prefilled = 0
        self.first = math.nan
        self.finish = math.nan


def reference(cost, cfg: SchedulerConfig, arrivals, prompts, outputs):
    """Naive per-request simulation of the semantics in colossim.inference.simulate's docstring."""
    bs = cfg.kv_block_tokens
    W, lw = cfg.attention_window, cfg.kv_windowed_layers
    lg, wb = cfg.kv_layers - lw, math.ceil(cfg.attention_window / bs) if lw else 0
    total = cfg.kv_capacity_tokens // bs * cfg.kv_layers
    state = cfg.state_blocks_per_sequence
    per_seq = getattr(cost, "per_sequence_seconds", 0.0)

    def units(blocks: int) -> int:   # one block of one layer each
        return lg * blocks + lw * min(blocks, wb)

    def held(r: _Req) -> int:   # a running request's blocks and its recurrent state
        return units(r.blocks) + state
    reqs = [_Req(i, int(p), int(o)) for i, (p, o) in enumerate(zip(prompts, outputs))]
    rejected = [False] * len(reqs)
    waiting: deque[_Req] = deque()
    running: list[_Req] = []
    now, nxt, preemptions, iterations, peak = 0.0, 0, 0, 0, 0
    while True:
        while nxt < len(reqs) and arrivals[nxt] <= now:
            r = reqs[nxt]
            nxt += 1
            longest = r.prompt + r.output - 1
            if units(math.ceil(longest / bs)) + state > total or (not cfg.chunked_prefill
                                                                    and longest > cfg.max_num_tokens):
                rejected[r.i] = True
            else:
                waiting.append(r)
        if not running and not waiting:
            if nxt >= len(reqs):
                break
            now = arrivals[nxt]
            continue
        free = total - sum(held(r) for r in running)
        preempted = False
        k = 0
        while k < len(running):
            r = running[k]
            if r.prefill_len == 0 and r.kv + 1 > r.blocks * bs:
                need = units(r.blocks + 1) - units(r.blocks)
                while free < need:
                    victim = running.pop()
                    free += held(victim)
                    victim.blocks = victim.kv = victim.prefilled = victim.prefill_len = 0
                    waiting.appendleft(victim)
                    preemptions += 1
                    preempted = True
                    if victim is r:
                        break
                if r not in running:
                    break
                r.blocks += 1
                free -= need
            k += 1
        decoders = [r for r in running if r.prefill_len == 0]
        budget = cfg.max_num_tokens - len(decoders)
        tokens, kv_read, pairs = len(decoders), sum(r.kv + 1 for r in decoders), 0.0
        kv_w = sum(min(r.kv + 1, W) for r in decoders) if W else 0
        pairs_w = 0
        chunks = []
        for r in running:
            if r.prefill_len and budget > 0:
                c = min(r.prefill_len - r.prefilled, budget)
                chunks.append((r, c))
                budget -= c
        while waiting and budget > 0 and not preempted and len(running) < cfg.max_batch:
            r = waiting[0]
            need_len = r.prompt + r.gen
            need = math.ceil(need_len / bs)
            if units(need) + state > free or (not cfg.chunked_prefill and need_len > budget):
                break
            waiting.popleft()
            r.blocks, r.prefill_len, r.prefilled = need, need_len, 0
            free -= units(need) + state
            running.append(r)
            c = min(need_len, budget)
            chunks.append((r, c))
            budget -= c
        for r, c in chunks:
            tokens += c
            pairs += c * (r.prefilled + (c + 1) / 2)
            if W:
                pairs_w += sum(min(q, W) for q in range(r.prefilled + 1, r.prefilled + c + 1))
        used = sum(held(r) for r in running)
        assert used <= total and all(r.kv <= r.blocks * bs for r in running)
        peak = max(peak, used)
        if W:
            now += cost.iteration_seconds(tokens, kv_read, pairs, kv_w, pairs_w)
        else:
            now += cost.iteration_seconds(tokens, kv_read, pairs)
        now += per_seq * (len(decoders) + len(chunks))
        iterations += 1
        for r in decoders:
            r.kv += 1
            r.gen += 1
        for r, c in chunks:
            r.prefilled += c
            if r.prefilled == r.prefill_len:
                r.kv, r.prefill_len = r.prefilled, 0
                r.gen += 1
                if math.isnan(r.first):
                    r.first = now
        for r in [r for r in running if r.prefill_len == 0 and r.gen == r.output]:
            r.finish = now
            running.remove(r)
    return reqs, rejected, preemptions, iterations, peak * bs // cfg.kv_layers


@st.composite
def scenarios(draw):
    bs = draw(st.sampled_from([1, 2, 4, 16]))
    max_batch = draw(st.integers(1, 8))
    capacity = draw(st.one_of(st.integers(bs, 160), st.integers(160, 1500)))   # tight (preempts) or roomy
    window = draw(st.one_of(st.none(), st.integers(1, 90)))
    layers = draw(st.integers(1, 4)) if window else 1
    windowed = draw(st.integers(0, layers)) if window else 0
    cfg = SchedulerConfig(kv_capacity_tokens=capacity, max_batch=max_batch,
                          max_num_tokens=draw(st.integers(max_batch, 80)),
                          chunked_prefill=draw(st.booleans()), kv_block_tokens=bs,
                          attention_window=window, kv_layers=layers, kv_windowed_layers=windowed,
                          state_blocks_per_sequence=draw(st.sampled_from([0, 0, 1, 3, 8])))
    n = draw(st.integers(1, 25))
    prompts = draw(st.lists(st.integers(1, 70), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    if draw(st.booleans()):
        arrivals = [0.0] * n
    else:
        arrivals = sorted(draw(st.lists(st.floats(0, 2.0), min_size=n, max_size=n)))
    cost = LinearIterationCost(draw(st.floats(1e-4, 1e-2)), draw(st.floats(0, 1e-3)),
                               draw(st.floats(0, 1e-5)), draw(st.floats(0, 1e-6)),
                               draw(st.sampled_from([0.0, 2e-5, 3e-4])))
    if window:
        cost = WindowCost(cost, draw(st.floats(0, 1e-5)), draw(st.floats(0, 1e-6)))
    return cost, cfg, arrivals, prompts, outputs


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_fast_simulator_matches_the_naive_reference(case):
    cost, cfg, arrivals, prompts, outputs = case
    t = simulate_trace(cost, cfg, arrivals, prompts, outputs)
    reqs, rejected, preemptions, iterations, peak = reference(cost, cfg, arrivals, prompts, outputs)
    assert t.rejected.tolist() == rejected
    assert (t.preemptions, t.iterations, t.peak_kv_tokens) == (preemptions, iterations, peak)
    np.testing.assert_allclose(t.first_token_s, [r.first for r in reqs], rtol=1e-12)
    np.testing.assert_allclose(t.finish_s, [r.finish for r in reqs], rtol=1e-12)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_admitted_request_completes_with_its_tokens_in_order(case):
    cost, cfg, arrivals, prompts, outputs = case
    t = simulate_trace(cost, cfg, arrivals, prompts, outputs)
    done = np.isfinite(t.finish_s)
    assert np.array_equal(done, ~t.rejected)                       # all admitted complete, none rejected does
    longest = np.asarray(prompts) + np.asarray(outputs) - 1
    blocks = np.ceil(longest / cfg.kv_block_tokens)
    lw = cfg.kv_windowed_layers
    held = (cfg.kv_layers - lw) * blocks + lw * np.minimum(blocks, math.ceil((cfg.attention_window or 1)
                                                                             / cfg.kv_block_tokens))
    held = held + cfg.state_blocks_per_sequence
    assert np.array_equal(t.rejected, held > cfg.kv_capacity_tokens // cfg.kv_block_tokens * cfg.kv_layers) \
        or not cfg.chunked_prefill
    assert int(t.output_tokens[done].sum()) == int(np.asarray(outputs)[done].sum())
    a, f, e = t.arrival_s[done], t.first_token_s[done], t.finish_s[done]
    assert np.all(f > a) and np.all(e >= f)                        # no negative times
    assert np.all(e[t.output_tokens[done] > 1] > f[t.output_tokens[done] > 1])
    assert t.peak_kv_tokens <= cfg.kv_capacity_tokens              # KV in use never exceeds the cache
    assert t.scheduled_sequences <= t.iterations * cfg.max_batch
