"""The inference engine's front door: serving throughput and latency of a spec, the best plan and
batch, and the throughput-latency frontier.

Steady state of continuous (in-flight) batching, per replica with ``B`` concurrent sequences of
``I`` prompt and ``O`` output tokens, ``B / pp`` per pipeline micro-batch:

- each iteration every sequence gains one token, and ``B / O`` sequences finish and are replaced,
  so the iteration also carries ``B I / O`` prompt tokens (chunked prefill mixes them in; without
  chunking whole prompts join the iteration: the same average work).  KV read per iteration:
  ``B (I + O / 2)`` (in a sliding-window layer the mean of ``min(context, window)``, in a chunked
  one of the position within the chunk); prompt attention pairs ``B / O x I (I + 1) / 2`` (each
  query seeing at most the window, or its chunk's prefix, in such a layer);
- TPOT = the iteration time; output tokens/s per replica = ``B / TPOT``;
- TTFT = the iterations a new prompt needs at the token budget (``max_num_tokens`` less the
  decodes), each carrying the running decodes; queueing is not in the steady state (``serve
  simulate`` has it);
- static batching: one prefill of the whole batch, then ``O - 1`` decode steps;
- disaggregated: decode GPUs iterate decodes only, prefill GPUs run prompts at the token budget;
  the split of the GPUs balances the two rates (or is ``prefill_fraction``); TTFT adds the KV
  transfer of the prompt.

The KV cache admits a sequence with room for its whole context (``I + O``: TensorRT-LLM's
guaranteed-no-evict policy), so ``max_batch`` = KV-cache capacity / (I + O), capped by
``max_batch_size``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from colossim import units
from colossim.arith import divisors
from colossim.cost import comm as C
from colossim.cost.efficiency import CalibrationProfile
from colossim.cost.ownership import usd_per_gpu_hour
from colossim.errors import SpecError
from colossim.inference import memory as M
from colossim.inference.step import (BUCKETS, causal_pairs, iteration_seconds, local_decode_context, local_pairs,
                                     make_context, mean_decode_context, stage_seconds)
from colossim.specs.serving import STATE_BYTES_PER_ELEMENT, ServingSpec
from colossim.specs.training import mixer_split_ok

#: Batch sizes tried per plan when the spec leaves ``batch`` open.
BATCH_GRID_POINTS = 48


@dataclass(frozen=True)
class ServingEstimate:
    """One plan and batch: latency, throughput, memory, cost.  Seconds, GiB, USD as named."""

    ttft_s: float
    tpot_s: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    requests_per_s: float
    batch: int
    max_batch: int
    kv_cache_gib_per_gpu: float
    memory_gib_per_gpu: float
    weights_gib_per_gpu: float
    fits: bool
    meets_slo: bool
    bound: dict[str, str]
    time_breakdown_s: dict[str, dict[str, float]]
    cost_usd_per_million_tokens: float
    energy_kwh_per_million_tokens: float
    parallelism: dict
    gpus: int
    chip: str
    model: str
    formats: dict[str, str]
    input_tokens: int
    output_tokens: int
    batching: str
    disaggregated: bool
    prefill_gpu_fraction: float | None = None
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlanPoints:
    """Every batch size evaluated for one plan (arrays over the batch grid)."""

    plan: dict
    batch: np.ndarray
    ttft: np.ndarray
    tpot: np.ndarray
    tps_per_gpu: np.ndarray
    fits: np.ndarray
    max_batch: int
    memory: M.ServingMemory
    prefill_fraction: np.ndarray | None
    ctx: object


#: Search policy: pipeline stages only when memory needs them -- to span scale-up domains
#: (tp x pp > domain), or inside a domain when the replica's tp GPUs cannot hold the weights alone.
#: Because: TensorRT-LLM's and vLLM's deployment guides use tensor parallelism inside a node and
#: pipeline parallelism across nodes or when the model does not fit; NVIDIA's MLPerf Inference
#: llama2-70b submissions on HGX H100 ran tensor-parallel engines.  A spec may still ask for pp.
PIPELINE_ONLY_WHEN_NEEDED = True


def candidate_plans(spec: ServingSpec) -> list[dict]:
    """Every (tp, pp, ep, replicas) the spec allows: tp divides the heads and stays inside the
    scale-up domain (unless given), tp x pp divides the GPU count, ep divides tp and the experts,
    pp > 1 only when memory needs it (:data:`PIPELINE_ONLY_WHEN_NEEDED`) unless given."""
    m, hw, p = spec.model, spec.hardware, spec.parallelism
    n = hw.count
    tps = [p.tp] if p.tp else [t for t in divisors(m.heads) if t <= hw.scaleup_domain_size and n % t == 0
                               and mixer_split_ok(m, t, 1)]
    plans = []
    for tp in tps:
        pps = [p.pp] if p.pp else [q for q in divisors(n // tp) if q <= m.layers] if n % tp == 0 else []
        if not p.pp and PIPELINE_ONLY_WHEN_NEEDED and replica_memory(spec, tp, 1).kv_budget > 0:
            pps = [q for q in pps if q == 1 or tp * q > hw.scaleup_domain_size]
        for pp in pps:
            if n % (tp * pp):
                continue
            replicas = n // (tp * pp)
            if p.replicas and p.replicas != replicas:
                continue
            if m.is_moe:
                eps = [p.ep] if p.ep else [e for e in divisors(math.gcd(tp, m.experts))]
            else:
                eps = [1]
            for ep in eps:
                if tp % ep == 0 and (not m.is_moe or m.experts % ep == 0):
                    plans.append({"tp": tp, "pp": pp, "ep": ep, "replicas": replicas})
    return plans


def replica_memory(spec: ServingSpec, tp: int, pp: int) -> M.ServingMemory:
    """Memory of one GPU of a tp x pp replica under the spec's formats and engine limits."""
    s = spec.serving
    return M.serving_memory(spec.model, spec.hardware.hbm_bytes, weights=s.weights.value,
                            kv_format=s.kv_format, tp=tp, pp=pp, max_num_tokens=s.max_num_tokens,
                            max_batch=s.max_batch_size, kv_cache_fraction=s.kv_cache_fraction,
                            windowed_kv_cache=s.windowed_kv_cache,
                            recurrent_state_bytes=STATE_BYTES_PER_ELEMENT[s.recurrent_state])


