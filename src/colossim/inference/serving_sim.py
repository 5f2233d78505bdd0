"""``serve simulate``: a serving spec's best plan, its iteration cost tabulated from the step model,
and the event-driven request simulator (:mod:`colossim.inference.simulate`) on one replica.

The cluster's Poisson stream of ``rate`` requests/s splits evenly over the ``replicas`` (a random
split of a Poisson process is Poisson), so one replica is simulated at ``rate / replicas`` and its
throughput scaled back.  With ``pp > 1`` the iteration is the latency of a micro-batch through all
stages and the stages are not overlapped: the simulated throughput is then a lower bound.
"""

from __future__ import annotations

import math
import time

from colossim.cost.efficiency import CalibrationProfile
from colossim.errors import SpecError
from colossim.inference import simulate as S
from colossim.inference.estimate import estimate, replica_context, replica_memory
from colossim.inference.step import tabulate
from colossim.specs.model import ModelSpec
from colossim.specs.serving import ServingSpec


def window_fields(model: ModelSpec, windowed_kv_cache: bool) -> dict:
    """The scheduler's local-attention fields for ``model``: its window, and its layers with those
    that keep only the window (divided by their common factor, which leaves the shares as they are)
    when the cache is windowed; nothing for a model without such layers.  A chunked layer is
    scheduled as a window of its chunk: it reads ``min(context, chunk)`` keys, where the steady
    state reads its position within the chunk (a mean of half a chunk at long contexts), and holds
    a chunk's blocks to the end, where vLLM frees each past chunk's: both upper bounds."""
    local = model.local_attention
    if local is None:
        return {}
    _, span, n = local
    if not windowed_kv_cache:
        return {"attention_window": span}
    g = math.gcd(model.layers, n)
    return {"attention_window": span, "kv_layers": model.layers // g, "kv_windowed_layers": n // g}


def state_blocks(mem, kv_layers: int = 1, block_tokens: int = S.SchedulerConfig.kv_block_tokens) -> int:
    """The simulator's memory units (one block of ``block_tokens`` in one of ``kv_layers`` KV layers)
    that one sequence's recurrent state takes, rounded up: 0 for a transformer."""
    if not mem.state_per_sequence:
        return 0
    return math.ceil(mem.state_per_sequence / (block_tokens * mem.kv_per_token / kv_layers))


def run_simulation(spec: ServingSpec, *, rate: float, requests: int, input_len: str | None = None,
                   output_len: str | None = None, seed: int = 0,
                   profile: CalibrationProfile | None = None, progress=None) -> dict:
    """Simulate ``requests`` requests arriving at ``rate``/s (0: all at once) on the spec's plan."""
    s = spec.serving
    if spec.model.recurrent_layers and not spec.model.attention_layers:
        # the simulator counts memory in blocks of KV cache, which a model that never attends has none of
        raise SpecError(f"model = {spec.model.name}: serve simulate counts memory in KV-cache blocks, and a model "
                        f"without attention layers keeps none; allowed: serve estimate or serve frontier for it",
                        field="model", value=spec.model.name)
    best = estimate(spec, profile)
    plan = best.parallelism
    ctx = replica_context(spec, plan, profile)
    mem = replica_memory(spec, plan["tp"], plan["pp"])
    cost = tabulate(ctx, s.max_num_tokens)
    windows = window_fields(spec.model, s.windowed_kv_cache)
    cfg = S.SchedulerConfig(kv_capacity_tokens=mem.kv_tokens(), max_batch=min(s.max_batch_size, s.max_num_tokens),
                            max_num_tokens=s.max_num_tokens, chunked_prefill=s.chunked_prefill,
                            state_blocks_per_sequence=state_blocks(mem, windows.get("kv_layers", 1)), **windows)
    replicas = plan["replicas"]
    per_replica = math.inf if rate <= 0 else rate / replicas
    inp = S.parse_length(input_len, field="--input") if input_len else S.LengthDistribution.fixed(s.input_tokens)
    out = S.parse_length(output_len, field="--output") if output_len else S.LengthDistribution.fixed(s.output_tokens)
    t0 = time.perf_counter()
    res = S.simulate(cost, cfg, rate_per_s=per_replica, requests=requests, input_len=inp, output_len=out,
                     seed=seed, ttft_slo_s=s.ttft_slo_s, tpot_slo_s=s.tpot_slo_s, progress=progress)
    wall = time.perf_counter() - t0
    return {"result": res.to_dict(), "parallelism": plan, "replicas": replicas,
            "rate_per_replica": per_replica, "gpus": spec.hardware.count,
            "output_tokens_per_s": res.output_tokens_per_s * replicas,
            "output_tokens_per_s_per_gpu": res.output_tokens_per_s * replicas / spec.hardware.count,
            "goodput_requests_per_s": res.goodput_requests_per_s * replicas,
            "kv_capacity_tokens": mem.kv_tokens(), "wall_s": wall}


__all__ = ["run_simulation", "state_blocks", "window_fields"]
