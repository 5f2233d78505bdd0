"""Power limits: what running a GPU below (or above) its datasheet TDP does to its compute.

A spec may set ``hardware.tdp_w`` (torchtitan's H100 rows, for one, ran on parts capped at 500 W
instead of the SXM's 700 W).  Under a power limit the GPU lowers its SM clock until the board fits
it (dynamic voltage and frequency scaling).  The model:

- dynamic power of CMOS logic is a C V^2 f.  How it follows the clock depends on where on the
  voltage-frequency curve the kernel runs.  At its datasheet TDP a datacenter GPU already runs
  dense GEMMs well below its top clock: the lent H100 held twelve bf16 GEMM shapes at
  1,320-1,590 MHz of its 1,980 MHz at 700 W (``benchmarks/results/h100-2026-11-24/
  held_kernels.json``), low in the DVFS range, where the voltage has little left to fall.  Below
  the TDP the power then falls about in proportion to the clock (``DVFS_EXPONENT_BELOW_TDP`` = 1):
  a cap P < P0 leaves a compute-bound kernel the clock fraction s x P / P0 of what it had at P0.
  Above the TDP the clock climbs the steep part of the curve, the voltage rising with it, and the
  power grows as f^3 (``DVFS_EXPONENT_ABOVE_TDP``): a higher limit buys the fraction
  min(1, s x (P / P0)^(1/3)).  Both are modelling assumptions.  Below the TDP, power that does not
  follow the clock (leakage, HBM, links) would make a cap bite harder, and a voltage still above
  its floor would make it bite less; above the TDP the cube is the dearest a higher clock can be;
- GEMMs: at the datasheet TDP P0 they run at the profile's measured ``sustained_fraction`` s of
  the burst rate (:mod:`colossim.cost.defaults`), and the law above moves s;
- FlashAttention kernels hold their clock at P0 (the long-run rows say so): taken at the edge
  (s = 1), a limit below P0 slows them by P / P0 and one above it changes nothing;
- memory-bound kernels and collectives keep their speed: HBM and the links run on their own clocks.

Only a default profile is rescaled (a measured profile already carries the limit it was run at).
"""

from __future__ import annotations

import dataclasses

from colossim.catalog import load_catalog
from colossim.catalog.schema import Accelerator
from colossim.cost.efficiency import CalibrationProfile, default_profile
from colossim.errors import ColossimError

#: Exponent of the clock in a compute-bound kernel's board power below the datasheet TDP.  Because:
#: at its TDP the GPU already runs dense GEMMs low in its DVFS range (the H100 at 1,320-1,590 of
#: 1,980 MHz at 700 W, twelve bf16 GEMM shapes measured on the lent H100:
#: benchmarks/results/h100-2026-11-24/held_kernels.json), where the voltage sits near its floor
#: and a C V^2 f falls about as f.  An assumption: power that does not follow the clock
#: (leakage, HBM, links) would make a cap bite harder, a voltage still above its floor softer.
DVFS_EXPONENT_BELOW_TDP = 1.0
#: Exponent of the clock in a compute-bound kernel's board power above the datasheet TDP.  Because:
#: toward its burst clock the GPU climbs the steep part of its voltage-frequency curve, the voltage
#: rising with the clock, so a C V^2 f grows about as f^3.  An assumption.
DVFS_EXPONENT_ABOVE_TDP = 3.0


def power_clock_fraction(sustained_fraction: float, datasheet_tdp_w: float, power_limit_w: float) -> float:
    """Clock (throughput) fraction of the burst rate for a compute-bound kernel that runs at
    ``sustained_fraction`` of its burst rate at the datasheet TDP, under ``power_limit_w``: the
    power follows the clock as f^``DVFS_EXPONENT_BELOW_TDP`` below the TDP and as
    f^``DVFS_EXPONENT_ABOVE_TDP`` above it, and no limit lifts a kernel past its burst rate."""
    if datasheet_tdp_w <= 0 or power_limit_w <= 0:
        raise ColossimError("power limit and TDP must be positive", field="tdp_w", value=power_limit_w)
    ratio = power_limit_w / datasheet_tdp_w
    exponent = DVFS_EXPONENT_BELOW_TDP if ratio <= 1.0 else DVFS_EXPONENT_ABOVE_TDP
    return min(1.0, sustained_fraction * ratio ** (1.0 / exponent))


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


__all__ = ["DVFS_EXPONENT_ABOVE_TDP", "DVFS_EXPONENT_BELOW_TDP", "power_clock_fraction",
           "power_limited_profile", "profile_for_chip"]
