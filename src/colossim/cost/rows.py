"""Published microbenchmarks (``catalog/data/microbenchmarks.csv``) parsed into typed samples.

The CSV keeps the publisher's wording for sizes ("M=N=K=1024", "16 MiB (16777216 B)",
"seq 2k, hdim 128, 16k tokens/batch"); this module turns each row into one sample the fitting code
understands (:mod:`colossim.cost.fit`), keeping the row id so every fitted number is traceable.

``HELD_OUT`` names the rows the default profiles are NOT built from: they validate the model
(tests and ``benchmarks/cost_accuracy.py`` report the error on them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from colossim.catalog.loader import data_path, load_models
from colossim.cost.compute import ATTENTION_BACKWARD_FLOPS_RATIO
from colossim.units import GIB

MIB = 2**20


class MicrobenchmarkRow(BaseModel):
    """One published measurement, as in the CSV."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    category: str
    hardware: str
    system: str | None = None
    scope: str
    operation: str
    size: str | None = None
    dtype: str | None = None
    metric: str
    value: float
    software: str | None = None
    source: str
    notes: str | None = None


@dataclass(frozen=True)
class GemmSample:
    """A measured GEMM: shape, precision family (bf16 / fp8 / fp4) and achieved FLOP/s."""

    row: str
    chip: str
    m: int
    n: int
    k: int
    precision: str
    flops_per_s: float
    is_mamf: bool = False


@dataclass(frozen=True)
class AttentionSample:
    """A measured FlashAttention fwd+bwd run (FLOPs counted the flash-attn way, see compute.py)."""

    row: str
    chip: str
    seq: int
    head_dim: int
    causal: bool
    flops_per_s: float
    restated: float = 1.0
    """Factor applied to the row's own FLOP/s to count its FLOPs the flash-attn way (1 unless the
    row counts another way; see :data:`MFU_ATTENTION_PASSES`)."""


@dataclass(frozen=True)
class MemorySample:
    """Achieved HBM bandwidth of a streaming kernel (copy)."""

    row: str
    chip: str
    bytes_per_s: float


@dataclass(frozen=True)
class CollectiveSample:
    """A measured collective: op, GPUs, message bytes (nccl-tests size), algorithm family and the
    reported bus bandwidth (or latency when ``latency_s`` is set)."""

    row: str
    chip: str
    op: str  # all_reduce | all_gather | reduce_scatter | all_to_all
    gpus: int
    message_bytes: float
    algo: str  # default | ring | nvls | nvlstree
    busbw_bytes_per_s: float | None = None
    latency_s: float | None = None
    system: str | None = None


#: Because: the NVIDIA slide rows say "large (not stated)"; nccl-tests sweeps end at 8-16 GiB, where
#: every measured curve in the file is within 3 % of its plateau.
LARGE_MESSAGE_BYTES = 8 * GIB

#: Rows kept out of the default profiles, used only for validation.
HELD_OUT: frozenset[str] = frozenset({
    # GEMM
    # (not held out: the napkin-math 8192^3 rows, short bursts in the fit; the held rows that set
    # sustained-clock fractions are SUSTAINED_ONLY below -- see cost.defaults.SUSTAINED_GEMM_ROWS)
    "gemm-a100-azure-fp16-mnk8192",
    "gemm-h100-xla-bf16-4096x4096x4096", "gemm-h100-xla-bf16-256x2048x4096",
    "gemm-h100-azure-fp8-mnk8192", "gemm-h100-azure-fp8-m802816-n192-k768",
    "gemm-h800-deepgemm-fp8-m128", "gemm-h200-azure-fp8-mnk16384", "gemm-gb200-azure-fp8-skinny",
    # attention
    "attn-a100-fa2-fwdbwd-causal-hd128-2k", "attn-h100-fa2-fwdbwd-causal-hd128-2k",
    "attn-a100-azure-fa2-hd64-8k", "attn-h100-azure-fa2-hd128-8k", "attn-h200-azure-fa2-hd128-8k",
    # memory
    "mem-a100-napkin-copy", "mem-h100-napkin-copy",
    # collectives (1 KB: latency-bound, its system's latency is not in the file; half-rail: its
    # 4-NICs-per-8-GPUs network is not a catalog system)
    "coll-h100-8g-allreduce-azure-1024", "coll-a100-40gb-24g-allreduce-halfrail",
    "coll-h100-8g-allreduce-azure-134217728", "coll-a100-8g-allreduce-128mib",
    "coll-h200-8g-allreduce-128mib", "coll-h200-8g-allreduce-1mib",
    # MI300X: 2 of 8 GPUs on a full mesh use one Infinity Fabric link (not a switch): not modelled
    "coll-mi300x-2g-allreduce-4g", "coll-h200-8g-allgather-16g",
    "coll-h100-32g-allreduce-nvidia", "coll-a100-32g-allreduce-nvidia",
    "coll-h100-1024g-allreduce-nvlstree-1gib", "coll-h100-8192g-allreduce-nvlstree-128mib",
    "coll-h100-16g-allreduce-a3mega-1gib", "coll-b200-32g-allreduce-1gib",
    "coll-gb200-144g-allreduce-16g", "coll-gb200-72g-allreduce-512m",
    "coll-h100-32g-alltoall-nvidia", "coll-h200-32g-allreduce-ring-p5en",
})

