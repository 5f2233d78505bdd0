"""Evaluators of the claims about Tesla's compute (Q1 2024 deck, Musk, ARK, Wccftech)."""

from __future__ import annotations

from colossim.fleet.accounting import point_at, top_clusters, value_holding
from colossim.fleet.claims._common import cluster_chips, n, pct, usd
from colossim.fleet.claims.registry import (Claim, ClaimCheck, at_least, check, evaluator, in_range,
                                            tolerance, verdict, within, within_factor)
from colossim.fleet.costs import capex, power
from colossim.fleet.h100e import h100e_mix
from colossim.fleet.holdings import fleet

# Source: the claims themselves (claims.csv): +130 % in Q1 2024 to ~40,000; +467 % year on year to
# 85,000 by end 2024; "$500 million ... equivalent to around 10,000 units of the H100".
Q1_2024_H100E = 40_000
Q1_GROWTH = 1.30
TARGET_2024 = 85_000
TARGET_YOY = 4.67
DOJO_USD = 500e6
DOJO_H100 = 10_000
COUNT, COST, OOM = "claim_tolerance_count", "claim_tolerance_cost", "claim_tolerance_order_of_magnitude"


def _all_in_h100_usd() -> float:
    return capex({"h100-sxm": 1}).all_in_usd


def tesla_chips_q1_2024() -> dict[str, float]:
    """Tesla's chips at the end of Q1 2024: its clusters' chips, with the H100 count raised to the
    35,000 Musk gave on the Q1 call (that count covers all its H100s, the 10k cluster included)."""
    f = fleet()
    chips = cluster_chips(f, "tesla", "2024-03")
    musk = f.holding("tesla-h100-claim-2024-03").chip_counts[0].count
    chips["h100-sxm"] = max(chips.get("h100-sxm", 0.0), musk)
    return chips


@evaluator("tesla-q1-2024-h100e")
def _q1_h100e(c: Claim) -> ClaimCheck:
    chips = tesla_chips_q1_2024()
    bf16, fp8 = h100e_mix(chips, "bf16"), h100e_mix(chips, "fp8")
    a100 = chips.get("a100-80gb-sxm", 0.0)
    a100_h100e = h100e_mix({"a100-80gb-sxm": 1}, "bf16")
    # if the 2021 clusters are part of the A100 cluster, Tesla's A100s are that cluster's latest size
    a100_only_main = fleet().holding("tesla-a100-cluster-2022-08").chip_counts[0].count
    overlap = h100e_mix({"h100-sxm": chips["h100-sxm"], "a100-80gb-sxm": a100_only_main}, "bf16")
    tol = tolerance(COUNT)
    return check(
        c, value=bf16, claimed=Q1_2024_H100E, verdict=verdict(within(bf16, Q1_2024_H100E, tol)),
        tolerance_parameter=COUNT,
        computed=(f"{n(chips['h100-sxm'])} H100 (Musk, Q1 call) + {n(a100)} A100 in Tesla's clusters "
                  f"= {n(bf16)} H100e by bf16 ({n(fp8)} by fp8)"),
        why=(f"The chip holdings add up to the deck's figure: {n(chips['h100-sxm'])} H100 plus the A100 clusters "
             f"({a100_h100e:.2f} H100e per A100 by dense bf16, the same by 8-bit). Dojo is not counted (no D1 "
             f"count for Q1 2024). If the 2021 A100 clusters overlap, the total is {n(overlap)}."),
        numbers={"h100": chips["h100-sxm"], "a100": a100, "h100e_bf16": bf16, "h100e_fp8": fp8,
                 "h100e_bf16_if_a100_clusters_overlap": overlap})