def replica_context(spec: ServingSpec, plan: dict, profile: CalibrationProfile | None):
    """The iteration-cost context of one replica of ``plan`` under the spec."""
    s = spec.serving
    return make_context(spec.model, spec.hardware, weights=s.weights.value,
                        activations=s.activation_format, kv_cache=s.kv_format, tp=plan["tp"],
                        pp=plan["pp"], ep=plan["ep"], attention_seq_hint=s.input_tokens,
                        grouped_kv_decode=s.grouped_kv_decode, moe_load_imbalance=s.moe_load_imbalance,
                        profile=profile, recurrent_state_bytes=STATE_BYTES_PER_ELEMENT[s.recurrent_state])


def budget_batch(spec: ServingSpec, pp: int) -> float:
    """The most sequences continuous batching with chunked prefill can run at the token budget:
    each iteration carries ``B / pp`` decodes and ``B / pp x I / O`` prompt tokens, at most
    ``max_num_tokens`` (no limit for static, unchunked or disaggregated serving)."""
    s = spec.serving
    if s.disaggregated or s.batching == "static" or not s.chunked_prefill:
        return math.inf
    return pp * s.max_num_tokens / (1.0 + s.input_tokens / s.output_tokens)


def _batch_grid(spec: ServingSpec, max_batch: int, pp: int) -> np.ndarray:
    """Batch sizes to evaluate: the spec's, or a geometric grid up to the largest batch that both
    the KV cache and the token budget allow (:func:`budget_batch`), which is a point of its own."""
    if spec.serving.batch is not None:
        return np.array([spec.serving.batch], dtype=float)
    cap = budget_batch(spec, pp)
    hi = max(min(max_batch, math.floor(cap)) if math.isfinite(cap) else max_batch, 1)
    grid = np.unique(np.round(np.geomspace(1, hi, BATCH_GRID_POINTS)))
    return grid[grid >= min(pp, hi)]


def _decode_reads(ctx, mb, I: float, O: float) -> dict:
    """Keys the decode steps of ``mb`` sequences read per layer, global and local, as
    :func:`iteration_seconds` takes them (steady state: contexts spread over I ... I + O)."""
    return {"decode_kv_tokens": mb * mean_decode_context(I, O),
            "decode_kv_local": mb * local_decode_context(ctx.model, I, O)}


def _prompt_pairs(ctx, n, I: float) -> dict:
    """Query-key pairs of ``n`` whole prompts of ``I`` tokens (``n`` may be a fraction or an array),
    global and local, as :func:`iteration_seconds` takes them."""
    return {"prefill_pairs": n * causal_pairs(I), "prefill_pairs_local": n * local_pairs(ctx.model, I)}


