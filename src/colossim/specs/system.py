"""The system a job runs on: the accelerator, how many, and the network around them.

``resolve_hardware`` reads the spec's ``hardware`` mapping:

- ``{gpu: h100-sxm, count: N}`` -- the chip from the catalog.  Node and network come from the
  first catalog system built from that chip (``h100-sxm`` -> ``hgx-h100``, ``gb200`` ->
  ``gb200-nvl72``).  A chip with no catalog system gets ``gpus_per_node = min(8, domain)``
  (``domain`` = the chip's scale-up domain size, 8 when unknown: the HGX-style baseboard),
  ``scaleup_domain_size = domain`` and the chip's own scale-out bandwidth.
- ``{system: gb200-nvl72, count: N}`` -- a catalog system (id, alias or name, in any case and
  spacing: "DGX H100", "GB200 NVL72").  ``count`` is always the number of GPUs (accelerators), never
  nodes or racks.  A system's id given as ``gpu`` (and no chip's) reads the same, and a chip's given
  as ``system`` (and no system's) reads as ``gpu``.

Overrides (any of them, either form): ``gpus_per_node``, ``scaleup_domain_size``,
``scaleup_gbit_per_s`` (per GPU, one direction), ``scaleout_gbit_per_s`` (per GPU), ``hbm_gib``
(the datasheet's "GB", which are binary; ``hbm_gb`` is read as the same figure), ``hbm_tb_per_s``,
``tdp_w``, ``node_power_kw``.  The team's reference hardware table names three
of them differently, and those names are accepted too: ``scaleup_link_gbps_per_gpu``,
``scaleout_gbps_per_gpu`` (gigabits per second, the same units) and ``hbm_tbps`` (TB/s).  Unknown
keys raise :class:`SpecError`.

A chip with no scale-out bandwidth in the catalog (a TPU pod slice, say) still runs a job that
fits in one scale-up domain (``count`` <= the domain size): nothing leaves the domain, so the rate
is never read.  Beyond one domain the spec must give ``scaleout_gbit_per_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from colossim import units
from colossim.catalog import Accelerator, System, load_catalog
from colossim.errors import SpecError, UnknownNameError
from colossim.specs._validation import SpecInt, validate_model

#: GPUs on one baseboard when the catalog has no system for a chip.
#: Because: HGX/OAM baseboards (NVIDIA HGX, AMD MI300X platform, Gaudi) carry 8 accelerators.
DEFAULT_GPUS_PER_NODE = 8


@dataclass(frozen=True)
class SystemSpec:
    """``count`` accelerators; bandwidths are per GPU in bytes/s, one direction; power in watts."""

    accelerator: Accelerator
    count: int
    gpus_per_node: int
    scaleup_domain_size: int
    scaleup_bytes_per_s_per_gpu: float
    scaleout_bytes_per_s_per_gpu: float
    node_power_w: float
    system_id: str | None = None

    @property
    def nodes(self) -> float:
        return self.count / self.gpus_per_node

    @property
    def hbm_bytes(self) -> float:
        return self.accelerator.hbm_bytes or 0.0


class HardwareInput(BaseModel):
    """The ``hardware`` mapping of a spec, as written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: str | None = Field(None, description="catalog chip id, e.g. h100-sxm")
    system: str | None = Field(None, description="catalog system id, e.g. gb200-nvl72")
    count: SpecInt = Field(ge=1, description="number of GPUs (accelerators), never nodes")
    gpus_per_node: SpecInt | None = Field(None, ge=1)
    scaleup_domain_size: SpecInt | None = Field(None, ge=1)
    scaleup_gbit_per_s: float | None = Field(
        None, gt=0, description="per GPU, one direction",
        validation_alias=AliasChoices("scaleup_gbit_per_s", "scaleup_link_gbps_per_gpu"))
    scaleout_gbit_per_s: float | None = Field(
        None, ge=0, description="per GPU, one direction",
        validation_alias=AliasChoices("scaleout_gbit_per_s", "scaleout_gbps_per_gpu"))
    hbm_gib: float | None = Field(None, gt=0, description="the datasheet's GB, which are GiB",
                                 validation_alias=AliasChoices("hbm_gib", "hbm_gb"))
    hbm_tb_per_s: float | None = Field(None, gt=0,
                                       validation_alias=AliasChoices("hbm_tb_per_s", "hbm_tbps"))
    tdp_w: float | None = Field(None, gt=0)
    node_power_kw: float | None = Field(None, gt=0)


