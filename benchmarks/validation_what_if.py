"""What-ifs on the training validation set: how far would each reading of the remaining error go?
NOT part of the engine: each scenario patches the default profiles or the rows for this run only
(an in-training H100 compute factor, TP overlap on rows that do not document it, the SM
margin NVIDIA's tuned userbuffers configurations set, TP overlap that hides nothing, and each of
the thirty-third round's three changes undone: the per-domain ring latency, the round list of
interleaving depths; the thirty-fourth's HBM read as 1e9 bytes again; Megatron-Core's per-chunk
gradient sync under interleaving, which the engine leaves out; the thirty-eighth round's fp8
sequence-parallel gathers undone; overlapped collectives that cost the compute more SMs, as
benchmarks/contention.py measured; the thirty-ninth's ring attention priced as one kernel again;
the fortieth's Composer FSDP overlapping its traffic again),
to show where the gap sits; docs/validation-history.md's fourteenth,
twenty-second, twenty-eighth, twenty-ninth, thirty-second to thirty-fifth rounds quote its tables.
Run: .venv/bin/python benchmarks/validation_what_if.py"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from rich.console import Console
from rich.table import Table

import colossim.cost.comm as comm
import colossim.cost.compute as compute
import colossim.cost.defaults as defaults
import colossim.training.search as search
import colossim.training.ops as ops
import colossim.training.step as step
from colossim import units
from colossim.catalog.schema import Accelerator
from colossim.cost.efficiency import default_profile
from colossim.errorstats import error_stats
from colossim.specs.software import software_stacks
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.validate import validation_runs

#: Rows whose sources are NeMo / MLPerf / Nemotron-4 runs (TP overlap not stated in their notes).
UNSTATED_OVERLAP = ("NEMO", "MLPERF", "NEMOTRON")
def per_domain_ring_latency(n, d, N, profile) -> np.ndarray:
    """The ring-pass latency before the thirty-third round: the measured in-domain latency once
    plus the scale-out curve's fitted latency (47 us on H100, fitted to tree all-reduce rows) per
    domain boundary; same signature as ``colossim.cost.comm._ring_pass_latency`` (NCCL's step
    model since that round), which it replaces in the scenarios that say so."""
    lat_in = np.where(d > 1, comm._intra_ring_curve(profile).latency_seconds, 0.0)
    return lat_in + (N - 1.0) * comm._scaleout_ring_curve(profile).latency_seconds


#: Interleaving depths the search tried before the thirty-third round (it now tries every divisor
#: of a stage's layers, ``search.vpp_candidates``): 23 chunks of one layer, say, were never seen.
ROUND_VPP = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20)


def interleaved_dp_overlap_factor(pp, vpp, n_micro) -> np.ndarray:
    """Backward (forward) passes an overlapped DP reduce-scatter (all-gather) of a stage's weights
    can hide under when the stage holds ``vpp`` model chunks: Megatron-Core syncs each chunk's
    gradients as soon as its last micro-batch's backward is done (megatron-core 0.8
    ``schedules.py``: ``grad_sync_func[chunk]`` when ``is_last_microbatch_for_model_chunk``), and the
    schedule runs the chunks in groups of ``pp`` micro-batches, so ``(vpp - 1) x pp`` chunk
    backwards of 1/vpp of a pass each follow the first chunk's.  The engine's window is one pass."""
    v = np.maximum(np.asarray(vpp, dtype=float), 1.0)
    group = np.minimum(np.asarray(pp, dtype=float), np.maximum(np.asarray(n_micro, dtype=float), 1.0))
    return (1.0 + (v - 1.0) * group) / v


#: The stack the fortieth round stopped overlapping (Composer's PyTorch FSDP, the MPT rows').
COMPOSER_STACK = "pytorch-fsdp-2023"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One what-if: the factors and switches it applies (the defaults leave the engine as is)."""

    label: str
    h100: float = 1.0  # H100-class compute factor
    overlap: bool = False  # TP overlap on the UNSTATED_OVERLAP rows
    per_domain_latency: bool = False  # the pre-33 ring latency (per_domain_ring_latency)
    round_vpp: bool = False  # the pre-33 interleaving depths (ROUND_VPP)
    sm_margin: bool = False  # every overlapped row with userbuffers' SM margin (NVIDIA's tuned configs)
    tp_overlap_off: bool = False  # TP overlap off on every row: priced as hiding nothing
    decimal_hbm: bool = False  # HBM capacity as 1e9 bytes per datasheet GB (before the 34th round)
    chunk_dp_overlap: bool = False  # DP collectives hide under the chunks' passes (interleaved_dp_overlap_factor)
    bf16_sp_gather: bool = False  # fp8 runs' SP all-gathers in bf16 (before the 38th round)
    nccl_channels: int | None = None  # SMs an overlapped collective takes (step.NCCL_OVERLAP_CHANNELS)
    ring_one_kernel: bool = False  # ring attention as one kernel, no merge passes (before the 39th round)
    composer_overlap: bool = False  # Composer's FSDP hides its traffic under the compute (before the 40th round)


