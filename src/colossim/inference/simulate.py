"""Request-level serving simulation: continuous batching with a token budget, paged KV-cache admission
and recompute preemption, one engine replica, driven by a per-iteration cost model.

Semantics (vLLM v1 / TensorRT-LLM in-flight batching; Kwon et al. 2023, "PagedAttention", sec. 4.2-4.5;
Agrawal et al. 2024, "Sarathi-Serve", for chunked prefill):

- Arrivals are Poisson (exponential gaps from a seeded ``numpy.random.Generator``; the first request
  arrives at t = 0); ``rate_per_s = inf`` puts every request at t = 0 (offline).  A request whose
  longest possible KV footprint, ``prompt + output - 1`` tokens in blocks, exceeds the whole cache (or,
  without chunked prefill, whose longest possible prefill exceeds the token budget) is rejected at
  arrival and counted in ``rejected``; it never enters the queue.
- One iteration is one forward pass over a mixed batch.  It schedules, in this order: every running
  decode (1 token each; ``max_num_tokens >= max_batch`` is required, as vLLM does, so decodes always
  fit); then running partial prefills in admission order; then waiting requests in FCFS order while
  the token budget, ``max_batch`` and the KV cache allow.  A waiting request is admitted only if the
  KV blocks of its whole prefill fit in the free blocks (they are reserved at admission); the queue
  head blocks the rest (no skipping).  With ``chunked_prefill`` a prefill takes what is left of the
  budget (a chunk); without it the whole prefill must fit in what is left.  No admission happens in an
  iteration that preempted (vLLM v1 does the same).
- A prefill of ``L`` tokens ends with ``L`` KV entries and produces one output token; the first one
  sets TTFT = that iteration's end - arrival.  A decode reads its context (KV entries plus the token it
  feeds), writes one KV entry and produces one token.  A decode whose write starts a new block needs a
  free block; when there are too few, the most recently admitted running requests (decoding or
  prefilling) are preempted until the rest fit (recompute mode: the KV is freed and the request goes
  to the FRONT of the waiting queue; re-admitted, it prefills prompt + tokens generated so far).
- Time advances by ``cost.iteration_seconds(...)`` per iteration; an idle engine jumps to the next
  arrival.  Arrivals join the queue at the start of the first iteration that begins after them.
- Sliding-window layers (``attention_window``): their decode reads, ``min(context, window)`` per
  sequence, and their prefill pairs go to the cost model as two more arguments.  With
  ``kv_windowed_layers`` their cache keeps only the window: memory is counted in blocks of one layer,
  a sequence of ``k`` entries holding ``ceil(k / B)`` blocks in each global layer and at most
  ``ceil(window / B)`` in each windowed one (vLLM's hybrid KV-cache manager frees the blocks that
  leave the window), so a decode past the window allocates in the global layers only.
- Recurrent state (a hybrid's Mamba-2 / Gated DeltaNet layers): each running sequence also holds
  ``state_blocks_per_sequence`` units of memory whatever its length, reserved with its cache at
  admission and freed with it; and an iteration costs ``cost.per_sequence_seconds`` (when the cost
  model has it) more per sequence it carries (decodes and prefill chunks): each reads and writes its
  state once.

Implementation: per-iteration work is O(1) plus heap operations (O(log n) amortised), independent of
the batch.  Every decoding request advances one token per iteration, so a global decode counter ``G``
stands for all of them: a request that joins decoding at counter ``g0`` with ``k0`` KV entries holds
``k0 + G - g0`` entries, finishes at counter ``g0 + output - generated`` (a heap), and needs a new block
in the iteration that starts when ``G = g0 - k0 (mod block)`` (a count per residue).  The sum of decode
contexts is kept as a running total.  Under a window, the decodes whose windowed blocks, and those whose
windowed reads, still grow are two more sets, each left at a counter known at joining (two heaps).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

from colossim.errors import SpecError
from colossim.specs._validation import MAX_SPEC_INTEGER

__all__ = [
    "IterationCostModel", "LinearIterationCost", "LengthDistribution", "parse_length", "LENGTH_FORMS",
    "SchedulerConfig", "RequestTrace", "SimulationResult", "simulate", "simulate_trace", "summarise",
]


class IterationCostModel(Protocol):
    """What the simulator needs of a cost model: the time of one engine iteration."""

    def iteration_seconds(self, tokens: int, decode_kv_tokens: float, prefill_attention_pairs: float) -> float:
        """Time of one engine iteration (one forward pass over a mixed batch).

        tokens: tokens processed this iteration = decoding sequences (1 token each) + prefill tokens
        (chunks) scheduled; decode_kv_tokens: sum over decoding sequences of their context length (KV
        entries read by decode attention, the fed token included); prefill_attention_pairs: sum over
        prefill chunks of chunk * (prefix + (chunk + 1) / 2) (query-key pairs of causal attention with
        a cached prefix)."""
        ...


@dataclass(frozen=True)
class LinearIterationCost:
    """``fixed + per_token * tokens + per_kv_token * decode_kv_tokens + per_pair * pairs`` seconds.

    fixed_seconds: per-iteration cost independent of the batch (weight reads, launch, sampling);
    per_token_seconds: linear-layer cost per token; per_kv_token_seconds: decode attention per KV entry
    read; per_pair_seconds: prefill attention per query-key pair."""

    fixed_seconds: float
    per_token_seconds: float
    per_kv_token_seconds: float = 0.0
    per_pair_seconds: float = 0.0
    per_sequence_seconds: float = 0.0
    """Per sequence the iteration carries: a hybrid's recurrent state read and written (the
    simulator adds it; see the module docstring)."""

    def __post_init__(self) -> None:
        for name in ("fixed_seconds", "per_token_seconds", "per_kv_token_seconds", "per_pair_seconds",
                     "per_sequence_seconds"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise SpecError(f"{name} must be a finite number >= 0, got {v!r}", field=name, value=v)
        if self.fixed_seconds + self.per_token_seconds <= 0:
            raise SpecError("fixed_seconds + per_token_seconds must be > 0 (an iteration takes time)",
                            field="fixed_seconds", value=self.fixed_seconds)

    def iteration_seconds(self, tokens: int, decode_kv_tokens: float, prefill_attention_pairs: float) -> float:
        """See :class:`IterationCostModel`."""
        return (self.fixed_seconds + self.per_token_seconds * tokens
                + self.per_kv_token_seconds * decode_kv_tokens + self.per_pair_seconds * prefill_attention_pairs)


LENGTH_FORMS = ("N", "fixed:N", "uniform:LOW-HIGH", "exponential:MEAN", "lognormal:MEAN,SIGMA")
LengthKind = Literal["fixed", "uniform", "exponential", "lognormal"]


@dataclass(frozen=True)
class LengthDistribution:
    """A distribution of token counts (input or output lengths); samples are integers >= 1.

    fixed: ``mean`` every time.  uniform: integers ``low..high`` inclusive (``mean = (low + high) / 2``).
    exponential: mean ``mean``, rounded to the nearest integer, at least 1.  lognormal: mean ``mean``
    (not the median: ``mu = ln(mean) - sigma**2 / 2``) and log-space ``sigma``, rounded, at least 1."""

    kind: LengthKind
    mean: float
    low: int | None = None
    high: int | None = None
    sigma: float | None = None

    def __post_init__(self) -> None:
        bad = None
        if self.kind not in ("fixed", "uniform", "exponential", "lognormal"):
            bad = f"kind '{self.kind}' unknown"
        elif not (math.isfinite(self.mean) and 1 <= self.mean <= MAX_SPEC_INTEGER):
            bad = f"mean {self.mean!r} must be >= 1 and <= {MAX_SPEC_INTEGER}"
        elif self.kind == "fixed" and self.mean != int(self.mean):
            bad = f"fixed length {self.mean!r} must be an integer"
        elif self.kind == "uniform" and not (self.low is not None and self.high is not None
                                             and 1 <= self.low <= self.high <= MAX_SPEC_INTEGER
                                             and self.mean == (self.low + self.high) / 2):
            bad = f"uniform needs integers 1 <= low <= high with mean (low + high) / 2, got {self}"
        elif self.kind == "lognormal" and not (self.sigma is not None and math.isfinite(self.sigma)
                                               and self.sigma > 0):
            bad = f"lognormal needs sigma > 0, got {self.sigma!r}"
        if bad:
            raise SpecError(f"length distribution: {bad}; allowed: {', '.join(LENGTH_FORMS)}",
                            field="length", value=self, allowed=LENGTH_FORMS)

    @classmethod
    def fixed(cls, n: int) -> LengthDistribution:
        return cls("fixed", float(n))

    @classmethod
    def uniform(cls, low: int, high: int) -> LengthDistribution:
        return cls("uniform", (low + high) / 2, low=low, high=high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (int64, each >= 1 and at most ``MAX_SPEC_INTEGER``: a lognormal's far tail
        would overflow int64, and no request that long can fit anyway)."""
        if self.kind == "fixed":
            return np.full(n, int(self.mean), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(self.low, self.high + 1, size=n, dtype=np.int64)
        if self.kind == "exponential":
            x = rng.exponential(self.mean, size=n)
        else:
            x = rng.lognormal(math.log(self.mean) - self.sigma ** 2 / 2, self.sigma, size=n)
        return np.clip(np.rint(x), 1, MAX_SPEC_INTEGER).astype(np.int64)


def parse_length(text: str | int, field: str = "length") -> LengthDistribution:
    """``"2048"``, ``"fixed:2048"``, ``"uniform:128-4096"``, ``"exponential:1024"``, ``"lognormal:1024,0.8"``.

    ``field`` names the input in the error (e.g. ``serving.input_tokens`` or ``--input-len``)."""
    s = str(text).strip().lower()
    kind, _, arg = s.partition(":") if ":" in s else ("fixed", "", s)
    try:
        if kind == "fixed":
            return LengthDistribution.fixed(int(arg))
        if kind == "uniform":
            lo, hi = arg.split("-")
            return LengthDistribution.uniform(int(lo), int(hi))
        if kind == "exponential":
            return LengthDistribution("exponential", float(arg))
        if kind == "lognormal":
            mean, sigma = arg.split(",")
            return LengthDistribution("lognormal", float(mean), sigma=float(sigma))
    except (ValueError, SpecError):
        pass
    raise SpecError(f"{field}: '{text}' is not a length distribution; allowed: {', '.join(LENGTH_FORMS)} "
                    f"(e.g. 2048, uniform:128-4096, lognormal:1024,0.8; tokens 1 to {MAX_SPEC_INTEGER}, sigma > 0)",
                    field=field, value=text, allowed=LENGTH_FORMS)


@dataclass(frozen=True)
class SchedulerConfig:
    """One serving replica's scheduler limits."""

    kv_capacity_tokens: int
    """KV-cache entries (tokens) the replica holds; whole blocks only are usable."""
    max_batch: int
    """Most running sequences (decoding or prefilling); vLLM's ``max_num_seqs``."""
    max_num_tokens: int
    """Token budget per iteration (decode tokens + prefill chunk tokens); vLLM's ``max_num_batched_tokens``."""
    chunked_prefill: bool = True
    """False: a prefill runs whole in one iteration (which still carries the running decodes, as vLLM v1)."""
    kv_block_tokens: int = 16
    """Paged KV allocation granularity.  Because: vLLM's default block size is 16 tokens."""
    attention_window: int | None = None
    """Keys a query of the model's sliding-window layers sees, itself included (None: no such
    layers).  Those layers' decode reads and prefill pairs go to the cost model apart."""
    kv_layers: int = 1
    """Layers the KV cache spans: ``kv_capacity_tokens`` counts tokens kept in all of them."""
    kv_windowed_layers: int = 0
    """Of ``kv_layers``, those whose cache keeps only the window: a sequence holds at most
    ``ceil(attention_window / kv_block_tokens)`` of their blocks (the blocks that fall out of the
    window are freed, as vLLM's hybrid KV-cache manager does); 0: every layer keeps the context."""
    state_blocks_per_sequence: int = 0
    """Memory units (one block of one KV layer each) a running sequence's recurrent state holds
    whatever its length: a hybrid's Mamba-2 / Gated DeltaNet state; 0 for a transformer."""

    def __post_init__(self) -> None:
        for name in ("kv_capacity_tokens", "max_batch", "max_num_tokens", "kv_block_tokens", "kv_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SpecError(f"{name} must be an integer >= 1, got {v!r}", field=name, value=v)
        w, n = self.attention_window, self.kv_windowed_layers
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1):
            raise SpecError(f"attention_window must be an integer >= 1 or None, got {w!r}",
                            field="attention_window", value=w)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= self.kv_layers \
                or (n and w is None):
            raise SpecError(f"kv_windowed_layers must be an integer from 0 to kv_layers {self.kv_layers}, "
                            f"and 0 without an attention_window; got {n!r}", field="kv_windowed_layers", value=n)
        s = self.state_blocks_per_sequence
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise SpecError(f"state_blocks_per_sequence must be an integer >= 0, got {s!r}",
                            field="state_blocks_per_sequence", value=s)
        if self.kv_capacity_tokens < self.kv_block_tokens:
            raise SpecError(f"kv_capacity_tokens {self.kv_capacity_tokens} holds no whole block of "
                            f"{self.kv_block_tokens} tokens", field="kv_capacity_tokens",
                            value=self.kv_capacity_tokens)
        if self.max_num_tokens < self.max_batch:
            raise SpecError(f"max_num_tokens {self.max_num_tokens} must be >= max_batch {self.max_batch} "
                            "(every running decode needs one token per iteration)",
                            field="max_num_tokens", value=self.max_num_tokens)


@dataclass(frozen=True)
class RequestTrace:
    """Per-request outcome of a simulation (times in seconds from t = 0; NaN where not reached)."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    rejected: np.ndarray
    """True for requests that can never fit (see the module docstring)."""
    preemptions: int
    iterations: int
    scheduled_sequences: int
    """Sum over iterations of the sequences in the batch (decodes + prefill chunks)."""
    peak_kv_tokens: int
    """Most KV entries allocated at once (whole blocks)."""


def simulate_trace(cost: IterationCostModel, config: SchedulerConfig, arrival_s: Sequence[float],
                   input_tokens: Sequence[int], output_tokens: Sequence[int], *,
                   progress: Callable[[int], None] | None = None) -> RequestTrace:
    """Simulate given requests (arrival times sorted ascending, lengths >= 1); see the module docstring."""
    arrivals = np.asarray(arrival_s, dtype=float)
    p_arr, o_arr = np.asarray(input_tokens, dtype=np.int64), np.asarray(output_tokens, dtype=np.int64)
    n = arrivals.size
    if not (p_arr.shape == o_arr.shape == arrivals.shape and arrivals.ndim == 1):
        raise SpecError("arrival_s, input_tokens and output_tokens must be 1-D of one length", field="requests")
    if n and (not np.all(np.isfinite(arrivals)) or arrivals[0] < 0 or np.any(np.diff(arrivals) < 0)):
        raise SpecError("arrival times must be finite, >= 0 and ascending", field="arrival_s")
    if n and (p_arr.min() < 1 or o_arr.min() < 1):
        raise SpecError("input and output lengths must be >= 1 token", field="length")
    step = cost.iteration_seconds
    arr, P, O = arrivals.tolist(), p_arr.tolist(), o_arr.tolist()
    B = config.kv_block_tokens
    W = config.attention_window
    # KV memory in units of one block of one layer: a sequence of k entries holds
    # Lg * ceil(k / B) + Lw * min(ceil(k / B), Wb) of them
    Lw = config.kv_windowed_layers
    Lg = config.kv_layers - Lw
    Wb = -(-W // B) if Lw else 0
    per_block = config.kv_layers
    total_units = config.kv_capacity_tokens // B * per_block
    state = config.state_blocks_per_sequence
    per_seq = float(getattr(cost, "per_sequence_seconds", 0.0) or 0.0)

    def units(k: int) -> int:   # a sequence of k entries: its blocks and its recurrent state
        b = -(-k // B)
        return Lg * b + (Lw * min(b, Wb) if Lw else 0) + state

    def wpairs(n: int) -> int:   # sum over queries 1..n of min(q, W)
        return n * (n + 1) // 2 if n <= W else W * (W + 1) // 2 + (n - W) * W

    max_tokens, max_batch, chunked = config.max_num_tokens, config.max_batch, config.chunked_prefill
    nan = math.nan
    first, fin_t = [nan] * n, [nan] * n
    rejected = [False] * n
    gen = [0] * n          # tokens generated; while decoding: tokens generated when it joined
    g_join = [0] * n       # decode counter when it joined decoding
    k_join = [0] * n       # KV entries when it joined decoding
    fin_c = [-1] * n       # decode counter at which it finishes
    decoding = [False] * n
    reserved = [0] * n     # units held while prefilling
    pref_len, pref_done = [0] * n, [0] * n
    waiting: deque[int] = deque()
    running: dict[int, None] = {}   # admission order; popitem() gives the most recently admitted
    prefilling: list[int] = []      # running partial prefills, admission order
    heap: list[tuple[int, int]] = []
    bucket = [0] * B                # decoding requests per residue (g0 - k0) mod B
    G = S = n_dec = 0               # decode counter, sum of decode KV entries, decoding requests
    # sliding-window layers: the decodes whose window blocks still grow (per residue) and whose
    # window reads still grow, each leaving its set at a counter kept in a heap (join epoch checked)
    bucket_w = [0] * B
    w_blocks: list[bool] = [False] * n
    w_reads: list[bool] = [False] * n
    epoch = [0] * n
    heap_blocks: list[tuple[int, int, int]] = []
    heap_reads: list[tuple[int, int, int]] = []
    S_w = n_grow = 0                # sum of windowed decode reads; decodes whose reads still grow
    free = total_units
    now, nxt, completed = 0.0, 0, 0
    preemptions = iterations = seqs_total = peak_units = 0
    report_every = max(1, n // 100)
    next_report = report_every

    def leave_decoding(j: int, kv: int) -> None:
        """Bookkeeping of a decode leaving (finished or preempted) with ``kv`` entries."""
        nonlocal S, S_w, n_dec, n_grow
        S -= kv
        n_dec -= 1
        key = (g_join[j] - k_join[j]) % B
        bucket[key] -= 1
        if w_blocks[j]:
            bucket_w[key] -= 1
            w_blocks[j] = False
        if W is not None:
            S_w -= min(kv + 1, W)
            if w_reads[j]:
                n_grow -= 1
                w_reads[j] = False
        decoding[j] = False

    while True:
        while nxt < n and arr[nxt] <= now:
            i = nxt
            nxt += 1
            longest = P[i] + O[i] - 1
            if units(longest) > total_units or (not chunked and longest > max_tokens):
                rejected[i] = True
            else:
                waiting.append(i)
        if not running and not waiting:
            if nxt >= n:
                break
            now = arr[nxt]
            continue
        # 1. a KV block for every decode whose write starts one (in the windowed layers only while
        # the sequence holds fewer than Wb of their blocks); preempt the newest while short
        r = G % B
        if not n_dec:
            needed = 0
        elif Lw:
            while heap_blocks and heap_blocks[0][0] <= G:
                _, j, e = heapq.heappop(heap_blocks)
                if w_blocks[j] and epoch[j] == e:
                    w_blocks[j] = False
                    bucket_w[(g_join[j] - k_join[j]) % B] -= 1
            needed = Lg * bucket[r] + Lw * bucket_w[r]
        else:
            needed = Lg * bucket[r]
        preempted = free < needed
        while free < needed:
            j, _ = running.popitem()
            if decoding[j]:
                kv = k_join[j] + G - g_join[j]
                if (g_join[j] - k_join[j]) % B == r:
                    needed -= Lg + Lw * w_blocks[j]
                free += units(kv)
                leave_decoding(j, kv)
                gen[j] += G - g_join[j]
            else:
                prefilling.remove(j)
                free += reserved[j]
            waiting.appendleft(j)
            preemptions += 1
        free -= needed
        # 2. prefill chunks: running partial prefills, then FCFS admission
        budget = max_tokens - n_dec
        tokens, pairs, pairs_w, seqs = n_dec, 0, 0, n_dec
        completing: list[int] = []
        for j in prefilling:
            if budget == 0:
                break
            p = pref_done[j]
            c = min(pref_len[j] - p, budget)
            pairs += c * (2 * p + c + 1) // 2   # = c * (p + (c + 1) / 2), exact in integers
            if W is not None:
                pairs_w += wpairs(p + c) - wpairs(p)
            tokens += c
            budget -= c
            seqs += 1
            pref_done[j] = p + c
            if p + c == pref_len[j]:
                completing.append(j)
        if completing:
            prefilling = prefilling[len(completing):]   # completions are a prefix (budget runs out last)
        while waiting and budget > 0 and not preempted and len(running) < max_batch:
            j = waiting[0]
            L = P[j] + gen[j]
            need = units(L)
            if need > free or (not chunked and L > budget):
                break
            c = min(L, budget)
            waiting.popleft()
            free -= need
            reserved[j] = need
            running[j] = None
            pref_len[j], pref_done[j] = L, c
            pairs += c * (c + 1) // 2
            if W is not None:
                pairs_w += wpairs(c)
            tokens += c
            budget -= c
            seqs += 1
            if c == L:
                completing.append(j)
            else:
                prefilling.append(j)
        if tokens == 0:   # unreachable: an engine with work always schedules some
            raise RuntimeError("simulate: no progress possible (scheduler invariant broken)")
        if W is None:
            now += step(tokens, S + n_dec, pairs)
        else:
            now += step(tokens, S + n_dec, pairs, S_w, pairs_w)
        now += per_seq * seqs
        iterations += 1
        seqs_total += seqs
        peak_units = max(peak_units, total_units - free)
        # 3. decodes advance one token; those reaching their output length finish
        if n_dec:
            G += 1
            S += n_dec
            if n_grow:
                S_w += n_grow
                while heap_reads and heap_reads[0][0] <= G:
                    _, j, e = heapq.heappop(heap_reads)
                    if w_reads[j] and epoch[j] == e:
                        w_reads[j] = False
                        n_grow -= 1
            while heap and heap[0][0] <= G:
                fc, j = heapq.heappop(heap)
                if not decoding[j] or fin_c[j] != fc:
                    continue   # stale: preempted since it was pushed
                kv = k_join[j] + G - g_join[j]
                free += units(kv)
                leave_decoding(j, kv)
                gen[j] = O[j]
                del running[j]
                fin_t[j] = now
                completed += 1
        # 4. completed prefills produce a token, then finish or join decoding
        for j in completing:
            gen[j] += 1
            if first[j] != first[j]:   # NaN: first token of this request
                first[j] = now
            if gen[j] == O[j]:
                free += reserved[j]
                del running[j]
                fin_t[j] = now
                completed += 1
                continue
            L = pref_len[j]
            decoding[j] = True
            g_join[j], k_join[j] = G, L
            fin_c[j] = G + O[j] - gen[j]
            heapq.heappush(heap, (fin_c[j], j))
            key = (G - L) % B
            bucket[key] += 1
            S += L
            n_dec += 1
            epoch[j] += 1
            if Lw and L < Wb * B:     # its window blocks grow until it holds Wb of them
                w_blocks[j] = True
                bucket_w[key] += 1
                heapq.heappush(heap_blocks, (G + Wb * B - L, j, epoch[j]))
            if W is not None:
                S_w += min(L + 1, W)
                if L + 1 < W:         # its window reads grow until they reach W
                    w_reads[j] = True
                    n_grow += 1
                    heapq.heappush(heap_reads, (G + W - 1 - L, j, epoch[j]))
        if progress is not None and completed >= next_report:
            progress(completed)
            next_report = completed + report_every
    if progress is not None:
        progress(completed)
    return RequestTrace(arrivals, np.array(first), np.array(fin_t), p_arr, o_arr, np.array(rejected, dtype=bool),
                        preemptions, iterations, seqs_total, peak_units * B // per_block)


@dataclass(frozen=True)
class SimulationResult:
    """Summary of a simulation.  Latency dicts have keys p50, p90, p99, mean (None when empty)."""

    requests: int
    completed: int
    rejected: int
    """Requests that can never fit the cache (or, unchunked, the token budget); never started."""
    duration_s: float
    """From t = 0 (the first arrival) to the last completion."""
    ttft_s: dict
    tpot_s: dict
    """Per request (finish - first token) / (output tokens - 1), requests with > 1 output token."""
    e2e_s: dict
    output_tokens_per_s: float
    input_tokens_per_s: float
    requests_per_s: float
    goodput_requests_per_s: float
    goodput_fraction: float
    """Completed requests meeting both SLOs (None = no limit) over all requests (rejected count as misses)."""
    preemptions: int
    mean_batch: float
    """Mean sequences per iteration (decodes + prefill chunks)."""
    iterations: int
    peak_kv_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


def _stats(x: np.ndarray) -> dict:
    if x.size == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(x.mean())}


def summarise(trace: RequestTrace, *, ttft_slo_s: float | None = None,
              tpot_slo_s: float | None = None) -> SimulationResult:
    """Latency percentiles, throughput and goodput of a trace."""
    done = np.isfinite(trace.finish_s)
    arrival, first, finish = trace.arrival_s[done], trace.first_token_s[done], trace.finish_s[done]
    out, inp = trace.output_tokens[done], trace.input_tokens[done]
    ttft, e2e = first - arrival, finish - arrival
    multi = out > 1
    tpot = (finish[multi] - first[multi]) / (out[multi] - 1)
    tpot_all = np.zeros(out.size)
    tpot_all[multi] = tpot
    good = np.ones(out.size, dtype=bool)
    if ttft_slo_s is not None:
        good &= ttft <= ttft_slo_s
    if tpot_slo_s is not None:
        good &= tpot_all <= tpot_slo_s
    duration = float(finish.max()) if finish.size else 0.0
    rate = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    n = trace.arrival_s.size
    return SimulationResult(
        requests=n, completed=int(done.sum()), rejected=int(trace.rejected.sum()), duration_s=duration,
        ttft_s=_stats(ttft), tpot_s=_stats(tpot), e2e_s=_stats(e2e),
        output_tokens_per_s=rate(float(out.sum())), input_tokens_per_s=rate(float(inp.sum())),
        requests_per_s=rate(float(done.sum())), goodput_requests_per_s=rate(float(good.sum())),
        goodput_fraction=float(good.sum()) / n if n else 0.0, preemptions=trace.preemptions,
        mean_batch=trace.scheduled_sequences / trace.iterations if trace.iterations else 0.0,
        iterations=trace.iterations, peak_kv_tokens=trace.peak_kv_tokens)


def simulate(cost: IterationCostModel, config: SchedulerConfig, *, rate_per_s: float, requests: int,
             input_len: LengthDistribution, output_len: LengthDistribution, seed: int = 0,
             ttft_slo_s: float | None = None, tpot_slo_s: float | None = None,
             progress: Callable[[int], None] | None = None) -> SimulationResult:
    """Simulate ``requests`` Poisson arrivals at ``rate_per_s`` (inf: all at t = 0) on one replica.

    ``progress(n_completed)`` is called about every 1 % of requests and once at the end."""
    if not (rate_per_s > 0):   # also refuses NaN
        raise SpecError(f"rate must be > 0 requests/s (inf: all at once), got {rate_per_s!r}",
                        field="rate", value=rate_per_s)
    if isinstance(requests, bool) or not isinstance(requests, (int, np.integer)) or requests < 1:
        raise SpecError(f"requests must be an integer >= 1, got {requests!r}", field="requests", value=requests)
    rng = np.random.default_rng(seed)
    if math.isinf(rate_per_s):
        arrivals = np.zeros(requests)
    else:
        gaps = rng.exponential(1.0 / rate_per_s, size=requests)
        arrivals = np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    inputs, outputs = input_len.sample(rng, requests), output_len.sample(rng, requests)
    trace = simulate_trace(cost, config, arrivals, inputs, outputs, progress=progress)
    return summarise(trace, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s)