def _continuous(ctx, spec: ServingSpec, B: np.ndarray):
    s = spec.serving
    I, O, pp = float(s.input_tokens), float(s.output_tokens), ctx.pp
    mb = B / pp
    kv = _decode_reads(ctx, mb, I, O)
    pre_tokens = mb * I / O
    T = mb + pre_tokens
    it = iteration_seconds(ctx, T, sampled=mb * (1.0 + 1.0 / O), **kv, **_prompt_pairs(ctx, mb / O, I))["total"]
    ok = T <= s.max_num_tokens if s.chunked_prefill else np.ones_like(T, dtype=bool)
    if s.chunked_prefill:
        chunk = np.clip(s.max_num_tokens - mb, 1.0, I)
    else:
        chunk = np.full_like(mb, I)
    n_chunks = np.ceil(I / chunk)
    it_chunk = iteration_seconds(ctx, mb + chunk, sampled=mb + 1.0, **kv,
                                 **_prompt_pairs(ctx, 1.0 / n_chunks, I))["total"]
    ttft = n_chunks * it_chunk
    return ttft, it, B / it, ok


def _static(ctx, spec: ServingSpec, B: np.ndarray):
    s = spec.serving
    I, O, pp = float(s.input_tokens), float(s.output_tokens), ctx.pp
    mb = B / pp
    pre = {"tokens": mb * I, "sampled": mb, **_prompt_pairs(ctx, mb, I)}
    t_pre = iteration_seconds(ctx, **pre)["total"] + (pp - 1) * stage_seconds(ctx, **pre)["total"]
    t_dec = iteration_seconds(ctx, mb, sampled=mb, **_decode_reads(ctx, mb, I, O))["total"]
    total = t_pre + (O - 1.0) * t_dec
    return t_pre, t_dec, B * O / total, np.ones_like(B, dtype=bool)


def _prefill_rate(ctx, spec: ServingSpec):
    """(prompts per second of one replica running prompts only, latency of one prompt alone)."""
    s = spec.serving
    I = float(s.input_tokens)
    p = max(1.0, math.floor(s.max_num_tokens / I))
    stage = stage_seconds(ctx, p * I, sampled=p, **_prompt_pairs(ctx, p, I))["total"]
    alone = iteration_seconds(ctx, I, sampled=1.0, **_prompt_pairs(ctx, 1.0, I))["total"]
    return float(p / stage), float(alone)


def _kv_transfer_seconds(ctx, spec: ServingSpec) -> float:
    """Moving one prompt's KV cache from the prefill to the decode GPUs: each GPU sends its shard,
    over NVLink when the pools share a scale-up domain, else over its NIC."""
    s, hw = spec.serving, spec.hardware
    n_bytes = replica_memory(spec, ctx.tp, ctx.pp).kv_bytes_per_sequence(s.input_tokens)
    crosses = hw.count > hw.scaleup_domain_size
    return float(C.send_recv_seconds(n_bytes, ctx.network, ctx.profile, crosses_scaleout=crosses))


def _disaggregated(ctx, spec: ServingSpec, B: np.ndarray):
    s = spec.serving
    I, O, pp = float(s.input_tokens), float(s.output_tokens), ctx.pp
    mb = B / pp
    t_dec = iteration_seconds(ctx, mb, sampled=mb, **_decode_reads(ctx, mb, I, O))["total"]
    g = ctx.tp * ctx.pp
    r_dec = B / t_dec / g                    # output tokens/s per decode GPU
    prompts_per_s, t_alone = _prefill_rate(ctx, spec)
    r_pre = prompts_per_s * O / g            # output tokens/s the prompts of one prefill GPU feed
    if s.prefill_fraction is not None:
        f = np.full_like(B, s.prefill_fraction)
        per_gpu = np.minimum(f * r_pre, (1.0 - f) * r_dec)
    else:
        per_gpu = 1.0 / (1.0 / r_dec + 1.0 / r_pre)
        f = (1.0 / r_pre) / (1.0 / r_dec + 1.0 / r_pre)
    ttft = np.full_like(B, t_alone + _kv_transfer_seconds(ctx, spec))
    return ttft, t_dec, per_gpu * g, np.ones_like(B, dtype=bool), f