SCENARIOS = (
    Scenario("engine as is"),
    Scenario("the engine before the 33rd round (per-domain latency, round depths, SM margin)",
             per_domain_latency=True, round_vpp=True, sm_margin=True),
    Scenario("engine + SM margin on the overlapped rows", sm_margin=True),
    Scenario("engine, per-domain ring latency", per_domain_latency=True),
    Scenario("engine, round interleaving depths", round_vpp=True),
    Scenario("engine + tuned overlap (SM margin) on NeMo/MLPerf/Nemotron", overlap=True, sm_margin=True),
    Scenario("engine, TP overlap hides nothing", tp_overlap_off=True),
    Scenario("engine, H100 x 0.95", h100=0.95),
    Scenario("engine, HBM read as 1e9 bytes per GB (before the 34th round)", decimal_hbm=True),
    Scenario("engine + per-chunk DP overlap under interleaving", chunk_dp_overlap=True),
    Scenario("engine + per-chunk DP overlap, H100 x 0.9", chunk_dp_overlap=True, h100=0.9),
    Scenario("engine, fp8 SP gathers in bf16 (before the 38th round)", bf16_sp_gather=True),
    Scenario("engine, ring attention as one kernel, no merges (before the 39th round)",
             ring_one_kernel=True),
    # benchmarks/contention.py on the lent H100: a copy streaming HBM on 16 thread blocks slows
    # the 8192^3 GEMM by 24.5 % in time, the engine's 16 of 132 SMs by 12.1 %; 26 and 32 blocks'
    # worth bracket the measured loss (an upper bound: NCCL's blocks also wait on the network)
    Scenario("engine, overlapped collectives cost 26 SMs' worth of compute", nccl_channels=26),
    Scenario("engine, overlapped collectives cost 32 SMs' worth of compute", nccl_channels=32),
    # the fortieth round undone: the nine Composer FSDP (MPT) rows fit compute + all of FSDP's
    # traffic (a median 0.92 of it exposed), not compute + 12 % of it
    Scenario("engine, Composer's FSDP traffic hidden under the compute (before the 40th round)",
             composer_overlap=True),
)
#: Rows on Composer's PyTorch FSDP (MosaicML llm-foundry).
COMPOSER_IDS = ("MPT-",)
H100_IDS = ("MCORE", "NEMO", "MLPERF", "MPT-70B-H", "MPT-30B-H", "MPT-13B-H", "MPT-7B-H")


