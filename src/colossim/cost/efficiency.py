"""Calibration profiles: how close a chip gets to its datasheet peaks, by op shape and message size.

A :class:`CalibrationProfile` holds the parameters of the cost model (``compute.py``, ``comm.py``)
for one chip, each with the microbenchmark rows it was fitted from (``catalog/data/
microbenchmarks.csv``) or the named assumption it falls back to.  :func:`default_profile` builds it
from the published rows; ``colossim calibrate`` builds one from measurements on the GPU present with
the same fitting code (:mod:`colossim.cost.fit`); :func:`load_profile` / :func:`save_profile` read and
write it as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from colossim.errors import ColossimError
from colossim.outfiles import write_text_whole

#: Precision families with their own GEMM parameters (bf16 covers fp16: same tensor-core rate).
GEMM_PRECISIONS = ("bf16", "fp8", "fp4")
#: Fabric curves a profile carries (see comm.py for how each is used).
FABRICS = ("nvlink", "nvls", "nvl72", "scaleout")


@dataclass(frozen=True)
class GemmParams:
    """GEMM model for one precision (compute.py): time = launch + max(compute, memory) where
    compute = 2mnk / (peak * max_efficiency * shape utilisation * alignment)."""

    max_efficiency: float
    """Best achievable fraction of the dense peak for a large, well-shaped GEMM (MAMF / peak)."""
    launch_seconds: float
    """Fixed time per GEMM kernel (launch and its setup, once per kernel, however many tiles):
    dominates small GEMMs.  The fill and epilogue each tile pays is ``tile_overhead_k``."""
    misaligned_k_factor: float
    """Throughput factor when K is not a multiple of 16 bytes of elements (no TMA/vector loads)."""
    sm_count: int
    """Streaming multiprocessors (compute units): the width of one wave of output tiles."""
    derivation: str = ""
    rows: tuple[str, ...] = ()
    sustained_fraction: float = 1.0
    """Throughput under sustained, power-limited load / the burst benchmarks ``max_efficiency`` was
    fitted to (clocks drop when the GPU sits at its power limit for minutes, as in training).
    Already folded into ``max_efficiency``; kept here to show how much of it is clocks."""
    sustained_rows: tuple[str, ...] = ()
    """Rows the sustained fraction comes from (long runs at the chip's power limit)."""
    tile_overhead_k: float = 0.0
    """Fixed work of one output tile (of one split-K share) beyond its main loop, in K elements:
    filling the operand pipeline before the first multiply-accumulate and writing the finished
    accumulators out after the last, which a tile pays however short its K.  Fitted with
    ``launch_seconds`` to the shape rows; 0 in profiles written before it existed."""


@dataclass(frozen=True)
class AttentionParams:
    """FlashAttention efficiency: e = max_efficiency * s/(s + half_seq) * d/(d + half_head_dim), with
    s the keys each query attends (seq_kv, halved when causal) and d the head dim."""

    max_efficiency: float
    half_seq: float
    half_head_dim: float
    derivation: str = ""
    rows: tuple[str, ...] = ()
    flash3_relative: float | None = None
    """FlashAttention-3's throughput over this model's (FlashAttention-2) at the same shape, on the
    chips that run it (Hopper); None elsewhere: the kernel is not available there."""
    flash3_rows: tuple[str, ...] = ()
    """Rows ``flash3_relative`` comes from."""


@dataclass(frozen=True)
class BusCurve:
    """Achievable bus bandwidth of one fabric vs message size S (bytes per GPU):
    busbw(S) = link_fraction * link_bytes_per_s / (1 + (half_size_bytes / S) ** gamma); each
    collective also pays ``latency_seconds`` (per step or hop as comm.py says)."""

    link_fraction: float
    """Plateau bus bandwidth / one-direction link bandwidth (scale-up link, or per-GPU NIC)."""
    half_size_bytes: float
    gamma: float
    latency_seconds: float
    derivation: str = ""
    rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalibrationProfile:
    """Every efficiency parameter of the cost model for one chip, with its provenance."""

    chip: str
    source: str
    date: str
    gemm: dict[str, GemmParams]
    attention: AttentionParams
    memory_efficiency: float
    """Achieved / datasheet HBM bandwidth for streaming kernels (copy)."""
    collectives: dict[str, BusCurve]
    alltoall_fraction: float
    """All-to-all bus bandwidth / ring all-reduce bus bandwidth inside a scale-up domain."""
    p2p_fraction: float
    """One-way GPU-to-GPU copy bandwidth / one-direction scale-up link bandwidth."""
    memory_rows: tuple[str, ...] = ()
    device: str | None = None
    driver: str | None = None
    library: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def gemm_params(self, precision: str) -> GemmParams:
        """GEMM parameters for ``precision`` (fp16 -> bf16; missing fp4 -> fp8 -> bf16)."""
        p = "bf16" if precision in ("bf16", "fp16") else precision
        for cand in (p, "fp8", "bf16"):
            if cand in self.gemm and (cand == p or p in ("fp4", "fp8")):
                return self.gemm[cand]
        raise ColossimError(f"precision '{precision}' has no GEMM parameters in profile {self.chip}",
                            field="precision", value=precision, allowed=list(self.gemm))

    def curve(self, fabric: str) -> BusCurve:
        """The bus-bandwidth curve of ``fabric``."""
        if fabric not in self.collectives:
            raise ColossimError(f"fabric '{fabric}' is not in profile {self.chip}", field="fabric",
                                value=fabric, allowed=list(self.collectives))
        return self.collectives[fabric]


def profile_to_dict(profile: CalibrationProfile) -> dict:
    """A JSON-ready dict (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(profile)))


def profile_from_dict(d: dict) -> CalibrationProfile:
    """Inverse of :func:`profile_to_dict`; raises :class:`ColossimError` naming a bad field."""
    try:
        gemm = {k: GemmParams(**{**v, "rows": tuple(v.get("rows", ())),
                                 "sustained_rows": tuple(v.get("sustained_rows", ()))})
                for k, v in d["gemm"].items()}
        att = d["attention"]
        attention = AttentionParams(**{**att, "rows": tuple(att.get("rows", ())),
                                       "flash3_rows": tuple(att.get("flash3_rows", ()))})
        colls = {k: BusCurve(**{**v, "rows": tuple(v.get("rows", ()))})
                 for k, v in d["collectives"].items()}
        rest = {k: v for k, v in d.items() if k not in ("gemm", "attention", "collectives")}
        rest["memory_rows"] = tuple(rest.get("memory_rows", ()))
        rest["notes"] = tuple(rest.get("notes", ()))
        prof = CalibrationProfile(gemm=gemm, attention=attention, collectives=colls, **rest)
    except KeyError as e:
        raise ColossimError(f"profile is missing field {e}", field=str(e)) from None
    except TypeError as e:
        raise ColossimError(f"profile has a bad field: {e}", field="profile") from None
    for name, val in (("memory_efficiency", prof.memory_efficiency),
                      ("alltoall_fraction", prof.alltoall_fraction)):
        if not 0 < val <= 1.5:
            raise ColossimError(f"profile field '{name}' = {val} is outside (0, 1.5]", field=name,
                                value=val)
    return prof


def save_profile(profile: CalibrationProfile, path: str | Path, field_name: str = "out") -> None:
    """Write ``profile`` as JSON (with its metadata and row provenance), whole or not at all; a path
    that cannot be written is one line naming it and ``field_name`` (the option that gave it)."""
    write_text_whole(path, json.dumps(profile_to_dict(profile), indent=2) + "\n", field_name)


def load_profile(path: str | Path) -> CalibrationProfile:
    """Read a profile written by :func:`save_profile` or ``colossim calibrate``."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ColossimError(f"profile file '{p}' not found", field="profile", value=str(p)) from None
    except json.JSONDecodeError as e:
        raise ColossimError(f"profile file '{p}' is not JSON: {e.msg} at line {e.lineno}",
                            field="profile", value=str(p)) from None
    return profile_from_dict(d)


@lru_cache(maxsize=64)
def default_profile(chip: str) -> CalibrationProfile:
    """The profile built from the published microbenchmarks for catalog chip ``chip``: from its own
    rows where they exist, else from the closest architecture (see
    :data:`colossim.cost.defaults.FALLBACK`)."""
    from colossim.cost.defaults import build_default_profile

    return build_default_profile(chip)