def evaluate_plan(spec: ServingSpec, plan: dict, profile: CalibrationProfile | None = None) -> PlanPoints | None:
    """Every batch size of ``plan`` (None when the weights alone do not fit)."""
    s = spec.serving
    mem = replica_memory(spec, plan["tp"], plan["pp"])
    context = s.input_tokens + s.output_tokens
    max_batch = min(mem.max_sequences(context), s.max_batch_size)
    if mem.kv_budget <= 0 and s.batch is None:
        return None
    ctx = replica_context(spec, plan, profile)
    B = _batch_grid(spec, max(max_batch, 1), plan["pp"])
    f = None
    if s.disaggregated:
        ttft, tpot, tps_replica, ok, f = _disaggregated(ctx, spec, B)
    elif s.batching == "static":
        ttft, tpot, tps_replica, ok = _static(ctx, spec, B)
    else:
        ttft, tpot, tps_replica, ok = _continuous(ctx, spec, B)
    fits = ok & (B <= max_batch)
    g = plan["tp"] * plan["pp"]
    return PlanPoints(plan, B, ttft, tpot, tps_replica / g, fits, max_batch, mem, f, ctx)


def all_points(spec: ServingSpec, profile: CalibrationProfile | None = None) -> list[PlanPoints]:
    """:func:`evaluate_plan` for every candidate plan (those whose weights fit)."""
    plans = candidate_plans(spec)
    if not plans:
        raise SpecError(f"no parallel plan: the fixed fields {spec.parallelism.model_dump(exclude_none=True)} "
                        f"leave nothing on {spec.hardware.count} GPUs (heads {spec.model.heads})",
                        field="parallelism")
    pts = [p for p in (evaluate_plan(spec, plan, profile) for plan in plans) if p is not None]
    if not pts:
        raise _does_not_fit(spec, plans)
    return pts


def _does_not_fit(spec: ServingSpec, plans: list[dict]) -> SpecError:
    best = min(plans, key=lambda p: replica_memory(spec, p["tp"], p["pp"]).weights)
    mem = replica_memory(spec, best["tp"], best["pp"])
    short = M.gib(mem.weights + mem.workspace - mem.usable)
    need_gpus = math.ceil(spec.hardware.count * (mem.weights + mem.workspace) / mem.usable)
    fmt = spec.serving.weights.value
    lower = {"bf16": "fp8 or fp4", "fp16": "fp8 or fp4", "fp8": "fp4", "fp4": None}[fmt]
    hint = f"use more GPUs (about {need_gpus}+)" + (f" or lower-precision weights ({lower})" if lower else "")
    return SpecError(
        f"model '{spec.model.name}' does not fit: the leanest plan (tp {best['tp']}, pp {best['pp']}) needs "
        f"{M.gib(mem.weights + mem.workspace):.1f} GiB per GPU for weights and workspace, "
        f"{short:.1f} GiB more than the {M.gib(mem.usable):.1f} GiB usable on a {spec.hardware.accelerator.id}; "
        f"{hint}", field="hardware.count", value=spec.hardware.count)


def _meets(spec: ServingSpec, ttft, tpot):
    s = spec.serving
    ok = np.ones_like(np.asarray(ttft), dtype=bool)
    if s.ttft_slo_s is not None:
        ok &= ttft <= s.ttft_slo_s
    if s.tpot_slo_s is not None:
        ok &= tpot <= s.tpot_slo_s
    return ok


def _phase_breakdown(ctx, spec: ServingSpec, B: float) -> dict[str, dict[str, float]]:
    s = spec.serving
    I, O = float(s.input_tokens), float(s.output_tokens)
    mb = B / ctx.pp
    chunk = min(I, float(s.max_num_tokens)) if s.chunked_prefill else I
    pre = iteration_seconds(ctx, chunk, sampled=1.0, **_prompt_pairs(ctx, 1.0, chunk))
    dec = iteration_seconds(ctx, mb, sampled=mb, **_decode_reads(ctx, mb, I, O))
    return {name: {k: float(v) for k, v in d.items()} for name, d in (("prefill", pre), ("decode", dec))}