def _patch(sc: Scenario):
    """Apply the scenario's engine patches; returns the function that undoes them."""
    build = defaults.build_default_profile
    ring_pass, vpps = comm._ring_pass_latency, search.vpp_candidates
    hbm, dp_seconds, sp_bytes = Accelerator.hbm_bytes, step._dp_seconds, step.sp_gather_bytes
    channels = step.NCCL_OVERLAP_CHANNELS
    attention, merge = compute.attention_seconds, ops.ring_attention_merge_bytes

    def profile(chip):
        p = build(chip)
        f = 1.0 if chip.startswith(("a100", "v100")) else sc.h100
        gemm = {k: dataclasses.replace(v, max_efficiency=v.max_efficiency * f) for k, v in p.gemm.items()}
        att = dataclasses.replace(p.attention, max_efficiency=p.attention.max_efficiency * f)
        return dataclasses.replace(p, gemm=gemm, attention=att)

    defaults.build_default_profile = profile
    if sc.per_domain_latency:
        comm._ring_pass_latency = per_domain_ring_latency
    if sc.round_vpp:
        search.vpp_candidates = lambda layers, pps: list(ROUND_VPP)
    if sc.decimal_hbm:
        Accelerator.hbm_bytes = property(lambda a: None if a.hbm_gib is None else a.hbm_gib * units.GIGA)
    if sc.chunk_dp_overlap:  # the windows scale; ZeRO-3 plans never interleave, so their factor is 1
        def chunked(ctx, plans, params, t_fwd_mb, t_bwd_mb, n_micro):
            f = interleaved_dp_overlap_factor(plans.pp, plans.vpp, n_micro)
            return dp_seconds(ctx, plans, params, t_fwd_mb * f, t_bwd_mb * f, n_micro)
        step._dp_seconds = chunked
    stacks = software_stacks()  # the cached catalog: a spec loaded now takes the stack's flags
    composer = stacks[COMPOSER_STACK]
    if sc.composer_overlap:
        stacks[COMPOSER_STACK] = composer.model_copy(update={"overlap_grad_reduce": True,
                                                             "overlap_param_gather": True})
    if sc.bf16_sp_gather:
        step.sp_gather_bytes = lambda ctx: step.ACTIVATION_BYTES
    if sc.nccl_channels is not None:
        step.NCCL_OVERLAP_CHANNELS = sc.nccl_channels
    if sc.ring_one_kernel:
        compute.attention_seconds = lambda *a, kv_chunks=1, **k: attention(*a, **k)
        ops.ring_attention_merge_bytes = lambda model, tokens, *a: (0.0 * tokens, 0.0 * tokens)
    default_profile.cache_clear()
    return lambda: (setattr(defaults, "build_default_profile", build),
                    setattr(comm, "_ring_pass_latency", ring_pass),
                    setattr(search, "vpp_candidates", vpps), setattr(Accelerator, "hbm_bytes", hbm),
                    setattr(step, "_dp_seconds", dp_seconds), setattr(step, "sp_gather_bytes", sp_bytes),
                    setattr(step, "NCCL_OVERLAP_CHANNELS", channels),
                    setattr(compute, "attention_seconds", attention),
                    setattr(ops, "ring_attention_merge_bytes", merge),
                    stacks.__setitem__(COMPOSER_STACK, composer),
                    default_profile.cache_clear())


def _errors(sc: Scenario) -> dict[str, float]:
    out = {}
    for r in validation_runs():
        spec = json.loads(r.spec_json)
        if sc.overlap and r.id.startswith(UNSTATED_OVERLAP):
            spec["parallelism"].setdefault("tp_overlap", True)
        if sc.tp_overlap_off and "parallelism" in spec:
            spec["parallelism"]["tp_overlap"] = False
        if sc.sm_margin and spec.get("parallelism", {}).get("tp_overlap"):
            spec["parallelism"]["tp_overlap_sm_margin"] = True
        out[r.id] = estimate(load_spec(spec)).tokens_per_s_per_gpu / r.tokens_per_s_per_gpu_measured - 1
    return out


def _cell(errs: list[float]) -> str:
    s = error_stats(errs)
    return f"{s.median_abs:.1%} / {s.max_abs:.1%} / {s.mean_signed:+.1%}"


if __name__ == "__main__":
    table = Table(title="What-ifs (not in the engine): median |err| / max |err| / mean signed")
    trust_a = {r.id for r in validation_runs() if r.trust == "A"}
    for col in ("scenario", "all", "trust A", "without DeepSpeed ZeRO-3", "H100", "Composer FSDP (MPT)"):
        table.add_column(col)
    for sc in SCENARIOS:
        undo = _patch(sc)
        try:
            e = _errors(sc)
        finally:
            undo()
        table.add_row(sc.label, _cell(list(e.values())), _cell([v for k, v in e.items() if k in trust_a]),
                      _cell([v for k, v in e.items() if "Z3" not in k]),
                      _cell([v for k, v in e.items() if k.startswith(H100_IDS)]),
                      _cell([v for k, v in e.items() if k.startswith(COMPOSER_IDS)]))
    Console().print(table)
