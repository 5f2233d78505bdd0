"""Evaluators of the claims about Meta's compute (Zuckerberg, Meta Engineering, ARK's Downing)."""

from __future__ import annotations

from colossim.fleet.accounting import point_at
from colossim.fleet.claims._common import cluster_chips, n
from colossim.fleet.claims.registry import (Claim, ClaimCheck, at_least, check, evaluator, in_range,
                                            tolerance, verdict, within)
from colossim.fleet.h100e import h100e, h100e_mix
from colossim.fleet.holdings import fleet

# Source: the claims (claims.csv): 350,000 H100 and ~600,000 H100e by the end of 2024; "about eight
# times" Tesla's end-2024 roadmap (85,000 H100e, Musk).
H100_2024 = 350_000
H100E_2024 = 600_000
TESLA_TARGET_2024 = 85_000
COUNT = "claim_tolerance_count"
#: metrics the non-H100 share is shown under
SHARE_METRICS = ("bf16", "fp8", "hbm_bandwidth", "ark-4x-a100")


@evaluator("meta-350k-h100")
def _h100_350k(c: Claim) -> ClaimCheck:
    f = fleet()
    low = cluster_chips(f, "meta", "2024-12").get("h100-sxm", 0.0)
    owners = f.holding("meta-epoch-owners-2024-q4")
    high = float(owners.untyped_chips or 0)
    tol = tolerance(COUNT)
    return check(
        c, value=None, claimed=H100_2024, tolerance_parameter=COUNT,
        verdict=verdict(in_range(H100_2024, low, high, tol)),
        computed=(f"between {n(low)} H100 in Meta's named clusters and {n(high)} NVIDIA chips of every type "
                  f"Meta bought 2022-2024 (Epoch model) at 2024-Q4"),
        why=("No source counts Meta's H100s at end 2024; 350,000 lies between the H100s in its named clusters "
             "(a lower bound) and Epoch's estimate of all its NVIDIA purchases since 2022 (an upper bound, "
             f"{n(owners.h100e_reported)} H100e: mostly Hopper)."),
        numbers={"h100_in_clusters": low, "nvidia_chips_epoch": high, "nvidia_h100e_epoch": owners.h100e_reported})


@evaluator("meta-600k-h100e")
def _h100e_600k(c: Claim) -> ClaimCheck:
    f = fleet()
    at = point_at(f, "meta", "2024-Q4", "fp8")
    value = at.h100e if at else 0.0
    other = H100E_2024 - H100_2024
    share = {m: other / h100e("a100-80gb-sxm", 1, m).per_chip for m in SHARE_METRICS}
    mi300x = {m: other / h100e("mi300x", 1, m).per_chip for m in ("bf16", "hbm_bandwidth")}
    clusters = cluster_chips(f, "meta", "2024-12")
    named = {m: h100e_mix(clusters, m) for m in ("bf16", "fp8", "hbm_bandwidth", "power", "price")}
    tol = tolerance(COUNT)
    numbers: dict[str, float | None] = {"meta_2024_q4_h100e": value, "non_h100_share_h100e": other}
    numbers.update({f"non_h100_as_a100_{m}": v for m, v in share.items()})
    numbers.update({f"non_h100_as_mi300x_{m}": v for m, v in mi300x.items()})
    numbers.update({f"named_clusters_h100e_{m}": v for m, v in named.items()})
    return check(
        c, value=value, claimed=H100E_2024, tolerance_parameter=COUNT,
        verdict=verdict(within(value, H100E_2024, tol)),
        computed=(f"Meta at 2024-Q4: {n(value)} H100e (Epoch, 8-bit, NVIDIA bought since 2022). The non-H100 "
                  f"{n(other)} H100e = {n(share['bf16'])} A100 by bf16/fp8, {n(share['hbm_bandwidth'])} by "
                  f"HBM bandwidth, {n(share['ark-4x-a100'])} by ARK's 4:1; or {n(mi300x['bf16'])} MI300X by bf16"),
        why=("Epoch's independent estimate of Meta's NVIDIA fleet matches 600k on the 8-bit basis (AMD not "
             "included). Meta did not state its basis; the named clusters alone are "
             f"{n(named['bf16'])} H100e by bf16 and {n(named['hbm_bandwidth'])} by HBM bandwidth."),
        numbers=numbers)


@evaluator("meta-8x-tesla")
def _8x_tesla(c: Claim) -> ClaimCheck:
    f = fleet()
    ratio = H100E_2024 / TESLA_TARGET_2024
    tesla_actual = f.holding("tesla-chart-2024-q4").h100e_reported or 0.0
    meta = point_at(f, "meta", "2024-Q4", "fp8")
    meta_value = meta.h100e if meta else 0.0
    tol = tolerance(COUNT)
    return check(
        c, value=ratio, claimed=8, tolerance_parameter=COUNT, verdict=verdict(within(ratio, 8, tol)),
        computed=(f"600,000 / 85,000 = {ratio:.2f}x; vs Tesla's actual {n(tesla_actual)}: "
                  f"{H100E_2024 / tesla_actual:.2f}x; Epoch's Meta {n(meta_value)} / {n(tesla_actual)} = "
                  f"{meta_value / tesla_actual:.2f}x"),
        why=f"About seven times, not eight: {ratio:.2f} is {abs(ratio / 8 - 1) * 100:.0f}% short of 8.",
        numbers={"ratio_target": ratio, "ratio_actual": H100E_2024 / tesla_actual,
                 "ratio_epoch": meta_value / tesla_actual})


@evaluator("meta-doubling-since-2023")
def _doubling(c: Claim) -> ClaimCheck:
    f = fleet()
    start = point_at(f, "meta", "2023-Q1", "fp8")
    end = point_at(f, "meta", "2024-Q4", "fp8")
    v0 = start.h100e if start else 0.0
    v1 = end.h100e if end else 0.0
    factor = v1 / v0
    tol = tolerance(COUNT)
    return check(
        c, value=factor, claimed=2, tolerance_parameter=COUNT, verdict=verdict(at_least(factor, 2, tol)),
        computed=(f"Meta 2023-Q1 {n(v0)} H100e (named clusters: RSC) -> 2024-Q4 {n(v1)} (Epoch) = {factor:.0f}x; "
                  f"350,000 H100 alone = {H100_2024 / v0:.0f}x"),
        why=("Far more than doubling. The 2023-Q1 base counts only Meta's one named research cluster, so the "
             f"factor is an upper bound; any base under {n(v1 / 2)} H100e gives more than 2x."),
        numbers={"h100e_2023_q1": v0, "h100e_2024_q4": v1, "factor": factor})