def _need(value: float | None, what: str, chip: str, key: str) -> float:
    if value is None:
        raise SpecError(f"chip '{chip}' has no {what} in the catalog: give hardware.{key}",
                        field=f"hardware.{key}", value=None)
    return value


def resolve_hardware(d: Mapping[str, Any] | SystemSpec) -> SystemSpec:
    """A :class:`SystemSpec` from the spec's ``hardware`` mapping (see the module docstring)."""
    if isinstance(d, SystemSpec):
        return d
    hw = validate_model(HardwareInput, d, "hardware")
    cat = load_catalog()
    if (hw.gpu is None) == (hw.system is None):
        raise SpecError("hardware needs exactly one of 'gpu' (a chip id) or 'system' (a system id)",
                        field="hardware", value=dict(d), allowed=["gpu", "system"])
    # a system written as the chip ({gpu: gb200-nvl72}) or a chip as the system ({system: h100-sxm}):
    # the name is read as the other kind when it is not one of its own
    first, then = (cat.system, cat.accelerator) if hw.system is not None else (cat.accelerator, cat.system)
    try:
        found = first(hw.system or hw.gpu)
    except UnknownNameError as unknown:
        try:
            found = then(hw.system or hw.gpu)
        except UnknownNameError:
            raise unknown from None
    if isinstance(found, System):
        system, acc = found, cat.accelerator(found.accelerator)
    else:
        acc, system = found, next((s for s in cat.systems.values() if s.accelerator == found.id), None)

    acc_over = {k: v for k, v in (("hbm_gib", hw.hbm_gib), ("hbm_tb_per_s", hw.hbm_tb_per_s),
                                  ("tdp_w", hw.tdp_w)) if v is not None}
    if acc_over:
        acc = acc.model_copy(update=acc_over)

    if system is not None:
        gpn, domain = system.gpus_per_node, system.scaleup_domain_size
        scaleout = system.scaleout_bytes_per_s_per_gpu
        node_kw = system.node_power_kw
    else:
        domain = acc.scaleup_domain_size or DEFAULT_GPUS_PER_NODE
        gpn = min(DEFAULT_GPUS_PER_NODE, domain)
        scaleout = acc.scaleout_bytes_per_s
        node_kw = None
    gpn = hw.gpus_per_node or gpn
    domain = hw.scaleup_domain_size or max(domain, 1)
    if hw.scaleout_gbit_per_s == 0 and hw.count > domain:  # 0 says "no scale-out network": one domain only
        raise SpecError(f"hardware.scaleout_gbit_per_s = 0 but the {hw.count:,} GPUs span "
                        f"{-(-hw.count // domain):,} scale-up domains of {domain}: allowed: a rate above 0",
                        field="hardware.scaleout_gbit_per_s", value=0)
    if hw.scaleout_gbit_per_s is not None:
        scaleout = units.gbit_per_s_to_bytes_per_s(hw.scaleout_gbit_per_s)
    scaleup = (units.gbit_per_s_to_bytes_per_s(hw.scaleup_gbit_per_s)
               if hw.scaleup_gbit_per_s is not None else acc.scaleup_bytes_per_s)
    scaleup = _need(scaleup, "scale-up bandwidth", acc.id, "scaleup_gbit_per_s")
    if scaleout is None and hw.count <= domain:
        # one scale-up domain holds the whole job: no collective or send ever leaves it, so the
        # scale-out rate is never read; the scale-up rate stands in to keep the network valid
        scaleout = scaleup
    scaleout = _need(scaleout, "scale-out bandwidth", acc.id, "scaleout_gbit_per_s")
    if hw.node_power_kw is not None:
        node_w = hw.node_power_kw * units.KILO
    elif node_kw is not None and "tdp_w" not in acc_over:
        node_w = node_kw * units.KILO
    else:
        tdp = _need(acc.tdp_w, "TDP", acc.id, "tdp_w")
        node_w = tdp * gpn * cat.parameter("system_overhead")
    return SystemSpec(accelerator=acc, count=hw.count, gpus_per_node=gpn, scaleup_domain_size=domain,
                      scaleup_bytes_per_s_per_gpu=scaleup, scaleout_bytes_per_s_per_gpu=scaleout,
                      node_power_w=node_w, system_id=system.id if system is not None else None)


__all__ = ["DEFAULT_GPUS_PER_NODE", "HardwareInput", "SystemSpec", "resolve_hardware"]
