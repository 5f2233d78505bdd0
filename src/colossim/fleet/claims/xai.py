"""Evaluators of the claims about xAI's compute (Wccftech, Barchart/Nasdaq, xAI, Musk)."""

from __future__ import annotations

from colossim.fleet.accounting import point_at, top_clusters
from colossim.fleet.claims._common import n, usd
from colossim.fleet.claims.registry import (Claim, ClaimCheck, at_least, check, evaluator, tolerance,
                                            verdict, within, INCONSISTENT)
from colossim.fleet.costs import capex, power
from colossim.fleet.holdings import fleet

COUNT, COST = "claim_tolerance_count", "claim_tolerance_cost"
COLOSSUS = "xai-colossus-1"
COLOSSUS_2024_09 = "xai-colossus-1-2024-09"


def _chips(hid: str) -> dict[str, float]:
    return {c.chip: c.count for c in fleet().holding(hid).chip_counts}


@evaluator("xai-26k-30k")
def _26k_30k(c: Claim) -> ClaimCheck:
    f = fleet()
    owned = point_at(f, "xai", "2024-H1")
    lease = f.holding("xai-oracle-lease-2024-07")
    leased = lease.chip_counts[0].count
    return check(
        c, value=leased, claimed=None, tolerance_parameter=COUNT, verdict=INCONSISTENT,
        computed=(f"owned at 2024-H1 in sourced rows: {n(owned.h100e if owned else 0)}; leased: {n(leased)} H100 "
                  f"contracted from Oracle (Musk, 2024-07) vs 26,000-30,000 owned"),
        why=("No source shows xAI owning GPUs in H1 2024: Grok 2 trained on 24k H100 contracted from Oracle "
             f"(Musk), ~16k rented per The Information. The count is near the GPUs xAI rented, "
             f"{(1 - leased / 26_000) * 100:.0f}% below the range, but they were leased, not owned; the 26-30k "
             "row in the dataset is itself unsourced."),
        numbers={"owned_h100e": owned.h100e if owned else 0.0, "leased_h100": leased,
                 "claimed_low": 26_000, "claimed_high": 30_000})


@evaluator("xai-colossus-100k")
def _colossus_100k(c: Claim) -> ClaimCheck:
    f = fleet()
    h = f.holding(COLOSSUS_2024_09)
    chips = _chips(h.id)
    count = sum(chips.values())
    pw, cx = power(chips), capex(chips)
    top = top_clusters(f, "2024-09", n=10)
    rank = next(r.rank for r in top.clusters if r.cluster_id == COLOSSUS)
    earlier = f.holding("xai-colossus-1-2024-08")
    before = sum(x.count for x in earlier.chip_counts)
    return check(
        c, value=count, claimed=100_000, tolerance_parameter=COUNT,
        verdict=verdict(within(count, 100_000, tolerance(COUNT))),
        computed=(f"Colossus at 2024-09: {n(count)} H100 = {n(count)} H100e (bf16), {pw.mw:.0f} MW at the meter "
                  f"(Epoch: {h.power_mw:g}), {usd(cx.chips_usd)} chips / {usd(cx.all_in_usd)} all-in "
                  f"(Epoch: {usd(h.hardware_cost_usd)} / {usd(h.cost_usd)}); rank {rank} at 2024-09"),
        why=(f"Epoch's data-centre timeline has {n(count)} H100 online at {h.date} ({n(before)} at "
             f"{earlier.date}), the largest cluster in the dataset then. 'Four months' is not in the data."),
        numbers={"h100": count, "power_mw": pw.mw, "epoch_power_mw": h.power_mw, "chips_usd": cx.chips_usd,
                 "all_in_usd": cx.all_in_usd, "epoch_hardware_usd": h.hardware_cost_usd,
                 "epoch_total_usd": h.cost_usd, "rank_2024_09": rank})