#: GEMM rows timed only after a hold at the power limit: they set their chip's sustained-clock
#: fraction (``cost.defaults.SUSTAINED_GEMM_ROWS``) and stay out of the burst GEMM fit, whose
#: anchor is the best-shape burst rate the fraction is taken of.
SUSTAINED_ONLY: frozenset[str] = frozenset({"gemm-h100-colossim-held-bf16-8192",
                                            "gemm-h100-colossim-held-fp8-8192",
                                            "gemm-h100-colossim-held-fp8-16384",
                                            "gemm-h100-azure-fp8-mnk16384",
                                            "gemm-gb200-azure-fp8-mnk16384",
                                            "gemm-a100-azure-fp16-mnk16384"})

#: Attention rows of a kernel generation other than the one each architecture's model describes:
#: neither fitted nor held-out checks (``benchmarks/cost_accuracy.py`` lists them apart).  The model
#: is one FlashAttention generation per architecture: FlashAttention-2 on Ampere and Hopper (the
#: kernel benchmarks of the H100 / A100 rows), FlashAttention-4 on Blackwell.
OTHER_KERNEL: frozenset[str] = frozenset({
    # FlashAttention-2 on Blackwell runs its Ampere code path (the row's own note: "FA2 is not
    # Blackwell-optimized"); training stacks on Blackwell run FlashAttention-4 / cuDNN kernels, so
    # the Blackwell model comes from the FA4 in-step row (attn-b200-fa4-instep-llama8b-8k).
    "attn-gb200-azure-fa2-hd128-8k",
    # FlashAttention-3 on Hopper, measured inside a training step: 1.6x the FA2 model.  Not in the
    # FA2 fit; it sets the Hopper profiles' FlashAttention-3 factor (attention_kernel 'flash3',
    # cost.defaults._with_flash3).
    "attn-h200-fa3-instep-llama8b-8k",
})

_NUM = r"(\d+(?:\.\d+)?)"


@lru_cache(maxsize=1)
def load_rows() -> tuple[MicrobenchmarkRow, ...]:
    """Every row of the packaged ``microbenchmarks.csv`` (file:line:field errors on bad rows)."""
    return tuple(load_models(data_path("microbenchmarks.csv"), MicrobenchmarkRow))


def _precision_family(dtype: str | None) -> str:
    d = (dtype or "").lower()
    if d.startswith("fp8"):
        return "fp8"
    if d.startswith("fp4"):
        return "fp4"
    return "bf16"  # bf16 / fp16 / "fp16/bf16": same tensor-core rate on every chip here


def parse_gemm_shape(size: str) -> tuple[int, int, int, int] | None:
    """(batch, m, n, k) from the CSV's size wording, or None when the row gives no shape."""
    s = size.replace(" ", "")
    if m := re.match(r"M=N=K=(\d+)", s):
        v = int(m.group(1))
        return 1, v, v, v
    if m := re.match(r"M=(\d+)N=(\d+)K=(\d+)", s):
        return 1, int(m.group(1)), int(m.group(2)), int(m.group(3))
    if m := re.match(r"(\d+)x(\d+)x(\d+)\(MxNxK\)", s):
        return 1, int(m.group(1)), int(m.group(2)), int(m.group(3))
    if m := re.match(r"(\d+)x(\d+)x(\d+)x(\d+)$", s):
        # torch.bmm rows: b x M x K x N (see the row's operation text)
        return int(m.group(1)), int(m.group(2)), int(m.group(4)), int(m.group(3))
    return None


def _seq_tokens(text: str) -> int:
    v = text.lower()
    return int(float(v[:-1]) * 1024) if v.endswith("k") else int(v)


def parse_message_bytes(size: str) -> float:
    """Message bytes from the CSV's size wording ("16 MiB (16777216 B)", "512 MB (-b 512M ...)")."""
    if m := re.search(r"\((\d+) B\)", size):
        return float(m.group(1))
    if m := re.match(r"(\d+) B$", size.strip()):
        return float(m.group(1))
    if m := re.search(_NUM + r"\s*(KiB|KB|MiB|MB|GiB|GB|K|M|G)\b", size):
        unit = {"K": 2**10, "M": MIB, "G": GIB}[m.group(2)[0]]
        return float(m.group(1)) * unit  # Because: nccl-tests' -b/-e suffixes are binary
    return LARGE_MESSAGE_BYTES


