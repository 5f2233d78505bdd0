"""Power limits: what running a GPU below (or above) its datasheet TDP does to its compute.

A spec may set ``hardware.tdp_w`` (torchtitan's H100 rows, for one, ran on parts capped at 500 W
instead of the SXM's 700 W).  Under a power limit the GPU lowers its SM clock until the board fits
it (dynamic voltage and frequency scaling).  The model:

- dynamic power of CMOS logic is a C V^2 f, and across the DVFS range the voltage follows the clock,
  so the power a kernel draws grows as f^``DVFS_POWER_EXPONENT``.  All of the board's power is
  treated as clock-dependent; the part that is not (HBM, leakage, links) would make a cap bite
  harder, so this is the mildest reading;
- a compute-bound kernel whose burst clock would draw D watts runs at the clock fraction
  min(1, (P / D)^(1/3)) under a limit of P watts;
- GEMMs: at the datasheet TDP P0 they run at the profile's measured ``sustained_fraction`` of the
  burst rate (:mod:`colossim.cost.defaults`), so D = P0 / sustained^3 and the fraction under P is
  min(1, sustained x (P / P0)^(1/3));
- FlashAttention kernels hold their clock at P0 (the long-run rows say so); taken at the edge,
  D = P0, so the same formula with sustained = 1 applies below P0 and nothing changes above it;
- memory-bound kernels and collectives keep their speed: HBM and the links run on their own clocks.

Only a default profile is rescaled (a measured profile already carries the limit it was run at).
"""

from __future__ import annotations

import dataclasses

from colossim.catalog import load_catalog
from colossim.catalog.schema import Accelerator
from colossim.cost.efficiency import CalibrationProfile, default_profile
from colossim.errors import ColossimError

#: Exponent of the clock in a kernel's power draw under DVFS.  Because: CMOS dynamic power is
#: a C V^2 f and DVFS lowers the voltage with the clock, so the power grows about as f^3.  An
#: assumption: near the minimum voltage the V-f curve flattens, power falls only as f, and a deep
#: cap costs more clock than this says.
DVFS_POWER_EXPONENT = 3.0


def power_clock_fraction(sustained_fraction: float, datasheet_tdp_w: float, power_limit_w: float) -> float:
    """Clock (throughput) fraction of the burst rate for a compute-bound kernel that runs at
    ``sustained_fraction`` of its burst rate at the datasheet TDP, under ``power_limit_w``."""
    if datasheet_tdp_w <= 0 or power_limit_w <= 0:
        raise ColossimError("power limit and TDP must be positive", field="tdp_w", value=power_limit_w)
    return min(1.0, sustained_fraction * (power_limit_w / datasheet_tdp_w) ** (1.0 / DVFS_POWER_EXPONENT))


def power_limited_profile(profile: CalibrationProfile, datasheet_tdp_w: float,
                          power_limit_w: float) -> CalibrationProfile:
    """``profile`` (measured at ``datasheet_tdp_w``) for the same chip run at ``power_limit_w``."""
    if power_limit_w == datasheet_tdp_w:
        return profile
    gemm = {}
    for prec, g in profile.gemm.items():
        s = g.sustained_fraction
        new = power_clock_fraction(s, datasheet_tdp_w, power_limit_w)
        gemm[prec] = dataclasses.replace(
            g, max_efficiency=g.max_efficiency / s * new, sustained_fraction=new,
            derivation=f"{g.derivation}; clock at a {power_limit_w:g} W limit: x {new / s:.3f}")
    att_scale = power_clock_fraction(1.0, datasheet_tdp_w, power_limit_w)
    att = profile.attention
    attention = dataclasses.replace(
        att, max_efficiency=att.max_efficiency * att_scale,
        derivation=f"{att.derivation}; clock at a {power_limit_w:g} W limit: x {att_scale:.3f}")
    note = f"power limit {power_limit_w:g} W instead of the datasheet {datasheet_tdp_w:g} W"
    return dataclasses.replace(profile, gemm=gemm, attention=attention, notes=(*profile.notes, note))


def profile_for_chip(chip: Accelerator) -> CalibrationProfile:
    """The default profile of ``chip``, rescaled when the spec set its ``tdp_w`` away from the
    catalog's (see the module docstring)."""
    prof = default_profile(chip.id)
    datasheet = load_catalog().accelerator(chip.id).tdp_w
    if chip.tdp_w is None or datasheet is None:
        return prof
    return power_limited_profile(prof, datasheet, chip.tdp_w)


__all__ = ["DVFS_POWER_EXPONENT", "power_clock_fraction", "power_limited_profile", "profile_for_chip"]