@evaluator("tesla-q1-2024-growth")
def _q1_growth(c: Claim) -> ClaimCheck:
    f = fleet()
    end_2023 = f.holding("tesla-total-2023-12").h100e_reported or 0.0
    base_130 = Q1_2024_H100E / (1 + Q1_GROWTH)
    base_467 = TARGET_2024 / (1 + TARGET_YOY)
    factor = Q1_2024_H100E / end_2023
    chips_q4 = cluster_chips(f, "tesla", "2023-12")
    chips_factor = h100e_mix(tesla_chips_q1_2024(), "bf16") / h100e_mix(chips_q4, "bf16")
    tol = tolerance(COUNT)
    return check(
        c, value=factor, claimed=1 + Q1_GROWTH, tolerance_parameter=COUNT,
        verdict=verdict(at_least(factor, 1 + Q1_GROWTH, tol)),
        computed=(f"end-2023 {n(end_2023)} -> Q1 2024 {n(Q1_2024_H100E)} H100e (Tesla's figures) = "
                  f"{pct(factor - 1)}; from chips {pct(chips_factor - 1)}. Base implied by +130%: "
                  f"{n(base_130)}; by +467% to 85k: {n(base_467)}"),
        why=("The deck says 'more than 130%', a lower bound, and the growth from Tesla's own end-2023 figure "
             f"was {pct(factor - 1)}. Read as exactly +130%, the base would be {n(base_130)}, "
             f"{pct(base_130 / base_467 - 1)} above the {n(base_467)} that the +467% target implies; the two "
             "claims agree only as 'more than'."),
        numbers={"end_2023_reported": end_2023, "base_implied_130": base_130, "base_implied_467": base_467,
                 "growth_factor_reported": factor, "growth_factor_chips": chips_factor})


@evaluator("tesla-2024-target")
def _target(c: Claim) -> ClaimCheck:
    f = fleet()
    end_2023 = f.holding("tesla-total-2023-12").h100e_reported or 0.0
    base = TARGET_2024 / (1 + TARGET_YOY)
    actual = f.holding("tesla-chart-2024-q4").h100e_reported or 0.0
    base_130 = Q1_2024_H100E / (1 + Q1_GROWTH)
    tol = tolerance(COUNT)
    ok = within(actual, TARGET_2024, tol) and within(end_2023, base, tol)
    return check(
        c, value=actual, claimed=TARGET_2024, tolerance_parameter=COUNT, verdict=verdict(ok),
        computed=(f"base implied {n(base)} vs Tesla's end-2023 {n(end_2023)}; actual end-2024 {n(actual)} "
                  f"H100e (Tesla chart as Epoch digitised it, +2,500 baseline raw)"),
        why=(f"The +467% implies an end-2023 base of {n(base)}, matching Tesla's 15,000; the end-2024 actual, "
             f"{n(actual)}, met the 85,000 target. The +130% claim implies a {pct(base_130 / base - 1)} higher "
             "base: consistent only as 'more than 130%'."),
        numbers={"base_implied": base, "end_2023_reported": end_2023, "actual_2024_q4": actual,
                 "base_implied_by_q1_growth": base_130})


@evaluator("tesla-dojo-500m")
def _dojo(c: Claim) -> ClaimCheck:
    f = fleet()
    cx = capex({"h100-sxm": 1})
    implied = DOJO_USD / DOJO_H100
    at_all_in = DOJO_USD / cx.all_in_usd
    at_chip = DOJO_USD / cx.chips_usd
    colossus = f.holding("xai-colossus-1-2024-09")
    colossus_per_gpu = (colossus.cost_usd or 0.0) / colossus.chip_counts[0].count
    tol = tolerance(COST)
    return check(
        c, value=at_all_in, claimed=DOJO_H100, tolerance_parameter=COST,
        verdict=verdict(within(at_all_in, DOJO_H100, tol)),
        computed=(f"implied {usd(implied)} per H100; $500M buys {n(at_all_in)} H100 all-in "
                  f"({usd(cx.all_in_usd)} each = {usd(cx.chips_usd)} x {cx.multiplier:g}) or {n(at_chip)} "
                  f"at chip price; at Colossus' {usd(colossus_per_gpu)}/GPU all-in: {n(DOJO_USD / colossus_per_gpu)}"),
        why=(f"A dollar equivalence, not a compute one: {usd(implied)} per H100 is an all-in cluster cost "
             f"(servers, network, facility), {implied / cx.chips_usd:.2f}x the chip price. The all-in multiplier "
             f"({cx.multiplier:g}) was partly set from this claim, so the independent check is Colossus: Epoch's "
             f"{usd(colossus.cost_usd)} for {n(colossus.chip_counts[0].count)} H100 is {usd(colossus_per_gpu)} "
             "per GPU. What $500M of Dojo computes cannot be checked: the catalog has no D1 price."),
        numbers={"implied_usd_per_h100": implied, "h100_all_in_usd": cx.all_in_usd,
                 "h100_chip_usd": cx.chips_usd, "h100_bought_all_in": at_all_in, "h100_bought_chip": at_chip,
                 "colossus_all_in_usd_per_gpu": colossus_per_gpu})