def _op(operation: str) -> str:
    o = operation.lower().replace("-", "_")
    for name in ("all_reduce", "allreduce"):
        if name in o:
            return "all_reduce"
    if "all_gather" in o or "allgather" in o:
        return "all_gather"
    if "reduce_scatter" in o or "reducescatter" in o:
        return "reduce_scatter"
    return "all_to_all"


def _algo(operation: str, row_id: str) -> str:
    o = (operation + " " + row_id).lower()
    if "nvlstree" in o:
        return "nvlstree"
    if "ring" in o or "no sharp" in o or "nvls_enable=0" in o:
        return "ring"
    if "nvls" in o or "sharp" in o:
        return "nvls"
    return "default"


def gemm_samples() -> list[GemmSample]:
    """Every GEMM row with a shape, as a sample."""
    out = []
    for r in load_rows():
        if r.category != "gemm" or r.metric != "tflops":
            continue
        if "swiglu" in r.id:
            continue  # an H100 variant other than SXM: used only for the misalignment ratio
        shape = parse_gemm_shape(r.size or "")
        if shape is None:
            continue
        _, m, n, k = shape
        out.append(GemmSample(r.id, r.hardware, m, n, k, _precision_family(r.dtype), r.value * 1e12,
                              is_mamf="mamf" in r.id))
    return out


#: Attention FLOPs of forward + backward that an MFU-style count credits, in forward passes: the
#: backward counted as twice the forward, as for a GEMM (6N-style accounting; per token and layer
#: 6 h s for causal attention).  Because: the in-step rows come from a table whose MFU convention
#: "counts causal attention FLOPs" as 6 L h s per token (stas00/ml-engineering, the table the
#: rows and STAS25-* training rows cite), while the flash-attn benchmarks, and the cost model,
#: count the backward as 2.5 forwards (``compute.ATTENTION_BACKWARD_FLOPS_RATIO``): the same
#: seconds read as 3.5 / 3 more FLOP/s the flash-attn way.
MFU_ATTENTION_PASSES = 3.0


def attention_samples() -> list[AttentionSample]:
    """FlashAttention fwd+bwd rows: the FlashAttention-2 kernel benchmarks and the in-step rows
    (FlashAttention-3/4 kernels' fwd+bwd throughput measured inside a training step).  Forward-only
    rows are left out.  In-step rows are restated in the flash-attn FLOP count (their table counts
    the MFU way, :data:`MFU_ATTENTION_PASSES`), so every sample's FLOP/s times the model's seconds
    gives the model's FLOPs."""
    out = []
    for r in load_rows():
        if r.category != "attention" or not ("fa2" in r.id or "instep" in r.id):
            continue
        size = (r.size or "").lower()
        seq = re.search(r"seq (\d+k?)", size)
        hd = re.search(r"hdim (\d+)", size)
        if not (seq and hd):
            continue
        text = f"{r.id} {r.operation}".lower()
        causal = "non-causal" not in text and "noncausal" not in text and "causal" in text
        to_flash_attn_count = ((1.0 + ATTENTION_BACKWARD_FLOPS_RATIO) / MFU_ATTENTION_PASSES
                               if "instep" in r.id else 1.0)
        out.append(AttentionSample(r.id, r.hardware, _seq_tokens(seq.group(1)), int(hd.group(1)),
                                   causal, r.value * 1e12 * to_flash_attn_count,
                                   to_flash_attn_count))
    return out


def memory_samples() -> list[MemorySample]:
    """HBM copy rows (BabelStream / torch copy_)."""
    return [MemorySample(r.id, r.hardware, r.value * 1e9) for r in load_rows()
            if r.category == "memory" and "copy" in r.id]


def collective_samples() -> list[CollectiveSample]:
    """nccl-tests style collective rows (bus bandwidth or latency); DeepEP rows are not nccl-tests
    busbw and are left out."""
    out = []
    for r in load_rows():
        if r.category != "collective" or "deepep" in r.id:
            continue
        gpus = int(re.match(r"(\d+)", r.scope).group(1))
        size = r.size or ""
        nbytes = LARGE_MESSAGE_BYTES if "not stated" in size else parse_message_bytes(size)
        common = dict(row=r.id, chip=r.hardware, op=_op(r.operation), gpus=gpus, message_bytes=nbytes,
                      algo=_algo(r.operation, r.id), system=r.system)
        if r.metric == "busbw_gb_per_s":
            out.append(CollectiveSample(**common, busbw_bytes_per_s=r.value * 1e9))
        elif r.metric == "latency_us":
            out.append(CollectiveSample(**common, latency_s=r.value * 1e-6))
    return out


def p2p_fraction_rows() -> list[MicrobenchmarkRow]:
    """Unidirectional GPU-to-GPU copy rows (achieved one-way NVLink bandwidth)."""
    return [r for r in load_rows() if r.category == "p2p" and r.id.endswith("-uni")]
