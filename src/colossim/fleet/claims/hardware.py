"""Evaluators of the claims about accelerators themselves (catalog only)."""

from __future__ import annotations

from colossim.catalog import load_catalog
from colossim.fleet.claims.registry import Claim, ClaimCheck, check, evaluator, tolerance, verdict, within
from colossim.fleet.h100e import h100e, metric_value

COUNT = "claim_tolerance_count"
A100 = "a100-80gb-sxm"
H100 = "h100-sxm"
#: catalog entries that are not one chip, left out of per-chip rankings
NOT_ONE_CHIP = {"dojo-tile": "a training tile of 25 D1 chips"}
#: Because: a chip is 'in the market' at 2024-03 if the catalog dates it 2023 or earlier (every 2024
#: part in the catalog -- B200, H200, Gaudi 3, MI325X, Trainium2, TPU v6e -- shipped after March 2024)
IN_MARKET_BY_2024_03 = 2023
RANK_METRICS = ("bf16", "fp8", "hbm_capacity", "hbm_bandwidth")


def h100_over_a100() -> dict[str, float]:
    """How many A100s one H100 matches, metric by metric."""
    per = {m: 1 / h100e(A100, 1, m).per_chip for m in ("bf16", "tf32", "fp8", "hbm_bandwidth", "hbm_capacity")}
    cat = load_catalog()
    a, h = cat.accelerator(A100), cat.accelerator(H100)
    per["fp8_vs_bf16"] = (h.dense_tflops_fp8 or 0.0) / (a.tflops("bf16") or 1.0)
    per["bf16_per_watt"] = per["bf16"] * (a.tdp_w or 0.0) / (h.tdp_w or 1.0)
    per["bf16_per_dollar"] = per["bf16"] * (a.price_usd() or 0.0) / (h.price_usd() or 1.0)
    return per


@evaluator("h100-equals-4-a100")
def _four_a100(c: Claim) -> ClaimCheck:
    r = h100_over_a100()
    tol = tolerance(COUNT)
    matching = [m for m, v in r.items() if within(v, 4, tol)]
    return check(
        c, value=r["bf16"], claimed=4, tolerance_parameter=COUNT, verdict=verdict(bool(matching)),
        computed=(f"H100/A100: bf16 {r['bf16']:.2f}x, tf32 {r['tf32']:.2f}x, 8-bit {r['fp8']:.2f}x, FP8-vs-BF16 "
                  f"{r['fp8_vs_bf16']:.2f}x, HBM bandwidth {r['hbm_bandwidth']:.2f}x, capacity "
                  f"{r['hbm_capacity']:.2f}x, per watt {r['bf16_per_watt']:.2f}x, "
                  f"per dollar {r['bf16_per_dollar']:.2f}x"),
        why=(("No datasheet metric gives 4x: " if not matching else f"Matches on {', '.join(matching)}; ")
             + f"like for like the H100 is {r['bf16']:.2f}x; 4x sits between that and H100 FP8 vs A100 BF16 "
             f"({r['fp8_vs_bf16']:.2f}x). Measured training throughput awaits the training engine."),
        numbers={f"h100_over_a100_{m}": v for m, v in r.items()})


@evaluator("nvidia-no-comparable-hardware")
def _no_comparable(c: Claim) -> ClaimCheck:
    cat = load_catalog()
    chips = [a for a in cat.accelerators.values()
             if a.release_year <= IN_MARKET_BY_2024_03 and a.id not in NOT_ONE_CHIP]
    best: dict[str, tuple[str, float, str, float]] = {}
    for m in RANK_METRICS:
        vals = [(a, v) for a in chips if (v := metric_value(a, m)) is not None]
        nv = max(((a, v) for a, v in vals if a.vendor == "NVIDIA"), key=lambda av: av[1])
        other = max(((a, v) for a, v in vals if a.vendor != "NVIDIA"), key=lambda av: av[1])
        best[m] = (nv[0].id, nv[1], other[0].id, other[1])
    lead = {m: b[3] / b[1] for m, b in best.items()}
    ahead = [m for m, v in lead.items() if v > 1]
    return check(
        c, value=lead["bf16"], claimed=1, tolerance_parameter=None, verdict=verdict(not ahead),
        computed="; ".join(f"{m}: {b[2]} {b[3]:g} vs {b[0]} {b[1]:g} ({lead[m]:.2f}x)" for m, b in best.items()),
        why=(f"On datasheet peaks of chips on the market by 2024-03, {best['bf16'][2]} leads NVIDIA's best on "
             f"{', '.join(ahead)}. NVIDIA's edge then was software, networking and supply, which peaks do not "
             "measure; measured training throughput awaits the training engine." if ahead else
             "NVIDIA's best chip leads every datasheet metric among chips on the market by 2024-03."),
        numbers={f"best_other_over_nvidia_{m}": v for m, v in lead.items()})