@evaluator("tesla-q1-2024-capex")
def _q1_capex(c: Claim) -> ClaimCheck:
    claimed = 1.0e9  # Source: the claim (claims.csv): AI infrastructure capex of $1.0B in Q1 2024
    added = Q1_2024_H100E - Q1_2024_H100E / (1 + Q1_GROWTH)
    cx = capex({"h100-sxm": added})
    per = claimed / added
    end_2023 = fleet().holding("tesla-total-2023-12").h100e_reported or 0.0
    alt = capex({"h100-sxm": Q1_2024_H100E - end_2023})
    tol = tolerance(COST)
    return check(
        c, value=cx.all_in_usd, claimed=claimed, tolerance_parameter=COST,
        verdict=verdict(within(cx.all_in_usd, claimed, tol)),
        computed=(f"{n(added)} H100e added in Q1 (40,000 - 40,000/2.3) as H100: {usd(cx.all_in_usd)} all-in, "
                  f"{usd(cx.chips_usd)} chips; implied {usd(per)} per H100e added"),
        why=(f"$1.0B buys the Q1 addition at {usd(per)} per H100e, between the H100 chip price "
             f"({usd(cx.chips_usd / added)}) and colossim's all-in cost ({usd(cx.all_in_usd / added)}). From "
             f"Tesla's 15,000 end-2023 base the addition is {n(Q1_2024_H100E - end_2023)} H100e, "
             f"{usd(alt.all_in_usd)} all-in."),
        numbers={"h100e_added": added, "all_in_usd": cx.all_in_usd, "chips_usd": cx.chips_usd,
                 "implied_usd_per_h100e": per, "all_in_usd_from_15k_base": alt.all_in_usd})


@evaluator("tesla-nvidia-spend-2024")
def _nvidia_spend(c: Claim) -> ClaimCheck:
    claimed = DOJO_USD * 10  # Because: "an order of magnitude more" than the $500M Dojo investment
    end_2023 = fleet().holding("tesla-total-2023-12").h100e_reported or 0.0
    added = TARGET_2024 - end_2023
    cx = capex({"h100-sxm": added})
    unit = capex({"h100-sxm": 1})
    factor = tolerance(OOM)
    return check(
        c, value=cx.all_in_usd, claimed=claimed, tolerance_parameter=OOM,
        verdict=verdict(within_factor(cx.all_in_usd, claimed, factor)),
        computed=(f"the 85k target adds {n(added)} H100e in 2024: {usd(cx.all_in_usd)} all-in "
                  f"({usd(cx.chips_usd)} chips); $5B buys {n(claimed / unit.all_in_usd)} H100 all-in, "
                  f"{n(claimed / unit.chips_usd)} at chip price"),
        why=(f"An order of magnitude over $500M is ~$5B; reaching the 85k target from 15k costs "
             f"{usd(cx.all_in_usd)} all-in if every added H100e is an H100, within a factor of "
             f"{factor:.2f} of $5B. Part of 2024's addition was Dojo, not NVIDIA."),
        numbers={"claimed_usd": claimed, "h100e_added_2024": added, "all_in_usd": cx.all_in_usd,
                 "chips_usd": cx.chips_usd, "h100_for_5b_all_in": claimed / unit.all_in_usd})


