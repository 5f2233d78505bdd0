"""Typed rows of the catalog.  Columns keep the datasheet's unit in their name; the properties
convert to SI once (flops_per_s, bytes, bytes_per_s, watts, usd)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from colossim import units
from colossim.catalog.loader import split_aliases

Precision = Literal["fp64", "tf32", "bf16", "fp16", "fp8", "fp4", "int8"]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Accelerator(_Row):
    """One accelerator (GPU, TPU, ...) with dense peak figures (no 2:4 sparsity)."""

    id: str
    name: str
    aliases: str | None = None
    vendor: str
    release_year: int = Field(ge=2000, le=2100)
    architecture: str | None = None
    """The vendor's name for the chip's architecture (generation), lower-case: chips that share it
    run the same kernels (e.g. FlashAttention-3 needs ``hopper``)."""
    dense_tflops_fp64: float | None = Field(default=None, gt=0)
    dense_tflops_tf32: float | None = Field(default=None, gt=0)
    dense_tflops_bf16: float | None = Field(default=None, gt=0)
    dense_tflops_fp8: float | None = Field(default=None, gt=0)
    dense_tflops_fp4: float | None = Field(default=None, gt=0)
    dense_tflops_16bit: float | None = Field(default=None, gt=0)
    dense_tops_int8: float | None = Field(default=None, gt=0)
    #: Memory capacity as the datasheet quotes it ("80GB").  Memory capacities are binary: JEDEC's
    #: prefixes for semiconductor storage (JESD100B.01) take G as 2^30, and an HBM stack is a power of
    #: two (an 8-high stack of 16 Gbit dies holds 16 GiB; five make the A100 / H100's "80GB"), so
    #: the figure is GiB.  Read as 1e9 bytes it would hide 7 % of every chip.
    hbm_gib: float | None = Field(default=None, gt=0)
    hbm_tb_per_s: float | None = Field(default=None, gt=0)
    scaleup_link_gbit_per_s: float | None = Field(default=None, gt=0)
    scaleup_domain_size: int | None = Field(default=None, ge=1)
    scaleout_gbit_per_s: float | None = Field(default=None, gt=0)
    tdp_w: float | None = Field(default=None, gt=0)
    price_usd_low: float | None = Field(default=None, gt=0)
    price_usd_high: float | None = Field(default=None, gt=0)
    h100e_epoch_clusters: float | None = Field(default=None, gt=0)
    h100e_epoch_chip_sales: float | None = Field(default=None, gt=0)
    source: str
    price_source: str | None = None
    sparsity_note: str | None = None
    scaleup_link_quote: str | None = None
    notes: str | None = None

    @property
    def alias_list(self) -> list[str]:
        return split_aliases(self.aliases)

    @field_validator("id")
    @classmethod
    def _lower_id(cls, v: str) -> str:
        if v != v.lower() or " " in v:
            raise ValueError("ids are lower-case with no spaces")
        return v

    # --- SI views -------------------------------------------------------------------------
    def tflops(self, precision: str) -> float | None:
        """Dense peak in TFLOPS for ``precision``; bf16 falls back to the 16-bit tensor rate (fp16
        on chips without bf16, e.g. V100)."""
        if precision in ("bf16", "fp16"):
            return self.dense_tflops_bf16 or self.dense_tflops_16bit
        if precision == "int8":
            return self.dense_tops_int8
        return getattr(self, f"dense_tflops_{precision}", None)

    def peak_flops_per_s(self, precision: str) -> float | None:
        t = self.tflops(precision)
        return None if t is None else units.tflops_to_flops_per_s(t)

    @property
    def hbm_bytes(self) -> float | None:
        return None if self.hbm_gib is None else units.gib_to_bytes(self.hbm_gib)

    @property
    def hbm_bytes_per_s(self) -> float | None:
        return None if self.hbm_tb_per_s is None else units.tb_per_s_to_bytes_per_s(self.hbm_tb_per_s)

    @property
    def scaleup_bytes_per_s(self) -> float | None:
        """Scale-up (NVLink-class) bandwidth per GPU, one direction."""
        g = self.scaleup_link_gbit_per_s
        return None if g is None else units.gbit_per_s_to_bytes_per_s(g)

    @property
    def scaleout_bytes_per_s(self) -> float | None:
        """Scale-out (InfiniBand/Ethernet) bandwidth per GPU, one direction."""
        g = self.scaleout_gbit_per_s
        return None if g is None else units.gbit_per_s_to_bytes_per_s(g)

    def price_usd(self, point: str = "mid") -> float | None:
        """Price of one chip at ``point`` (low / mid / high) of the catalog's range."""
        lo, hi = self.price_usd_low, self.price_usd_high
        if lo is None and hi is None:
            return None
        lo = lo if lo is not None else hi
        hi = hi if hi is not None else lo
        return {"low": lo, "high": hi, "mid": (lo + hi) / 2}[point]


class System(_Row):
    """A system built from accelerators: an 8-GPU HGX node, an NVL72 rack, a TPU slice..."""

    id: str
    name: str
    accelerator: str
    gpus_per_node: int = Field(ge=1)
    scaleup_domain_size: int = Field(ge=1)
    nics_per_gpu: float = Field(ge=0)
    nic_gbit_per_s: float = Field(ge=0)
    node_power_kw: float | None = Field(default=None, gt=0)
    aliases: str | None = None
    source: str
    notes: str | None = None

    @property
    def alias_list(self) -> list[str]:
        return split_aliases(self.aliases)

    @property
    def scaleout_bytes_per_s_per_gpu(self) -> float:
        return units.gbit_per_s_to_bytes_per_s(self.nic_gbit_per_s * self.nics_per_gpu)


class Parameter(_Row):
    """A named modelling assumption with its reason."""

    id: str
    value: str
    unit: str
    meaning: str
    source: str

    @property
    def number(self) -> float:
        return float(self.value)


class Alternative(_Row):
    """A value from another source that disagrees with the one the engine uses."""

    chip: str
    field: str
    value: float
    source: str
    used_by_engine: bool
    notes: str | None = None
