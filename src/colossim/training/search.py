"""Search over parallel plans: enumerate every valid plan, prune by memory, price the rest at once.

Fields the spec fixes stay fixed; every omitted field is searched:

- ``tp``: divides the query heads, and the KV heads divide by it or it by them (Megatron-LM's
  query-group rule); at most the scale-up domain (TP traffic stays on NVLink) unless the spec
  sets ``parallelism.tp_beyond_domain``.  A tp the spec fixes is taken as given, beyond the
  domain too (its collectives are priced over the scale-out network, :mod:`colossim.cost.comm`).
- ``cp``: powers of two up to ``MAX_CP`` with ``seq_len`` divisible by 2 cp (load-balanced causal
  chunks, Megatron-Core); only 1 without flash attention: ring attention merges the partial
  results of each K/V chunk through the log-sum-exp a fused (flash) attention kernel returns
  (Megatron-Core CP runs on Transformer Engine's fused attention), which the unfused core lacks.
- ``pp``: divides the layers (or any count up to the layers with ``uneven_stages``); with
  ``parallelism.tp_fills_server`` a plan with pp > 1 takes the server's tp (:func:`server_tp`).
- ``dp``: what is left of the GPU count; ``ep`` divides the experts and dp x cp.
- ``etp`` (MoE): tp; and 1 as well under a stack with ``moe_parallel_folding`` (Megatron-Core's
  expert tensor parallelism), where etp x ep need only divide tp x cp x dp.
- ``micro_batch``: powers of two with the global batch divisible by dp x micro_batch.
- ``vpp``: 1, or any chunk count that divides the layers per stage, when the micro-batches divide
  by pp (Megatron's interleaved-schedule requirement): every depth Megatron accepts, 23 chunks of
  one layer for 92 layers on 4 stages as well as 2 of 46 (:func:`vpp_candidates`).
- ``pipeline_schedule``: zero-bubble and DualPipe plans need vpp 1; DualPipe also an even pp and at
  least 2 pp micro-batches (:func:`colossim.training.pipeline.schedule_allows`).
- ``recompute``: none / selective / full;  ``zero``: 0-3 (ZeRO-2/3 only without pipelining, as in
  DeepSpeed, unless the spec fixes both zero and pp: then priced as PyTorch's pipelining runs
  FSDP, :func:`colossim.training.plans.pipelined_zero`);  ``sequence_parallel``: on whenever
  tp > 1 (same bytes as the all-reduce, less activation memory).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from colossim.arith import divisors
from colossim.specs.training import valid_mask
from colossim.training.pipeline import layers_on_slowest_stage, layout_reaches_even_pace, schedule_allows
from colossim.training.plans import RECOMPUTE_CODES, PlanArrays

#: Largest context-parallel degree tried.  Because: published long-context runs use cp <= 16
#: (Llama 3 405B at 128k: cp 16); larger rings are latency-bound.
MAX_CP = 16
#: Micro-batch sizes tried (powers of two).  Because: GEMM efficiency saturates well before 16
#: sequences of >= 2k tokens, and larger micro-batches only add activation memory.
MICRO_BATCHES = (1, 2, 4, 8, 16)


def vpp_candidates(layers: int, pps: list[int]) -> list[int]:
    """Chunk counts per stage worth trying: the divisors of the layers per stage, ceil(L / p), of
    each pipeline depth p (the mask keeps, per plan, those that divide its own stage)."""
    return sorted({v for p in pps for v in divisors(int(layers_on_slowest_stage(layers, p)))})


def tp_candidates(model) -> list[int]:
    """Tensor-parallel degrees worth trying: the divisors of the query heads that the KV heads
    divide, or that divide them (Megatron-LM's query-group rule)."""
    kv = model.kv_heads or model.heads
    return [t for t in divisors(model.heads) if kv % t == 0 or t % kv == 0]


def cp_candidates(plan, seq_len: int) -> list[int]:
    """Context-parallel degrees worth trying: powers of two up to ``MAX_CP`` with the sequence in
    2 cp load-balanced chunks; only 1 without flash attention (see the module docstring)."""
    if not plan.flash_attention:
        return [1]
    return [c for c in (1, 2, 4, 8, 16, 32) if c <= MAX_CP and seq_len % (2 * c) == 0 or c == 1]


def tp_beyond_domain(plan) -> bool:
    """Whether a plan's tp may exceed the scale-up domain: the spec fixes tp (a user's plan is
    priced as given) or sets ``tp_beyond_domain`` (the search may try it)."""
    return plan.tp is not None or bool(plan.tp_beyond_domain)


def server_tp(model, system) -> int:
    """The tensor-parallel degree of a whole server: the largest tp the model allows
    (:func:`tp_candidates`) within the GPUs of a node and the scale-up domain (8 on a DGX)."""
    cap = min(int(system.gpus_per_node), int(system.scaleup_domain_size))
    return max([t for t in tp_candidates(model) if t <= cap] or [1])


def fixed_or_open(plan, name: str, default) -> list:
    """The values plan field ``name`` may take: the one the spec fixes (an enum as its value), or
    every value of ``default`` when it is left open."""
    v = getattr(plan, name)
    return list(default) if v is None else [getattr(v, "value", v)]


#: Model chunks of an interleaved pipeline that may hold no transformer layer: the first stage's
#: with the embedding and the last stage's with the output head and loss, each standing in for a
#: layer.  Source: Llama 3 (Dubey et al. 2024, sec. 3.3.2) runs 126 layers as 16 stages x 8 chunks
#: of one layer by removing a layer from the first and the last stage; Megatron-Core's
#: ``account_for_embedding_in_pipeline_split`` / ``account_for_loss_in_pipeline_split`` do the same.
EMBEDDING_HEAD_CHUNKS = 2


def interleaving_splits_stages(layers: int, pp: ArrayLike, vpp: ArrayLike) -> np.ndarray:
    """Whether an interleaved pipeline's stages split into ``vpp`` model chunks of whole layers:
    the fullest stage's layers (ceil(layers / pp)) into vpp equal chunks, and no more chunks than
    layers but for the embedding's and the head's (:data:`EMBEDDING_HEAD_CHUNKS`).  80 layers over
    pp 32 (stages of 2 and 3 layers) do not split into 3 chunks a stage: 96 chunks for 80 layers."""
    pp, vpp = np.asarray(pp, dtype=np.int64), np.asarray(vpp, dtype=np.int64)
    return (layers_on_slowest_stage(layers, pp) % vpp == 0) & (pp * vpp <= layers + EMBEDDING_HEAD_CHUNKS)


#: The ZeRO stages a left-open ``zero`` may take.
ZERO_STAGES = (0, 1, 2, 3)


def enumerate_plans(model, system, plan, global_batch: int, seq_len: int,
                    recompute_modes: tuple[str, ...] = tuple(RECOMPUTE_CODES),
                    zero_stages: tuple[int, ...] = ZERO_STAGES,
                    pipelined_zero_stages: tuple[int, ...] = (0, 1),
                    pipeline_layout: str = "any") -> PlanArrays:
    """Every valid plan consistent with the fixed fields of ``plan`` (a ParallelPlan);
    ``recompute_modes`` are those a left-open recompute may take (the software stack's),
    ``zero_stages`` the stages a left-open zero may take, and ``pipelined_zero_stages`` those
    it may take with pp > 1 unless the spec fixes both; a left-open pp only splits the layers
    as ``pipeline_layout`` can at ceil(layers / pp) a stage (:func:`layout_reaches_even_pace`)."""
    n = int(system.count)

    # candidates; valid_mask below is the one authority on validity
    tps = fixed_or_open(plan, "tp", tp_candidates(model))
    cps = fixed_or_open(plan, "cp", cp_candidates(plan, seq_len))
    pps = fixed_or_open(plan, "pp", [p for p in divisors(n) if p <= model.layers])
    eps = fixed_or_open(plan, "ep", divisors(model.experts) if model.is_moe else [1])
    mbs = fixed_or_open(plan, "micro_batch", list(MICRO_BATCHES))
    vpps = fixed_or_open(plan, "vpp", vpp_candidates(model.layers, pps))
    rcs = fixed_or_open(plan, "recompute", list(recompute_modes))
    zeros = fixed_or_open(plan, "zero", list(zero_stages))
    rcs = [RECOMPUTE_CODES[r] for r in rcs]

    # expert tp: 0 stands for "= tp"; a fixed etp is itself; folding adds etp 1
    etps = ([plan.etp] if plan.etp is not None
            else [0, 1] if model.is_moe and plan.moe_parallel_folding else [0])
    axes = [np.asarray(a, dtype=np.int64) for a in (tps, cps, pps, eps, mbs, vpps, rcs, zeros, etps)]
    if any(a.size == 0 for a in axes):
        return PlanArrays.from_dicts([])
    # the cartesian product, built by numpy (a list of tuples is the slow part for MoE grids)
    tp, cp, pp, ep, mb, vpp, rc, zero, etp_code = (g.ravel() for g in np.meshgrid(*axes, indexing="ij"))
    etp = np.where(etp_code == 0, tp, etp_code)
    dp = n // (tp * cp * pp)  # floor: a count the product does not divide fails the product check
    ok = valid_mask(model, system, tp, pp, cp, ep, np.maximum(dp, 1), vpp, mb, global_batch,
                    uneven_stages=plan.uneven_stages, tp_within_domain=not tp_beyond_domain(plan), etp=etp)
    if plan.etp is None:  # etp 1 at tp 1 is the plan etp = tp already
        ok &= (etp_code == 0) | (tp > 1)
    # search policy beyond validity: the fixed dp, tp filling a server before pp (when asked),
    # Megatron's interleaving requirements, and ZeRO-2/3 only without pipelining
    if plan.dp is not None:
        ok &= dp == plan.dp
    if plan.pp is None:
        ok &= layout_reaches_even_pace(model.layers, pp, pipeline_layout)
    if plan.tp_fills_server and plan.tp is None:  # Narayanan et al. 2021, Takeaway #1
        ok &= (pp == 1) | (tp == server_tp(model, system))
    n_micro = global_batch // np.maximum(dp * mb, 1)
    ok &= (vpp == 1) | (interleaving_splits_stages(model.layers, pp, vpp) & (n_micro % pp == 0))
    if plan.shard_group is not None:  # a shard spans shard_group of the dp x cp ranks, under ZeRO 1-3
        ok &= ((dp * cp) % plan.shard_group == 0) & (zero >= 1)
    if plan.zero is None or plan.pp is None:  # both fixed: priced as pipelined FSDP (plans.pipelined_zero)
        ok &= np.isin(zero, np.asarray(pipelined_zero_stages, dtype=np.int64)) | (pp == 1)
    if plan.zero is None:  # where every weight has one copy a ZeRO stage shards nothing: the plan is zero 0's
        ok &= (zero == 0) | (dp * cp > 1) | (tp * dp * cp > etp * ep)
    ok &= schedule_allows(plan.pipeline_schedule or "1f1b", pp, vpp, n_micro)
    if plan.sequence_parallel is None:
        sp = tp > 1
    else:
        sp = np.full(tp.shape, bool(plan.sequence_parallel))
    sel = np.nonzero(ok)[0]
    return PlanArrays(tp=tp[sel], pp=pp[sel], cp=cp[sel], ep=ep[sel], dp=dp[sel], vpp=vpp[sel],
                      micro_batch=mb[sel], recompute=rc[sel], zero=zero[sel],
                      sequence_parallel=np.asarray(sp)[sel],
                      tp_overlap=np.full(sel.shape, bool(plan.tp_overlap)),
                      fsdp=np.full(sel.shape, plan.fsdp is not False),
                      recompute_layers=np.full(sel.shape, plan.recompute_num_layers or 0, dtype=np.int64),
                      etp=etp[sel],
                      shard=None if plan.shard_group is None  # None: dp x cp (PlanArrays' default)
                      else np.full(sel.shape, plan.shard_group, dtype=np.int64))


#: Candidates tried on each side of the spec's GPU count or global batch before
#: :func:`nearest_plan_counts` / :func:`nearest_plan_batches` give up on that side.  Because: each try
#: enumerates one count's plans (milliseconds); almost every candidate admits a plan, so the
#: first few tries settle it.
NEAREST_TRIES = 64


#: Most products tp x cp x pp x dp the nearest-count advice builds; beyond it (a model of
#: millions of layers with uneven stages, say) the advice is left out rather than the error delayed.
#: Because: four int64 grids of this size take 32 MB and well under a second.
NEAREST_GRID_MAX = 1_000_000


def _degree_choices(model, system, plan, global_batch: int, seq_len: int,
                    pipeline_layout: str = "any") -> tuple[list[int], ...]:
    """The tp, cp, pp and dp degrees a plan may take at about ``system.count`` GPUs (up to twice as
    many): tp from the heads within the scale-up domain, cp as the search tries it, pp up to the
    layers (dividing them unless ``uneven_stages``, split as ``pipeline_layout`` can), dp a
    divisor of the global batch (dp x micro_batch must divide it); a degree the spec fixes is
    itself.  Every list is empty when
    their products would exceed ``NEAREST_GRID_MAX``."""
    pp_cap = min(int(model.layers), 2 * int(system.count))
    if plan.pp is None and plan.uneven_stages and pp_cap > NEAREST_GRID_MAX:
        return [], [], [], []
    tps = fixed_or_open(plan, "tp", [t for t in tp_candidates(model) if t <= system.scaleup_domain_size])
    cps = fixed_or_open(plan, "cp", cp_candidates(plan, seq_len))
    depths = np.arange(1, pp_cap + 1)
    pps = fixed_or_open(plan, "pp", depths[layout_reaches_even_pace(model.layers, depths, pipeline_layout)].tolist()
                        if plan.uneven_stages else [p for p in divisors(model.layers) if p <= pp_cap])
    dps = fixed_or_open(plan, "dp", divisors(global_batch))
    if len(tps) * len(cps) * len(pps) * len(dps) > NEAREST_GRID_MAX:
        return [], [], [], []
    return tps, cps, pps, dps


def _products(*axes: list[int]) -> np.ndarray:
    """Every product of one value from each axis, sorted, each once."""
    grid = np.meshgrid(*(np.asarray(a, dtype=np.int64) for a in axes), indexing="ij")
    return np.unique(np.prod(np.stack([g.ravel() for g in grid]), axis=0))


def _first_with_plans(candidates, admits) -> int | None:
    """The first of ``candidates`` (at most ``NEAREST_TRIES`` of them) for which ``admits`` holds."""
    for m in candidates[:NEAREST_TRIES]:
        if admits(int(m)):
            return int(m)
    return None


def nearest_plan_counts(model, system, plan, global_batch: int, seq_len: int,
                        **space) -> tuple[int | None, int | None]:
    """The GPU counts nearest ``system.count`` (the largest below it, the smallest above it) for
    which :func:`enumerate_plans` finds a valid plan with the same model, batch and fixed plan
    fields; None on a side where none is found within ``NEAREST_TRIES`` candidates.  Candidates
    are the products tp x cp x pp x dp of :func:`_degree_choices`; each is checked by the search's
    own enumeration (``space``: its keyword arguments, the stack's), the one authority on validity."""
    choices = _degree_choices(model, system, plan, global_batch, seq_len, space.get("pipeline_layout", "any"))
    if not all(choices):
        return None, None
    counts = _products(*choices)
    n = int(system.count)

    def admits(m: int) -> bool:
        return len(enumerate_plans(model, replace(system, count=m), plan, global_batch, seq_len, **space)) > 0

    return (_first_with_plans(counts[counts < n][::-1], admits),
            _first_with_plans(counts[counts > n], admits))


def nearest_plan_batches(model, system, plan, global_batch: int, seq_len: int,
                         **space) -> tuple[int | None, int | None]:
    """The global batches (sequences) nearest ``global_batch``, below and above it, for which
    :func:`enumerate_plans` finds a valid plan on ``system.count`` GPUs; None on a side where none
    is found.  Candidates are the multiples of each data-parallel degree the count leaves
    (count / (tp x cp x pp)) nearest the batch; a fixed ``dp`` is the only degree."""
    tps, cps, pps, _ = _degree_choices(model, system, plan, global_batch, seq_len, space.get("pipeline_layout", "any"))
    n = int(system.count)
    if plan.dp is not None:
        dps = np.asarray([int(plan.dp)], dtype=np.int64)
    else:
        split = _products(tps, cps, pps) if all((tps, cps, pps)) else np.zeros(0, dtype=np.int64)
        dps = n // split[n % split == 0]
    if dps.size == 0:
        return None, None
    lower = (global_batch - 1) // dps * dps
    upper = (global_batch // dps + 1) * dps
    below = np.unique(lower[lower > 0])[::-1]
    above = np.unique(upper[upper > global_batch])

    def admits(b: int) -> bool:
        return len(enumerate_plans(model, system, plan, b, seq_len, **space)) > 0

    return _first_with_plans(below, admits), _first_with_plans(above, admits)