@evaluator("tesla-competitive-spend")
def _competitive(c: Claim) -> ClaimCheck:
    # Source: the claim (claims.csv, "several billion dollars per year"; what_to_compute: $2-5B)
    low, high = 2e9, 5e9
    f = fleet()
    top_2023 = top_clusters(f, "2023-12", n=1).clusters[0]
    top_2024 = top_clusters(f, "2024-12", n=1).clusters[0]
    added = top_2024.h100e - top_2023.h100e
    cost = capex({"h100-sxm": added})
    tol = tolerance(COST)
    return check(
        c, value=cost.all_in_usd, claimed=(low + high) / 2, tolerance_parameter=COST,
        verdict=verdict(in_range(cost.all_in_usd, low, high, tol)),
        computed=(f"largest cluster grew {n(top_2023.h100e)} -> {n(top_2024.h100e)} H100e in 2024 "
                  f"({top_2023.cluster_id} -> {top_2024.cluster_id}): keeping pace cost "
                  f"{usd(cost.all_in_usd)}/yr all-in ({usd(cost.chips_usd)} chips)"),
        why=(f"Keeping up with the largest single cluster in the dataset took {usd(cost.all_in_usd)} of all-in "
             f"capex in 2024 (as H100s), inside the {usd(low)}-{usd(high)} range. What that compute trains is "
             "for the training engine."),
        numbers={"claimed_low_usd": low, "claimed_high_usd": high, "top_2023_h100e": top_2023.h100e,
                 "top_2024_h100e": top_2024.h100e, "all_in_usd_per_year": cost.all_in_usd})


@evaluator("tesla-h100-range")
def _h100_range(c: Claim) -> ClaimCheck:
    low, high = 30_000, 350_000  # Source: the claim (claims.csv)
    h100 = tesla_chips_q1_2024()["h100-sxm"]
    tol = tolerance(COUNT)
    return check(
        c, value=h100, claimed=None, tolerance_parameter=COUNT, verdict=verdict(in_range(h100, low, high, tol)),
        computed=f"{n(h100)} H100 at 2024-Q1 (Musk, Q1 call; Tesla's clusters hold 10,000) vs {n(low)}-{n(high)}",
        why=(f"Inside the range, near its low end; the range spans a factor of {high / low:.1f}, so it says little. "
             "The only H100 count for Q1 2024 is Musk's, which Epoch rates 'unlikely' as a single cluster."),
        numbers={"h100": h100, "claimed_low": low, "claimed_high": high})


@evaluator("tesla-10k-cluster")
def _cluster_10k(c: Claim) -> ClaimCheck:
    h = fleet().holding("tesla-10k-h100-2023-08")
    chips = {x.chip: x.count for x in h.chip_counts}
    v = value_holding(h, "bf16")
    pw, cx = power(chips), capex(chips)
    count = chips["h100-sxm"]
    return check(
        c, value=count, claimed=10_000, tolerance_parameter=COUNT,
        verdict=verdict(within(count, 10_000, tolerance(COUNT))),
        computed=(f"{h.id}: {n(count)} H100 = {n(v.value)} H100e (bf16); {pw.mw:.1f} MW; {usd(cx.chips_usd)} "
                  f"chips, {usd(cx.all_in_usd)} all-in (Epoch: {h.power_mw:g} MW, {usd(h.cost_usd)})"),
        why=f"In the dataset at the size claimed ({h.h100e_reported_by}, confidence {h.confidence}).",
        numbers={"h100": count, "h100e_bf16": v.value, "power_mw": pw.mw, "chips_usd": cx.chips_usd,
                 "all_in_usd": cx.all_in_usd, "epoch_power_mw": h.power_mw, "epoch_cost_usd": h.cost_usd})


@evaluator("tesla-20x-18-months")
def _20x(c: Claim) -> ClaimCheck:
    f = fleet()
    mid_2023 = point_at(f, "tesla", "2023-Q2", "bf16")
    base = mid_2023.h100e if mid_2023 else 0.0
    actual = f.holding("tesla-chart-2024-q4").h100e_reported or 0.0
    ratio = TARGET_2024 / base
    a100 = cluster_chips(f, "tesla", "2023-Q2").get("a100-80gb-sxm", 0.0)
    tol = tolerance(COUNT)
    return check(
        c, value=ratio, claimed=20, tolerance_parameter=COUNT, verdict=verdict(within(ratio, 20, tol)),
        computed=(f"mid-2023 {n(base)} H100e (Tesla's A100 clusters, bf16) -> end-2024 target {n(TARGET_2024)}"
                  f" = {ratio:.1f}x (actual {n(actual)}: {actual / base:.1f}x)"),
        why=(f"Tesla's mid-2023 fleet in the dataset is its A100 clusters ({n(a100)} A100); the 10k H100 cluster "
             "arrived in August 2023. If the 2021 clusters overlap, the base is smaller and the ratio larger."),
        numbers={"mid_2023_h100e": base, "target": TARGET_2024, "ratio_target": ratio,
                 "ratio_actual": actual / base})