def _result(spec: ServingSpec, pts: PlanPoints, i: int, meets: bool) -> ServingEstimate:
    s, hw = spec.serving, spec.hardware
    B = float(pts.batch[i])
    tps_gpu = float(pts.tps_per_gpu[i])
    tps = tps_gpu * hw.count
    tpot = float(pts.tpot[i])
    breakdown = _phase_breakdown(pts.ctx, spec, B)
    bound = {ph: max(BUCKETS, key=lambda b: d[b]) for ph, d in breakdown.items()}
    usd_h, assumptions = usd_per_gpu_hour(hw)
    seconds_per_million = units.MEGA / tps
    gpu_hours = seconds_per_million * hw.count / units.SECONDS_PER_HOUR
    kwh = gpu_hours * assumptions["watts_per_gpu_all_in"] / units.KILO
    mem = pts.memory
    context = s.input_tokens + s.output_tokens
    kv_bytes = mem.kv_bytes_per_sequence(context) * B
    return ServingEstimate(
        ttft_s=float(pts.ttft[i]), tpot_s=tpot, tokens_per_s=tps, tokens_per_s_per_gpu=tps_gpu,
        tokens_per_s_per_user=1.0 / tpot, requests_per_s=tps / s.output_tokens, batch=int(B),
        max_batch=int(pts.max_batch), kv_cache_gib_per_gpu=M.gib(kv_bytes),
        memory_gib_per_gpu=M.gib(mem.weights + mem.workspace + kv_bytes),
        weights_gib_per_gpu=M.gib(mem.weights), fits=bool(pts.fits[i]), meets_slo=meets,
        bound=bound, time_breakdown_s=breakdown, cost_usd_per_million_tokens=gpu_hours * usd_h,
        energy_kwh_per_million_tokens=kwh, parallelism=dict(pts.plan), gpus=hw.count,
        chip=hw.accelerator.id, model=spec.model.name,
        formats={"weights": s.weights.value, "activations": s.activation_format, "kv_cache": s.kv_format},
        input_tokens=s.input_tokens, output_tokens=s.output_tokens, batching=s.batching,
        disaggregated=s.disaggregated,
        prefill_gpu_fraction=None if pts.prefill_fraction is None else float(pts.prefill_fraction[i]),
        assumptions={**assumptions, "kv_cache_fraction": s.kv_cache_fraction,
                     "max_num_tokens": s.max_num_tokens, "max_batch_size": s.max_batch_size,
                     **_state_assumptions(spec, mem, B)})


def _state_assumptions(spec: ServingSpec, mem: M.ServingMemory, batch: float) -> dict:
    """A hybrid's recurrent (Mamba-2, Gated DeltaNet) state in the cache (part of
    ``kv_cache_gib_per_gpu``) and its format."""
    if not spec.model.recurrent_layers:
        return {}
    return {"recurrent_state_gib_per_gpu": M.gib(mem.state_per_sequence * batch),
            "recurrent_state": spec.serving.recurrent_state}


def estimate(spec: ServingSpec, profile: CalibrationProfile | None = None) -> ServingEstimate:
    """The best plan and batch for the spec: the most output tokens/s per GPU among the points that
    fit and meet the SLOs (fields the spec fixes are kept).  When no point meets the SLOs, the
    fitting point with the lowest TPOT is returned with ``meets_slo`` false; a fixed batch that does
    not fit is returned with ``fits`` false."""
    pts = all_points(spec, profile)
    best, best_key = None, None
    for p in pts:
        meets = _meets(spec, p.ttft, p.tpot)
        for i in range(len(p.batch)):
            fit = bool(p.fits[i])
            key = (fit, bool(meets[i]), p.tps_per_gpu[i] if meets[i] else -p.tpot[i])
            if best_key is None or key > best_key:
                best, best_key = (p, i, bool(meets[i])), key
    p, i, meets = best
    return _result(spec, p, i, meets)


def frontier(spec: ServingSpec, profile: CalibrationProfile | None = None) -> list[ServingEstimate]:
    """The Pareto frontier of tokens/s/GPU against tokens/s/user over every plan and batch that
    fits (and meets the TTFT limit when one is given), fastest-per-user first."""
    cands = []
    for p in all_points(spec, profile):
        ok = p.fits.copy()
        if spec.serving.ttft_slo_s is not None:
            ok &= p.ttft <= spec.serving.ttft_slo_s
        for i in np.nonzero(ok)[0]:
            cands.append((1.0 / float(p.tpot[i]), float(p.tps_per_gpu[i]), p, int(i)))
    cands.sort(key=lambda c: (-c[0], -c[1]))
    front, best_tput = [], -1.0
    for user, tput, p, i in cands:
        if tput > best_tput:
            front.append(_result(spec, p, i, bool(_meets(spec, p.ttft[i:i + 1], p.tpot[i:i + 1])[0])))
            best_tput = tput
    return front


__all__ = ["PlanPoints", "ServingEstimate", "all_points", "candidate_plans", "estimate",
           "evaluate_plan", "frontier", "replica_context", "replica_memory"]
