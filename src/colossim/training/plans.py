"""Arrays of parallel plans: one element per plan, so the step model prices many plans at once.

The scalar API uses arrays of length one; the search uses arrays of every valid plan.  Rank order
(Megatron-LM convention): tensor-parallel ranks innermost, then context-parallel, then data-parallel
(expert-parallel groups are carved out of the data x context ranks), then pipeline stages
outermost.  So a TP group has stride 1, a CP group stride tp, a DP/EP group stride tp*cp and the
pipeline neighbour is tp*cp*dp ranks away.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

#: integer codes of the recompute policy in plan arrays
RECOMPUTE_CODES = {"none": 0, "selective": 1, "full": 2}
RECOMPUTE_NAMES = {v: k for k, v in RECOMPUTE_CODES.items()}


def full_recompute_fraction(recompute, recompute_layers, layers_per_stage) -> np.ndarray:
    """Fraction of a stage's layers whose forward is recomputed in backward: with full recompute
    ``recompute_layers`` of ``layers_per_stage`` (all when 0); 0 for none / selective."""
    stage = np.maximum(np.asarray(layers_per_stage, dtype=float), 1.0)
    rl = np.asarray(recompute_layers, dtype=float)
    part = np.where(rl > 0, np.minimum(rl, stage) / stage, 1.0)
    return np.where(np.asarray(recompute) == RECOMPUTE_CODES["full"], part, 0.0)


def pipelined_zero(zero, pp) -> np.ndarray:
    """The ZeRO stage a plan is priced at: ``zero``, except that ZeRO-2/3 under pipelining (pp > 1)
    costs what ZeRO-1 costs.  Source: PyTorch's pipelining runs FSDP that way
    (``torch.distributed.pipelining`` ``_PipelineStageBase.backward_maybe_with_nosync`` turns off
    gradient sync and resharding for every micro-batch but the last, then runs FSDP's post-backward
    once; torchtitan ``apply_fsdp`` keeps the parameters unsharded after forward when pipelining,
    "to avoid per-microbatch all-gathers"): one all-gather of the stage's weights and one
    reduce-scatter of its fp32 gradients per step, the full weights and gradient buffer resident,
    only the optimizer state sharded.  DeepSpeed's pipeline engine refuses ZeRO-2/3 outright, so
    the search only tries these plans when the spec fixes both fields."""
    zero, pp = np.asarray(zero), np.asarray(pp)
    return np.where(pp > 1, np.minimum(zero, 1), zero)


@dataclass(frozen=True)
class PlanArrays:
    """Parallel plans as parallel numpy arrays (all the same length)."""

    tp: np.ndarray
    pp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    dp: np.ndarray
    vpp: np.ndarray
    micro_batch: np.ndarray
    recompute: np.ndarray  # RECOMPUTE_CODES
    zero: np.ndarray
    sequence_parallel: np.ndarray  # bool
    tp_overlap: np.ndarray  # bool
    fsdp: np.ndarray | None = None
    """bool per plan: ZeRO-3 with flat-parameter units (PyTorch FSDP: one all-gather per layer) rather
    than DeepSpeed ZeRO-3's per-submodule fetches (the spec's ``fsdp: false`` with ``zero: 3``).
    None means FSDP-style everywhere."""

    recompute_layers: np.ndarray | None = None
    """int per plan, with recompute full: layers of the most loaded stage that are recomputed
    (Megatron's block method); 0 = all of them.  None means 0 everywhere."""

    etp: np.ndarray | None = None
    """int per plan: expert tensor-parallel degree (the routed experts' weights split over etp GPUs);
    etp < tp folds the experts over the stage's tp x cp x dp GPUs.  None means etp = tp."""

    shard: np.ndarray | None = None
    """int per plan: the ranks one ZeRO shard spans (the spec's ``shard_group``), dividing dp x cp;
    the dp x cp / shard copies all-reduce the shard's gradients.  None means dp x cp everywhere."""

    def __post_init__(self) -> None:
        if self.shard is None:
            object.__setattr__(self, "shard", np.asarray(self.dp * self.cp, dtype=np.int64))
        if self.etp is None:
            object.__setattr__(self, "etp", np.asarray(self.tp, dtype=np.int64).copy())
        if self.fsdp is None:
            object.__setattr__(self, "fsdp", np.ones(self.tp.shape, dtype=bool))
        if self.recompute_layers is None:
            object.__setattr__(self, "recompute_layers", np.zeros(self.tp.shape, dtype=np.int64))

    @property
    def folded(self) -> np.ndarray:
        """bool per plan: the experts run their own tensor-parallel degree (etp < tp), laid out
        etp x ep x expert-dp over the stage's GPUs (Megatron-Core's expert rank generator)."""
        return self.etp < self.tp

    @property
    def shard_copies(self) -> np.ndarray:
        """Copies of each ZeRO shard across the data x context ranks (1 unless ``shard_group`` is set)."""
        return np.maximum(self.dp * self.cp // np.maximum(self.shard, 1), 1)

    @property
    def priced_zero(self) -> np.ndarray:
        """The ZeRO stage whose memory and communication a plan pays: see :func:`pipelined_zero`."""
        return pipelined_zero(self.zero, self.pp)

    def recompute_fraction(self, layers_per_stage: np.ndarray) -> np.ndarray:
        """See :func:`full_recompute_fraction`."""
        return full_recompute_fraction(self.recompute, self.recompute_layers, layers_per_stage)

    def with_recompute_layers(self, recompute_layers: np.ndarray) -> PlanArrays:
        """The same plans with ``recompute_layers`` replaced."""
        return replace(self, recompute_layers=np.asarray(recompute_layers, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @staticmethod
    def concatenate(parts: list[PlanArrays]) -> PlanArrays:
        """The plans of ``parts``, one after another."""
        return PlanArrays(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(PlanArrays)})

    def take(self, idx: np.ndarray) -> PlanArrays:
        """The plans at ``idx`` (boolean mask or indices)."""
        return PlanArrays(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def plan_dict(self, i: int) -> dict:
        """Plan ``i`` as a plain dict with the spec's field names."""
        d = {f.name: getattr(self, f.name)[i].item() for f in fields(self)}
        d["recompute"] = RECOMPUTE_NAMES[int(d["recompute"])]
        d["sequence_parallel"] = bool(d["sequence_parallel"])
        d["tp_overlap"] = bool(d["tp_overlap"])
        d["fsdp"] = bool(d["fsdp"]) and d["zero"] == 3  # the ZeRO-3 flavour; nothing below stage 3
        shard = int(d.pop("shard"))
        d["shard_group"] = shard if d["zero"] >= 1 and shard < d["dp"] * d["cp"] else None
        rl = int(d.pop("recompute_layers"))
        d["recompute_num_layers"] = rl if rl > 0 and d["recompute"] == "full" else None
        return d

    @classmethod
    def from_dicts(cls, plans: list[dict]) -> PlanArrays:
        """Plans given as dicts of complete plan fields."""
        def col(name: str, dtype) -> np.ndarray:
            vals = [p[name] for p in plans]
            if name == "recompute":
                vals = [RECOMPUTE_CODES[str(getattr(v, "value", v))] for v in vals]
            return np.asarray(vals, dtype=dtype)

        return cls(tp=col("tp", np.int64), pp=col("pp", np.int64), cp=col("cp", np.int64), ep=col("ep", np.int64),
                   dp=col("dp", np.int64), vpp=col("vpp", np.int64), micro_batch=col("micro_batch", np.int64),
                   recompute=col("recompute", np.int64), zero=col("zero", np.int64),
                   sequence_parallel=col("sequence_parallel", bool), tp_overlap=col("tp_overlap", bool),
                   fsdp=np.asarray([p.get("fsdp", True) is not False for p in plans], dtype=bool),
                   recompute_layers=np.asarray([p.get("recompute_num_layers") or 0 for p in plans],
                                               dtype=np.int64),
                   etp=np.asarray([p.get("etp") or p["tp"] for p in plans], dtype=np.int64),
                   shard=np.asarray([p.get("shard_group") or p["dp"] * p["cp"] for p in plans], dtype=np.int64))