@evaluator("xai-colossus-cost")
def _colossus_cost(c: Claim) -> ClaimCheck:
    h = fleet().holding(COLOSSUS_2024_09)
    chips = _chips(h.id)
    cx = capex(chips)
    claimed = 3e9  # Source: the claim: "$30,000 ... at least $3 billion" for 100,000 H100
    tol = tolerance(COST)
    return check(
        c, value=cx.chips_usd, claimed=claimed, tolerance_parameter=COST,
        verdict=verdict(at_least(cx.chips_usd, claimed, tol)),
        computed=(f"100,000 x {usd(cx.by_chip[0].unit_price_usd)} = {usd(cx.chips_usd)} chips; "
                  f"x {cx.multiplier:g} all-in = {usd(cx.all_in_usd)} (Epoch: {usd(h.hardware_cost_usd)} "
                  f"hardware, {usd(h.cost_usd)} total)"),
        why=("'At least $3B' holds: the chips alone cost more at the catalog price; the whole cluster "
             f"(servers, network, facility) costs {cx.multiplier:g}x that in colossim and "
             f"{(h.cost_usd or 0) / (h.hardware_cost_usd or 1):.2f}x in Epoch's independent estimate."),
        numbers={"chips_usd": cx.chips_usd, "all_in_usd": cx.all_in_usd,
                 "epoch_hardware_usd": h.hardware_cost_usd, "epoch_total_usd": h.cost_usd})


@evaluator("xai-colossus-most-powerful")
def _colossus_top(c: Claim) -> ClaimCheck:
    f = fleet()
    ranks: dict[str, int] = {}
    runner_up: dict[str, tuple[str, float]] = {}
    for m in ("bf16", "fp8"):
        top = top_clusters(f, "2024-09", n=10, metric=m).clusters
        ranks[m] = next(r.rank for r in top if r.cluster_id == COLOSSUS)
        other = next(r for r in top if r.cluster_id != COLOSSUS)
        runner_up[m] = (other.cluster_id, other.h100e)
    size = top_clusters(f, "2024-09", n=1).clusters[0].h100e
    lead = size / runner_up["bf16"][1]
    ok = all(r == 1 for r in ranks.values())
    # the first other clusters to reach Colossus' size, and when
    later = [r for r in top_clusters(f, "2025-12", n=50).clusters
             if r.cluster_id != COLOSSUS and r.h100e >= size * 0.999]
    first = min((r.date for r in later), default=None)
    peers = sorted(r.cluster_id for r in later if f.holding(r.holding_id).date == first) if first else []
    return check(
        c, value=float(ranks["bf16"]), claimed=1, tolerance_parameter=None, verdict=verdict(ok),
        computed=(f"rank {ranks['bf16']} by bf16 and {ranks['fp8']} by fp8 among clusters existing at 2024-09; "
                  f"{lead:.1f}x the next ({runner_up['bf16'][0]}, {n(runner_up['bf16'][1])} H100e)"),
        why=(f"Largest single cluster in the dataset at 2024-09 by a wide margin; the next of its size "
             f"({', '.join(peers) or 'none'}) came {first or 'later'}. Undisclosed clusters cannot be ranked."),
        numbers={"rank_bf16": ranks["bf16"], "rank_fp8": ranks["fp8"], "lead_over_next": lead})


@evaluator("xai-colossus-200k")
def _colossus_200k(c: Claim) -> ClaimCheck:
    f = fleet()
    start = f.holding(COLOSSUS_2024_09).period
    later = sorted((h for h in f.of("xai") if h.cluster_id == COLOSSUS and h.period and start
                    and h.status != "planned" and h.period.end > start.end), key=lambda h: h.period.end)  # type: ignore[union-attr]
    first_200k = next(h for h in later if sum(x.count for x in h.chip_counts) >= 200_000)
    months = first_200k.period.end - start.end  # type: ignore[union-attr]
    chips = {x.chip: x.count for x in first_200k.chip_counts}
    count = sum(chips.values())
    pw, cx = power(chips), capex(chips)
    return check(
        c, value=count, claimed=200_000, tolerance_parameter=COUNT,
        verdict=verdict(within(count, 200_000, tolerance(COUNT))),
        computed=(f"Colossus at {first_200k.date}: {' + '.join(f'{n(v)} {k}' for k, v in chips.items())} = "
                  f"{n(count)} GPUs; {pw.mw:.0f} MW (Epoch {first_200k.power_mw:g}); {usd(cx.chips_usd)} chips / "
                  f"{usd(cx.all_in_usd)} all-in (Epoch {usd(first_200k.hardware_cost_usd)} / "
                  f"{usd(first_200k.cost_usd)})"),
        why=(f"Doubled to {n(count)} GPUs ({n(chips.get('h200-sxm', 0))} of them H200) by {first_200k.date}, "
             f"{months} months after the 100k snapshot."),
        numbers={"gpus": count, "power_mw": pw.mw, "chips_usd": cx.chips_usd, "all_in_usd": cx.all_in_usd,
                 "epoch_power_mw": first_200k.power_mw, "epoch_total_usd": first_200k.cost_usd})
